//! A waiting room's pass: `{sale}.{expires_ms}.{id}.{hmac}`, the HMAC-SHA256 over the
//! sale, the shopper, the pass's unique id and its expiry. The shopper is not written in
//! the pass but bound by the HMAC: another shopper's pass does not verify as theirs.
//! Pure: no clock, no I/O; spending it is the admission script's.

use std::time::Duration;

use hmac::Mac;

use super::{mac, QueueKeys};
use crate::domain::{SaleId, UserId};

/// Why a pass does not let a purchase in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PassRefused {
    #[error("this sale has a waiting room: a purchase needs a pass from it")]
    Missing,
    #[error("the pass is not a pass")]
    Malformed,
    #[error("the pass is for another sale")]
    OtherSale,
    #[error("the pass has expired: take a new one")]
    Expired,
    #[error("the pass is not valid for this shopper")]
    NotValid,
    #[error("the pass was used already")]
    Used,
}

/// A pass as issued to the shopper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPass {
    pub token: String,
    pub id: String,
    pub expires_ms: i64,
}

impl QueueKeys {
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
        let (Ok(for_sale), Ok(expires_ms), Ok(signature)) =
            (for_sale.parse::<u64>(), expires.parse::<i64>(), hex::decode(signature))
        else {
            return Err(PassRefused::Malformed);
        };
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
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

fn signed(sale: SaleId, user: &UserId, id: &str, expires_ms: i64) -> String {
    format!("{sale}\n{}\n{id}\n{expires_ms}", user.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn a_pass_is_good_only_for_its_shopper_and_sale_until_it_expires() {
        let keys = QueueKeys::new(&Secret::new("k".repeat(32)));
        let (ann, bob) = (UserId::new("ann").unwrap(), UserId::new("bob").unwrap());
        let pass = keys.issue_pass(SaleId(7), &ann, 1_000, Duration::from_secs(60));
        assert_eq!(keys.check_pass(&pass.token, SaleId(7), &ann, 1_000), Ok(pass.id.clone()));
        assert_eq!(keys.check_pass(&pass.token, SaleId(7), &bob, 1_000), Err(PassRefused::NotValid));
        assert_eq!(keys.check_pass(&pass.token, SaleId(8), &ann, 1_000), Err(PassRefused::OtherSale));
        assert_eq!(keys.check_pass(&pass.token, SaleId(7), &ann, 61_000), Err(PassRefused::Expired));
        // A later expiry written in is not signed.
        let stretched = pass.token.replacen("61000", "99000", 1);
        assert_eq!(keys.check_pass(&stretched, SaleId(7), &ann, 70_000), Err(PassRefused::NotValid));
        let other_key = QueueKeys::new(&Secret::new("x".repeat(32)));
        assert_eq!(other_key.check_pass(&pass.token, SaleId(7), &ann, 1_000), Err(PassRefused::NotValid));
        for junk in ["", "7", "7.1.2.3", "7.61000.zz.00", "7.61000.0123456789abcdef0123456789abcdef.zz.1"] {
            assert_eq!(keys.check_pass(junk, SaleId(7), &ann, 1_000), Err(PassRefused::Malformed), "{junk}");
        }
    }
}
