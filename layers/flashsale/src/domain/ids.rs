//! Identifiers: sales, orders, shoppers. Text that is no id is a [`BadId`] or a
//! [`BadUserId`]; what that means to a caller (404, 401, 400) is the caller's to say.
//!
//! A sale's or an order's id has one spelling, the one `to_string` writes: `7`, never
//! `07`, `+7` or ` 7`. A stranger who could write one id several ways would make each
//! spelling a cache key of its own at the edge, and each a read of the stores behind it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// The number `text` spells in its one canonical form: ASCII digits, the first not `0`,
/// within `u64`. No id is 0 (sales count from 1, order ids are Snowflakes), so `0` is
/// no id either.
fn canonical(text: &str) -> Option<u64> {
    let digits = text.as_bytes();
    if digits.first().is_none_or(|first| !(b'1'..=b'9').contains(first)) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Only digits now: `parse` fails on overflow alone.
    text.parse().ok()
}

impl FromStr for SaleId {
    type Err = BadId;
    fn from_str(s: &str) -> std::result::Result<Self, BadId> {
        canonical(s).map(SaleId).ok_or(BadId("sale"))
    }
}

/// An order's id: a Snowflake id, 64 bits (`ids::snowflake`). JavaScript rounds numbers above 2^53,
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
        canonical(s).map(OrderId).ok_or(BadId("order"))
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
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A shopper, as named by the `sub` claim of the caller's token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

/// Text that is not a user id: empty, longer than [`UserId::MAX_LEN`], or with a
/// control character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid user id")]
pub struct BadUserId;

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn new(id: impl Into<String>) -> Result<Self, BadUserId> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN || id.chars().any(char::is_control) {
            return Err(BadUserId);
        }
        Ok(UserId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = BadUserId;
    fn try_from(s: String) -> Result<Self, BadUserId> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_travel_as_strings() {
        let id = OrderId(9_007_199_254_740_993); // 2^53 + 1: a JSON number would round it
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"9007199254740993\"");
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<OrderId>("12").is_err());
    }

    #[test]
    fn ids_have_one_spelling() {
        assert_eq!("1".parse(), Ok(SaleId(1)));
        assert_eq!("18446744073709551615".parse(), Ok(OrderId(u64::MAX)));
        for other in
            ["0001", "01", "+1", "-1", " 1", "1 ", "1\n", "0", "", "1e3", "0x1", "1_000", "１", "18446744073709551616"]
        {
            assert_eq!(other.parse::<SaleId>(), Err(BadId("sale")), "{other:?}");
            assert_eq!(other.parse::<OrderId>(), Err(BadId("order")), "{other:?}");
        }
        assert!(serde_json::from_str::<OrderId>("\"012\"").is_err());
    }

    /// Fuzzing: any text a stranger may send as an id, a fixed number of cases.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4_000, failure_persistence: None, ..ProptestConfig::default() })]

            /// No panic, and an id parses only from the one spelling it writes back.
            #[test]
            fn an_id_parses_only_from_its_own_spelling(text in "\\PC{0,24}|[-+ 0]{0,3}[0-9]{1,21}[ \\n]?") {
                if let Ok(id) = text.parse::<SaleId>() {
                    prop_assert_eq!(id.to_string(), text.clone());
                }
                if let Ok(id) = text.parse::<OrderId>() {
                    prop_assert_eq!(id.to_string(), text.clone());
                    let json = serde_json::to_string(&id).unwrap();
                    prop_assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
                }
            }

            /// Every id's own spelling parses back to it.
            #[test]
            fn every_id_parses_from_its_spelling(n in 1u64..) {
                prop_assert_eq!(n.to_string().parse::<SaleId>(), Ok(SaleId(n)));
                prop_assert_eq!(n.to_string().parse::<OrderId>(), Ok(OrderId(n)));
            }
        }
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a".repeat(129)).is_err());
        assert!(UserId::new("a\nb").is_err());
    }
}
