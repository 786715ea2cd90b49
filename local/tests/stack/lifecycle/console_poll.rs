//! The staff console's poll reads each sale's tallies, and no order.

use flashsale::domain::OrderMessage;
use flashsale::stores::mysql::Mysql;
use flashsale::OrderId;

/// The staff console polls every 2 s: the sale list and the watched sale's report read
/// each sale's tallies, five rows, not its orders, so a sale of a million orders costs
/// the writer what one of ten does. Shown in a database of the test's own, whose orders
/// table is taken away once the orders are written: the poll still answers, right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_poll_reads_each_sales_tallies_and_no_order() {
    let mut config = flashsale::config::Config::from_env().unwrap();
    let base = config.mysql.url.expose().rsplit_once('/').unwrap().0.to_string();
    let name = format!("flashsale_tallies_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    config.mysql.url = format!("{base}/{name}").into();
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
    let raw = sqlx::MySqlPool::connect(config.mysql.url.expose()).await.unwrap();
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
    let redis = flashsale::stores::redis::Redis::connect(&config, None).unwrap();
    let checks = flashsale_local::ops::audit::audit(&db, &redis, sale.id, None).await.unwrap();
    let tallies = checks.iter().find(|c| c.name == "the tallies agree with the orders").unwrap();
    assert!(!tallies.passed && tallies.detail.contains(r#"below zero: ["UNPAID"]"#), "{}", tallies.detail);
    drift(1_000).await.unwrap();
    let counted = (db.count_statuses(sale.id).await.unwrap(), db.count_money(sale.id).await.unwrap());
    assert_eq!(tallied().await, counted, "and put right, agrees again");
    // The release that brought the tallies counts the sales before it once, from their orders.
    sqlx::query("DELETE FROM order_tallies").execute(&raw).await.unwrap();
    sqlx::raw_sql(include_str!("../../../../migrations/20261206000002_order_tallies_backfill.sql"))
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
