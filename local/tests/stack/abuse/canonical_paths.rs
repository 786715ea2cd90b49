//! A trailing slash past the WAF: the web ACL's rate rules count the buying and paying
//! paths (template/web_acl.rs checks them on every form of the path), and the API serves each
//! route in its one canonical form only, so no other form is both uncounted and served.
//! Here, against the local stack: `POST .../purchase/`, `.../queue/`, `.../pass/` and
//! `.../payment/` (and doubled slashes) are 404 problem+json through the edge, nothing
//! sold, joined, passed or paid, while the canonical forms still work; and each function
//! refuses such a path itself, as it must on AWS, where the HTTP API hands it over.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

fn assert_not_found(what: &str, (status, body): &(u16, Value)) {
    assert_eq!((*status, body["type"].as_str()), (404, Some("/problems/not-found")), "{what}: {body}");
}

/// The forms of a canonical path that are not it.
fn other_forms(path: &str) -> Vec<String> {
    let (head, last) = path.rsplit_once('/').unwrap();
    vec![format!("{path}/"), format!("{path}//"), format!("{head}//{last}"), path.replacen("/api/", "/api//", 1)]
}

/// Buying with a trailing slash (or a doubled one) sells nothing and is a 404; the
/// canonical purchase still buys. Fails where `.../purchase/` is served as `.../purchase`
/// (202, a unit sold outside the WAF's count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_in_another_form_of_its_path_is_not_served() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    let token = api.token("slash");
    for path in other_forms(&format!("/api/sales/{sale}/purchase")) {
        let answer = api.call("POST", &path, Some(&token), Some(json!({"quantity": 1}))).await;
        assert_not_found(&format!("POST {path}"), &answer);
    }
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 3, "nothing sold by the other forms");
    let (status, body) = api.buy(sale, "slash", None).await;
    assert_eq!(status, 202, "the canonical purchase buys: {body}");
    assert_eq!(redis_stock(&mut redis, sale).await, 2);
}

/// Joining a waiting room and taking a pass with a trailing slash give no place and no
/// pass; the canonical join and pass still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_or_a_pass_in_another_form_of_its_path_is_not_served() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(room_spec("fifo", 3, 1, 1000, -1)).await;
    let token = api.token("slash");
    let (status, challenge) = api.call("GET", &format!("/api/sales/{sale}/queue/challenge"), Some(&token), None).await;
    assert_eq!(status, 200, "{challenge}");
    let challenge: flashsale::waiting_room::Challenge = serde_json::from_value(challenge).unwrap();
    let proof = flashsale::waiting_room::solve(&challenge).expect("a challenge is solvable");
    for path in other_forms(&format!("/api/sales/{sale}/queue")) {
        let answer = api.call("POST", &path, Some(&token), Some(json!({ "proof": proof }))).await;
        assert_not_found(&format!("POST {path}"), &answer);
    }
    let answer = pass(&api, sale, "slash").await;
    assert_eq!(answer.1["detail"].as_str(), Some("queue place not found"), "no place taken: {}", answer.1);

    let (status, body) = join(&api, sale, "slash").await;
    assert_eq!(status, 201, "the canonical join: {body}");
    for path in other_forms(&format!("/api/sales/{sale}/pass")) {
        let answer = api.call("POST", &path, Some(&token), None).await;
        assert_not_found(&format!("POST {path}"), &answer);
    }
    let pass = eventually("the shopper's turn", Duration::from_secs(20), || async {
        let (status, body) = pass(&api, sale, "slash").await;
        (status == 200).then_some(body)
    })
    .await;
    let (status, body) = buy_with(&api, sale, "slash", pass["pass"].as_str().unwrap()).await;
    assert_eq!(status, 202, "the canonical pass buys: {body}");
}

/// Starting a payment with a trailing slash calls no provider and is a 404; the
/// canonical payment still starts one. Fails where `.../payment/` is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_in_another_form_of_its_path_is_not_served() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    let (status, body) = api.buy(sale, "payer", None).await;
    assert_eq!(status, 202, "{body}");
    let order = body["order_id"].as_str().unwrap().to_string();
    api.await_status("payer", &order, "UNPAID").await;
    let token = api.token("payer");
    for path in other_forms(&format!("/api/orders/{order}/payment")) {
        let answer = api.call("POST", &path, Some(&token), None).await;
        assert_not_found(&format!("POST {path}"), &answer);
    }
    let (_, stored) = api.order("payer", &order).await;
    assert!(stored["payment_intent"].is_null(), "no payment started by the other forms: {stored}");
    let (status, body) = api.payment("payer", &order).await;
    assert_eq!(status, 200, "the canonical payment: {body}");
    assert!(body["client_secret"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
}

/// Each function refuses another form of its path itself, before any store is asked:
/// on AWS the HTTP API hands `.../purchase/` to the purchase route's function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_refuses_another_form_of_its_path_itself() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    // Staff's claims: the admin route checks the group before it routes.
    let claims =
        || Some([("sub".to_string(), "direct".into()), ("cognito:groups".to_string(), "[admin]".into())].into());
    let canonical = [
        ("POST", format!("/api/sales/{sale}/purchase")),
        ("GET", format!("/api/sales/{sale}")),
        ("GET", format!("/api/sales/{sale}/queue/status")),
        ("POST", format!("/api/sales/{sale}/queue")),
        ("POST", format!("/api/sales/{sale}/pass")),
        ("POST", "/api/orders/1/payment".to_string()),
        ("POST", "/api/payments/webhook".to_string()),
        ("POST", format!("/api/admin/sales/{sale}/publish")),
    ];
    for (method, path) in canonical {
        for form in other_forms(&path) {
            let mut request = flashsale_local::aws::gateway::lambda_request(method, &path, claims(), b"{}");
            *request.uri_mut() = form.parse().unwrap();
            // As through the edge, which adds the origin value the functions check first.
            let origin = stack.secrets.origin_values[0].expose().parse().unwrap();
            request.headers_mut().insert("x-origin-verify", origin);
            let functions = &stack.functions;
            let response = match path.as_str() {
                p if p.ends_with("/purchase") => functions.admit.handle(request).await,
                p if p.starts_with("/api/admin/") => functions.admin.handle(request).await,
                p if p.starts_with("/api/payments/") => functions.payments.handle(request).await,
                _ => functions.shop.handle(request).await,
            };
            let status = response.status().as_u16();
            let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
            assert_eq!((status, body["type"].as_str()), (404, Some("/problems/not-found")), "{method} {form}: {body}");
        }
    }
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 3, "nothing sold");
}
