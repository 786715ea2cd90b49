//! The hand-off of admitted orders: recorded in the pending-orders table (durable from
//! then on, and counted exactly by a rebuild), then sent to SQS, the quick way into
//! MySQL. An order is never sent unrecorded: a message the table does not know of could
//! land after a rebuild that did not count its units. Orders admitted together go out
//! together (up to ten to one `SendMessageBatch`) and only a few batches are being
//! recorded at once, so the table gets fewer calls, never one per admitted shopper all
//! at the same moment. A batch gives its slot up once recorded: a slow SQS delays no
//! record. An order whose shopper waits for its record is recorded within a deadline
//! or not at all, so a rebuild that waits out the deadline (and one call) after a loss
//! sees every record that will ever be written for an unanswered shopper.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::domain::OrderMessage;
use crate::error::{Error, Result};
use crate::stores::dynamodb::PendingOrders;
use crate::stores::sqs::Outbound;

/// Orders per `SendMessageBatch` (SQS's maximum).
const BATCH: usize = 10;
/// Batches being recorded at once.
const IN_FLIGHT: usize = 4;
/// Orders waiting for a batch; past this the outbox alone holds an order until
/// reconcile re-sends it.
const WAITING: usize = 10_000;

/// An order waiting for its batch, the instant after which it is no longer recorded
/// (`None`: whenever), and where to say how its record ended.
type Waiting = (OrderMessage, Option<Instant>, oneshot::Sender<Result<()>>);

pub struct HandOff {
    waiting: mpsc::Sender<Waiting>,
    /// Orders submitted and not yet handed off (sent, kept, or given up on).
    unsettled: watch::Sender<usize>,
}

impl HandOff {
    /// Starts the hand-off task on the current runtime; it ends when this is dropped.
    pub fn start(queue: Arc<dyn Outbound>, pending_orders: Arc<dyn PendingOrders>) -> Self {
        let (waiting, orders) = mpsc::channel(WAITING);
        let unsettled = watch::Sender::new(0);
        tokio::spawn(run(orders, queue, pending_orders, unsettled.clone()));
        HandOff { waiting, unsettled }
    }

    /// Queues `order` for the hand-off. The answer comes once it is recorded: `Ok`, or
    /// the table's error, or an error once `record_by` passed before its record began
    /// (then it is not sent either; while it is in the outbox the check-back tries
    /// again). `None` when too many orders wait already.
    pub fn submit(&self, order: OrderMessage, record_by: Option<Instant>) -> Option<oneshot::Receiver<Result<()>>> {
        let (done, answer) = oneshot::channel();
        self.unsettled.send_modify(|n| *n += 1);
        if self.waiting.try_send((order, record_by, done)).is_err() {
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
    pending_orders: Arc<dyn PendingOrders>,
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
        let (queue, pending_orders, unsettled) = (queue.clone(), pending_orders.clone(), unsettled.clone());
        tokio::spawn(async move {
            let orders = batch.len();
            let recorded = record(&*pending_orders, batch).await;
            drop(slot);
            send(&*queue, &recorded).await;
            unsettled.send_modify(|n| *n -= orders);
        });
    }
}

/// Records a batch, answering each order's waiter; returns the orders recorded.
async fn record(pending_orders: &dyn PendingOrders, batch: Vec<Waiting>) -> Vec<OrderMessage> {
    let now = Instant::now();
    let (late, batch): (Vec<Waiting>, Vec<Waiting>) =
        batch.into_iter().partition(|(_, record_by, _)| record_by.is_some_and(|by| by < now));
    for (order, _, done) in late {
        tracing::warn!(order_id = %order.order_id, "order not recorded in time; it is undone");
        let _ = done.send(Err(Error::Unavailable { service: "dynamodb (hand-off too late)", retry_after_secs: 1 }));
    }
    let orders: Vec<OrderMessage> = batch.iter().map(|(order, _, _)| order.clone()).collect();
    let outcomes = pending_orders.keep_all(&orders).await;
    let mut recorded = Vec::with_capacity(orders.len());
    for ((order, _, done), outcome) in batch.into_iter().zip(outcomes) {
        match &outcome {
            Ok(()) => recorded.push(order),
            Err(e) => {
                tracing::error!(order_id = %order.order_id, error = %e, "order not recorded; it waits in the outbox")
            }
        }
        // No one listens once the shopper has been answered: the order is sent anyway.
        let _ = done.send(outcome);
    }
    recorded
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
    pending_orders: &dyn PendingOrders,
    orders: &[OrderMessage],
) -> Vec<Result<()>> {
    let mut outcomes = pending_orders.keep_all(orders).await;
    let recorded: Vec<OrderMessage> =
        orders.iter().zip(&outcomes).filter(|(_, kept)| kept.is_ok()).map(|(o, _)| o.clone()).collect();
    let mut sent = send(queue, &recorded).await.into_iter();
    for outcome in outcomes.iter_mut().filter(|kept| kept.is_ok()) {
        *outcome = sent.next().unwrap_or_else(|| Err(Error::Internal("no outcome for a sent order".into())));
    }
    outcomes
}
