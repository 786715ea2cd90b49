//! Persistence throughput: `persist-orders` fed batches directly (no SQS), against
//! MariaDB and Redis, next to the same server's raw single-row INSERT rate measured in
//! the same run, as a ratio (this machine is noisy; ratios travel).
//!
//! `cargo bench --workspace --bench persistence` with the local services up
//! (`scripts/services.sh up`). `BENCH_ORDERS` (default 20000) per phase and round,
//! `BENCH_CONCURRENCY` (default 4: batches, or inserts, in flight), `BENCH_ROUNDS`
//! (default 3); medians are printed. Every order is for one sale, so each batch
//! contends for the same `sales` row, as in a flash sale.

mod common;

use std::time::{Duration, Instant};

use flashsale::domain::OrderMessage;
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::stores::Stores;
use flashsale::{Config, OrderId, SaleId, UserId};
use flashsale_testing::{RecordingPendingOrders, RecordingQueue};
use futures::stream::{self, StreamExt};
use persist_orders::PersistOrders;

use common::{env, median, open_sale};

async fn sale(db: &Mysql, stock: u32) -> SaleId {
    let new = open_sale("persistence bench", stock);
    db.create_sale(&new).await.unwrap().id
}

/// Order ids no earlier run took: the bench's own range above the clock's.
fn first_id() -> u64 {
    (chrono::Utc::now().timestamp_millis() as u64) << 22
}

/// Orders/s of `persist` fed `orders` orders of one fresh sale in batches of `batch`,
/// `concurrency` batches in flight.
async fn handler_rate(
    db: &Mysql,
    persist: &PersistOrders,
    orders: usize,
    batch: usize,
    concurrency: usize,
) -> (f64, SaleId) {
    let sale = sale(db, orders as u32).await;
    let base = first_id();
    let messages: Vec<OrderMessage> = (0..orders)
        .map(|i| OrderMessage {
            order_id: OrderId(base + i as u64),
            sale_id: sale,
            user_id: UserId::new(format!("shopper-{i}")).unwrap(),
            quantity: 1,
        })
        .collect();
    let started = Instant::now();
    stream::iter(messages.chunks(batch))
        .map(|chunk| async move {
            let outcomes = persist.persist(chunk.to_vec()).await;
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    let rate = orders as f64 / started.elapsed().as_secs_f64();
    let counts = db.count_statuses(sale).await.unwrap();
    assert_eq!(counts.values().map(|(n, _)| n).sum::<u64>(), orders as u64, "every order persisted once");
    (rate, sale)
}

#[tokio::main]
async fn main() {
    let orders = env("BENCH_ORDERS", 20_000);
    let concurrency = env("BENCH_CONCURRENCY", 4);
    let rounds = env("BENCH_ROUNDS", 3);
    let mut config = Config::from_env().unwrap();
    config.mysql.max_connections = config.mysql.max_connections.max(concurrency as u32);
    config.mysql.timeout = Duration::from_secs(30);
    let db = Mysql::connect(&config).unwrap();
    db.migrate().await.expect("MariaDB up? (scripts/services.sh up)");
    let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
    let stores = Stores {
        mysql: Mysql::connect(&config).unwrap(),
        redis: Redis::connect(&config, None).unwrap(),
        queue: Box::new(queue.clone()),
        pending_orders: Box::new(pending_orders),
    };
    let persist = PersistOrders::new(stores, config.orders.max_delay_secs);
    let raw = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(concurrency as u32)
        .connect(config.mysql.url.expose())
        .await
        .unwrap();

    let (mut inserts, mut singles, mut batches, mut sales) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // The baseline: one autocommitted single-row INSERT per order, no other work.
        let insert_sale = sale(&db, orders as u32).await;
        sales.push(insert_sale);
        let base = first_id();
        let started = Instant::now();
        stream::iter(0..orders)
            .map(|i| {
                let raw = &raw;
                async move {
                    sqlx::query(
                        "INSERT INTO orders (id, sale_id, user_id, quantity, amount_cents, status, created_at, expires_at) \
                         VALUES (?, ?, ?, 1, 100, 'UNPAID', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL 600 SECOND)",
                    )
                    .bind(base + i as u64)
                    .bind(insert_sale.0)
                    .bind(format!("shopper-{i}"))
                    .execute(raw)
                    .await
                    .unwrap();
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
        inserts.push(orders as f64 / started.elapsed().as_secs_f64());
        let (rate, single_sale) = handler_rate(&db, &persist, orders, 1, concurrency).await;
        singles.push(rate);
        let (rate, batch_sale) = handler_rate(&db, &persist, orders, 10, concurrency).await;
        batches.push(rate);
        sales.extend([single_sale, batch_sale]);
        eprintln!("round {} done", round + 1);
    }
    assert_eq!(queue.closes().len(), 2 * rounds * orders, "one close check per accepted order");
    for sale in sales {
        sqlx::query("DELETE FROM orders WHERE sale_id = ?").bind(sale.0).execute(&raw).await.unwrap();
        sqlx::query("DELETE FROM sales WHERE id = ?").bind(sale.0).execute(&raw).await.unwrap();
    }

    let (insert, single, batch) = (median(inserts), median(singles), median(batches));
    println!(
        "persistence throughput, medians of {rounds} rounds of {orders} orders of one sale, {concurrency} in flight"
    );
    println!("{:<64} {:>10} {:>8}", "", "orders/s", "ratio");
    println!("{:<64} {:>10.0} {:>8}", "raw single-row INSERT, autocommit (baseline)", insert, "1.00");
    println!(
        "{:<64} {:>10.0} {:>8.2}",
        "persist-orders, batches of 1 (a transaction per order)",
        single,
        single / insert
    );
    println!(
        "{:<64} {:>10.0} {:>8.2}",
        "persist-orders, batches of 10 (a transaction per batch)",
        batch,
        batch / insert
    );
}
