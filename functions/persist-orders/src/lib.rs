//! `persist-orders`: the consumer of the `orders` queue. A batch (up to 10 messages)
//! is claimed in Redis, then written with one transaction per sale (see
//! [`flashsale::stores::mysql::Mysql::persist_orders`]): each admitted order becomes
//! exactly one row in MySQL, and the sale's hot `sales` row is updated once per batch
//! rather than once per order. Then the first close checks of the batch go out in one
//! `SendMessageBatch` and the outbox entries are cleared. A refused order (`REJECTED`)
//! puts no unit back on sale: MySQL had none for it, so Redis is corrected to what MySQL
//! and the outbox account for (see [`correct_after_refusal`]).
//!
//! The claim keeps out an admission undone in Redis (its shopper was told 503, yet an
//! SQS send that failed ambiguously may have delivered it), and makes any later undo of
//! a claimed order leave it standing. A value MySQL refuses fails its message alone; any
//! other failure fails the messages it touched (a sale's transaction: that sale's
//! messages), which SQS redelivers.

use std::collections::{BTreeMap, HashSet};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashsale::domain::{OrderMessage, TimeoutMessage};
use flashsale::lambda::sqs::whole_batch;
use flashsale::orders::Persisted;
use flashsale::recovery::refused::correct_after_refusal;
use flashsale::stores::Stores;
use flashsale::{Config, Error, Order, OrderId, OrderStatus, Result, SaleId};
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
        Ok(PersistOrders::new(Stores::from_config(config).await?, config.orders.max_delay_secs))
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        whole_batch(event, |msgs: Vec<OrderMessage>| self.persist(msgs)).await
    }

    /// One outcome per message, in order.
    pub async fn persist(&self, msgs: Vec<OrderMessage>) -> Vec<Result<()>> {
        let mut by_sale: BTreeMap<SaleId, Vec<usize>> = BTreeMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            by_sale.entry(msg.sale_id).or_default().push(i);
        }
        // Sales lock different rows, so their transactions need not wait for each other.
        let sales = futures::future::join_all(by_sale.into_iter().map(|(sale, indices)| {
            let batch: Vec<OrderMessage> = indices.iter().map(|&i| msgs[i].clone()).collect();
            let span = tracing::info_span!("persist", sale_id = %sale, orders = batch.len());
            async move { (indices, self.persist_sale(sale, &batch).await) }.instrument(span)
        }))
        .await;
        let mut outcomes: Vec<Result<()>> = msgs.iter().map(|_| Ok(())).collect();
        for (indices, sale_outcomes) in sales {
            for (i, outcome) in indices.into_iter().zip(sale_outcomes) {
                outcomes[i] = outcome;
            }
        }
        outcomes
    }

    /// Claims the sale's orders in Redis first: an admission undone there (its shopper
    /// told 503) is not persisted, its message is done with; the rest are persisted.
    async fn persist_sale(&self, sale: SaleId, batch: &[OrderMessage]) -> Vec<Result<()>> {
        let ids: Vec<OrderId> = batch.iter().map(|m| m.order_id).collect();
        let ended = match self.stores.redis.claim_for_persisting(sale, &ids).await {
            Ok(ended) => ended,
            // MySQL is the truth and the orders go in: an undo needs Redis too, and the
            // outbox entries are cleared after the commit, or by the check-back.
            Err(e) => {
                tracing::warn!(error = %e, "orders not claimed in Redis; persisting them all the same");
                HashSet::new()
            }
        };
        let mut outcomes: Vec<Result<()>> = batch.iter().map(|_| Ok(())).collect();
        let (claimed, messages): (Vec<usize>, Vec<OrderMessage>) = batch
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                let over = ended.contains(&m.order_id);
                if over {
                    tracing::warn!(order_id = %m.order_id, "its hold ended in Redis (an undone admission, or settled before); not persisted");
                }
                !over
            })
            .map(|(i, m)| (i, m.clone()))
            .unzip();
        for (i, outcome) in claimed.into_iter().zip(self.persist_claimed(sale, &messages).await) {
            outcomes[i] = outcome;
        }
        outcomes
    }

    /// The batch in one transaction; when MySQL refuses a value of one of its orders,
    /// each order in a transaction of its own, so that one bad message fails alone.
    async fn written(&self, sale: SaleId, batch: &[OrderMessage]) -> Vec<Result<Persisted>> {
        match self.stores.mysql.persist_orders(sale, batch).await {
            Ok(persisted) => persisted.into_iter().map(Ok).collect(),
            Err(e) if batch.len() > 1 && e.is_refused_statement() => {
                tracing::warn!(error = %e, "MySQL refused a value of the sale's batch; its orders go in one at a time");
                let mut each = Vec::with_capacity(batch.len());
                for message in batch {
                    let persisted = self.stores.mysql.persist_orders(sale, std::slice::from_ref(message)).await;
                    each.push(persisted.and_then(|mut one| one.pop().ok_or(Error::Internal("no outcome".into()))));
                }
                each
            }
            Err(e) => {
                tracing::warn!(error = %e, "the sale's batch was not written; all of it is redelivered");
                (0..batch.len()).map(|_| Err(Error::Internal(e.to_string()))).collect()
            }
        }
    }

    async fn persist_claimed(&self, sale: SaleId, batch: &[OrderMessage]) -> Vec<Result<()>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let written = self.written(sale, batch).await;
        let mut outcomes: Vec<Result<Option<Order>>> =
            batch.iter().zip(written).map(|(msg, written)| written.and_then(|p| self.checked(msg, p))).collect();
        // Both follow-up steps are idempotent, so a redelivery after a crash just
        // completes them.
        let unpaid: Vec<usize> = (0..batch.len())
            .filter(|&i| matches!(&outcomes[i], Ok(Some(o)) if o.status == OrderStatus::Unpaid))
            .collect();
        let closes: Vec<TimeoutMessage> = unpaid
            .iter()
            .filter_map(|&i| outcomes[i].as_ref().ok().and_then(Option::as_ref).map(close_check))
            .collect();
        let scheduled = self
            .stores
            .queue
            .schedule_closes(&closes, chrono::Utc::now().timestamp_millis(), self.max_delay_secs)
            .await;
        for (i, sent) in unpaid.into_iter().zip(scheduled) {
            if let Err(e) = sent {
                outcomes[i] = Err(e);
            }
        }
        for outcome in &mut outcomes {
            if let Ok(Some(order)) = outcome {
                if order.status == OrderStatus::Rejected {
                    if let Err(e) = correct_after_refusal(&self.stores.mysql, &self.stores.redis, order).await {
                        *outcome = Err(e);
                    }
                }
            }
        }
        let done: Vec<_> = batch.iter().zip(&outcomes).filter(|(_, o)| o.is_ok()).map(|(m, _)| m.order_id).collect();
        // The orders are in MySQL: failing them now would only send them round again
        // (and to the DLQ). Their outbox entries stay until reconcile's check-back
        // re-sends them; that redelivery is a duplicate, and clears them.
        if let Err(e) = self.stores.redis.clear_outbox(sale, &done).await {
            tracing::warn!(error = %e, orders = done.len(), "orders persisted; their outbox entries stay for the check-back");
        }
        outcomes.into_iter().map(|o| o.map(drop)).collect()
    }

    /// What persisting one message found, as the order whose follow-up steps are still
    /// to do; an id taken by another order fails.
    fn checked(&self, msg: &OrderMessage, persisted: Persisted) -> Result<Option<Order>> {
        let span = tracing::info_span!("order", order_id = %msg.order_id);
        let _entered = span.enter();
        match persisted {
            Persisted::Accepted(order) => {
                tracing::info!("order persisted");
                Ok(Some(order))
            }
            Persisted::Rejected(order) => {
                tracing::warn!("database guard refused the order; no unit goes back on sale");
                Ok(Some(order))
            }
            Persisted::Duplicate(order) if is_same_order(&order, msg) => {
                tracing::info!(status = %order.status, "redelivered order; finishing its follow-up steps");
                Ok(Some(order))
            }
            // Ids are unique while every minter holds its worker-id lease; if one ever is
            // not, clearing this order's outbox entry as if it were persisted would lose it.
            // Failing keeps the entry, and the message ends in the DLQ, where it is seen.
            Persisted::Duplicate(taken) => {
                tracing::error!(taken_by_sale = %taken.sale_id, "order id already taken by another order");
                Err(Error::Internal(format!("order id {} is taken by another order", msg.order_id)))
            }
        }
    }
}

/// The first close check of an unpaid order, for its deadline.
fn close_check(order: &Order) -> TimeoutMessage {
    let deadline = order.expires_at.unwrap_or(order.created_at);
    TimeoutMessage { order_id: order.order_id, sale_id: order.sale_id, deadline_ms: deadline.timestamp_millis() }
}

/// Whether the stored order is the one the message carries (a redelivery), not another
/// order that got the same id.
fn is_same_order(stored: &Order, msg: &OrderMessage) -> bool {
    stored.sale_id == msg.sale_id && stored.user_id == msg.user_id && stored.quantity == msg.quantity
}
