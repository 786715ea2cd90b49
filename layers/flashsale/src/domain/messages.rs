//! The messages that travel through SQS (and sit in the Redis outbox).

use serde::{Deserialize, Serialize};

use super::{OrderId, SaleId, UserId};

/// An admitted purchase on its way to MySQL. The outbox keeps the same JSON, so a
/// re-send from the outbox is byte for byte the message the admission would have sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMessage {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    pub user_id: UserId,
    pub quantity: u32,
}

/// "Close this order if it is still unpaid at `deadline_ms`." Windows longer than one
/// SQS delay (900 s) are a chain of these, each re-checking the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutMessage {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    /// Unix milliseconds.
    pub deadline_ms: i64,
}
