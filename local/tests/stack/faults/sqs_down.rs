//! SQS down: admission goes on and the outbox keeps every order; orders recorded in the
//! pending-orders table survive a Redis flush on top; an order that can be kept nowhere
//! (DynamoDB down too) is undone and answered 503.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::Stores;
use flashsale::SaleId;
use redis::AsyncCommands;
use serde_json::Value;

/// An `admit` under a leased worker id, whose SQS is reached through `sqs` (DynamoDB, for leases and the
/// pending-orders table, through the local services).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_down_still_admits_and_the_outbox_keeps_every_order() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(50, 1, 60, -1, 3600)).await;
    // An SQS endpoint where nothing listens.
    let dead_sqs = unreachable_aws().await;
    let live = flashsale::stores::aws::sdk_config(&stack.config).await;
    let admit = admit_with(&stack.config, &dead_sqs, &live).await;

    let mut order_ids = HashSet::new();
    for i in 0..20 {
        let response = admit.handle(purchase_request(sale, &format!("u{i}"))).await;
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        order_ids.insert(body["order_id"].as_str().unwrap().to_string());
    }
    let mut redis = redis(&stack).await;
    let outbox: std::collections::HashMap<String, String> = redis.hgetall(keys(sale).outbox).await.unwrap();
    assert_eq!(outbox.keys().cloned().collect::<HashSet<_>>(), order_ids, "every admitted order is in the outbox");
    for (id, payload) in outbox {
        let message: flashsale::domain::OrderMessage = serde_json::from_str(&payload).unwrap();
        assert_eq!(message.order_id.to_string(), id);
    }
    assert_eq!(redis_stock(&mut redis, sale).await, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_down_then_redis_flushed_loses_no_order_that_got_a_202() {
    let own = OwnRedis::start().await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.config.redis.url = (own.url()).into();
        o.config.redis.wait_replicas = 0; // a single node
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(40, 1, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..5).map(|i| format!("steady-{i}")), &mut outcomes).await;

    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
    let stranded = admit_without_sqs(&config, true).await;
    for i in 0..12 {
        let user = format!("stranded-{i}");
        let response = stranded.handle(purchase_request(sale, &user)).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        outcomes.record(&user, response.status().as_u16(), &body);
    }
    assert_eq!(outcomes.told.len(), 17);
    // Each 202 waited for its record in the pending-orders table; SQS failed them after.
    let stores = Stores::from_config(&config).await.unwrap();
    let recorded: HashSet<String> =
        stores.pending_orders.of_sale(SaleId(sale)).await.unwrap().iter().map(|o| o.user_id.to_string()).collect();
    assert!((0..12).all(|i| recorded.contains(&format!("stranded-{i}"))), "{recorded:?}");

    // Redis forgets everything, the outbox of the stranded orders included.
    let mut flush = redis::Client::open(own.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut flush).await.unwrap();

    // SQS is back; reconcile rebuilds the sale counting the recorded orders and sends
    // them on.
    config.orders.outbox_resend_after = Duration::ZERO;
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    // Not before every hand-off begun before the loss could have ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut resent = 0;
    loop {
        let check = reconcile.check(&sale_row).await.unwrap();
        resent += check.resent;
        match check.recovery {
            Some(flashsale::recovery::Recovery::Rebuilt { .. }) => break,
            Some(flashsale::recovery::Recovery::Waiting { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            other => panic!("reconcile rebuilds the sale: {other:?}"),
        }
    }
    assert!(resent >= 12, "the recorded orders were sent on ({resent})");
    settled_and_sound(&stack, sale, &outcomes.told).await;
    // Once MySQL has them, reconcile forgets them there: a rebuild would hold their units.
    reconcile.check(&sale_row).await.unwrap();
    assert!(stores.pending_orders.of_sale(SaleId(sale)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_can_be_kept_nowhere_is_undone_and_answered_503() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
    // No replica to hold it either (one would make the order durable).
    config.redis.wait_replicas = 0;
    let stranded = admit_without_sqs(&config, false).await;
    let response = stranded.handle(purchase_request(sale, "unlucky")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 10, "the unit is back on sale");
    assert!(outbox(&mut redis, sale).await.is_empty(), "no order waits anywhere");
    // The shopper may simply try again.
    let (status, body) = api.buy(sale, "unlucky", None).await;
    assert_eq!(status, 202, "{body}");
}
