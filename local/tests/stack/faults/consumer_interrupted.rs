//! A consumer interrupted part way: it dies between its commit and its follow-up steps
//! (then every message comes three times), its Redis is gone after its commit, or its
//! network goes silent inside its transaction. Each order is persisted once, and the
//! sale is held for seconds, not hours.

use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::Stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dying_between_its_steps_and_triple_delivery_change_nothing() {
    let Waiting { stack, sale, outcomes, messages, mut redis } = waiting_orders(10, 2, 4).await;

    // This consumer commits to MySQL, then dies before it schedules the close and
    // clears the outbox: its SQS is gone.
    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
    let dead_sqs = unreachable_aws().await;
    let dying = persist_orders::PersistOrders::new(
        Stores::new(&dead_sqs, &config, &Default::default()).unwrap(),
        config.orders.max_delay_secs,
    );
    let response = dying.handle(sqs_event(&messages)).await;
    assert_eq!(response.batch_item_failures.len(), 4, "every message fails and will be redelivered");
    let db = mysql(&stack).await;
    assert_eq!(mysql_sale(&db, sale).await, (10, 4));

    // SQS delivers every message three times more, at once.
    let sdk = flashsale::stores::aws::sdk_config(&stack.config).await;
    let healthy = persist_orders::PersistOrders::new(
        Stores::from_config(&stack.config).await.unwrap(),
        config.orders.max_delay_secs,
    );
    let tripled: Vec<String> = messages.iter().flat_map(|m| [m.clone(), m.clone(), m.clone()]).collect();
    let response = healthy.handle(sqs_event(&tripled)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(mysql_sale(&db, sale).await, (10, 4), "each order counted once");
    assert!(outbox(&mut redis, sale).await.is_empty());

    // The close messages, each delivered three times once due.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut closes = Vec::new();
    while closes.len() < 4 {
        let received = sqs
            .receive_message()
            .queue_url(&stack.resources.timeouts_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        closes.extend(received.messages().iter().filter_map(|m| m.body().map(String::from)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let close = close_expired::CloseExpired::new(
        Stores::from_config(&stack.config).await.unwrap(),
        provider(&stack),
        config.orders.max_delay_secs,
    );
    let tripled: Vec<String> = closes.iter().flat_map(|m| [m.clone(), m.clone(), m.clone()]).collect();
    let response = close.handle(sqs_event(&tripled)).await;
    assert!(response.batch_item_failures.is_empty());
    let statuses: Vec<String> = mysql_orders(&db, sale).await.into_iter().map(|(_, _, s)| s).collect();
    assert!(statuses.iter().all(|s| s == "CLOSED"), "{statuses:?}");
    assert_eq!(redis_stock(&mut redis, sale).await, 10, "each unit released once");
    settled_and_sound(&stack, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_batch_whose_outbox_clear_failed_is_not_failed_for_it() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    for i in 0..3 {
        assert_eq!(api.buy(sale, &format!("cleared-{i}"), None).await.0, 202);
    }
    let mut redis = redis(&stack).await;
    let messages: Vec<flashsale::domain::OrderMessage> =
        outbox(&mut redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    // A consumer whose Redis is gone once MySQL has committed.
    let mut config = stack.config.clone();
    config.redis.url = "redis://127.0.0.1:1".to_string().into();
    let persist =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.orders.max_delay_secs);
    let outcomes = persist.persist(messages).await;
    assert!(outcomes.iter().all(Result::is_ok), "committed orders are not sent round again: {outcomes:?}");
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.len(), 3);
    assert_eq!(outbox(&mut redis, sale).await.len(), 3, "the entries stay for the check-back, which clears them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_cut_off_inside_its_transaction_holds_the_sale_for_seconds_not_hours() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    for user in ["cut-off", "next"] {
        assert_eq!(api.buy(sale, user, None).await.0, 202);
    }
    let mut redis = redis(&stack).await;
    let messages: Vec<flashsale::domain::OrderMessage> =
        outbox(&mut redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();

    // A consumer whose network goes silent once it has locked the sale's row and sent
    // its insert: its client gives up at its timeout, the server hears nothing more.
    let proxy = FaultProxy::silenced_by("127.0.0.1:3306".parse().unwrap(), b"INSERT INTO orders").await;
    let mut config = stack.config.clone();
    config.mysql.url = config.mysql.url.expose().replace("127.0.0.1:3306", &proxy.addr.to_string()).into();
    let cut =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.orders.max_delay_secs);
    assert!(cut.persist(vec![messages[0].clone()]).await[0].is_err(), "its client gave up");

    // Another consumer persists the sale's next order once the server lets go of the row
    // (its idle-transaction timeout), not when TCP would have given up, hours later.
    let mut config = stack.config.clone();
    config.breaker.failures = 1000;
    let persist =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.orders.max_delay_secs);
    eventually("the next order persisted", Duration::from_secs(40), || async {
        persist.persist(vec![messages[1].clone()]).await[0].is_ok().then_some(())
    })
    .await;
    // The cut-off consumer's order, redelivered, goes in once too.
    assert!(persist.persist(vec![messages[0].clone()]).await[0].is_ok());
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.len(), 2);
    assert_eq!(mysql_sale(&db, sale).await, (10, 2));
}
