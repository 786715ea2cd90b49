//! Orders and the order state machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OrderId, OrderMessage, SaleId, UserId};

/// Where an order is in its life.
///
/// `PENDING` (admitted in Redis, not yet in MySQL) → `UNPAID` → `PAID`,
/// or `UNPAID` → `CLOSED` (timed out, stock released) → `REFUNDED` (money that still
/// reached it was given back), or `PENDING` → `REJECTED` (the database guard refused it;
/// stock released). `PAID` → `REFUNDED` (refunded at the provider) or `DISPUTED` (the
/// card holder's bank disputes it); both keep the unit sold. Only the payment
/// provider's word makes an order `PAID`, `DISPUTED`, or `REFUNDED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Unpaid,
    Paid,
    Closed,
    Rejected,
    Refunded,
    Disputed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::Unpaid,
        OrderStatus::Paid,
        OrderStatus::Closed,
        OrderStatus::Rejected,
        OrderStatus::Refunded,
        OrderStatus::Disputed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Unpaid => "UNPAID",
            OrderStatus::Paid => "PAID",
            OrderStatus::Closed => "CLOSED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Refunded => "REFUNDED",
            OrderStatus::Disputed => "DISPUTED",
        }
    }

    /// The transitions the state machine allows; everything else is a bug or a race lost.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Unpaid)
                | (Pending, Rejected)
                | (Unpaid, Paid)
                | (Unpaid, Closed)
                | (Closed, Refunded)
                | (Paid, Refunded)
                | (Paid, Disputed)
        )
    }
}

/// Text that names no order status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as MySQL (or, while `PENDING`, the outbox) knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    #[serde(skip_serializing)]
    pub user_id: UserId,
    pub status: OrderStatus,
    pub quantity: u32,
    pub amount_cents: u64,
    /// The provider's PaymentIntent, once the shopper asked to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// When money that reached the order after it closed was given back, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
}

/// Money given back: the order was closed (its unit back on sale) when it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub at: DateTime<Utc>,
    pub reason: String,
}

impl Order {
    /// The order as a shopper or staff see it while only the outbox has it (`PENDING`),
    /// admitted at `admitted_at` at `price_cents` a unit.
    pub fn admitted(message: OrderMessage, admitted_at: DateTime<Utc>, price_cents: u64) -> Order {
        Order {
            amount_cents: price_cents * u64::from(message.quantity),
            order_id: message.order_id,
            sale_id: message.sale_id,
            user_id: message.user_id,
            status: OrderStatus::Pending,
            quantity: message.quantity,
            created_at: admitted_at,
            payment_intent: None,
            expires_at: None,
            paid_at: None,
            closed_at: None,
            refund: None,
        }
    }

    /// The admission this order came from.
    pub fn message(&self) -> OrderMessage {
        OrderMessage {
            order_id: self.order_id,
            sale_id: self.sale_id,
            user_id: self.user_id.clone(),
            quantity: self.quantity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_allows_only_the_documented_transitions() {
        use OrderStatus::*;
        let allowed: Vec<_> = OrderStatus::ALL
            .iter()
            .flat_map(|a| OrderStatus::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Unpaid),
                (Pending, Rejected),
                (Unpaid, Paid),
                (Unpaid, Closed),
                (Paid, Refunded),
                (Paid, Disputed),
                (Closed, Refunded)
            ]
        );
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
        }
    }
}
