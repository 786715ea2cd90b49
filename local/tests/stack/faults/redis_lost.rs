//! Redis loses a sale mid-sale (restarted empty, as a failover to an empty replica
//! leaves it): the sale answers 503 while it recovers, is rebuilt from MySQL and the
//! pending-orders table with its orders still queued or dead-lettered, and sells out
//! exactly.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_mid_sale_is_rebuilt_with_its_orders_still_queued_and_sells_out_exactly() {
    let mut own = OwnRedis::start().await;
    let prefix = format!("test-{:08x}-", rand::random::<u32>());
    // The orders stay in the queue: nobody consumes them until the second stack starts.
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.consumers = 0;
        o.queue_prefix = prefix.clone();
        o.config.redis.url = (own.url()).into();
        o.config.redis.wait_replicas = 0; // a single node
        o.config.orders.recovery_drain_bound = Duration::from_secs(120);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(30, 2, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..20).map(|i| format!("early-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 20);

    own.restart_empty().await;
    // Recovering while hand-offs begun before the loss may still be recording orders:
    // 503 with Retry-After, never 404.
    let (status, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!((status, body["type"].as_str()), (503, Some("/problems/unavailable")), "{body}");
    stampede(&api, sale, (0..10).map(|i| format!("during-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 20, "nothing admitted while the sale recovers");
    assert_eq!(outcomes.statuses[&503], 10);

    // Rebuilt from MySQL (no order yet) and the pending-orders table (the 20), with all
    // 20 messages still in the queue: no queue count is waited for.
    let live = eventually("the sale reopens on its own", Duration::from_secs(30), || async {
        let (status, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(live["remaining"], 10, "30 - 20 recorded in flight: {live}");
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    assert_eq!(queue_depth(&sqs, &stack.config.aws.orders_queue_url).await, 20, "the orders still queued");
    tokio::time::sleep(stack.config.admission.sold_out_ttl * 2).await;

    // Everyone at once, twice over: the early shoppers may take one more each (limit 2).
    for _ in 0..2 {
        let users = (0..20).map(|i| format!("early-{i}")).chain((0..40).map(|i| format!("late-{i}")));
        stampede(&api, sale, users, &mut outcomes).await;
    }
    assert_eq!(outcomes.told.len(), 30, "sold out exactly: {:?}", outcomes.statuses);
    // The console's report, with all 30 waiting in the outbox (20 put back by the
    // rebuild, 10 admitted after it): the outbox's tally, read without reading the outbox.
    let report = || async {
        let (status, body) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
        (status == 200).then_some(body)
    };
    // Admin-api's connection predates the restart: its first use fails, as a poll may.
    eventually("the report answers", Duration::from_secs(10), report).await;
    let mut direct = redis::Client::open(own.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut direct).await.unwrap();
    let report = report().await.expect("the report");
    assert_eq!((report["pending_orders"].as_u64(), report["pending_units"].as_u64()), (Some(30), Some(30)), "{report}");
    assert_eq!(report["drift"], 0, "{report}");
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut direct).await.unwrap();
    assert!(!stats.contains("cmdstat_hvals"), "the report read the whole outbox: {stats}");
    // The queue drains only now: each of the 20 lands on a unit the rebuild held for it.
    let consumers = stack_with(|o| {
        faulty_stack_options(o);
        o.queue_prefix = prefix.clone();
        o.config.redis.url = (own.url()).into();
        o.config.redis.wait_replicas = 0; // a single node
    })
    .await;
    settled_and_sound(&consumers, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sale_holds_the_units_of_its_orders_in_the_dlq_and_sells_only_the_rest() {
    let mut own = OwnRedis::start().await;
    let prefix = format!("test-{:08x}-", rand::random::<u32>());
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.consumers = 0;
        o.queue_prefix = prefix.clone();
        o.config.redis.url = own.url().into();
        o.config.redis.wait_replicas = 0; // a single node
        o.config.orders.recovery_drain_bound = Duration::from_secs(120);
    })
    .await;
    let api = Api::new(&stack);
    let stock = 8;
    let sale = api.sale(sale_spec(stock, 1, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..5).map(|i| format!("dead-lettered-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 5);
    // Their messages failed until SQS moved them to the DLQ (a consumer deployed broken,
    // say); then Redis loses the sale, outbox and all.
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    let (queue, dlq) = (&stack.resources.orders_queue_url, &stack.resources.orders_dlq_url);
    assert_eq!(flashsale_local::ops::redrive::redrive(&sqs, queue, dlq).await.unwrap(), 5);
    own.restart_empty().await;
    let (status, _) = api.buy(sale, "first-finder", None).await;
    assert_eq!(status, 503, "found lost: recovering");

    // Rebuilt once every hand-off begun before the loss has ended, with the orders still
    // in the DLQ: the pending-orders table holds their units, so only the rest is sold.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut next = 0;
    while outcomes.statuses.get(&409).copied().unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "sold out while they wait: {:?}", outcomes.statuses);
        stampede(&api, sale, (next..next + 4).map(|i| format!("after-{i}")), &mut outcomes).await;
        next += 4;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(queue_depth(&sqs, dlq).await, 5, "still in the DLQ");

    // Redriven and persisted, each lands on the unit held for it.
    assert_eq!(flashsale_local::ops::redrive::redrive(&sqs, dlq, queue).await.unwrap(), 5);
    let _consumers = stack_with(|o| {
        faulty_stack_options(o);
        o.queue_prefix = prefix.clone();
        o.config.redis.url = own.url().into();
        o.config.redis.wait_replicas = 0;
    })
    .await;
    assert_eq!(outcomes.told.len() as u32, stock, "each unit sold once: {:?}", outcomes.statuses);
    settled_and_sound(&stack, sale, &outcomes.told).await;
}
