//! The messages that travel through SQS (and sit in the Redis outbox).

use serde::{Deserialize, Serialize};

use crate::domain::{OrderId, SaleId, UserId};

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

impl OrderMessage {
    /// The order as a shopper or staff see it while only the outbox has it (`PENDING`),
    /// admitted at `admitted_at` at `price_cents` a unit.
    pub fn pending_order(self, admitted_at: chrono::DateTime<chrono::Utc>, price_cents: u64) -> crate::domain::Order {
        crate::domain::Order {
            amount_cents: price_cents * u64::from(self.quantity),
            order_id: self.order_id,
            sale_id: self.sale_id,
            user_id: self.user_id,
            status: crate::domain::OrderStatus::Pending,
            quantity: self.quantity,
            created_at: admitted_at,
            expires_at: None,
            paid_at: None,
            closed_at: None,
        }
    }
}

impl crate::domain::Order {
    /// The admission this order came from.
    pub fn message(&self) -> OrderMessage {
        OrderMessage { order_id: self.order_id, sale_id: self.sale_id, user_id: self.user_id.clone(), quantity: self.quantity }
    }
}
