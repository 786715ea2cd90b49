//! An admission undone (its hand-off failed): a record that failed ambiguously is never
//! sent, counted or persisted; an order a consumer claimed, or one gone from the outbox,
//! is not taken back.

use crate::helpers::*;
use flashsale::stores::Stores;
use flashsale::{OrderId, SaleId};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_undone_after_an_ambiguous_record_is_never_sent_counted_or_persisted() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    // admit's pending-orders table answers late (the record is written, the answer times
    // out), and no replica holds the order: it is durable nowhere admit knows of.
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let upstream = endpoint.trim_start_matches("http://").parse().unwrap();
    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
    config.redis.wait_replicas = 0;
    let proxy = FaultProxy::lagging(upstream, config.aws.timeout * 3).await;
    proxy.lag_next_answers(u64::MAX);
    let late_table = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", proxy.addr))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(config.aws.timeout).build(),
        )
        .load()
        .await;
    let live = flashsale::stores::aws::sdk_config(&stack.config).await;
    let stranded = admit_with(&config, &live, &late_table).await;
    let response = stranded.handle(purchase_request(sale, "ghost")).await;
    assert_eq!(response.status(), 503, "told the order was not taken");
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 10, "the admission undone");
    stranded.settled().await;

    // Never sent: the record did not answer.
    let sqs = aws_sdk_sqs::Client::new(&live);
    let received =
        sqs.receive_message().queue_url(&stack.config.aws.orders_queue_url).wait_time_seconds(1).send().await.unwrap();
    assert!(received.messages().is_empty(), "an unrecorded order was sent");

    // The record may still be written after the undo forgot it (say the write was
    // delayed): reconcile forgets it, since Redis says its admission was undone.
    let released: Vec<u64> = redis.smembers(keys(sale).released).await.unwrap();
    assert_eq!(released.len(), 1, "the undone admission");
    let ghost = flashsale::domain::OrderMessage {
        order_id: OrderId(released[0]),
        sale_id: SaleId(sale),
        user_id: flashsale::UserId::new("ghost").unwrap(),
        quantity: 1,
    };
    let stores = Stores::from_config(&stack.config).await.unwrap();
    stores.pending_orders.keep(&ghost).await.unwrap();
    // A re-sync meanwhile (a rebuild counting the table's records) holds no unit for it.
    let recorded = stores.pending_orders.of_sale(SaleId(sale)).await.unwrap();
    assert_eq!(recorded, std::slice::from_ref(&ghost));
    let remaining =
        flashsale::recovery::rebuild(&stores.mysql, &stores.redis, SaleId(sale), &recorded, true).await.unwrap();
    assert_eq!(remaining, Some(10));
    assert!(outbox(&mut redis, sale).await.is_empty(), "not put back in the outbox");
    // Reconcile forgets it rather than send it.
    let records = flashsale::outbox::pending_orders::settle_records(
        &stores.mysql,
        &stores.redis,
        &*stores.pending_orders,
        SaleId(sale),
    )
    .await
    .unwrap();
    assert_eq!((records.forgotten, records.stranded.len()), (1, 0), "forgotten, not sent");
    assert!(stores.pending_orders.of_sale(SaleId(sale)).await.unwrap().is_empty());
    let db = mysql(&stack).await;
    assert!(mysql_orders(&db, sale).await.is_empty(), "no order nobody was told of");
    // The shopper tries again and is admitted.
    assert_eq!(api.buy(sale, "ghost", None).await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_claimed_by_a_consumer_is_not_undone() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    assert_eq!(api.buy(sale, "claimed", None).await.0, 202);
    let mut redis = redis(&stack).await;
    let message: flashsale::domain::OrderMessage = serde_json::from_str(&outbox(&mut redis, sale).await[0]).unwrap();
    // A consumer claims it, then its MySQL is out of reach: SQS will redeliver it.
    let mut config = stack.config.clone();
    config.mysql.url = "mysql://flashsale:flashsale@127.0.0.1:1/flashsale".to_string().into();
    let cut =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.orders.max_delay_secs);
    assert!(cut.persist(vec![message.clone()]).await[0].is_err());
    // An admit whose send failed meanwhile may not take it back now.
    let stores = Stores::from_config(&stack.config).await.unwrap();
    assert_eq!(
        stores.redis.undo_admission(&message).await.unwrap(),
        flashsale::admission::Undo::Claimed,
        "a claimed order stands"
    );
    let persist = persist_orders::PersistOrders::new(stores, config.orders.max_delay_secs);
    assert!(persist.persist(vec![message.clone()]).await[0].is_ok());
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.iter().map(|o| o.0).collect::<Vec<_>>(), [message.order_id.0]);
    assert_eq!(redis_stock(&mut redis, sale).await, 9, "its unit is sold once, not back on sale");
    assert!(outbox(&mut redis, sale).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_that_finds_the_order_gone_from_the_outbox_takes_nothing_back_and_says_so() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    let stores = Stores::from_config(&stack.config).await.unwrap();
    let mut redis = redis(&stack).await;
    let mut orders = Vec::new();
    for user in ["kept", "lost", "claimed"] {
        let (status, body) = api.buy(sale, user, None).await;
        assert_eq!(status, 202, "{body}");
        orders.push(flashsale::domain::OrderMessage {
            order_id: OrderId(body["order_id"].as_str().unwrap().parse().unwrap()),
            sale_id: SaleId(sale),
            user_id: flashsale::UserId::new(user).unwrap(),
            quantity: 1,
        });
    }
    // A failover to a replica that missed it takes the second's outbox entry; a consumer
    // claimed the third.
    let _: () = redis.hdel(keys(sale).outbox, orders[1].order_id.to_string()).await.unwrap();
    stores.redis.claim_for_persisting(SaleId(sale), &[orders[2].order_id]).await.unwrap();
    use flashsale::admission::Undo;
    assert_eq!(stores.redis.undo_admission(&orders[1]).await.unwrap(), Undo::Gone, "not taken for undone");
    assert_eq!(stores.redis.undo_admission(&orders[2]).await.unwrap(), Undo::Claimed);
    assert_eq!(redis_stock(&mut redis, sale).await, 7, "nothing given back for either");
    assert_eq!(stores.redis.undo_admission(&orders[0]).await.unwrap(), Undo::Undone);
    assert_eq!(redis_stock(&mut redis, sale).await, 8);
}
