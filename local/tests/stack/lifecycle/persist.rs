//! Persisting admitted orders: redelivered and failed messages persist exactly once, an
//! order id another order already has is never taken for a redelivery, batches stay
//! within the database guard and the per-user limit, and the guard refuses what MySQL
//! has no room for.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::*;
use flashsale::domain::TimeoutMessage;
use flashsale::stores::Stores;
use persist_orders::PersistOrders;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_failed_messages_persist_exactly_once() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 60, -1, 3600)).await;
    let other_sale = api.sale(sale_spec(10, 1, 60, -1, 3600)).await;
    admitted(&api, sale, ["a", "b", "c"].map(String::from)).await;
    admitted(&api, other_sale, ["d".to_string()]).await;
    let mut redis = redis(&stack).await;
    let mut messages = outbox(&mut redis, sale).await;
    messages.sort();
    let stuck = outbox(&mut redis, other_sale).await.remove(0);

    let mut config = stack.config.clone();
    config.mysql.timeout = Duration::from_millis(400);
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let stores = Stores::new(&sdk, &config, &Default::default()).unwrap();
    let persist = PersistOrders::new(stores, config.orders.max_delay_secs);

    // The same message three times at once: one order, counted once.
    let first = vec![messages[0].clone()];
    let responses = futures::future::join_all((0..3).map(|_| persist.handle(sqs_event(&first)))).await;
    assert!(responses.iter().all(|r| r.batch_item_failures.is_empty()));
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.len(), 1);
    assert_eq!(mysql_sale(&db, sale).await.1, 1);

    // A batch whose middle message cannot be written (its sale row is locked): only
    // that message fails; the others are persisted.
    let mut lock = db.begin().await.unwrap();
    sqlx::query("SELECT id FROM sales WHERE id = ? FOR UPDATE").bind(other_sale).execute(&mut *lock).await.unwrap();
    let batch = vec![messages[1].clone(), stuck.clone(), messages[2].clone()];
    let event = sqs_event(&batch);
    let stuck_id = event.records[1].message_id.clone().unwrap();
    let response = persist.handle(event).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, vec![stuck_id]);
    assert_eq!(mysql_orders(&db, sale).await.len(), 3);
    assert!(mysql_orders(&db, other_sale).await.is_empty());
    lock.rollback().await.unwrap();

    // SQS redelivers the failed message (and, being at-least-once, maybe the others).
    let response = persist.handle(sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    let orders = mysql_orders(&db, sale).await;
    assert_eq!(orders.len(), 3);
    assert!(orders.iter().all(|(_, _, status)| status == "UNPAID"));
    assert_eq!(mysql_sale(&db, sale).await, (10, 3));
    assert_eq!(mysql_sale(&db, other_sale).await, (10, 1));
    assert!(outbox(&mut redis, sale).await.is_empty());
    assert!(outbox(&mut redis, other_sale).await.is_empty());

    // An order whose id another order already has (two minters of one worker id) is
    // not a redelivery: it fails (its outbox entry is not cleared) and ends in the DLQ.
    admitted(&api, other_sale, ["e".to_string()]).await;
    let mut collided: Value = serde_json::from_str(&outbox(&mut redis, other_sale).await.remove(0)).unwrap();
    let taken: Value = serde_json::from_str(&messages[0]).unwrap();
    collided["order_id"] = taken["order_id"].clone();
    let response = persist.handle(sqs_event(&[collided.to_string()])).await;
    assert_eq!(response.batch_item_failures.len(), 1, "an id collision is never taken for a redelivery");
    assert_eq!(mysql_sale(&db, other_sale).await, (10, 1));
    assert_eq!(mysql_orders(&db, sale).await.len(), 3, "the order that had the id is untouched");
}

