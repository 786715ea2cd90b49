//! Only our money is ours. The provider's account serves the shop's other business too
//! (payment links, invoices, a second stack): its intents reach the webhook, signed by
//! the provider like ours. Only intents this stack created for an order it has may move
//! an order or be refunded; PAID needs the order's amount and currency; refunds and
//! disputes made at the provider move the paid order.

use std::time::Duration;

use flashsale::SaleId;
use flashsale_local::Stack;
use serde_json::Value;

use crate::helpers::*;

/// An order id no order has (below every id of the current layout, above the first's).
const NO_ORDER: &str = "9223372036854775807";

/// Stripe's test card whose payment is disputed once it succeeded.
const CARD_DISPUTED: &str = "4000000000000259";

/// A call to the provider with the stack's secret key, as another business on the same
/// account (or the shop's staff in the provider's dashboard) makes it.
async fn at_provider(api: &Api, stack: &Stack, path: &str, form: &[(&str, String)]) -> Value {
    let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
    let response = api.http.post(format!("{}{path}", api.payments)).bearer_auth(key).form(form).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// A succeeded intent of `amount` cents with `metadata`, made at the provider on the
/// stack's account by someone else: its id.
async fn foreign_intent(api: &Api, stack: &Stack, amount: u64, metadata: &[(&str, String)]) -> String {
    let mut form = vec![("amount", amount.to_string()), ("currency", "usd".to_string())];
    let keys: Vec<String> = metadata.iter().map(|(k, _)| format!("metadata[{k}]")).collect();
    form.extend(keys.iter().map(String::as_str).zip(metadata.iter().map(|(_, v)| v.clone())));
    let intent = at_provider(api, stack, "/v1/payment_intents", &form).await;
    let (status, paid) = api.confirm_card(intent["client_secret"].as_str().unwrap(), CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
    intent["id"].as_str().unwrap().to_string()
}

/// The sale's orders (id, status, refund) and its report's counts and money: what
/// foreign money must not change.
async fn books(api: &Api, stack: &Stack, sale: u64) -> (Vec<(u64, String, Option<String>)>, Value, Value) {
    let orders = sqlx::query_as("SELECT id, status, refund_reason FROM orders WHERE sale_id = ? ORDER BY id")
        .bind(sale)
        .fetch_all(&mysql(stack).await)
        .await
        .unwrap();
    let (status, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(status, 200, "{report}");
    (orders, report["orders"].clone(), report["money"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_intents_are_never_refunded_and_change_no_order() {
    let stack =
        stack_with_own_database("foreign_money", |o| o.config.orders.payment_check_after = Duration::ZERO).await;
    let api = Api::new(&stack);
    let capture = Capture::start().await;
    let sale = api.sale(sale_spec(3, 1, 2, -1, 3600)).await;
    // A closed order that was never paid, an unpaid one with a payment started, a paid one.
    let closed = api.unpaid_order(sale, "closed").await;
    api.await_status("closed", &closed, "CLOSED").await;
    let sale_b = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    let unpaid = api.unpaid_order(sale_b, "unpaid").await;
    let (status, payment) = api.payment("unpaid", &unpaid).await;
    assert_eq!(status, 200, "{payment}");
    let paid = api.unpaid_order(sale_b, "paid").await;
    api.pay("paid", &paid, CARD_OK).await;
    api.await_status("paid", &paid, "PAID").await;
    let before = (books(&api, &stack, sale).await, books(&api, &stack, sale_b).await);

    // Money of the same account that is not this stack's, delivered only to the test.
    api.webhook_to(&stack, Some(&capture.url)).await;
    let names = |order: &str, sale: u64| vec![("order_id", order.to_string()), ("sale_id", sale.to_string())];
    let tagged = |stack_name: &str, order: &str, sale: u64| {
        let mut metadata = names(order, sale);
        metadata.push(("flashsale_stack", stack_name.to_string()));
        metadata
    };
    let foreign = [
        ("no metadata (a payment link)", foreign_intent(&api, &stack, 1000, &[]).await),
        ("naming our closed order", foreign_intent(&api, &stack, 1000, &names(&closed, sale)).await),
        ("naming our unpaid order", foreign_intent(&api, &stack, 1000, &names(&unpaid, sale_b)).await),
        (
            "another stack's, naming our closed order",
            foreign_intent(&api, &stack, 1000, &tagged("another-stack", &closed, sale)).await,
        ),
        (
            "our tag, for an order we do not have",
            foreign_intent(&api, &stack, 1000, &tagged(&stack.config.payments.stack_name, NO_ORDER, sale)).await,
        ),
    ];
    for (what, intent) in &foreign {
        let delivery = capture.delivery("payment_intent.succeeded", intent).await;
        for _ in 0..2 {
            let (status, body) = api.deliver(&delivery.0, &delivery.1).await;
            assert_eq!(status, 200, "{what}: {body}");
        }
        // A dashboard refund of the shop's other money sends charge.refunded too.
        at_provider(&api, &stack, "/v1/refunds", &[("payment_intent", intent.clone()), ("amount", "1".into())]).await;
        let charge =
            at_provider_intent(&api, &stack, intent).await["latest_charge"]["id"].as_str().unwrap().to_string();
        let refunded = capture.delivery("charge.refunded", &charge).await;
        let (status, body) = api.deliver(&refunded.0, &refunded.1).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    // Reconcile asks the provider about the orders' payments and sees none of these.
    stack.functions.reconcile.run().await.unwrap();
    for (what, intent) in &foreign {
        assert_eq!(api.refunded(&stack, intent).await, 1, "{what}: only the owner's own refund of 1 cent");
    }
    let after = (books(&api, &stack, sale).await, books(&api, &stack, sale_b).await);
    assert_eq!(after, before, "no order, tally or money changed");
    let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payment_events WHERE payment_intent IN (?, ?, ?, ?, ?)")
        .bind(&foreign[0].1)
        .bind(&foreign[1].1)
        .bind(&foreign[2].1)
        .bind(&foreign[3].1)
        .bind(&foreign[4].1)
        .fetch_one(&mysql(&stack).await)
        .await
        .unwrap();
    assert_eq!(taken, 0, "nothing of theirs remembered");
}

/// A payment made as the previous release made them, before intents were tagged: an
/// intent for the order's amount with only `order_id` and `sale_id` in its metadata,
/// attached to `user`'s order by the checkout's own update. Its id.
async fn untagged_payment(api: &Api, stack: &Stack, user: &str, order: &str, sale: u64) -> String {
    let form = [
        ("amount", "1000".to_string()),
        ("currency", "usd".to_string()),
        ("metadata[order_id]", order.to_string()),
        ("metadata[sale_id]", sale.to_string()),
    ];
    let intent = at_provider(api, stack, "/v1/payment_intents", &form).await;
    let id = intent["id"].as_str().unwrap().to_string();
    assert!(intent["metadata"].get("flashsale_stack").is_none(), "{intent}");
    let mysql = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let order_id = flashsale::OrderId(order.parse().unwrap());
    let attached = mysql.attach_intent(order_id, &flashsale::UserId::new(user).unwrap(), &id).await.unwrap();
    assert!(attached, "{order} holds {id}");
    id
}

/// The shopper pays `order`'s attached payment with a card, from the page.
async fn pay_attached(api: &Api, user: &str, order: &str, intent: &str) {
    let (status, payment) = api.payment(user, order).await;
    assert_eq!((status, payment["payment_intent"].as_str()), (200, Some(intent)), "{payment}");
    let (status, paid) = api.confirm_card(payment["client_secret"].as_str().unwrap(), CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_before_intents_were_tagged_pays_its_order_by_the_webhook_and_by_reconcile() {
    let stack =
        stack_with_own_database("foreign_money", |o| o.config.orders.payment_check_after = Duration::ZERO).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(2, 1, 600, -1, 3600)).await;

    // The provider's success reaches the webhook: its copy of the intent has no tag.
    let order = api.unpaid_order(sale, "by-webhook").await;
    let intent = untagged_payment(&api, &stack, "by-webhook", &order, sale).await;
    pay_attached(&api, "by-webhook", &order, &intent).await;
    api.await_status("by-webhook", &order, "PAID").await;

    // The webhook's delivery is lost: reconcile asks the provider.
    api.webhook_to(&stack, Some("http://127.0.0.1:9/")).await;
    let order = api.unpaid_order(sale, "by-reconcile").await;
    let intent = untagged_payment(&api, &stack, "by-reconcile", &order, sale).await;
    pay_attached(&api, "by-reconcile", &order, &intent).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.order("by-reconcile", &order).await.1["status"], "UNPAID", "nothing told the order");
    stack.functions.reconcile.run().await.unwrap();
    assert_eq!(api.order("by-reconcile", &order).await.1["status"], "PAID");

    // Both payments kept (ours), the books say so.
    assert_eq!(api.refunded(&stack, &intent).await, 0);
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(report["orders"]["PAID"]["orders"], 2, "{report}");
    assert_eq!(report["money"]["captured_cents"], 2000, "{report}");
    assert_eq!(report["money"]["awaiting_cents"], 0, "{report}");
}

/// The intent as the provider has it, its charge expanded.
async fn at_provider_intent(api: &Api, stack: &Stack, intent: &str) -> Value {
    let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
    let url = format!("{}/v1/payment_intents/{intent}?expand[]=latest_charge", api.payments);
    api.http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_of_another_amount_or_currency_leaves_the_order_unpaid_and_goes_back() {
    let stack =
        stack_with_own_database("foreign_money", |o| o.config.orders.payment_check_after = Duration::ZERO).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(2, 1, 600, -1, 3600)).await;
    let db = mysql(&stack).await;
    for (user, change) in [("cheaper", ("amount", "1".to_string())), ("in-euros", ("currency", "eur".to_string()))] {
        let order = api.unpaid_order(sale, user).await;
        let (status, payment) = api.payment(user, &order).await;
        assert_eq!(status, 200, "{payment}");
        let intent = payment["payment_intent"].as_str().unwrap().to_string();
        // Someone with the account's key changes our intent before the shopper pays.
        at_provider(&api, &stack, &format!("/v1/payment_intents/{intent}"), std::slice::from_ref(&change)).await;
        let (status, paid) = api.confirm_card(payment["client_secret"].as_str().unwrap(), CARD_OK).await;
        assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
        // The provider's delivery reaches the stack and is taken.
        eventually("the success taken", Duration::from_secs(10), || async {
            let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payment_events WHERE payment_intent = ?")
                .bind(&intent)
                .fetch_one(&db)
                .await
                .unwrap();
            (taken > 0).then_some(())
        })
        .await;
        stack.functions.reconcile.run().await.unwrap();
        let (_, now) = api.order(user, &order).await;
        assert_eq!(now["status"], "UNPAID", "{user}: {change:?}: {now}");
        let charged = paid["amount"].as_u64().unwrap();
        assert_eq!(api.refunded(&stack, &intent).await, charged, "{user}: the money went back, once");
    }
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(report["money"]["captured_cents"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_or_a_dispute_made_at_the_provider_moves_the_paid_order() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 600, -1, 3600)).await;
    let refunded = api.unpaid_order(sale, "refunded").await;
    let (_, paid) = api.pay("refunded", &refunded, CARD_OK).await;
    let refunded_intent = paid["id"].as_str().unwrap().to_string();
    api.await_status("refunded", &refunded, "PAID").await;
    let disputed = api.unpaid_order(sale, "disputed").await;
    let (status, paid) = api.pay("disputed", &disputed, CARD_DISPUTED).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
    let kept = api.unpaid_order(sale, "kept").await;
    api.pay("kept", &kept, CARD_OK).await;
    api.await_status("kept", &kept, "PAID").await;

    // The shop's staff refund one payment in the provider's dashboard.
    at_provider(&api, &stack, "/v1/refunds", &[("payment_intent", refunded_intent.clone())]).await;
    let now = api.await_status("refunded", &refunded, "REFUNDED").await;
    assert_eq!(now["refund"]["reason"], "refunded at the provider", "{now}");
    // The card holder's bank disputes the other.
    api.await_status("disputed", &disputed, "DISPUTED").await;
    assert_eq!(api.order("kept", &kept).await.1["status"], "PAID");

    // The report's money and the console's tallies say so, and agree with the orders.
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(report["money"]["captured_cents"], 3000, "{report}");
    assert_eq!(report["money"]["refunded_cents"], 1000, "{report}");
    assert_eq!(report["money"]["disputed_cents"], 1000, "{report}");
    for status in ["PAID", "REFUNDED", "DISPUTED"] {
        assert_eq!(report["orders"][status]["orders"], 1, "{status}: {report}");
    }
    let mysql_handle = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let money = mysql_handle.count_money(SaleId(sale)).await.unwrap();
    assert_eq!(serde_json::to_value(money).unwrap(), report["money"], "tallies agree with a count of the orders");
    // A redelivery or reconcile changes nothing more; the units stay sold.
    stack.functions.reconcile.run().await.unwrap();
    assert_eq!(api.order("disputed", &disputed).await.1["status"], "DISPUTED");
    assert_eq!(mysql_sale(&mysql(&stack).await, sale).await, (3, 3));
}
