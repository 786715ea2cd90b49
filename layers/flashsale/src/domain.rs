//! The flash-sale domain: identifiers, sales, orders and their states. No I/O here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A sale's id: small (a database sequence), so it travels as a JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SaleId(pub u64);

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Text that is not an id of the kind it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {0} id")]
pub struct BadId(pub &'static str);

impl FromStr for SaleId {
    type Err = BadId;
    fn from_str(s: &str) -> std::result::Result<Self, BadId> {
        s.parse().map(SaleId).map_err(|_| BadId("sale"))
    }
}

/// An order's id: a Snowflake id, 63 bits. JavaScript rounds numbers above 2^53,
/// so it always travels as a decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(pub u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for OrderId {
    type Err = BadId;
    fn from_str(s: &str) -> std::result::Result<Self, BadId> {
        s.parse().map(OrderId).map_err(|_| BadId("order"))
    }
}

impl Serialize for OrderId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(OrderId).map_err(serde::de::Error::custom)
    }
}

/// A shopper, as named by the `sub` claim of the caller's token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN || id.chars().any(char::is_control) {
            return Err(Error::Unauthorized("the token's subject is not a valid user id"));
        }
        Ok(UserId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        UserId::new(s)
    }
}

impl From<UserId> for String {
    fn from(u: UserId) -> String {
        u.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order is in its life.
///
/// `PENDING` (admitted in Redis, not yet in MySQL) → `UNPAID` → `PAID`,
/// or `UNPAID` → `CLOSED` (timed out, stock released),
/// or `PENDING` → `REJECTED` (the database guard refused it; stock released).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Unpaid,
    Paid,
    Closed,
    Rejected,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Unpaid,
        OrderStatus::Paid,
        OrderStatus::Closed,
        OrderStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Unpaid => "UNPAID",
            OrderStatus::Paid => "PAID",
            OrderStatus::Closed => "CLOSED",
            OrderStatus::Rejected => "REJECTED",
        }
    }

    /// The transitions the state machine allows; everything else is a bug or a race lost.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Unpaid) | (Pending, Rejected) | (Unpaid, Paid) | (Unpaid, Closed)
        )
    }
}

impl FromStr for OrderStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::Internal(format!("unknown order status {s:?}")))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a shopper sees of a sale at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Upcoming,
    Open,
    SoldOut,
    Ended,
}

impl SaleState {
    pub fn at(now: DateTime<Utc>, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, remaining: u64) -> Self {
        if now >= ends_at {
            SaleState::Ended
        } else if remaining == 0 {
            SaleState::SoldOut
        } else if now < starts_at {
            SaleState::Upcoming
        } else {
            SaleState::Open
        }
    }
}

/// A sale as the shop defines it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    pub id: SaleId,
    pub name: String,
    pub description: String,
    pub price_cents: u64,
    pub stock: u32,
    /// Units held by live orders (`UNPAID` and `PAID`), as MySQL counts them.
    pub sold: u32,
    pub per_user_limit: u32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: u32,
    pub published: bool,
    pub created_at: DateTime<Utc>,
}

/// A sale to create, as the admin API receives it, not yet checked. Unknown fields are
/// refused so a typo cannot silently drop a setting.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: u64,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: u32,
}

/// A sale that can be created: a [`SaleDraft`] that passed every check, with its name
/// trimmed. The only way to one is `NewSale::try_from(draft)`.
#[derive(Clone, Debug)]
pub struct NewSale(SaleDraft);

impl std::ops::Deref for NewSale {
    type Target = SaleDraft;
    fn deref(&self) -> &SaleDraft {
        &self.0
    }
}

impl TryFrom<SaleDraft> for NewSale {
    type Error = Error;
    fn try_from(mut draft: SaleDraft) -> Result<Self> {
        draft.name = draft.name.trim().to_string();
        draft.check()?;
        Ok(NewSale(draft))
    }
}

impl NewSale {
    pub const MAX_STOCK: u32 = 10_000_000;
    pub const MAX_PER_USER: u32 = 100;
    /// A day: longer windows tie up stock for no shopper's benefit.
    pub const MAX_PAYMENT_WINDOW_SECS: u32 = 86_400;

