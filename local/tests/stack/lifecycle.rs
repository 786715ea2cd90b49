//! After admission: exactly-once persistence, the database guard, the money against the close,
//! chained timeouts, poison messages, and the reconcile check-back.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::*;
use flashsale::domain::{OrderMessage, TimeoutMessage};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::Stores;
use flashsale::{OrderId, SaleId};
use futures::stream::{self, StreamExt};
use persist_orders::PersistOrders;
use redis::AsyncCommands;
use serde_json::Value;

async fn admitted(api: &Api, sale: u64, users: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for user in users {
        let (status, body) = api.buy(sale, &user, None).await;
        assert_eq!(status, 202, "{body}");
        out.push((user, body["order_id"].as_str().unwrap().to_string()));
    }
    out
}

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
    config.db_timeout = Duration::from_millis(400);
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let stores = Stores::new(&sdk, &config).unwrap();
    let persist = PersistOrders::new(stores, config.max_delay_secs);

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

/// The outbox of a sale as order messages, oldest id first.
async fn outbox_messages(redis: &mut redis::aio::MultiplexedConnection, sale: u64) -> Vec<OrderMessage> {
    let mut messages: Vec<OrderMessage> =
        outbox(redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    messages.sort_by_key(|m| m.order_id);
    messages
}

fn bodies(messages: &[OrderMessage]) -> Vec<String> {
    messages.iter().map(|m| serde_json::to_string(m).unwrap()).collect()
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

/// The staff console polls every 2 s: the sale list and the watched sale's report read
/// each sale's tallies, five rows, not its orders, so a sale of a million orders costs
/// the writer what one of ten does. Shown in a database of the test's own, whose orders
/// table is taken away once the orders are written: the poll still answers, right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_poll_reads_each_sales_tallies_and_no_order() {
    let mut config = flashsale::config::Config::from_env().unwrap();
    let base = config.database_url.expose().rsplit_once('/').unwrap().0.to_string();
    let name = format!("flashsale_tallies_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    config.database_url = format!("{base}/{name}").into();
    let db = Mysql::connect(&config).unwrap();
    db.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let draft = flashsale::domain::SaleDraft {
        name: "tallied".into(),
        description: String::new(),
        price_cents: 250,
        currency: Default::default(),
        stock: 40,
        per_user_limit: 2,
        starts_at: now - chrono::Duration::seconds(1),
        ends_at: now + chrono::Duration::hours(1),
        payment_window_secs: 600,
        waiting_room: None,
    };
    let sale = db.create_sale(&flashsale::domain::NewSale::try_from(draft).unwrap()).await.unwrap();
    // 50 orders of 1 or 2 units for 40 units: some fit, the rest are REJECTED.
    let messages: Vec<OrderMessage> = (0..50u64)
        .map(|i| OrderMessage {
            order_id: OrderId(1_000 + i),
            sale_id: sale.id,
            user_id: flashsale::UserId::new(format!("shopper-{i}")).unwrap(),
            quantity: 1 + (i % 2) as u32,
        })
        .collect();
    for batch in messages.chunks(7) {
        db.persist_orders(sale.id, batch).await.unwrap();
    }
    let raw = sqlx::MySqlPool::connect(config.database_url.expose()).await.unwrap();
    let unpaid: Vec<u64> =
        sqlx::query_scalar("SELECT id FROM orders WHERE status = 'UNPAID' ORDER BY id").fetch_all(&raw).await.unwrap();
    // Payments start on ten, five of them are paid; six others lapse and close.
    for (n, id) in unpaid.iter().take(10).enumerate() {
        let order = db.order(OrderId(*id)).await.unwrap().unwrap();
        assert!(db.attach_intent(order.order_id, &order.user_id, &format!("pi_{id}")).await.unwrap());
        if n < 5 {
            assert!(db.mark_paid(order.order_id, &format!("pi_{id}")).await.unwrap());
        }
    }
    for id in &unpaid[10..16] {
        sqlx::query("UPDATE orders SET expires_at = UTC_TIMESTAMP(3) WHERE id = ?")
            .bind(id)
            .execute(&raw)
            .await
            .unwrap();
        assert!(matches!(db.close_due(OrderId(*id), None).await.unwrap(), flashsale::orders::Closing::Closed(_)));
    }
    let counted = (db.count_statuses(sale.id).await.unwrap(), db.count_money(sale.id).await.unwrap());
    for status in [flashsale::OrderStatus::Unpaid, flashsale::OrderStatus::Paid, flashsale::OrderStatus::Closed] {
        assert!(counted.0.contains_key(&status), "{status:?} among {counted:?}");
    }
    assert!(counted.0.contains_key(&flashsale::OrderStatus::Rejected), "{counted:?}");
    assert!(counted.1.captured_cents > 0 && counted.1.awaiting_cents > 0, "{counted:?}");
    let tallied = || async {
        let t = db.tallies(sale.id).await.unwrap();
        (t.counts, t.money)
    };
    assert_eq!(tallied().await, counted, "tallied as the orders changed");

    // A tally gone wrong (below zero, say a release before the tallies wrote meanwhile)
    // never stops an order's write, and the audit names it.
    let drift = |by: i64| {
        sqlx::query(
            "UPDATE order_tallies SET orders = orders + ?, amount_cents = amount_cents + ?, \
             started_cents = started_cents + ? WHERE status = 'UNPAID'",
        )
        .bind(by)
        .bind(by * 1_000_000)
        .bind(by * 1_000_000)
        .execute(&raw)
    };
    drift(-1_000).await.unwrap();
    let late = OrderMessage {
        order_id: OrderId(5_000),
        user_id: flashsale::UserId::new("late").unwrap(),
        ..messages[0].clone()
    };
    db.persist_orders(sale.id, std::slice::from_ref(&late)).await.unwrap();
    let unpaid: u64 =
        sqlx::query_scalar("SELECT id FROM orders WHERE status = 'UNPAID' AND payment_intent IS NULL LIMIT 1")
            .fetch_one(&raw)
            .await
            .unwrap();
    let order = db.order(OrderId(unpaid)).await.unwrap().unwrap();
    assert!(db.attach_intent(order.order_id, &order.user_id, "pi_late").await.unwrap());
    let redis = flashsale::stores::redis::Redis::connect(&config).unwrap();
    let checks = flashsale_local::ops::audit::audit(&db, &redis, sale.id, None).await.unwrap();
    let tallies = checks.iter().find(|c| c.name == "the tallies agree with the orders").unwrap();
    assert!(!tallies.passed && tallies.detail.contains(r#"below zero: ["UNPAID"]"#), "{}", tallies.detail);
    drift(1_000).await.unwrap();
    let counted = (db.count_statuses(sale.id).await.unwrap(), db.count_money(sale.id).await.unwrap());
    assert_eq!(tallied().await, counted, "and put right, agrees again");
    // The release that brought the tallies counts the sales before it once, from their orders.
    sqlx::query("DELETE FROM order_tallies").execute(&raw).await.unwrap();
    sqlx::raw_sql(include_str!("../../../migrations/20261206000002_order_tallies_backfill.sql"))
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(tallied().await, counted, "backfilled from the orders");

    sqlx::query("RENAME TABLE orders TO orders_elsewhere").execute(&raw).await.unwrap();
    assert!(db.count_statuses(sale.id).await.is_err(), "the orders are out of reach");
    let report = flashsale::recovery::drift::sale_report(&db, &redis, &sale).await.unwrap();
    let page = db.sales_page(None, 10).await.unwrap();
    raw.close().await;
    sqlx::query(&format!("DROP DATABASE {name}")).execute(&admin).await.unwrap();
    assert_eq!(report.money, counted.1);
    let reported: std::collections::HashMap<_, _> = report
        .orders
        .iter()
        .filter(|(s, _)| **s != flashsale::OrderStatus::Pending)
        .map(|(s, c)| (*s, (c.orders, c.units)))
        .collect();
    assert_eq!(reported, counted.0);
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].1, counted.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_window_is_closed_by_a_chain_of_delayed_messages() {
    // One hop is capped at 1 s here (900 s on AWS), so a 4 s window takes 4 hops.
    let stack = stack_with(|o| o.config.max_delay_secs = 1).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_end_in_the_dlq_and_can_be_moved_back() {
    let stack = stack_with(|o| {
        o.max_receives = 2;
        o.visibility_timeout_secs = 1;
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    sqs.send_message()
        .queue_url(&stack.resources.orders_queue_url)
        .message_body("this is not an order")
        .send()
        .await
        .unwrap();
    let dlq = &stack.resources.orders_dlq_url;
    eventually("the poison message in the DLQ", Duration::from_secs(30), || async {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(dlq)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        let n = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        (n == 1).then_some(())
    })
    .await;
    let moved = flashsale_local::ops::redrive::redrive(&sqs, dlq, &stack.resources.orders_queue_url).await.unwrap();
    assert_eq!(moved, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_resends_orders_whose_message_never_left_and_drift_settles_to_zero() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(20, 1, 300, -1, 3600)).await;
    // Admissions whose SQS send fails: only the outbox knows these orders.
    let dead_sqs = unreachable_aws().await;
    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    let live = flashsale::stores::aws::sdk_config(&config).await;
    let stranded = admit_with(&config, &dead_sqs, &live).await;
    for i in 0..8 {
        let r = stranded.handle(purchase_request(sale, &format!("stranded-{i}"))).await;
        assert_eq!(r.status(), 202);
    }
    admitted(&api, sale, (0..4).map(|i| format!("normal-{i}"))).await;
    let mut redis = redis(&stack).await;
    let db = mysql(&stack).await;

    // The order status says PENDING while only the outbox knows it (a stranded one: the
    // consumers may be persisting the others right now).
    let entries: Vec<Value> = outbox(&mut redis, sale).await.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let pending = entries.iter().find(|e| e["user_id"].as_str().unwrap().starts_with("stranded-")).unwrap();
    let (user, order) = (pending["user_id"].as_str().unwrap(), pending["order_id"].as_str().unwrap());
    let (_, body) = api.order(user, order).await;
    assert_eq!(body["status"], "PENDING", "{body}");

    let mut config = stack.config.clone();
    config.outbox_resend_after = Duration::ZERO;
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    let check = reconcile.check(&sale_row).await.unwrap();
    assert!(check.resent >= 8, "the stranded orders were sent again ({})", check.resent);

    eventually("all 12 orders in MySQL and the outbox empty", Duration::from_secs(30), || async {
        let mut redis = redis.clone();
        let n = mysql_orders(&db, sale).await.len();
        (n == 12 && outbox(&mut redis, sale).await.is_empty()).then_some(())
    })
    .await;
    let (_, report) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
    assert_eq!(report["drift"], 0, "{report}");
    assert_eq!(report["orders"]["UNPAID"]["orders"], 12, "{report}");
    assert_eq!(report["redis_remaining"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_whose_release_never_ran_is_released_by_reconcile_once() {
    // No consumers: nothing redelivers the close, as for reconcile's own close or a close
    // message gone to the DLQ. A Redis of its own: another test's reconcile run would
    // release the order in the shared one.
    let own = OwnRedis::start().await;
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.redis_url = own.url().into();
        o.config.redis_wait_replicas = 0; // a single node
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 1, 1, -1, 3600)).await;
    let orders = admitted(&api, sale, ["closer".to_string(), "keeper".to_string()]).await;
    let mut redis = redis(&stack).await;
    let persisted = stack.functions.persist.handle(sqs_event(&outbox(&mut redis, sale).await)).await;
    assert!(persisted.batch_item_failures.is_empty(), "{persisted:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The close's first step commits in MySQL; the process dies before the release.
    let stores = Stores::from_config(&stack.config).await.unwrap();
    let order = OrderId(orders[0].1.parse().unwrap());
    assert!(matches!(stores.mysql.close_due(order, None).await.unwrap(), flashsale::orders::Closing::Closed(_)));
    assert_eq!(redis_stock(&mut redis, sale).await, 3, "the unit is still held in Redis");

    let reconcile = &stack.functions.reconcile;
    let check = reconcile.check(&sale_row(&stack, sale).await).await.unwrap();
    assert_eq!(check.released, 1, "{check:?}");
    assert_eq!(redis_stock(&mut redis, sale).await, 4, "back on sale");
    assert_eq!(check.report.drift, Some(0), "{check:?}");
    let (status, body) = api.buy(sale, "closer", None).await;
    assert_eq!(status, 202, "the shopper's allowance came back too: {body}");
    let check = reconcile.check(&sale_row(&stack, sale).await).await.unwrap();
    assert_eq!((check.released, redis_stock(&mut redis, sale).await), (0, 3), "released once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sale_keys_expire_once_its_outbox_is_empty_and_lookups_skip_dead_sales() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    // Open for three seconds: one order in the outbox, then the sale ends.
    let sale = api.sale(sale_spec(5, 1, 60, -1, 3)).await;
    let (_, body) = api.buy(sale, "late", None).await;
    let order = body["order_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut config = stack.config.clone();
    config.outbox_resend_after = Duration::from_secs(3600);
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    let keys = keys(sale);
    let mut redis = redis(&stack).await;
    reconcile.check(&sale_row).await.unwrap();
    let ttl: i64 = redis.pttl(&keys.meta).await.unwrap();
    assert_eq!(ttl, -1, "no expiry while an order of the sale waits in the outbox");

    // Persisted: now the keys may go, a day after the end.
    let persist = PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.max_delay_secs);
    assert!(persist.handle(sqs_event(&outbox(&mut redis, sale).await)).await.batch_item_failures.is_empty());
    reconcile.check(&sale_row).await.unwrap();
    let day_ms = 24 * 3600 * 1000;
    for key in keys.all() {
        let ttl: i64 = redis.pttl(key).await.unwrap();
        assert!(ttl == -2 || (day_ms - 10_000..=day_ms).contains(&ttl), "{key} expires a day after the end ({ttl} ms)");
    }
    // Order lookups look only at sales whose keys live.
    let live: Option<f64> = redis.zscore("flashsale:live_sales", sale).await.unwrap();
    assert_eq!(live.map(|at| at as i64), Some(sale_row.ends_at.timestamp_millis() + day_ms));
    let (status, body) = api.order("late", &order).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("UNPAID")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_run_that_finds_another_under_way_stops_at_once() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    // Its schedule invokes it asynchronously: a slow run and the next one, or a retry.
    // Here the run under way is another container's, holding the claim.
    let reconcile = &stack.functions.reconcile;
    let redis = flashsale::stores::redis::Redis::connect(&stack.config).unwrap();
    let other = redis.claim(reconcile.run_claim_key(), Duration::from_secs(30)).await.unwrap().expect("claimed");
    let checks = reconcile.run().await.unwrap();
    assert!(checks.is_empty(), "no sale looked at twice at once ({} checks)", checks.len());
    assert!(
        redis.claim(reconcile.run_claim_key(), Duration::from_secs(30)).await.unwrap().is_none(),
        "the claim is the other run's still"
    );
    assert!(redis.give_up(other).await.unwrap());
}

#[tokio::test]
async fn a_run_that_outlasted_its_claim_leaves_the_next_runs_claim_alone() {
    let config = flashsale::Config::from_env().unwrap();
    let redis = flashsale::stores::redis::Redis::connect(&config).unwrap();
    let key = format!("test-claim-{:08x}", rand::random::<u32>());
    let slow = redis.claim(&key, Duration::from_millis(100)).await.unwrap().expect("claimed");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let next = redis.claim(&key, Duration::from_secs(30)).await.unwrap().expect("the lapsed claim is free");
    assert!(!redis.renew(&slow, Duration::from_secs(30)).await.unwrap(), "the slow run cannot renew it");
    assert!(!redis.give_up(slow).await.unwrap(), "the slow run no longer holds it");
    assert!(redis.claim(&key, Duration::from_secs(30)).await.unwrap().is_none(), "the next run's claim stands");
    // Renewed, it outlives the time it was first taken for.
    let renewed = redis.claim(&format!("{key}-renewed"), Duration::from_millis(300)).await.unwrap().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(redis.renew(&renewed, Duration::from_millis(300)).await.unwrap(), "still held");
    }
    assert!(redis.claim(&format!("{key}-renewed"), Duration::from_secs(1)).await.unwrap().is_none());
    assert!(redis.give_up(renewed).await.unwrap());
    assert!(redis.give_up(next).await.unwrap());
    assert!(redis.claim(&key, Duration::from_millis(100)).await.unwrap().is_some(), "given up by its holder");
}
