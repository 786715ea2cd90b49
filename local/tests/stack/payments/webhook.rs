//! The payment webhook: only the provider's signature over the body as sent moves an
//! order (a rotated secret still does), every event delivered twice and a failure after
//! the success leave each order paid once, and a delivery past the webhook's deadline
//! answers 503, changes nothing and is taken once later.

use std::time::Duration;

use flashsale::payments::signature::sign;
use flashsale::Secret;
use serde_json::{json, Value};

use crate::helpers::*;

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
    let keys = stack.secrets.payment_keys.as_ref().unwrap();
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
        o.config.payments.webhook_deadline = DEADLINE;
        // The provider's calls would give up at this timeout before the deadline: not here.
        o.config.aws.timeout = Duration::from_secs(20);
    })
    .await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let (sale, order, late, held) = late_money(&api, &stack, &capture, "deadline").await;
    let before = tallies_exact(&api, &stack, sale).await;
    let before = (before["orders"].clone(), before["money"].clone());

    proxy.slow(Some(("/v1/refunds", DEADLINE * 4)));
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

    proxy.slow(None);
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
