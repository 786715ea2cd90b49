//! No lost order: a shopper told `202` has an order that MySQL will have, exactly once.
//!
//! The admission script writes the order's outbox entry in the same atomic step as the
//! admission ([`entries`]). The container then hands the order to SQS, or, when SQS
//! fails, to the DynamoDB fallback table ([`handoff`], [`FallbackTable`]) before the shopper
//! hears `202`; when neither takes it, the admission is undone and the shopper gets 503.
//! A send slower than the send bound goes on after the `202`, the outbox holding the
//! order meanwhile. Persistence clears the entry after its commit; reconcile re-sends
//! stale entries and the fallback table's orders. A rebuild of a lost sale counts both.

pub mod entries;
pub mod handoff;

pub use crate::stores::dynamodb::{FallbackTable, KeptOrders};
pub use handoff::HandOff;
