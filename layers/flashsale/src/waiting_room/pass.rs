//! A waiting room's pass: `{sale}.{expires_ms}.{id}.{hmac}`, the HMAC-SHA256 over the
//! sale, the shopper, the pass's unique id and its expiry. The shopper is not written in
//! the pass but bound by the HMAC: another shopper's pass does not verify as theirs.
//! Pure: no clock, no I/O; spending it is the admission script's.

use std::time::Duration;

use hmac::Mac;

use super::{mac, RoomKeys};
use crate::domain::{PassRefused, SaleId, UserId};

/// A pass as issued to the shopper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPass {
    pub token: String,
    pub id: String,
    pub expires_ms: i64,
}

impl RoomKeys {
    pub fn issue_pass(&self, sale: SaleId, user: &UserId, now_ms: i64, ttl: Duration) -> IssuedPass {
        let id = format!("{:032x}", rand::random::<u128>());
        let expires_ms = now_ms + ttl.as_millis() as i64;
        let signature = hex::encode(mac(&self.pass, &signed(sale, user, &id, expires_ms)).finalize().into_bytes());
        IssuedPass { token: format!("{sale}.{expires_ms}.{id}.{signature}"), id, expires_ms }
    }

    /// The pass's unique id, when it is this shopper's, for this sale and still good.
    pub fn check_pass(&self, token: &str, sale: SaleId, user: &UserId, now_ms: i64) -> Result<String, PassRefused> {
        let mut parts = token.split('.');
        let (Some(for_sale), Some(expires), Some(id), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PassRefused::Malformed);
        };
        // Each part in the one spelling the pass was issued in (digits without a sign or
        // leading zeros, lower-case hex), so a pass has no second spelling.
        if !canonical_number(for_sale) || !canonical_number(expires) || !lower_hex(signature, SIGNATURE_HEX_LEN) {
            return Err(PassRefused::Malformed);
        }
        let (Ok(for_sale), Ok(expires_ms), Ok(signature)) =
            (for_sale.parse::<u64>(), expires.parse::<i64>(), hex::decode(signature))
        else {
            return Err(PassRefused::Malformed);
        };
        if !lower_hex(id, ID_HEX_LEN) {
            return Err(PassRefused::Malformed);
        }
        if for_sale != sale.0 {
            return Err(PassRefused::OtherSale);
        }
        // verify_slice compares in constant time.
        mac(&self.pass, &signed(sale, user, id, expires_ms))
            .verify_slice(&signature)
            .map_err(|_| PassRefused::NotValid)?;
        if now_ms >= expires_ms {
            return Err(PassRefused::Expired);
        }
        Ok(id.to_string())
    }
}

/// Hex digits of a pass's unique id and of its HMAC-SHA256.
const ID_HEX_LEN: usize = 32;
const SIGNATURE_HEX_LEN: usize = 64;

/// A whole number as `format!` writes it: digits, no sign, no leading zero.
fn canonical_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'))
}

