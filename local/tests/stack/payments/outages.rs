//! The money through outages: with the webhook endpoint down, reconcile brings every
//! paid order to PAID; with the provider down, asking to pay answers 503 and changes
//! nothing.

use std::time::Duration;

use flashsale::SaleId;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_endpoint_down_reconcile_brings_every_paid_order_to_paid() {
    let stack = stack_with_own_database("payments", |o| o.config.orders.payment_check_after = Duration::ZERO).await;
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
    config.payments.api_url = "http://127.0.0.1:9".into();
    config.site.origin_secret = None; // called alone, not through the edge
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
