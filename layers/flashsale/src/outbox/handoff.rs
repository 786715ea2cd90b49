//! The hand-off of admitted orders: recorded in the pending-orders table (durable from
//! then on, and counted exactly by a rebuild), then sent to SQS, the quick way into
//! MySQL. An order is never sent unrecorded: a message the table does not know of could
//! land after a rebuild that did not count its units. Orders admitted together go out
//! together (up to ten to one `SendMessageBatch`) and only a few batches are in flight
//! at once, so a slow queue gets fewer calls, never one per admitted shopper all at the
//! same moment; and an order never waits behind more than the batches ahead of it.

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

    /// Queues `order` for the hand-off. The answer comes once it is recorded: `Ok`, or
    /// the table's error (then it is not sent either; the outbox's check-back tries
    /// again). `None` when too many orders wait already.
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
    let recorded = fallback.keep_all(&orders).await;
    let mut to_send = Vec::with_capacity(orders.len());
    for ((order, done), outcome) in batch.into_iter().zip(recorded) {
        match &outcome {
            Ok(()) => to_send.push(order),
            Err(e) => {
                tracing::error!(order_id = %order.order_id, error = %e, "order not recorded; it waits in the outbox")
            }
        }
        // No one listens once the shopper has been answered: the order is sent anyway.
        let _ = done.send(outcome);
    }
    send(queue, &to_send).await;
}

/// Sends recorded orders to SQS. One that fails waits in the outbox (and the table) for
/// reconcile's check-back.
async fn send(queue: &dyn Outbound, recorded: &[OrderMessage]) -> Vec<Result<()>> {
    let sent = queue.send_orders(recorded).await;
    for (order, outcome) in recorded.iter().zip(&sent) {
        if let Err(e) = outcome {
            tracing::warn!(order_id = %order.order_id, error = %e, "order message not sent; recorded, the check-back sends it");
        }
    }
    sent
}

/// Records `orders` in the pending-orders table, then sends those recorded to SQS: the
/// only way an order message goes out. One outcome per order, `Ok` once it is in both.
pub async fn record_and_send(
    queue: &dyn Outbound,
    fallback: &dyn KeptOrders,
    orders: &[OrderMessage],
) -> Vec<Result<()>> {
    let mut outcomes = fallback.keep_all(orders).await;
    let recorded: Vec<OrderMessage> =
        orders.iter().zip(&outcomes).filter(|(_, kept)| kept.is_ok()).map(|(o, _)| o.clone()).collect();
    let mut sent = send(queue, &recorded).await.into_iter();
    for outcome in outcomes.iter_mut().filter(|kept| kept.is_ok()) {
        *outcome = sent.next().unwrap_or(Ok(()));
    }
    outcomes
}