fn lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn signed(sale: SaleId, user: &UserId, id: &str, expires_ms: i64) -> String {
    format!("{sale}\n{}\n{id}\n{expires_ms}", user.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_pass_is_good_only_for_its_shopper_and_sale_until_it_expires() {
        let keys = RoomKeys::new(&Secret::new("k".repeat(32)));
        let (ann, bob) = (UserId::new("ann").unwrap(), UserId::new("bob").unwrap());
        let pass = keys.issue_pass(SaleId(7), &ann, 1_000, Duration::from_secs(60));
        assert_eq!(keys.check_pass(&pass.token, SaleId(7), &ann, 1_000), Ok(pass.id.clone()));
        assert_eq!(keys.check_pass(&pass.token, SaleId(7), &bob, 1_000), Err(PassRefused::NotValid));
        assert_eq!(keys.check_pass(&pass.token, SaleId(8), &ann, 1_000), Err(PassRefused::OtherSale));
        assert_eq!(keys.check_pass(&pass.token, SaleId(7), &ann, 61_000), Err(PassRefused::Expired));
        // A later expiry written in is not signed.
        let stretched = pass.token.replacen("61000", "99000", 1);
        assert_eq!(keys.check_pass(&stretched, SaleId(7), &ann, 70_000), Err(PassRefused::NotValid));
        let other_key = RoomKeys::new(&Secret::new("x".repeat(32)));
        assert_eq!(other_key.check_pass(&pass.token, SaleId(7), &ann, 1_000), Err(PassRefused::NotValid));
        for junk in ["", "7", "7.1.2.3", "7.61000.zz.00", "7.61000.0123456789abcdef0123456789abcdef.zz.1"] {
            assert_eq!(keys.check_pass(junk, SaleId(7), &ann, 1_000), Err(PassRefused::Malformed), "{junk}");
        }
    }

    #[test]
    fn a_pass_has_one_spelling() {
        let keys = RoomKeys::new(&Secret::new("k".repeat(32)));
        let ann = UserId::new("ann").unwrap();
        let pass = keys.issue_pass(SaleId(7), &ann, 1_000, Duration::from_secs(60));
        let [sale, expires, id, signature] = pass.token.split('.').collect::<Vec<_>>()[..] else { unreachable!() };
        for respelled in [
            format!("+{sale}.{expires}.{id}.{signature}"),
            format!("0{sale}.{expires}.{id}.{signature}"),
            format!("{sale}.+{expires}.{id}.{signature}"),
            format!("{sale}.0{expires}.{id}.{signature}"),
            format!("{sale}.{expires}.{}.{signature}", id.to_uppercase()),
            format!("{sale}.{expires}.{id}.{}", signature.to_uppercase()),
        ] {
            assert_eq!(keys.check_pass(&respelled, SaleId(7), &ann, 1_000), Err(PassRefused::Malformed), "{respelled}");
        }
    }

    /// Fuzzing the pass, which any signed-in stranger may send: a fixed number of cases.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn keys() -> RoomKeys {
            RoomKeys::new(&Secret::new("k".repeat(32)))
        }

        /// Tokens shaped like passes, with parts of every kind.
        fn pass_like() -> impl Strategy<Value = String> {
            let number = prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                "[-+0-9]{0,22}"
            ];
            let hex = |len: usize| {
                prop_oneof![
                    prop::collection::vec(any::<u8>(), len / 2).prop_map(hex::encode),
                    "[0-9a-fA-F]{0,70}",
                    ".{0,8}"
                ]
            };
            (number.clone(), number, hex(ID_HEX_LEN), hex(SIGNATURE_HEX_LEN))
                .prop_map(|(sale, expires, id, signature)| format!("{sale}.{expires}.{id}.{signature}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn no_token_verifies_unless_issued(
                token in prop_oneof![".{0,200}", pass_like()],
                sale in prop_oneof![Just(7u64), any::<u64>()],
                now_ms in any::<i64>(),
            ) {
                let ann = UserId::new("ann").unwrap();
                prop_assert!(keys().check_pass(&token, SaleId(sale), &ann, now_ms).is_err(), "{token} verified");
            }

            #[test]
            fn an_issued_pass_with_any_byte_changed_is_refused(
                sale in any::<u64>(),
                now_ms in 0i64..4_000_000_000_000,
                at in any::<prop::sample::Index>(),
                byte in 0x20u8..0x7f,
            ) {
                let (keys, ann) = (keys(), UserId::new("ann").unwrap());
                let pass = keys.issue_pass(SaleId(sale), &ann, now_ms, Duration::from_secs(60));
                prop_assert_eq!(keys.check_pass(&pass.token, SaleId(sale), &ann, now_ms), Ok(pass.id.clone()));
                let mut changed = pass.token.clone().into_bytes();
                let at = at.index(changed.len());
                prop_assume!(changed[at] != byte);
                changed[at] = byte;
                let changed = String::from_utf8(changed).unwrap();
                prop_assert!(keys.check_pass(&changed, SaleId(sale), &ann, now_ms).is_err(), "{changed} verified");
            }
        }
    }
}
