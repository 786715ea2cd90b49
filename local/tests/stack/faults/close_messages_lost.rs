//! Close messages lost to the DLQ: reconcile closes the overdue orders itself, once.

use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::Stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_messages_lost_to_the_dlq_are_closed_by_reconcile() {
    let Waiting { stack, sale, messages, mut redis, .. } = waiting_orders(5, 1, 5).await;
    let api = Api::new(&stack);

    // Every close message ends in the DLQ: nothing will ever deliver it.
    let mut config = stack.config.clone();
    config.aws.timeouts_queue_url = stack.resources.timeouts_dlq_url.clone();
    config.orders.overdue_close_after = Duration::ZERO;
    let persist =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.orders.max_delay_secs);
    assert!(persist.handle(sqs_event(&messages)).await.batch_item_failures.is_empty());
    let db = mysql(&stack).await;
    assert_eq!(mysql_sale(&db, sale).await, (5, 5));
    let (status, body) = api.buy(sale, "waiting", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    let check = reconcile.check(&sale_row).await.unwrap();
    assert_eq!(check.closed, 5);
    assert_eq!(mysql_sale(&db, sale).await, (5, 0));
    assert_eq!(redis_stock(&mut redis, sale).await, 5, "the units are back on sale");
    // A second run finds nothing to do: the close is idempotent.
    assert_eq!(reconcile.check(&sale_row).await.unwrap().closed, 0);
    assert_eq!(redis_stock(&mut redis, sale).await, 5);
    let (status, body) = api.buy(sale, "waiting", None).await;
    assert_eq!(status, 202, "{body}");
}
