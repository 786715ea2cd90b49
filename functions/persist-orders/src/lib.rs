//! `persist-orders`: the consumer of the `orders` queue. Each admitted order becomes
//! exactly one row in MySQL (see [`Db::persist_order`]); then its first close check is
//! scheduled and its outbox entry cleared. A refused order (`REJECTED`) puts no unit
//! back on sale: MySQL had none for it, so Redis is corrected to what MySQL and the
//! outbox account for (see [`recovery::settle_rejected`]). Any failure fails only that
//! message, which SQS redelivers.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashsale::consumer::each_record;
use flashsale::db::Persisted;
use flashsale::messages::{OrderMessage, TimeoutMessage};
use flashsale::recovery;
use flashsale::stores::Stores;
use flashsale::{Config, Error, Order, OrderStatus, Result};
use tracing::Instrument;

pub struct PersistOrders {
    stores: Stores,
    max_delay_secs: u32,
}

impl PersistOrders {
    pub fn new(stores: Stores, max_delay_secs: u32) -> Self {
        PersistOrders { stores, max_delay_secs }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[flashsale::config::Need::TimeoutsQueue])?;
        Ok(PersistOrders::new(Stores::from_config(config).await?, config.max_delay_secs))
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        each_record(event, |msg: OrderMessage| {
            let span = tracing::info_span!("persist", sale_id = %msg.sale_id, order_id = %msg.order_id);
            async move { self.persist(msg).await }.instrument(span)
        })
        .await
    }

    async fn persist(&self, msg: OrderMessage) -> Result<()> {
        let order = match self.stores.db.persist_order(&msg).await? {
            Persisted::Accepted(order) => {
                tracing::info!("order persisted");
                order
            }
            Persisted::Rejected(order) => {
                tracing::warn!("database guard refused the order; no unit goes back on sale");
                order
            }
            Persisted::Duplicate(order) if is_same_order(&order, &msg) => {
                tracing::info!(status = %order.status, "redelivered order; finishing its follow-up steps");
                order
            }
            // Ids are unique while every minter holds its worker-id lease; if one ever is
            // not, clearing this order's outbox entry as if it were persisted would lose it.
            // Failing keeps the entry, and the message ends in the DLQ, where it is seen.
            Persisted::Duplicate(taken) => {
                tracing::error!(taken_by_sale = %taken.sale_id, "order id already taken by another order");
                return Err(Error::Internal(format!("order id {} is taken by another order", msg.order_id)));
            }
        };
        // Both steps are idempotent, so a redelivery after a crash just completes them.
        match order.status {
            OrderStatus::Unpaid => self.schedule_close(&order).await?,
            OrderStatus::Rejected => recovery::settle_rejected(&self.stores.db, &self.stores.cache, &order).await?,
            _ => {}
        }
        self.stores.cache.clear_outbox(msg.sale_id, msg.order_id).await
    }

    async fn schedule_close(&self, order: &Order) -> Result<()> {
        let deadline = order.expires_at.unwrap_or(order.created_at);
        let timeout = TimeoutMessage { order_id: order.order_id, sale_id: order.sale_id, deadline_ms: deadline.timestamp_millis() };
        self.stores.queue
            .schedule_close(&timeout, chrono::Utc::now().timestamp_millis(), self.max_delay_secs)
            .await
    }
}

/// Whether the stored order is the one the message carries (a redelivery), not another
/// order that got the same id.
fn is_same_order(stored: &Order, msg: &OrderMessage) -> bool {
    stored.sale_id == msg.sale_id && stored.user_id == msg.user_id && stored.quantity == msg.quantity
}
