//! The money, against the real local provider (localstripe): signed webhooks, events
//! delivered twice, late and out of order, dropped webhooks repaired by reconcile, a
//! late payment refunded once, and the provider down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale::config::Secret;
use flashsale::payments::signature::sign;
use flashsale::{OrderId, SaleId};
use serde_json::{json, Value};

use crate::helpers::*;

/// What the provider delivered to an endpoint of the test's own: the body as sent and
/// its `Stripe-Signature`, to hold back and replay.
#[derive(Clone, Debug)]
struct Delivery {
    body: String,
    signature: String,
}

impl Delivery {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An endpoint that records every delivery and answers 200.
struct Capture {
    url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Capture {
    async fn start() -> Self {
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Default::default();
        let kept = deliveries.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let signature = headers["stripe-signature"].to_str().unwrap().to_string();
                    kept.lock().unwrap().push(Delivery { body, signature });
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture { url, deliveries }
    }

    /// The deliveries of events about `intent`.
    fn of(&self, intent: &str) -> Vec<Delivery> {
        let all = self.deliveries.lock().unwrap().clone();
        all.into_iter().filter(|d| d.event()["data"]["object"]["id"] == intent).collect()
    }
}

/// Posts a delivery to the stack's webhook as the provider would: `(status, body)`.
async fn deliver(api: &Api, body: &str, signature: &str) -> (u16, Value) {
    let response = api
        .http
        .post(format!("{}/api/payments/webhook", api.base))
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// An UNPAID order of `user` in `sale`, once MySQL has it.
async fn unpaid_order(api: &Api, sale: u64, user: &str) -> String {
    let (status, body) = api.buy(sale, user, None).await;
    assert_eq!(status, 202, "{body}");
    let order = body["order_id"].as_str().unwrap().to_string();
    api.await_status(user, &order, "UNPAID").await;
    order
}

async fn events_taken(db: &sqlx::MySqlPool, intent: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT CAST(id AS CHAR) FROM payment_events WHERE payment_intent = ? ORDER BY id")
        .bind(intent)
        .fetch_all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_signature_of_the_provider_over_the_body_as_sent_moves_an_order_and_a_rotated_secret_still_does() {
    let (new, old) = ("whsec_new_0123456789".to_string(), "whsec_old_0123456789".to_string());
    let stack = stack_with(|o| o.webhook_secrets = vec![new.clone(), old.clone()]).await;
    let api = Api::new(&stack);
    // The provider's own deliveries go nowhere: only the test's reach the stack.
    api.webhook_to(&stack, Some("http://127.0.0.1:9/")).await;
    let sale = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    let order = unpaid_order(&api, sale, "alice").await;
    let (status, body) = api.pay("alice", &order, CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    let intent = body["id"].as_str().unwrap().to_string();
    let event = json!({
        "id": format!("evt_test_{intent}"),
        "type": "payment_intent.succeeded",
        "created": chrono::Utc::now().timestamp(),
        "data": {"object": {"id": intent, "object": "payment_intent", "status": "succeeded"}},
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let forged = sign(&Secret::from("whsec_someone_else"), now, event.as_bytes());
    let changed = event.replace("succeeded\"}", "succeeded\",\"amount\":1}");
    let stale = sign(&Secret::from(old.as_str()), now - 301, event.as_bytes());
    for (what, body, signature) in [
        ("another secret", event.clone(), forged),
        ("the body changed after signing", changed, sign(&Secret::from(new.as_str()), now, event.as_bytes())),
        ("a timestamp past the tolerance", event.clone(), stale),
        ("no v1 signature", event.clone(), format!("t={now}")),
    ] {
        let (status, problem) = deliver(&api, &body, &signature).await;
        assert_eq!((status, problem["type"].as_str()), (400, Some("/problems/bad-signature")), "{what}: {problem}");
        assert_eq!(api.order("alice", &order).await.1["status"], "UNPAID", "{what} changed nothing");
    }
    assert!(events_taken(&mysql(&stack).await, &intent).await.is_empty(), "no refused event is recorded");

    // Signed with the secret being rotated out: still the provider's.
    let (status, body) = deliver(&api, &event, &sign(&Secret::from(old.as_str()), now, event.as_bytes())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.order("alice", &order).await.1["status"], "PAID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_delivered_twice_and_a_failure_after_the_success_leave_each_order_paid_once() {
    let stack = stack().await;
    let api = Api::new(&stack);
    // A second endpoint of the account records what the provider sends.
    let capture = Capture::start().await;
    let keys = stack.config.payment_keys.as_ref().unwrap();
    let endpoint = format!("{}-capture", keys.secret_key.expose());
    flashsale_local::register_webhook(&api.payments, keys, &endpoint, &capture.url).await.unwrap();
    let sale = api.sale(sale_spec(5, 1, 600, -1, 3600)).await;
    let db = mysql(&stack).await;
    let mut paid = Vec::new();
    for i in 0..5 {
        let user = format!("twice-{i}");
        let order = unpaid_order(&api, sale, &user).await;
        // Declined first: the order stays UNPAID and payable; then a card that pays.
        let (status, declined) = api.pay(&user, &order, CARD_DECLINED).await;
        assert_eq!((status, declined["error"]["code"].as_str()), (402, Some("card_declined")), "{declined}");
        assert_eq!(api.order(&user, &order).await.1["status"], "UNPAID");
        let (status, body) = api.pay(&user, &order, CARD_OK).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
        let order_row = api.await_status(&user, &order, "PAID").await;
        paid.push((user, order, body["id"].as_str().unwrap().to_string(), order_row["paid_at"].clone()));
    }
    for (_, _, intent, _) in &paid {
        eventually("both events captured", Duration::from_secs(10), || async {
            (capture.of(intent).len() >= 2).then_some(())
        })
        .await;
    }

    // Every event again, twice, the failure after the success.
    for (_, _, intent, _) in &paid {
        let mut deliveries = capture.of(intent);
        deliveries.sort_by_key(|d| d.event()["type"] != "payment_intent.succeeded");
        for delivery in deliveries.iter().chain(&deliveries) {
            let (status, body) = deliver(&api, &delivery.body, &delivery.signature).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    for (user, order, intent, paid_at) in &paid {
        let (_, now) = api.order(user, order).await;
        assert_eq!((now["status"].as_str(), &now["paid_at"]), (Some("PAID"), paid_at), "paid once: {now}");
        assert_eq!(api.refunded(&stack, intent).await, 0, "no money went back");
        let taken = events_taken(&db, intent).await;
        let mut distinct: Vec<String> =
            capture.of(intent).iter().map(|d| d.event()["id"].as_str().unwrap().into()).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(taken, distinct, "each event taken once");
    }
    assert_eq!(mysql_sale(&db, sale).await, (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_that_reaches_an_order_after_it_closed_is_refunded_exactly_once() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let sale = api.sale(sale_spec(1, 1, 2, -1, 3600)).await;
    let order = unpaid_order(&api, sale, "late").await;
    // The provider's deliveries are held back (they reach only the test's endpoint).
    api.webhook_to(&stack, Some(&capture.url)).await;
    // Money for the order that its close cannot cancel: a payment the order never held
    // (created at the provider for it, as a payment whose attach lost the race would
    // be), paid at once.
    let provider = provider(&stack);
    let mysql_handle = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let row = mysql_handle.order(order.parse().map(OrderId).unwrap()).await.unwrap().unwrap();
    let intent = provider.create_intent(&row, &flashsale::domain::Currency::default()).await.unwrap();
    let (status, body) = api.confirm_card(intent.client_secret.expose(), CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    let held = eventually("the success held back", Duration::from_secs(10), || async {
        capture.of(&intent.id).into_iter().find(|d| d.event()["type"] == "payment_intent.succeeded")
    })
    .await;

    // Its window ends: the order closes and its unit goes back on sale.
    api.await_status("late", &order, "CLOSED").await;
    let mut redis = redis(&stack).await;
    eventually("the unit back on sale", Duration::from_secs(10), || async {
        (redis_stock(&mut redis.clone(), sale).await == 1).then_some(())
    })
    .await;

    // The held-back success arrives, twice at once: the money goes back once.
    api.webhook_to(&stack, None).await;
    let (a, b) = tokio::join!(deliver(&api, &held.body, &held.signature), deliver(&api, &held.body, &held.signature));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let (_, body) = deliver(&api, &held.body, &held.signature).await;
    assert_eq!(body["duplicate"], true);
    assert_eq!(api.refunded(&stack, &intent.id).await, intent.amount, "refunded exactly once");
    let (_, now) = api.order("late", &order).await;
    assert_eq!(now["status"], "REFUNDED", "{now}");
    assert_eq!(now["refund"]["reason"], "the payment arrived after the order had closed");
    // The unit stays on sale: the money went back, not the order.
    assert_eq!(redis_stock(&mut redis, sale).await, 1);
    assert_eq!(mysql_sale(&mysql(&stack).await, sale).await, (1, 0));
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(report["money"]["refunded_cents"], intent.amount, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_endpoint_down_reconcile_brings_every_paid_order_to_paid() {
    let stack = stack_with(|o| o.config.payment_check_after = Duration::ZERO).await;
    let api = Api::new(&stack);
    api.webhook_to(&stack, Some("http://127.0.0.1:9/")).await;
    let sale = api.sale(sale_spec(4, 1, 600, -1, 3600)).await;
    let mut orders = Vec::new();
    for i in 0..4 {
        let user = format!("dropped-{i}");
        let order = unpaid_order(&api, sale, &user).await;
        let (status, body) = api.pay(&user, &order, CARD_OK).await;
        assert_eq!(status, 200, "{body}");
        orders.push((user, order));
    }
    // The provider has the money and has given up delivering its events.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (user, order) in &orders {
        assert_eq!(api.order(user, order).await.1["status"], "UNPAID", "nothing told the order");
    }
    let checks = stack.functions.reconcile.run().await.unwrap();
    let check = checks.iter().find(|c| c.report.sale_id == SaleId(sale)).expect("the sale checked");
    assert_eq!(check.payments_repaired, 4);
    for (user, order) in &orders {
        assert_eq!(api.order(user, order).await.1["status"], "PAID");
    }
    let checks = stack.functions.reconcile.run().await.unwrap();
    let check = checks.iter().find(|c| c.report.sale_id == SaleId(sale)).unwrap();
    assert_eq!(check.payments_repaired, 0, "nothing left to repair");
    assert_eq!(check.report.money.captured_cents, 4 * 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_asking_to_pay_answers_503_and_changes_nothing() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(2, 1, 600, -1, 3600)).await;
    let order = unpaid_order(&api, sale, "patient").await;
    let mut config = stack.config.clone();
    config.payments_api_url = "http://127.0.0.1:9".into();
    config.origin_verify.clear(); // called alone, not through the edge
    let shop = shop_api::ShopApi::from_config(&config).await.unwrap();
    let claims = Some([("sub".to_string(), "patient".to_string())].into());
    let request =
        flashsale_local::aws::gateway::lambda_request("POST", &format!("/api/orders/{order}/payment"), claims, b"");
    let response = shop.handle(request).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(problem["type"], "/problems/unavailable");
    let (_, now) = api.order("patient", &order).await;
    assert_eq!(now["status"], "UNPAID");
    assert!(now.get("payment_intent").is_none(), "no payment attached: {now}");
    // With the provider back, the same order pays.
    let (status, body) = api.pay("patient", &order, CARD_OK).await;
    assert_eq!(status, 200, "{body}");
    api.await_status("patient", &order, "PAID").await;
}