/// The close checks in the stack's timeouts queue, by order id, once they include
/// every one of `expected`: a receive whose answer moto was too slow to give in time
/// hides its messages for a moment, so this reads until they come back.
async fn close_checks(stack: &flashsale_local::Stack, expected: &HashSet<u64>) -> HashSet<u64> {
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    let seen = std::sync::Mutex::new(HashSet::new());
    eventually("every close check", Duration::from_secs(30), || async {
        let received = sqs
            .receive_message()
            .queue_url(&stack.resources.timeouts_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(2)
            .send()
            .await
            .ok()?;
        let mut seen = seen.lock().unwrap();
        for m in received.messages() {
            let check: TimeoutMessage = serde_json::from_str(m.body().unwrap()).unwrap();
            seen.insert(check.order_id.0);
        }
        seen.is_superset(expected).then_some(())
    })
    .await;
    seen.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_persist_exactly_once_within_the_guard_and_the_limit() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let db = mysql(&stack).await;
    let mut redis = redis(&stack).await;
    let persist = &stack.functions.persist;

    // One batch that MySQL has room for only in part: its orders are taken in turn,
    // the first four fit and the other six are REJECTED, in one transaction.
    let small = api.sale(sale_spec(10, 1, 1, -1, 3600)).await;
    admitted(&api, small, (0..10).map(|i| format!("small-{i}"))).await;
    sqlx::query("UPDATE sales SET sold = 6 WHERE id = ?").bind(small).execute(&db).await.unwrap();
    let batch = bodies(&outbox_messages(&mut redis, small).await);
    let response = persist.handle(sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let statuses: Vec<String> = mysql_orders(&db, small).await.into_iter().map(|(_, _, s)| s).collect();
    assert_eq!(statuses, [vec!["UNPAID"; 4], vec!["REJECTED"; 6]].concat());
    assert_eq!(mysql_sale(&db, small).await, (10, 10));
    // The whole batch again (SQS is at-least-once): nothing changes, nothing fails.
    let response = persist.handle(sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(mysql_orders(&db, small).await.len(), 10);
    assert_eq!(mysql_sale(&db, small).await, (10, 10));
    assert!(outbox(&mut redis, small).await.is_empty());
    assert_eq!(redis_stock(&mut redis, small).await, 0, "the refused units never existed");

    // Many batches at once, each delivered twice: MySQL has room for 40 of 60 orders,
    // and three orders of one shopper are ones a Redis that lost its state let through.
    let big = api.sale(sale_spec(60, 2, 1, -1, 3600)).await;
    admitted(&api, big, (0..60).map(|i| format!("big-{i}"))).await;
    sqlx::query("UPDATE sales SET sold = 20 WHERE id = ?").bind(big).execute(&db).await.unwrap();
    let mut messages = outbox_messages(&mut redis, big).await;
    for m in &mut messages[57..] {
        m.user_id = flashsale::UserId::new("big-0").unwrap();
    }
    let batches: Vec<Vec<String>> = messages.chunks(10).map(bodies).collect();
    let responses = futures::future::join_all(
        batches.iter().chain(batches.iter().rev()).map(|batch| persist.handle(sqs_event(batch))),
    )
    .await;
    assert!(responses.iter().all(|r| r.batch_item_failures.is_empty()), "{responses:?}");
    let rows = mysql_orders(&db, big).await;
    assert_eq!(rows.len(), 60, "each order once");
    let unpaid: Vec<&(u64, String, String)> = rows.iter().filter(|(_, _, s)| s == "UNPAID").collect();
    assert_eq!(unpaid.len(), 40, "exactly the room MySQL had");
    assert_eq!(rows.iter().filter(|(_, _, s)| s == "REJECTED").count(), 20);
    assert_eq!(mysql_sale(&db, big).await, (60, 60), "never oversold");
    assert!(unpaid.iter().filter(|(_, user, _)| user == "big-0").count() <= 2, "no shopper above the limit");
    assert!(outbox(&mut redis, big).await.is_empty());
    assert_eq!(redis_stock(&mut redis, big).await, 0);

    // Every accepted order got its close check (the batch's in one SendMessageBatch).
    let accepted: HashSet<u64> = mysql_orders(&db, small)
        .await
        .into_iter()
        .chain(rows)
        .filter(|(_, _, s)| s == "UNPAID")
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(close_checks(&stack, &accepted).await, accepted, "and none for a refused order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_guard_rejects_what_mysql_has_no_room_for() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 1, 60, -1, 3600)).await;
    let db = mysql(&stack).await;
    // Redis and MySQL disagree: MySQL thinks everything is sold.
    sqlx::query("UPDATE sales SET sold = stock WHERE id = ?").bind(sale).execute(&db).await.unwrap();

    let (user, order) = admitted(&api, sale, ["unlucky".to_string()]).await.remove(0);
    let mut redis = redis(&stack).await;
    // Settled: refused in MySQL, then its hold ended in Redis (the outbox entry goes last).
    eventually("REJECTED and settled", Duration::from_secs(20), || async {
        let (_, body) = api.order(&user, &order).await;
        (body["status"] == "REJECTED" && outbox(&mut redis.clone(), sale).await.is_empty()).then_some(())
    })
    .await;
    // The refused unit never existed: Redis is corrected down to MySQL, not given it back.
    assert_eq!(redis_stock(&mut redis, sale).await, 0, "Redis follows MySQL after a refusal");
    assert_eq!(mysql_sale(&db, sale).await, (5, 5), "never oversold");
    assert!(outbox(&mut redis, sale).await.is_empty());
    let (status, body) = api.payment(&user, &order).await;
    assert_eq!((status, body["order_status"].as_str()), (409, Some("REJECTED")));
    let (status, body) = api.buy(sale, "next", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")), "{body}");
}
