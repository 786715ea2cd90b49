//! The purchase path end to end over HTTP through the local stack: admission, SQS,
//! persistence, payment, timeout close and the stock coming back.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::*;
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_shoppers_five_units_pay_close_and_buy_again() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 1, 2, -1, 3600)).await;

    let attempts = join_all((0..50).map(|i| {
        let api = &api;
        async move { (format!("shopper-{i}"), api.buy(sale, &format!("shopper-{i}"), None).await) }
    }))
    .await;
    let admitted: Vec<(String, String)> = attempts
        .iter()
        .filter(|(_, (status, _))| *status == 202)
        .map(|(user, (_, body))| (user.clone(), body["order_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(admitted.len(), 5, "exactly the stock is admitted");
    for (_, (status, body)) in &attempts {
        assert!(*status == 202 || (*status == 409 && body["type"] == "/problems/sold-out"), "{status} {body}");
    }

    // Every admitted order reaches MySQL as UNPAID, one per distinct shopper.
    let db = mysql(&stack).await;
    let rows: Vec<(String, String)> = eventually("5 UNPAID orders", Duration::from_secs(20), || async {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT CAST(user_id AS CHAR), status FROM orders WHERE sale_id = ?")
                .bind(sale)
                .fetch_all(&db)
                .await
                .unwrap();
        (rows.len() == 5 && rows.iter().all(|(_, s)| s == "UNPAID")).then_some(rows)
    })
    .await;
    let buyers: HashSet<_> = rows.iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(buyers.len(), 5);

    // One pays inside the window, through the provider; the order is PAID once the
    // provider's webhook says so.
    let (payer, paid_order) = &admitted[0];
    let (status, body) = api.pay(payer, paid_order, CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    api.await_status(payer, paid_order, "PAID").await;
    // Nobody else can see or pay it.
    let (status, _) = api.order("intruder", paid_order).await;
    assert_eq!(status, 404);

    // The four others time out and are closed; their stock comes back in both stores.
    for (user, order) in &admitted[1..] {
        eventually("order closed", Duration::from_secs(20), || async {
            let (_, body) = api.order(user, order).await;
            (body["status"] == "CLOSED").then_some(())
        })
        .await;
        let (status, body) = api.payment(user, order).await;
        assert_eq!(status, 409, "a closed order cannot be paid: {body}");
    }
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 4);
    assert_eq!(mysql_sale(&db, sale).await, (5, 1));
    let (_, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!(body["remaining"], 4);
    assert_eq!(body["state"], "open");

    // And a new shopper can buy a released unit.
    let (status, body) = api.buy(sale, "latecomer", None).await;
    assert_eq!(status, 202, "{body}");
}

/// The API is reachable only through the edge. Sent to the API Gateway endpoint directly
/// (CloudFront skipped), a request to each API function is refused with 403 problem+json
/// before any work, with no origin value or a forged one, and the sale is untouched;
/// through the edge, where the origin header is set (a viewer's own value overwritten),
/// the same purchase is a 202.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_skipped_the_edge_is_refused_and_changes_nothing() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    let direct = format!("http://{}", stack.api_addr);
    let webhook = "/api/payments/webhook";
    let routes = [
        ("POST", format!("/api/sales/{sale}/purchase"), Some(api.token("sly"))),
        ("GET", format!("/api/sales/{sale}"), None),
        ("GET", "/api/orders".to_string(), Some(api.token("sly"))),
        ("GET", "/api/admin/sales".to_string(), Some(api.admin.clone())),
        ("POST", webhook.to_string(), None),
    ];
    for forged in [None, Some("guessed"), Some("")] {
        for (method, path, token) in &routes {
            let mut request = api.http.request(method.parse().unwrap(), format!("{direct}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(value) = forged {
                request = request.header("x-origin-verify", value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!((status, body["type"].as_str()), (403, Some("/problems/forbidden")), "{method} {path}: {body}");
            assert_eq!(content_type, "application/problem+json");
        }
    }
    let (_, status) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!(status["remaining"], 3, "nothing sold by the refused purchases: {status}");

    // Through the edge, even with a viewer's own guess at the header: served.
    let response = api
        .http
        .post(format!("{}/api/sales/{sale}/purchase", api.base))
        .bearer_auth(api.token("sly"))
        .header("x-origin-verify", "guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

/// Every change an admin asks for is in the audit trail before it is made, with who
/// asked, when, what, and how it ended: concurrent changes by several admins each once,
/// a refused one as failed. Shoppers cannot read the trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_change_is_in_the_audit_trail_with_who_when_and_how_it_ended() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let admin = |who: &str| stack.token(who, true);
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);

    let mut spec = sale_spec(5, 1, 120, 60, 3600);
    spec["waiting_room"] = json!({ "mode": "fifo", "rate": 10, "difficulty": 1000 });
    let (status, created) = api.call("POST", "/api/admin/sales", Some(&admin("alice")), Some(spec.clone())).await;
    assert_eq!(status, 201, "{created}");
    let sale = created["id"].as_u64().unwrap();
    let publish = format!("/api/admin/sales/{sale}/publish");
    assert_eq!(api.call("POST", &publish, Some(&admin("alice")), None).await.0, 200);
    // Eight admins change the waiting room at once: eight entries, each done.
    let queue = format!("/api/admin/sales/{sale}/queue");
    let changes = (0..8).map(|i| {
        let (api, queue, token) = (&api, &queue, admin(&format!("staff-{i}")));
        async move { api.call("PATCH", queue, Some(&token), Some(json!({ "rate": 20 + i }))).await.0 }
    });
    assert!(futures::future::join_all(changes).await.iter().all(|s| *s == 200));
    let resync = format!("/api/admin/sales/{sale}/resync");
    assert_eq!(api.call("POST", &resync, Some(&admin("bob")), None).await.0, 200);
    // A change that is refused is entered too, as failed.
    let (status, _) = api.call("POST", "/api/admin/sales/999999999/publish", Some(&admin("carol")), None).await;
    assert_eq!(status, 404);

    let (status, body) = api.call("GET", &format!("/api/admin/audit?sale={sale}"), Some(&admin("dave")), None).await;
    assert_eq!(status, 200, "{body}");
    let actions = body["actions"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = actions
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["actor"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(seen.len(), 11, "{seen:?}");
    assert_eq!(seen[0], ("resync", "bob", "done"), "newest first: {seen:?}");
    assert_eq!(&seen[9..], &[("publish", "alice", "done"), ("create", "alice", "done")], "{seen:?}");
    let mut staff: Vec<&str> = seen[1..9]
        .iter()
        .map(|(action, actor, outcome)| {
            assert_eq!((*action, *outcome), ("waiting_room", "done"));
            *actor
        })
        .collect();
    staff.sort();
    assert_eq!(staff, (0..8).map(|i| format!("staff-{i}")).collect::<Vec<_>>());
    let rates: std::collections::BTreeSet<u64> =
        actions[1..9].iter().map(|a| a["detail"]["rate"].as_u64().unwrap()).collect();
    assert_eq!(rates, (20..28).collect(), "each change's own request");
    assert_eq!(actions[10]["detail"]["stock"], spec["stock"], "the creation's request");
    for a in actions {
        let at: chrono::DateTime<chrono::Utc> = a["at"].as_str().unwrap().parse().unwrap();
        let ended: chrono::DateTime<chrono::Utc> = a["ended_at"].as_str().unwrap().parse().unwrap();
        assert!(since <= at && at <= ended && ended <= chrono::Utc::now(), "{a}");
        assert_eq!(a["sale_id"], json!(sale), "{a}");
    }

    // Other tests' admins write to the trail too: carol's entry, by the sale it named.
    let (_, all) = api.call("GET", "/api/admin/audit?sale=999999999", Some(&admin("dave")), None).await;
    let refused = all["actions"].as_array().unwrap().iter().find(|a| a["actor"] == "carol").expect("carol's entry");
    assert_eq!((refused["action"].as_str(), refused["sale_id"].as_u64()), (Some("publish"), Some(999999999)));
    assert!(refused["outcome"].as_str().unwrap().starts_with("failed:"), "{refused}");
    // Paged: the page after the first entry holds the rest.
    let first = actions[0]["id"].as_str().map(str::to_string).unwrap_or_else(|| actions[0]["id"].to_string());
    let (_, rest) =
        api.call("GET", &format!("/api/admin/audit?sale={sale}&before={first}"), Some(&admin("dave")), None).await;
    assert_eq!(rest["actions"].as_array().unwrap().len(), 10);

    let (status, _) = api.call("GET", "/api/admin/audit", Some(&api.token("shopper")), None).await;
    assert_eq!(status, 403, "a shopper cannot read the trail");
    let (status, _) = api.call("GET", "/api/admin/audit?sale=abc", Some(&admin("dave")), None).await;
    assert_eq!(status, 400);
}
