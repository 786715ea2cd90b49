//! Closing unpaid orders: the money and the close at the same instant have exactly one
//! winner, and a window longer than SQS's longest delay is closed by a chain of delayed
//! messages.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::*;
use flashsale::domain::TimeoutMessage;
use flashsale::stores::mysql::Mysql;
use flashsale::{OrderId, SaleId};
use futures::stream::{self, StreamExt};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_money_and_the_close_at_the_same_instant_have_exactly_one_winner() {
    const ORDERS: usize = 100;
    let stack = stack_with(|o| o.consumers = 3).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(ORDERS as u32, 1, 8, -1, 3600)).await;
    let orders: Vec<(String, String)> = stream::iter(0..ORDERS)
        .map(|i| {
            let api = &api;
            async move { admitted(api, sale, [format!("race-{i}")]).await.remove(0) }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    let db = mysql(&stack).await;
    eventually("every order UNPAID", Duration::from_secs(60), || async {
        (mysql_orders(&db, sale).await.len() == ORDERS).then_some(())
    })
    .await;
    // Every shopper starts paying in good time: the page has the client secret.
    let secrets: Vec<String> = stream::iter(&orders)
        .map(|(user, order)| {
            let api = &api;
            async move {
                let (status, payment) = api.payment(user, order).await;
                assert_eq!(status, 200, "{payment}");
                payment["client_secret"].as_str().unwrap().to_string()
            }
        })
        .buffered(16)
        .collect()
        .await;
    let deadlines: Vec<(u64, i64)> =
        sqlx::query_as("SELECT id, CAST(UNIX_TIMESTAMP(expires_at) * 1000 AS SIGNED) FROM orders WHERE sale_id = ?")
            .bind(sale)
            .fetch_all(&db)
            .await
            .unwrap();
    let deadline_of: std::collections::HashMap<u64, i64> = deadlines.into_iter().collect();

    // At each order's deadline (give or take a few ms), the card is confirmed at the
    // provider while close-expired closes the order.
    let functions = stack.functions.clone();
    let outcomes: Vec<(String, u16)> =
        futures::future::join_all(orders.iter().zip(&secrets).map(|((_, order), secret)| {
            let (api, functions) = (&api, functions.clone());
            let id: u64 = order.parse().unwrap();
            let deadline = deadline_of[&id];
            async move {
                let fire_at = deadline - 15 + (rand::random::<u64>() % 30) as i64;
                let wait = fire_at - chrono::Utc::now().timestamp_millis();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                let close =
                    TimeoutMessage { order_id: OrderId(id), sale_id: flashsale::SaleId(sale), deadline_ms: deadline };
                let close_event = sqs_event(&[serde_json::to_string(&close).unwrap()]);
                let ((status, _), closed) =
                    tokio::join!(api.confirm_card(secret, CARD_OK), functions.close.handle(close_event));
                assert!(closed.batch_item_failures.is_empty());
                (order.clone(), status)
            }
        }))
        .await;

    // Every order ends PAID (the money came first) or CLOSED (the cancel came first).
    let rows = eventually("no UNPAID order left", Duration::from_secs(30), || async {
        let rows = mysql_orders(&db, sale).await;
        rows.iter().all(|(_, _, s)| s != "UNPAID").then_some(rows)
    })
    .await;
    let status_of: std::collections::HashMap<String, String> =
        rows.iter().map(|(id, _, s)| (id.to_string(), s.clone())).collect();
    let (mut paid, mut refunded) = (0, 0);
    for (order, confirmed) in &outcomes {
        match (confirmed, status_of[order].as_str()) {
            (200, "PAID") => paid += 1,
            (200, "REFUNDED") => refunded += 1,
            (400, "CLOSED") => {}
            other => panic!("order {order}: the card answered {} but the order is {}", other.0, other.1),
        }
    }
    let closed: HashSet<String> =
        status_of.iter().filter(|(_, s)| *s == "CLOSED" || *s == "REFUNDED").map(|(id, _)| id.clone()).collect();
    assert_eq!(paid + closed.len(), ORDERS);

    // The provider's money is the paid orders' money: captured minus refunded.
    let intents: Vec<(u64, String)> =
        sqlx::query_as("SELECT amount_cents, payment_intent FROM orders WHERE sale_id = ?")
            .bind(sale)
            .fetch_all(&db)
            .await
            .unwrap();
    let mut net: i64 = 0;
    for (_, intent) in &intents {
        let at_provider = api.intent(&stack, intent).await;
        if at_provider["status"] == "succeeded" {
            net += at_provider["amount"].as_i64().unwrap();
        }
        net -= api.refunded(&stack, intent).await as i64;
    }
    let paid_amount: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS SIGNED) FROM orders WHERE sale_id = ? AND status = 'PAID'",
    )
    .bind(sale)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(net, paid_amount, "captured minus refunded at the provider");

    // Stock came back exactly once per closed order, in both stores.
    let mut redis = redis(&stack).await;
    assert_eq!(mysql_sale(&db, sale).await, (ORDERS as u32, paid as u32));
    assert_eq!(redis_stock(&mut redis, sale).await, (ORDERS - paid) as i64);
    let released: HashSet<String> = redis.smembers(keys(sale).released).await.unwrap();
    assert_eq!(released, closed);
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(report["drift"], 0, "{report}");
    // The tallies the console reads moved with every one of those racing transactions.
    let handle = Mysql::connect(&stack.config).unwrap();
    let tallies = handle.tallies(SaleId(sale)).await.unwrap();
    assert_eq!(tallies.counts, handle.count_statuses(SaleId(sale)).await.unwrap());
    assert_eq!(tallies.money, handle.count_money(SaleId(sale)).await.unwrap());
    let money = &report["money"];
    assert_eq!(money["captured_cents"].as_i64().unwrap() - money["refunded_cents"].as_i64().unwrap(), net, "{report}");
    eprintln!("money/close race: {paid} paid, {} closed, {refunded} refunded", closed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_window_is_closed_by_a_chain_of_delayed_messages() {
    // One hop is capped at 1 s here (900 s on AWS), so a 4 s window takes 4 hops.
    let stack = stack_with(|o| o.config.orders.max_delay_secs = 1).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 4, -1, 3600)).await;
    let (user, order) = admitted(&api, sale, ["patient".to_string()]).await.remove(0);
    let db = mysql(&stack).await;
    eventually("UNPAID", Duration::from_secs(20), || async {
        let (_, body) = api.order(&user, &order).await;
        (body["status"] == "UNPAID").then_some(())
    })
    .await;
    let (_, body) = api.order(&user, &order).await;
    let expires_at: chrono::DateTime<chrono::Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    // Still payable a while into the window: the early hops did not close it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, body) = api.order(&user, &order).await;
    assert_eq!(body["status"], "UNPAID");
    eventually("CLOSED", Duration::from_secs(20), || async {
        let (_, body) = api.order(&user, &order).await;
        (body["status"] == "CLOSED").then_some(())
    })
    .await;
    assert!(chrono::Utc::now() >= expires_at);
    assert_eq!(mysql_sale(&db, sale).await, (3, 0));

    // The hop itself: a message for a deadline 20 minutes out is sent on, not acted on.
    let hop = TimeoutMessage {
        order_id: OrderId(1),
        sale_id: flashsale::SaleId(sale),
        deadline_ms: chrono::Utc::now().timestamp_millis() + 20 * 60_000,
    };
    let response = stack.functions.close.handle(sqs_event(&[serde_json::to_string(&hop).unwrap()])).await;
    assert!(response.batch_item_failures.is_empty());
}
