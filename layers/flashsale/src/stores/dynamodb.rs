//! The DynamoDB handle of the pending-orders table (still called the fallback table
//! in configuration): the exact, durable ledger of orders admitted and not yet known to
//! be in MySQL. Every order is written here before its message goes to SQS, and stays
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

/// What the handlers ask of the fallback table. [`FallbackTable`] is DynamoDB itself; unit
/// tests of handler logic put one of their own in its place.
pub trait KeptOrders: Send + Sync {
    /// Keeps an admitted order; idempotent (the order id is the key).
    fn keep<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>>;
    /// [`KeptOrders::keep`] for many orders at once, with one outcome per order, in order.
    fn keep_all<'a>(&'a self, orders: &'a [OrderMessage]) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(futures::future::join_all(orders.iter().map(move |o| self.keep(o))))
    }
    /// The orders kept for a sale.
    fn of_sale(&self, sale: SaleId) -> BoxFuture<'_, Result<Vec<OrderMessage>>>;
    /// Forgets an order once MySQL has it, or once its admission was undone.
    fn forget<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>>;
}

pub struct FallbackTable {
    client: Client,
    table: String,
    breaker: Breaker,
}

impl FallbackTable {
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        FallbackTable {
            client: Client::new(sdk),
            table: config.fallback_table.clone(),
            breaker: Breaker::new("dynamodb", config.breaker_failures, config.breaker_cooldown, config.aws_timeout),
        }
    }
}

impl KeptOrders for FallbackTable {
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

impl FallbackTable {
    async fn put(&self, order: &OrderMessage) -> Result<()> {
        let message = serde_json::to_string(order).map_err(|e| Error::serde("kept order", e))?;
        let ttl = chrono::Utc::now().timestamp() + TTL_SECS;
        self.breaker
            .call(async {
                self.client
                    .put_item()
                    .table_name(&self.table)
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
                let items = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("sale_id = :sale")
                    .expression_attribute_values(":sale", AttributeValue::N(sale.to_string()))
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
            })
            .await
    }

    async fn delete(&self, order: &OrderMessage) -> Result<()> {
        self.breaker
            .call(async {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("sale_id", AttributeValue::N(order.sale_id.to_string()))
                    .key("order_id", AttributeValue::S(order.order_id.to_string()))
                    .send()
                    .await
                    .map_err(|e| Error::aws("dynamodb", e))?;
                Ok(())
            })
            .await
    }
}
