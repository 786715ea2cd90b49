//! Sales: as the shop defines them, as an admin drafts them, and what a shopper sees
//! of one at a given instant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Currency, SaleId, WaitingRoom};

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
    /// In the currency's minor unit (cents, fils, yen), as the provider charges it.
    pub price_cents: u64,
    pub currency: Currency,
    pub stock: u32,
    /// Units held by live orders (`UNPAID` and `PAID`), as MySQL counts them.
    pub sold: u32,
    pub per_user_limit: u32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: u32,
    /// Staff's waiting room in front of the sale, if any.
    pub waiting_room: Option<WaitingRoom>,
    pub published: bool,
    pub created_at: DateTime<Utc>,
}

/// A sale to create, as the admin API receives it, not yet checked. Unknown fields are
/// refused so a typo cannot silently drop a setting. Serialized for the audit trail.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// In the currency's minor unit (cents, fils, yen), as the provider charges it.
    pub price_cents: u64,
    /// ISO 4217, one the payment provider charges in; `usd` when left out.
    #[serde(default)]
    pub currency: Currency,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: u32,
    /// A waiting room in front of the sale: purchases then need a pass from it.
    #[serde(default)]
    pub waiting_room: Option<WaitingRoom>,
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

/// Why a draft cannot become a sale: the rule it breaks, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSale(pub &'static str);

impl TryFrom<SaleDraft> for NewSale {
    type Error = InvalidSale;
    fn try_from(mut draft: SaleDraft) -> Result<Self, InvalidSale> {
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
    /// Every order of the sale can be charged: one unit is at least the provider's
    /// minimum, the shopper's limit at most its maximum (an order is the price times at
    /// most the limit), so no checkout of an accepted sale is refused by the provider.
    fn chargeable(&self) -> Result<(), InvalidSale> {
        self.currency.chargeable(self.price_cents)?;
        let most = self.price_cents.saturating_mul(u64::from(self.per_user_limit.max(1)));
        if most > super::MAX_CHARGE {
            return Err(InvalidSale(
                "price_cents times per_user_limit is above the payment provider's largest charge (99999999 minor units)",
            ));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), InvalidSale> {
        use NewSale as N;
        // The name is trimmed already (`NewSale::try_from`).
        let problem = if self.name.is_empty() || self.name.chars().count() > 200 {
            Some("name must be 1 to 200 characters")
        } else if self.description.chars().count() > 10_000 {
            Some("description must be at most 10000 characters")
        } else if let Err(InvalidSale(p)) = self.chargeable() {
            Some(p)
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
        } else if let Some(room) = &self.waiting_room {
            return room.check();
        } else {
            None
        };
        match problem {
            Some(p) => Err(InvalidSale(p)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

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
    fn a_draft_without_a_currency_is_in_dollars() {
        let draft: SaleDraft = serde_json::from_value(serde_json::json!({
            "name": "x", "price_cents": 100, "stock": 1, "per_user_limit": 1,
            "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "payment_window_secs": 60
        }))
        .unwrap();
        assert_eq!(draft.currency, Currency::default());
        let refused = serde_json::from_value::<SaleDraft>(serde_json::json!({
            "name": "x", "price_cents": 100, "currency": "abc", "stock": 1, "per_user_limit": 1,
            "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "payment_window_secs": 60
        }));
        assert!(refused.unwrap_err().to_string().contains("currency"));
    }

    #[test]
    fn new_sale_validation_names_the_field() {
        let now = Utc::now();
        let ok = SaleDraft {
            name: "Phone".into(),
            description: String::new(),
            price_cents: 100,
            currency: Currency::default(),
            stock: 10,
            per_user_limit: 1,
            starts_at: now,
            ends_at: now + Duration::hours(1),
            payment_window_secs: 60,
            waiting_room: None,
        };
        assert!(NewSale::try_from(ok.clone()).is_ok());
        let bad = SaleDraft { ends_at: now, ..ok.clone() };
        assert!(matches!(NewSale::try_from(bad), Err(InvalidSale(m)) if m.contains("ends_at")));
        let far: DateTime<Utc> = "+10000-01-01T00:00:00Z".parse().unwrap();
        let bad = SaleDraft { ends_at: far, ..ok.clone() };
        assert!(matches!(NewSale::try_from(bad), Err(InvalidSale(m)) if m.contains("ends_at")));
        let bad = SaleDraft { stock: 0, ..ok.clone() };
        assert!(matches!(NewSale::try_from(bad), Err(InvalidSale(m)) if m.contains("stock")));
    }

    #[test]
    fn a_price_the_provider_cannot_charge_is_refused_naming_price_cents() {
        let now = Utc::now();
        let ok = SaleDraft {
            name: "Phone".into(),
            description: String::new(),
            price_cents: 50,
            currency: Currency::default(),
            stock: 10,
            per_user_limit: 4,
            starts_at: now,
            ends_at: now + Duration::hours(1),
            payment_window_secs: 60,
            waiting_room: None,
        };
        let kwd = Currency::try_from("kwd".to_string()).unwrap();
        let jpy = Currency::try_from("jpy".to_string()).unwrap();
        for good in [
            ok.clone(),
            SaleDraft { price_cents: 24_999_999, ..ok.clone() },
            SaleDraft { currency: kwd.clone(), price_cents: 12_340, ..ok.clone() },
            SaleDraft { currency: jpy.clone(), price_cents: 5_000, ..ok.clone() },
        ] {
            assert!(NewSale::try_from(good.clone()).is_ok(), "{good:?}");
        }
        for bad in [
            SaleDraft { price_cents: 0, ..ok.clone() },
            SaleDraft { price_cents: 49, ..ok.clone() },
            SaleDraft { price_cents: 100_000_000, per_user_limit: 1, ..ok.clone() },
            SaleDraft { price_cents: 25_000_000, ..ok.clone() },
            SaleDraft { price_cents: u64::MAX, ..ok.clone() },
            SaleDraft { currency: kwd, price_cents: 12_345, ..ok.clone() },
            SaleDraft { currency: jpy, price_cents: 49, ..ok.clone() },
        ] {
            assert!(
                matches!(NewSale::try_from(bad.clone()), Err(InvalidSale(m)) if m.starts_with("price_cents")),
                "{bad:?}"
            );
        }
    }
}
