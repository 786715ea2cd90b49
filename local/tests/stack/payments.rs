//! The money, against the real local provider (localstripe): signed webhooks, events
//! delivered twice, late and out of order, dropped webhooks repaired by reconcile, a
//! late payment refunded once, and the provider down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale::payments::signature::sign;
use flashsale::Secret;
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
    let order = api.unpaid_order(sale, "alice").await;
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
        let (status, problem) = api.deliver(&body, &signature).await;
        assert_eq!((status, problem["type"].as_str()), (400, Some("/problems/bad-signature")), "{what}: {problem}");
        assert_eq!(api.order("alice", &order).await.1["status"], "UNPAID", "{what} changed nothing");
    }
    assert!(events_taken(&mysql(&stack).await, &intent).await.is_empty(), "no refused event is recorded");

    // Signed with the secret being rotated out: still the provider's.
    let (status, body) = api.deliver(&event, &sign(&Secret::from(old.as_str()), now, event.as_bytes())).await;
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
        let order = api.unpaid_order(sale, &user).await;
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
            let (status, body) = api.deliver(&delivery.body, &delivery.signature).await;
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
    let order = api.unpaid_order(sale, "late").await;
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
    let (a, b) = tokio::join!(api.deliver(&held.body, &held.signature), api.deliver(&held.body, &held.signature));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let (_, body) = api.deliver(&held.body, &held.signature).await;
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
    let stack = stack_with_own_database("payments", |o| o.config.payment_check_after = Duration::ZERO).await;
    let api = Api::new(&stack);
    api.webhook_to(&stack, Some("http://127.0.0.1:9/")).await;
    let sale = api.sale(sale_spec(4, 1, 600, -1, 3600)).await;
    let mut orders = Vec::new();
    for i in 0..4 {
        let user = format!("dropped-{i}");
        let order = api.unpaid_order(sale, &user).await;
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
    let order = api.unpaid_order(sale, "patient").await;
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

/// An account's POST as the proxy saw it: its path and `Idempotency-Key`.
type Post = (String, Option<String>);

/// The local provider behind a proxy of the test's own: it records the account's POSTs
/// (path, `Idempotency-Key`) and, while `slow` names a path, holds back the provider's
/// answer to the account's calls to it (the call is made; only its answer is late).
struct ProviderProxy {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
    slow: Arc<Mutex<Option<(&'static str, Duration)>>>,
    held: Arc<std::sync::atomic::AtomicUsize>,
}

impl ProviderProxy {
    async fn start() -> Self {
        use axum::response::IntoResponse;
        let upstream = flashsale_local::Options::from_env().unwrap().payments_url.trim_end_matches('/').to_string();
        let proxy = ProviderProxy {
            url: String::new(),
            posts: Default::default(),
            slow: Default::default(),
            held: Default::default(),
        };
        let (posts, slow, held) = (proxy.posts.clone(), proxy.slow.clone(), proxy.held.clone());
        flashsale::stores::aws::install_crypto_provider();
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (upstream, client, posts, slow, held) =
                (upstream.clone(), client.clone(), posts.clone(), slow.clone(), held.clone());
            async move {
                let (parts, body) = request.into_parts();
                let account = parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("Bearer sk_"));
                let key = parts.headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_string());
                if account && parts.method == http::Method::POST {
                    posts.lock().unwrap().push((parts.uri.path().to_string(), key.clone()));
                }
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let mut forward = client.request(parts.method.clone(), format!("{upstream}{path}")).body(body);
                for name in [http::header::AUTHORIZATION, http::header::CONTENT_TYPE] {
                    if let Some(value) = parts.headers.get(&name) {
                        forward = forward.header(name, value);
                    }
                }
                if let Some(key) = key {
                    forward = forward.header("idempotency-key", key);
                }
                let answer = forward.send().await.expect("the local provider answers");
                let status = answer.status();
                let kind = answer.headers().get(http::header::CONTENT_TYPE).cloned();
                let body = answer.bytes().await.unwrap_or_default();
                let delay = *slow.lock().unwrap();
                if let Some((slowed, by)) = delay.filter(|(slowed, _)| account && parts.uri.path() == *slowed) {
                    held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tracing::info!(slowed, "answer held back");
                    tokio::time::sleep(by).await;
                }
                let mut response = (status, body).into_response();
                if let Some(kind) = kind {
                    response.headers_mut().insert(http::header::CONTENT_TYPE, kind);
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        ProviderProxy { url, ..proxy }
    }

    /// The idempotency keys of the refunds asked for (made or answered again).
    fn refund_keys(&self) -> Vec<Option<String>> {
        let posts = self.posts.lock().unwrap().clone();
        posts.into_iter().filter(|(path, _)| path == "/v1/refunds").map(|(_, key)| key).collect()
    }

    fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The refunds the provider made of `intent`.
async fn refunds_made(api: &Api, stack: &flashsale_local::Stack, intent: &str) -> Vec<Value> {
    let key = stack.config.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
    let url = format!("{}/v1/refunds?payment_intent={intent}", api.payments);
    let refunds: Value = api.http.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    refunds["data"].as_array().unwrap().clone()
}

/// A closed order of `user` in a new sale of one unit (its window 2 s), and money for it
/// its close could not cancel (an intent created for it at the provider that it never
/// held), paid: `(sale, order, intent, the held-back delivery of its success)`. The
/// provider's deliveries go to `capture` from here on.
async fn late_money(
    api: &Api,
    stack: &flashsale_local::Stack,
    capture: &Capture,
    user: &str,
) -> (u64, String, flashsale::payments::Intent, Delivery) {
    let sale = api.sale(sale_spec(1, 1, 2, -1, 3600)).await;
    let order = api.unpaid_order(sale, user).await;
    api.webhook_to(stack, Some(&capture.url)).await;
    let mysql_handle = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let row = mysql_handle.order(order.parse().map(OrderId).unwrap()).await.unwrap().unwrap();
    let intent = provider(stack).create_intent(&row, &flashsale::domain::Currency::default()).await.unwrap();
    let (status, body) = api.confirm_card(intent.client_secret.expose(), CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    let held = eventually("the success held back", Duration::from_secs(10), || async {
        capture.of(&intent.id).into_iter().find(|d| d.event()["type"] == "payment_intent.succeeded")
    })
    .await;
    api.await_status(user, &order, "CLOSED").await;
    (sale, order, intent, held)
}

/// The sale's tallies agree with a count of its orders and their money; its report.
async fn tallies_exact(api: &Api, stack: &flashsale_local::Stack, sale: u64) -> Value {
    let handle = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let tallies = handle.tallies(SaleId(sale)).await.unwrap();
    assert_eq!(tallies.counts, handle.count_statuses(SaleId(sale)).await.unwrap(), "order tallies");
    assert_eq!(tallies.money, handle.count_money(SaleId(sale)).await.unwrap(), "money tallies");
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    report
}

/// Late money for a closed order, its delivery posted ten times at once while reconcile
/// runs, and money of another amount on an unpaid order's own payment, delivered ten
/// times at once too (reconcile refunds that one as well): each intent is refunded once
/// at the provider, every refund asked for under the key `refund-<intent>`, the closed
/// order is REFUNDED once and the tallies agree with the orders. No row lock makes this
/// so: the provider's idempotency and a conditional update in MySQL do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_money_delivered_many_times_at_once_with_reconcile_running_is_refunded_once_by_its_key() {
    let proxy = ProviderProxy::start().await;
    let stack = stack_with(|o| {
        o.payments_url = proxy.url.clone();
        o.config.payment_check_after = Duration::ZERO;
        o.config.provider_calls_per_sec = 1000;
    })
    .await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let other = api.sale(sale_spec(1, 1, 600, -1, 3600)).await;
    let unpaid = api.unpaid_order(other, "mismatch").await;
    let (sale, order, late, held) = late_money(&api, &stack, &capture, "late-many").await;
    // The unpaid order's own payment, changed at the provider to 1 cent, then paid.
    let (status, payment) = api.payment("mismatch", &unpaid).await;
    assert_eq!(status, 200, "{payment}");
    let changed = payment["payment_intent"].as_str().unwrap().to_string();
    let key = stack.config.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
    let url = format!("{}/v1/payment_intents/{changed}", api.payments);
    let response = api.http.post(url).bearer_auth(key).form(&[("amount", "1")]).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (status, paid) = api.confirm_card(payment["client_secret"].as_str().unwrap(), CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
    let mismatched = eventually("the changed payment's success held back", Duration::from_secs(10), || async {
        capture.of(&changed).into_iter().find(|d| d.event()["type"] == "payment_intent.succeeded")
    })
    .await;

    let deliveries = (0..10).flat_map(|_| [&held, &mismatched]).map(|d| api.deliver(&d.body, &d.signature));
    let (answers, reconciled) = tokio::join!(futures::future::join_all(deliveries), stack.functions.reconcile.run());
    reconciled.unwrap();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }

    for (intent, amount) in [(&late.id, late.amount), (&changed, 1)] {
        let made = refunds_made(&api, &stack, intent).await;
        assert_eq!(made.len(), 1, "{intent}: one refund at the provider: {made:?}");
        assert_eq!(made[0]["amount"], amount, "{made:?}");
    }
    let keys = proxy.refund_keys();
    let late_key = flashsale::payments::provider::refund_key(&late.id);
    let changed_key = flashsale::payments::provider::refund_key(&changed);
    assert!(keys.contains(&Some(late_key.clone())) && keys.contains(&Some(changed_key.clone())), "{keys:?}");
    assert!(keys.iter().all(|k| *k == Some(late_key.clone()) || *k == Some(changed_key.clone())), "{keys:?}");
    eprintln!("{} refunds asked for, {} made", keys.len(), 2);

    let (_, now) = api.order("late-many", &order).await;
    assert_eq!(now["status"], "REFUNDED", "{now}");
    assert_eq!(now["refund"]["reason"], "the payment arrived after the order had closed");
    assert_eq!(api.order("mismatch", &unpaid).await.1["status"], "UNPAID");
    let report = tallies_exact(&api, &stack, sale).await;
    assert_eq!(report["orders"]["REFUNDED"]["orders"], 1, "{report}");
    assert_eq!(report["orders"]["CLOSED"]["orders"].as_u64().unwrap_or(0), 0, "{report}");
    assert_eq!(report["money"]["refunded_cents"], late.amount, "{report}");
    let report = tallies_exact(&api, &stack, other).await;
    assert_eq!(report["money"]["captured_cents"], 0, "{report}");
    assert_eq!(mysql_sale(&mysql(&stack).await, sale).await, (1, 0));
    let (_, body) = api.deliver(&held.body, &held.signature).await;
    assert_eq!(body["duplicate"], true);
}

/// While the late money's refund is at the provider (its answer held back 3 s), the
/// order's row is not locked: another connection's `SELECT ... FOR UPDATE NOWAIT` of it
/// succeeds. Then the delivery ends as before: one refund, the order REFUNDED. The
/// refund used to run under the order's row lock, every close, payment and read for
/// update of the order waiting on the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_row_lock_is_held_while_the_refund_is_at_the_provider() {
    let proxy = ProviderProxy::start().await;
    let stack = stack_with(|o| {
        o.payments_url = proxy.url.clone();
        o.config.aws_timeout = Duration::from_secs(20);
    })
    .await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let (_, order, late, held) = late_money(&api, &stack, &capture, "unlocked").await;
    *proxy.slow.lock().unwrap() = Some(("/v1/refunds", Duration::from_secs(3)));
    let delivery = tokio::spawn({
        let api = Api::new(&stack);
        async move { api.deliver(&held.body, &held.signature).await }
    });
    eventually("the refund at the provider", Duration::from_secs(10), || async { (proxy.held() > 0).then_some(()) })
        .await;
    let db = mysql(&stack).await;
    let mut tx = db.begin().await.unwrap();
    let locked = sqlx::query("SELECT id FROM orders WHERE id = ? FOR UPDATE NOWAIT")
        .bind(order.parse::<u64>().unwrap())
        .fetch_one(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    assert!(!delivery.is_finished(), "the refund's answer is still held back");
    locked.expect("the order's row is not locked while the provider refunds");

    let (status, body) = delivery.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(refunds_made(&api, &stack, &late.id).await.len(), 1);
    assert_eq!(api.order("unlocked", &order).await.1["status"], "REFUNDED");
}

/// `(status, Retry-After, body)` of a delivery, and how long it took.
async fn deliver_timed(api: &Api, delivery: &Delivery) -> (u16, Option<u64>, Value, Duration) {
    let started = std::time::Instant::now();
    let response = api.post_delivery(&delivery.body, &delivery.signature).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry_after, response.json().await.unwrap_or(Value::Null), elapsed)
}

/// A delivery whose chain of calls outlasts the webhook's deadline (the refund's answer
/// comes four deadlines late) answers 503 with `Retry-After` within three deadlines,
/// long before the provider answers, and records nothing: the order stays CLOSED, the
/// event is not taken, the tallies did not move. Delivered again once the provider is
/// fast, it is taken once: the refund the provider made meanwhile is the one refund, and
/// the order is REFUNDED. Without the deadline the webhook waited for the provider,
/// past the function's timeout on Lambda.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_past_the_webhooks_deadline_answers_503_changes_nothing_and_is_taken_once_later() {
    const DEADLINE: Duration = Duration::from_millis(1500);
    let proxy = ProviderProxy::start().await;
    let stack = stack_with(|o| {
        o.payments_url = proxy.url.clone();
        o.config.webhook_deadline = DEADLINE;
        // The provider's calls would give up at this timeout before the deadline: not here.
        o.config.aws_timeout = Duration::from_secs(20);
    })
    .await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let (sale, order, late, held) = late_money(&api, &stack, &capture, "deadline").await;
    let before = tallies_exact(&api, &stack, sale).await;
    let before = (before["orders"].clone(), before["money"].clone());

    *proxy.slow.lock().unwrap() = Some(("/v1/refunds", DEADLINE * 4));
    let (status, retry_after, body, elapsed) = deliver_timed(&api, &held).await;
    assert_eq!((status, body["type"].as_str()), (503, Some("/problems/unavailable")), "{body}");
    assert!(retry_after.is_some_and(|s| s >= 1), "{body}");
    assert!(proxy.held() > 0, "the delivery reached the refund");
    // Well before the provider answers (4 deadlines), with room for a busy machine.
    assert!(elapsed < DEADLINE * 3, "answered in {elapsed:?} with a deadline of {DEADLINE:?}");
    assert_eq!(api.order("deadline", &order).await.1["status"], "CLOSED", "nothing recorded half-way");
    assert!(events_taken(&mysql(&stack).await, &late.id).await.is_empty(), "the event is not taken");
    let after = tallies_exact(&api, &stack, sale).await;
    assert_eq!((after["orders"].clone(), after["money"].clone()), before, "no tally moved");

    *proxy.slow.lock().unwrap() = None;
    let (status, _, body, _) = deliver_timed(&api, &held).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["duplicate"], true, "{body}");
    let (status, _, body, _) = deliver_timed(&api, &held).await;
    assert_eq!((status, &body["duplicate"]), (200, &Value::Bool(true)), "taken once");
    assert_eq!(refunds_made(&api, &stack, &late.id).await.len(), 1, "one refund");
    assert!(proxy.refund_keys().iter().all(|k| *k == Some(flashsale::payments::provider::refund_key(&late.id))));
    assert_eq!(api.order("deadline", &order).await.1["status"], "REFUNDED");
    let report = tallies_exact(&api, &stack, sale).await;
    assert_eq!(report["orders"]["REFUNDED"]["orders"], 1, "{report}");
    assert_eq!(report["money"]["refunded_cents"], late.amount, "{report}");
    assert_eq!(events_taken(&mysql(&stack).await, &late.id).await.len(), 1);
}
