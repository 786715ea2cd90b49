//! No lost order: a shopper told `202` has an order that MySQL will have, exactly once.
//!
//! The admission script writes the order's outbox entry in the same atomic step as the
//! admission ([`entries`]). The container then records the order in the DynamoDB
//! pending-orders table ([`PendingOrdersTable`]) and only then sends it to SQS ([`handoff`]).
//! The shopper hears `202` once the order is durable outside the primary's memory: on
//! the replicas `WAIT` asked, or recorded in the table; otherwise the admission is undone
//! and the shopper gets 503. Persistence clears the outbox entry after its commit;
//! reconcile re-sends stale entries and forgets recorded orders MySQL has ([`pending_orders`]). A rebuild of
//! a lost sale counts the outbox and the table: exactly what is admitted and not yet in
//! MySQL, wherever its message is.

pub mod entries;
pub mod handoff;
pub mod pending_orders;

pub use crate::stores::dynamodb::{PendingOrders, PendingOrdersTable};
pub use handoff::HandOff;
