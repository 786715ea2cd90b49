//! Reconcile's check-back: orders whose message never left are sent on and the drift
//! settles to zero, a close whose Redis release never ran is released once, and an ended
//! sale's keys expire once its outbox is empty.

use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::Stores;
use flashsale::OrderId;
use persist_orders::PersistOrders;
use redis::AsyncCommands;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_resends_orders_whose_message_never_left_and_drift_settles_to_zero() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(20, 1, 300, -1, 3600)).await;
    // Admissions whose SQS send fails: only the outbox knows these orders.
    let dead_sqs = unreachable_aws().await;
    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
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
    config.orders.outbox_resend_after = Duration::ZERO;
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
        o.config.redis.url = own.url().into();
        o.config.redis.wait_replicas = 0; // a single node
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
    config.orders.outbox_resend_after = Duration::from_secs(3600);
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    let keys = keys(sale);
    let mut redis = redis(&stack).await;
    reconcile.check(&sale_row).await.unwrap();
    let ttl: i64 = redis.pttl(&keys.meta).await.unwrap();
    assert_eq!(ttl, -1, "no expiry while an order of the sale waits in the outbox");

    // Persisted: now the keys may go, a day after the end.
    let persist = PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.orders.max_delay_secs);
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
