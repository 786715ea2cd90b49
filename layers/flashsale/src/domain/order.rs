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

    /// Whether an order in this status holds its units (they count in `sales.sold`, in
    /// Redis's stock and in its shopper's allowance), `paid` telling whether the order was
    /// ever `PAID` (`paid_at` is set by `UNPAID` → `PAID` alone).
    ///
    /// `UNPAID` and `PAID` hold; so do `DISPUTED` and a `REFUNDED` order that was paid
    /// (refunded at the provider): those two keep the unit sold, nothing gives it back.
    /// A `REFUNDED` order that was never paid was `CLOSED` first (late money given back),
    /// and its unit went back on sale with the close, as `REJECTED` gave none. `PENDING`
    /// holds too, only in Redis. [`HOLDS_UNITS_SQL`] is the same rule over `orders` rows.
    pub fn holds_units(self, paid: bool) -> bool {
        match self {
            OrderStatus::Pending | OrderStatus::Unpaid | OrderStatus::Paid | OrderStatus::Disputed => true,
            OrderStatus::Refunded => paid,
            OrderStatus::Closed | OrderStatus::Rejected => false,
        }
    }
}

/// [`OrderStatus::holds_units`] as a condition on an `orders` row, for every query that
/// counts the units an order holds (the per-shopper limit, the rebuild, the audit): a
/// `DISPUTED` or provider-refunded order keeps its unit sold, so leaving it out would let
/// a rebuilt Redis and the limit sell that unit and that allowance again. `paid_at` tells
/// a paid order refunded at the provider from a closed one whose late money went back.
pub const HOLDS_UNITS_SQL: &str =
    "(status IN ('UNPAID', 'PAID', 'DISPUTED') OR (status = 'REFUNDED' AND paid_at IS NOT NULL))";

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

    /// Whether the order holds its units now (see [`OrderStatus::holds_units`]).
    pub fn holds_units(&self) -> bool {
        self.status.holds_units(self.paid_at.is_some())
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

    #[test]
    fn an_order_holds_its_units_unless_its_hold_ended_and_the_sql_says_the_same() {
        use OrderStatus::*;
        let holding = |paid| OrderStatus::ALL.into_iter().filter(move |s| s.holds_units(paid)).collect::<Vec<_>>();
        // A paid order keeps its unit whatever the provider did with the money after.
        assert_eq!(holding(true), vec![Pending, Unpaid, Paid, Refunded, Disputed]);
        // A refunded order never paid was closed first: its unit went back on sale then.
        assert_eq!(holding(false), vec![Pending, Unpaid, Paid, Disputed]);
        // The SQL: the statuses that always hold listed, REFUNDED only with `paid_at`,
        // the others never named (PENDING is never stored).
        for status in OrderStatus::ALL.into_iter().filter(|s| *s != Pending) {
            let named = format!("'{status}'");
            let always = HOLDS_UNITS_SQL.split(") OR").next().unwrap();
            match (status.holds_units(false), status.holds_units(true)) {
                (true, true) => assert!(always.contains(&named), "{status}: {HOLDS_UNITS_SQL}"),
                (false, true) => assert!(
                    HOLDS_UNITS_SQL.contains(&format!("status = {named} AND paid_at IS NOT NULL"))
                        && !always.contains(&named),
                    "{status}: {HOLDS_UNITS_SQL}"
                ),
                _ => assert!(!HOLDS_UNITS_SQL.contains(&named), "{status}: {HOLDS_UNITS_SQL}"),
            }
        }
        let order = |status, paid_at| Order { status, paid_at, ..Order::admitted(message(), Utc::now(), 1000) };
        assert!(order(Refunded, Some(Utc::now())).holds_units(), "refunded at the provider");
        assert!(!order(Refunded, None).holds_units(), "late money refunded after the close");
        assert!(order(Disputed, Some(Utc::now())).holds_units());
    }

    fn message() -> OrderMessage {
        OrderMessage { order_id: OrderId(1), sale_id: SaleId(1), user_id: UserId::new("u").unwrap(), quantity: 1 }
    }
}
