//! Money that reaches an order after it closed is refunded exactly once: delivered once,
//! many times at once with reconcile running (one refund, by its key), and with no row
//! lock held while the refund is at the provider.

use std::time::Duration;

use flashsale::OrderId;

use crate::helpers::*;

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
        o.config.orders.payment_check_after = Duration::ZERO;
        o.config.payments.calls_per_sec = 1000;
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
    let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
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
        o.config.aws.timeout = Duration::from_secs(20);
    })
    .await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let (_, order, late, held) = late_money(&api, &stack, &capture, "unlocked").await;
    proxy.slow(Some(("/v1/refunds", Duration::from_secs(3))));
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
