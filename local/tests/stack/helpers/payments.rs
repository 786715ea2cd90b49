//! The money's fixtures: late money for a closed order, the events the webhook took,
//! the refunds the provider made, a sale's exact tallies and a timed delivery.

use std::time::Duration;

use flashsale::{OrderId, SaleId};
use serde_json::Value;

use super::*;

pub async fn events_taken(db: &sqlx::MySqlPool, intent: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT CAST(id AS CHAR) FROM payment_events WHERE payment_intent = ? ORDER BY id")
        .bind(intent)
        .fetch_all(db)
        .await
        .unwrap()
}

/// The refunds the provider made of `intent`.
pub async fn refunds_made(api: &Api, stack: &flashsale_local::Stack, intent: &str) -> Vec<Value> {
    let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
    let url = format!("{}/v1/refunds?payment_intent={intent}", api.payments);
    let refunds: Value = api.http.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    refunds["data"].as_array().unwrap().clone()
}

/// A closed order of `user` in a new sale of one unit (its window 2 s), and money for it
/// its close could not cancel (an intent created for it at the provider that it never
/// held), paid: `(sale, order, intent, the held-back delivery of its success)`. The
/// provider's deliveries go to `capture` from here on.
pub async fn late_money(
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
pub async fn tallies_exact(api: &Api, stack: &flashsale_local::Stack, sale: u64) -> Value {
    let handle = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let tallies = handle.tallies(SaleId(sale)).await.unwrap();
    assert_eq!(tallies.counts, handle.count_statuses(SaleId(sale)).await.unwrap(), "order tallies");
    assert_eq!(tallies.money, handle.count_money(SaleId(sale)).await.unwrap(), "money tallies");
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    report
}

/// `(status, Retry-After, body)` of a delivery, and how long it took.
pub async fn deliver_timed(api: &Api, delivery: &Delivery) -> (u16, Option<u64>, Value, Duration) {
    let started = std::time::Instant::now();
    let response = api.post_delivery(&delivery.body, &delivery.signature).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry_after, response.json().await.unwrap_or(Value::Null), elapsed)
}
