//! What MySQL refuses: orders Redis admitted on units it wrongly believed in (it forgot
//! decrements, or a holder's purchases) put no phantom unit on sale, and one message
//! MySQL refuses fails alone in its batch.

use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::Stores;
use flashsale::OrderId;
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_puts_no_phantom_unit_on_sale() {
    let stack = stack_with(faulty_stack_options).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 2, 600, -1, 3600)).await;
    let mut redis = redis(&stack).await;
    // Redis forgot decrements (a failover to a lagging replica): it believes in 3 units
    // that do not exist.
    let _: () = redis.set(keys(sale).stock, 8).await.unwrap();
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..8).map(|i| format!("buyer-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 8);
    let db = mysql(&stack).await;
    let statuses = eventually("all 8 settled in MySQL", Duration::from_secs(30), || async {
        let orders = mysql_orders(&db, sale).await;
        let settled = orders.len() == 8 && outbox(&mut redis.clone(), sale).await.is_empty();
        settled.then(|| orders.into_iter().map(|(_, _, s)| s).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(statuses.iter().filter(|s| *s == "REJECTED").count(), 3, "{statuses:?}");
    assert_eq!(redis_stock(&mut redis, sale).await, 0, "Redis corrected down to MySQL");
    // The next buyer is told "sold out" at once, not admitted and refused later.
    let (status, body) = api.buy(sale, "next", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")), "{body}");
    // A refused shopper learns it from their order.
    for (user, id) in &outcomes.told {
        let (status, body) = api.order(user, id).await;
        assert_eq!(status, 200);
        assert!(body["status"] == "UNPAID" || body["status"] == "REJECTED", "{body}");
    }

    // Two units come back on sale the normal way: two unpaid orders close.
    let unpaid: Vec<(u64, String, String)> =
        mysql_orders(&db, sale).await.into_iter().filter(|(_, _, s)| s == "UNPAID").collect();
    let stores = Stores::from_config(&stack.config).await.unwrap();
    for (id, _, _) in &unpaid[1..3] {
        sqlx::query("UPDATE orders SET expires_at = UTC_TIMESTAMP(3) WHERE id = ?")
            .bind(id)
            .execute(&db)
            .await
            .unwrap();
        stores.close_order(&provider(&stack), OrderId(*id)).await.unwrap();
    }
    assert_eq!(redis_stock(&mut redis, sale).await, 2);
    // Redis forgot what one holder bought: it admits them two more, above the limit of
    // 2. MySQL refuses the order, and these units did exist, so they are on sale again.
    let holder = unpaid[0].1.clone();
    let keys = keys(sale);
    tokio::time::sleep(Duration::from_millis(300)).await; // the sold-out memo's TTL
    let _: () = redis.hdel(&keys.bought, &holder).await.unwrap();
    let _: () = redis.hdel(&keys.orders, &holder).await.unwrap();
    let (status, body) = api.buy(sale, &holder, Some(2)).await;
    assert_eq!(status, 202, "{body}");
    let extra = body["order_id"].as_str().unwrap().to_string();
    eventually("the over-limit order refused", Duration::from_secs(30), || async {
        let refused = mysql_status(&db, &extra).await.as_deref() == Some("REJECTED");
        (refused && outbox(&mut redis.clone(), sale).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(redis_stock(&mut redis, sale).await, 2, "units refused for the limit are back on sale");
    assert_eq!(mysql_sale(&db, sale).await, (5, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_mysql_refuses_fails_alone_and_the_rest_of_its_batch_is_persisted() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    for user in ["before", "after"] {
        assert_eq!(api.buy(sale, user, None).await.0, 202);
    }
    let mut redis = redis(&stack).await;
    let mut batch: Vec<flashsale::domain::OrderMessage> =
        outbox(&mut redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    // A message no admission wrote: a quantity the orders table's check refuses.
    let bad = flashsale::domain::OrderMessage {
        order_id: OrderId(batch[0].order_id.0 ^ 1),
        user_id: flashsale::UserId::new("mangled").unwrap(),
        quantity: 0,
        ..batch[0].clone()
    };
    batch.insert(1, bad);
    let persist = persist_orders::PersistOrders::new(
        Stores::from_config(&stack.config).await.unwrap(),
        stack.config.orders.max_delay_secs,
    );
    let outcomes = persist.persist(batch.clone()).await;
    assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok(), "{outcomes:?}");
    let db = mysql(&stack).await;
    let mut persisted: Vec<u64> = mysql_orders(&db, sale).await.iter().map(|o| o.0).collect();
    persisted.sort();
    let mut good = vec![batch[0].order_id.0, batch[2].order_id.0];
    good.sort();
    assert_eq!(persisted, good);
    assert_eq!(mysql_sale(&db, sale).await, (10, 2));
    assert!(outbox(&mut redis, sale).await.is_empty());
}
