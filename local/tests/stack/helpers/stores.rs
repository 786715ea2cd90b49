//! What the stores hold: MySQL's sales and orders, Redis's keys and outbox, SQS's queues.

use flashsale::domain::OrderMessage;
use flashsale_local::Stack;

pub async fn redis(stack: &Stack) -> redis::aio::MultiplexedConnection {
    redis::Client::open(stack.config.redis.url.expose()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

pub async fn mysql(stack: &Stack) -> sqlx::MySqlPool {
    sqlx::MySqlPool::connect(stack.config.mysql.url.expose()).await.unwrap()
}

/// `(stock, sold)` of a sale in MySQL.
pub async fn mysql_sale(db: &sqlx::MySqlPool, sale: u64) -> (u32, u32) {
    sqlx::query_as("SELECT stock, sold FROM sales WHERE id = ?").bind(sale).fetch_one(db).await.unwrap()
}

pub async fn redis_stock(conn: &mut redis::aio::MultiplexedConnection, sale: u64) -> i64 {
    redis::cmd("GET").arg(keys(sale).stock).query_async(conn).await.unwrap()
}

/// The outbox entries of a sale, as the JSON bodies the admission sent.
pub async fn outbox(conn: &mut redis::aio::MultiplexedConnection, sale: u64) -> Vec<String> {
    redis::cmd("HVALS").arg(keys(sale).outbox).query_async(conn).await.unwrap()
}

/// Orders of a sale in MySQL: `(order id, user, status)`.
pub async fn mysql_orders(db: &sqlx::MySqlPool, sale: u64) -> Vec<(u64, String, String)> {
    sqlx::query_as("SELECT id, CAST(user_id AS CHAR), status FROM orders WHERE sale_id = ? ORDER BY id")
        .bind(sale)
        .fetch_all(db)
        .await
        .unwrap()
}

/// The Redis keys of a sale, as the functions name them.
pub fn keys(sale: u64) -> flashsale::stores::redis::SaleKeys {
    flashsale::stores::redis::SaleKeys::new(flashsale::SaleId(sale))
}

/// A sale as MySQL has it, for calling reconcile on it.
pub async fn sale_row(stack: &Stack, sale: u64) -> flashsale::Sale {
    flashsale::stores::mysql::Mysql::connect(&stack.config)
        .unwrap()
        .sale(flashsale::SaleId(sale))
        .await
        .unwrap()
        .unwrap()
}

/// The outbox of a sale as order messages, oldest id first.
pub async fn outbox_messages(redis: &mut redis::aio::MultiplexedConnection, sale: u64) -> Vec<OrderMessage> {
    let mut messages: Vec<OrderMessage> =
        outbox(redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    messages.sort_by_key(|m| m.order_id);
    messages
}

/// Order messages as the bodies SQS delivers.
pub fn bodies(messages: &[OrderMessage]) -> Vec<String> {
    messages.iter().map(|m| serde_json::to_string(m).unwrap()).collect()
}

/// An order's status in MySQL, if it is there.
pub async fn mysql_status(db: &sqlx::MySqlPool, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
        .bind(id.parse::<u64>().unwrap())
        .fetch_optional(db)
        .await
        .unwrap()
}

/// How many messages a queue holds, as SQS approximates it.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    attributes.attributes().and_then(|a| a.values().next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}