    /// 2000-01-01T00:00:00Z and 9998-12-31T00:00:00Z, in Unix seconds.
    const EARLIEST: i64 = 946_684_800;
    const LATEST: i64 = 253_370_678_400;
}

impl SaleDraft {
    fn check(&self) -> Result<()> {
        use NewSale as N;
        // The name is trimmed already (`NewSale::try_from`).
        let problem = if self.name.is_empty() || self.name.chars().count() > 200 {
            Some("name must be 1 to 200 characters")
        } else if self.description.chars().count() > 10_000 {
            Some("description must be at most 10000 characters")
        } else if self.price_cents > 10_000_000_000 {
            Some("price_cents is out of range")
        } else if self.stock == 0 || self.stock > N::MAX_STOCK {
            Some("stock must be between 1 and 10000000")
        } else if self.per_user_limit == 0 || self.per_user_limit > N::MAX_PER_USER {
            Some("per_user_limit must be between 1 and 100")
        } else if !(N::EARLIEST..=N::LATEST).contains(&self.starts_at.timestamp())
            || !(N::EARLIEST..=N::LATEST).contains(&self.ends_at.timestamp())
        {
            // MySQL's DATETIME stops at 9999; a date it cannot store is bad input, not an outage.
            Some("starts_at and ends_at must be between 2000-01-01 and 9998-12-31")
        } else if self.ends_at <= self.starts_at {
            Some("ends_at must be after starts_at")
        } else if self.payment_window_secs == 0 || self.payment_window_secs > N::MAX_PAYMENT_WINDOW_SECS {
            Some("payment_window_secs must be between 1 and 86400")
        } else {
            None
        };
        match problem {
            Some(p) => Err(Error::Invalid(p.to_string())),
            None => Ok(()),
        }
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
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn order_ids_travel_as_strings() {
        let id = OrderId(9_007_199_254_740_993); // 2^53 + 1: a JSON number would round it
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"9007199254740993\"");
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<OrderId>("12").is_err());
    }

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
            vec![(Pending, Unpaid), (Pending, Rejected), (Unpaid, Paid), (Unpaid, Closed)]
        );
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
        }
    }

    #[test]
    fn sale_state_follows_the_clock_and_stock() {
        let t0 = Utc::now();
        let (s, e) = (t0 + Duration::seconds(10), t0 + Duration::seconds(20));
        assert_eq!(SaleState::at(t0, s, e, 5), SaleState::Upcoming);
        assert_eq!(SaleState::at(s, s, e, 5), SaleState::Open);
        assert_eq!(SaleState::at(s, s, e, 0), SaleState::SoldOut);
        assert_eq!(SaleState::at(e, s, e, 5), SaleState::Ended);
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a".repeat(129)).is_err());
        assert!(UserId::new("a\nb").is_err());
    }

    #[test]
    fn new_sale_validation_names_the_field() {
        let now = Utc::now();
        let ok = SaleDraft {
            name: "Phone".into(),
            description: String::new(),
            price_cents: 100,
            stock: 10,
            per_user_limit: 1,
            starts_at: now,
            ends_at: now + Duration::hours(1),
            payment_window_secs: 60,
        };
        assert!(NewSale::try_from(ok.clone()).is_ok());
        let bad = SaleDraft { ends_at: now, ..ok.clone() };
        assert!(matches!(NewSale::try_from(bad), Err(Error::Invalid(m)) if m.contains("ends_at")));
        let far: DateTime<Utc> = "+10000-01-01T00:00:00Z".parse().unwrap();
        let bad = SaleDraft { ends_at: far, ..ok.clone() };
        assert!(matches!(NewSale::try_from(bad), Err(Error::Invalid(m)) if m.contains("ends_at")));
        let bad = SaleDraft { stock: 0, ..ok };
        assert!(matches!(NewSale::try_from(bad), Err(Error::Invalid(m)) if m.contains("stock")));
    }
}
