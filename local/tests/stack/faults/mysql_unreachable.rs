//! MySQL out of reach: cut during persistence and back (messages parked in the DLQ and
//! redriven, nothing lost or doubled), and out of reach for reconcile while orders wait
//! in the outbox (sent on all the same).

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_cut_during_persistence_then_back_loses_and_doubles_nothing() {
    let proxy = FaultProxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.max_receives = 2;
        o.config.mysql.url = o.config.mysql.url.expose().replace("127.0.0.1:3306", &proxy.addr.to_string()).into();
        o.config.mysql.timeout = Duration::from_millis(500);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(20, 1, 600, -1, 3600)).await;

    proxy.cut();
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..12).map(|i| format!("cut-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 12, "admission needs no MySQL");
    // Reading an order needs MySQL: 503 with Retry-After, not 500.
    let (user, id) = &outcomes.told[0];
    let response =
        api.http.get(format!("{}/api/orders/{id}", api.base)).bearer_auth(api.token(user)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // Every message is retried until its receive limit, then parked in the DLQ.
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    let dlq = stack.resources.orders_dlq_url.clone();
    eventually("all 12 order messages in the DLQ", Duration::from_secs(60), || {
        let (sqs, dlq) = (sqs.clone(), dlq.clone());
        async move { (queue_depth(&sqs, &dlq).await == 12).then_some(()) }
    })
    .await;

    proxy.restore();
    let moved = flashsale_local::ops::redrive::redrive(&sqs, &dlq, &stack.resources.orders_queue_url).await.unwrap();
    assert_eq!(moved, 12);
    settled_and_sound(&stack, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_only_redis_holds_are_sent_on_while_mysql_is_out_of_reach() {
    // A Redis of the test's own: reconcile, unable to list the sales in MySQL, looks at
    // every sale whose keys live in Redis, and here those are this test's alone.
    let own = OwnRedis::start().await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.config.redis.url = own.url().into();
        o.config.redis.wait_replicas = 0;
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(20, 1, 300, -1, 3600)).await;
    // Admissions whose SQS send failed: the outbox and the pending-orders table hold them.
    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
    let live = flashsale::stores::aws::sdk_config(&config).await;
    let stranded = admit_with(&config, &unreachable_aws().await, &live).await;
    for i in 0..8 {
        assert_eq!(stranded.handle(purchase_request(sale, &format!("stranded-{i}"))).await.status(), 202);
    }
    let mut redis = redis(&stack).await;
    assert_eq!(outbox(&mut redis, sale).await.len(), 8);

    // Reconcile whose MySQL is out of reach: it cannot list the open sales, and still
    // sends on what only Redis holds (recorded first); the consumers persist it.
    config.orders.outbox_resend_after = Duration::ZERO;
    config.mysql.url = "mysql://flashsale:flashsale@127.0.0.1:1/flashsale".to_string().into();
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    assert!(reconcile.run().await.is_err(), "the run itself fails: MySQL is out of reach");
    let db = mysql(&stack).await;
    eventually("the 8 orders in MySQL and the outbox empty", Duration::from_secs(30), || async {
        let n = mysql_orders(&db, sale).await.len();
        (n == 8 && outbox(&mut redis.clone(), sale).await.is_empty()).then_some(())
    })
    .await;
}
