//! The DynamoDB handle of the pending-orders table: the exact, durable record of orders
//! admitted and not yet known to be in MySQL. Every order is written here before its message goes to SQS, and stays
//! until reconcile sees MySQL has it. So wherever a message is (the queue, a consumer,
//! the DLQ, a send that timed out and delivered anyway) its order is here, and a rebuild
//! of a lost sale counts its units exactly, with no approximate queue count; and an
//! order written here is durable before the shopper hears `202`, SQS or not.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::future::BoxFuture;

use crate::config::Config;
use crate::domain::{OrderMessage, SaleId};
use crate::error::{Error, Result};
use crate::stores::breaker::Breaker;

/// Items outlive any sale's recovery by far; DynamoDB deletes them after this (s).
const TTL_SECS: i64 = 14 * 24 * 3600;

/// Partitions one sale's records are spread over. A partition takes about 1,000 writes/s,
/// and a sale's opening second writes a record per admitted order and, as they land in
/// MySQL, deletes them again; with the sale as the whole key, one partition would take
/// all of it. Fixed: records are found by it, so changing it strands the records kept.
pub const SHARDS: u64 = 16;

/// The partition key of an order's record: its sale and a shard drawn from its id.
/// Mixed, not the id's low bits: those are the Snowflake sequence, 0 for nearly every
/// id a quiet container makes, so `id % SHARDS` would put most records in shard 0.
pub fn shard_key(sale: SaleId, order: u64) -> String {
    partition(sale, mix(order) % SHARDS)
}

/// The partition key of one of a sale's shards.
fn partition(sale: SaleId, shard: u64) -> String {
    format!("{sale}#{shard}")
}

/// SplitMix64's finalizer: every bit of the id moves every bit of the result.
fn mix(id: u64) -> u64 {
    let mut z = id;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the handlers ask of the pending-orders table. [`PendingOrdersTable`] is DynamoDB itself; unit
/// tests of handler logic put one of their own in its place.
pub trait PendingOrders: Send + Sync {
    /// Keeps an admitted order; idempotent (the order id is the key).
    fn keep<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>>;
    /// [`PendingOrders::keep`] for many orders at once, with one outcome per order, in order.
    fn keep_all<'a>(&'a self, orders: &'a [OrderMessage]) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(futures::future::join_all(orders.iter().map(move |o| self.keep(o))))
    }
    /// The orders kept for a sale.
    fn of_sale(&self, sale: SaleId) -> BoxFuture<'_, Result<Vec<OrderMessage>>>;
    /// Forgets an order once MySQL has it, or once its admission was undone.
    fn forget<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>>;
}

pub struct PendingOrdersTable {
    client: Client,
    table: String,
    breaker: Breaker,
}

impl PendingOrdersTable {
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        PendingOrdersTable {
            client: Client::new(sdk),
            table: config.aws.pending_orders_table.clone(),
            breaker: Breaker::new("dynamodb", config.breaker.failures, config.breaker.cooldown, config.aws.timeout),
        }
    }
}

impl PendingOrders for PendingOrdersTable {
    fn keep<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.put(order))
    }

    fn of_sale(&self, sale: SaleId) -> BoxFuture<'_, Result<Vec<OrderMessage>>> {
        Box::pin(self.query(sale))
    }

    fn forget<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.delete(order))
    }
}

impl PendingOrdersTable {
    async fn put(&self, order: &OrderMessage) -> Result<()> {
        let message = serde_json::to_string(order).map_err(|e| Error::serde("kept order", e))?;
        let ttl = chrono::Utc::now().timestamp() + TTL_SECS;
        self.breaker
            .call(async {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("shard", AttributeValue::S(shard_key(order.sale_id, order.order_id.0)))
                    .item("sale_id", AttributeValue::N(order.sale_id.to_string()))
                    .item("order_id", AttributeValue::S(order.order_id.to_string()))
                    .item("message", AttributeValue::S(message))
                    .item("ttl", AttributeValue::N(ttl.to_string()))
                    .send()
                    .await
                    .map_err(|e| Error::aws("dynamodb", e))?;
                Ok(())
            })
            .await
    }

    async fn query(&self, sale: SaleId) -> Result<Vec<OrderMessage>> {
        self.breaker
            .call(async {
                let shards = (0..SHARDS).map(|shard| self.query_shard(partition(sale, shard)));
                let mut orders = Vec::new();
                for shard in futures::future::try_join_all(shards).await? {
                    orders.extend(shard);
                }
                Ok(orders)
            })
            .await
    }

    async fn query_shard(&self, shard: String) -> Result<Vec<OrderMessage>> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("shard = :shard")
            .expression_attribute_values(":shard", AttributeValue::S(shard))
            // A rebuild counts what is here: an order kept a moment ago must be seen.
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| Error::aws("dynamodb", e))?;
        items
            .iter()
            .filter_map(|item| item.get("message").and_then(|m| m.as_s().ok()))
            .map(|m| serde_json::from_str(m).map_err(|e| Error::serde("kept order", e)))
            .collect()
    }

    async fn delete(&self, order: &OrderMessage) -> Result<()> {
        self.breaker
            .call(async {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("shard", AttributeValue::S(shard_key(order.sale_id, order.order_id.0)))
                    .key("order_id", AttributeValue::S(order.order_id.to_string()))
                    .send()
                    .await
                    .map_err(|e| Error::aws("dynamodb", e))?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::snowflake;

    #[test]
    fn a_sales_records_spread_evenly_over_its_shards_even_when_every_sequence_is_zero() {
        // 16,000 ids as 1,000 quiet containers make them over 16 ms: sequence 0 each time.
        let mut per_shard = std::collections::HashMap::<String, u32>::new();
        for ms in 0..16u64 {
            for worker in 0..1000u16 {
                let id = snowflake::compose(snowflake::EPOCH_MS + 1_000_000 + ms, worker, 0);
                *per_shard.entry(shard_key(SaleId(7), id)).or_default() += 1;
            }
        }
        assert_eq!(per_shard.len(), SHARDS as usize);
        // 1,000 expected per shard; a fair split stays well within ±15%.
        assert!(per_shard.values().all(|n| (850..=1150).contains(n)), "{per_shard:?}");
        assert!(per_shard.keys().all(|k| k.starts_with("7#")));
    }
}
