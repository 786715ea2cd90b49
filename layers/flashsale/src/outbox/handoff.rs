//! The hand-off of admitted orders to somewhere durable: SQS, or when SQS fails, the
//! fallback table. Orders admitted together go out together (up to ten to one
//! `SendMessageBatch`) and only a few batches are in flight at once, so a slow queue
//! gets fewer calls, never one per admitted shopper all at the same moment; and an
//! order never waits behind more than the batches ahead of it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::domain::OrderMessage;
use crate::error::Result;
use crate::stores::dynamodb::KeptOrders;
use crate::stores::sqs::Outbound;

/// Orders per `SendMessageBatch` (SQS's maximum).
const BATCH: usize = 10;
/// Batches in flight at once.
const IN_FLIGHT: usize = 4;
/// Orders waiting for a batch; past this the outbox alone holds an order until
/// reconcile re-sends it.
const WAITING: usize = 10_000;

/// An order waiting for its batch, with where to say how its hand-off ended.
type Waiting = (OrderMessage, oneshot::Sender<Result<()>>);

pub struct HandOff {
    waiting: mpsc::Sender<Waiting>,
    /// Orders submitted and not yet handed off (sent, kept, or given up on).
    unsettled: watch::Sender<usize>,
}

impl HandOff {
    /// Starts the hand-off task on the current runtime; it ends when this is dropped.
    pub fn start(queue: Arc<dyn Outbound>, fallback: Arc<dyn KeptOrders>) -> Self {
        let (waiting, orders) = mpsc::channel(WAITING);
        let unsettled = watch::Sender::new(0);
        tokio::spawn(run(orders, queue, fallback, unsettled.clone()));
        HandOff { waiting, unsettled }
    }

    /// Queues `order` for the hand-off. The answer says where it ended: `Ok` once SQS or
    /// the fallback table has it, the fallback's error when neither took it. `None` when
    /// too many orders wait already.
    pub fn submit(&self, order: OrderMessage) -> Option<oneshot::Receiver<Result<()>>> {
        let (done, answer) = oneshot::channel();
        self.unsettled.send_modify(|n| *n += 1);
        if self.waiting.try_send((order, done)).is_err() {
            self.unsettled.send_modify(|n| *n -= 1);
            return None;
        }
        Some(answer)
    }

    /// Resolves once every order submitted so far has been handed off: before it, a
    /// container frozen by Lambda would hold some order only in the outbox.
    pub async fn settled(&self) {
        // The sender lives in `self`, so the wait cannot fail.
        let _ = self.unsettled.subscribe().wait_for(|n| *n == 0).await;
    }
}

async fn run(
    mut orders: mpsc::Receiver<Waiting>,
    queue: Arc<dyn Outbound>,
    fallback: Arc<dyn KeptOrders>,
    unsettled: watch::Sender<usize>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Waiting for a slot first lets the orders that arrive meanwhile join the batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = Vec::with_capacity(BATCH);
        if orders.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let (queue, fallback, unsettled) = (queue.clone(), fallback.clone(), unsettled.clone());
        tokio::spawn(async move {
            let orders = batch.len();
            hand_off(&*queue, &*fallback, batch).await;
            unsettled.send_modify(|n| *n -= orders);
            drop(slot);
        });
    }
}

async fn hand_off(queue: &dyn Outbound, fallback: &dyn KeptOrders, batch: Vec<Waiting>) {
    let orders: Vec<OrderMessage> = batch.iter().map(|(order, _)| order.clone()).collect();
    let sent = queue.send_orders(&orders).await;
    let outcomes = futures::future::join_all(orders.iter().zip(sent).map(|(order, sent)| async move {
        let Err(sqs) = sent else { return Ok(()) };
        let kept = fallback.keep(order).await;
        match &kept {
            Ok(()) => tracing::warn!(order_id = %order.order_id, error = %sqs, "order message not sent; kept in the fallback table"),
            Err(e) => tracing::error!(order_id = %order.order_id, %sqs, kept = %e, "order message could not be kept anywhere"),
        }
        kept
    }))
    .await;
    for ((_, done), outcome) in batch.into_iter().zip(outcomes) {
        // No one listens once the shopper has been answered: the order is sent anyway.
        let _ = done.send(outcome);
    }
}
