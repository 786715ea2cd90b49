//! The provider's webhook signature (`Stripe-Signature: t=<unix secs>,v1=<hex>,v1=…`):
//! HMAC-SHA256 with the endpoint's signing secret over `<t>.<raw body>`. Any `v1` may
//! match any of the secrets, so a secret can be rotated without dropping events, and
//! a timestamp outside the tolerance is refused, so a captured event cannot be replayed
//! later. Pure: no clock, no I/O.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// How far a signature's timestamp may be from now, as the provider's own libraries allow.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery is not the provider's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature's timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// Checks `header` against `body` as received, with any of `secrets`, at `now` (unix secs).
pub fn verify(header: Option<&str>, body: &[u8], secrets: &[Secret], now: i64) -> Result<(), BadSignature> {
    let header = header.ok_or(BadSignature::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) => signatures.extend(hex::decode(hex).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(BadSignature::Malformed)?;
    if signatures.is_empty() {
        return Err(BadSignature::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(BadSignature::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        signatures.iter().any(|signature| {
            // verify_slice compares in constant time.
            mac(secret, timestamp, body).verify_slice(signature).is_ok()
        })
    });
    matches.then_some(()).ok_or(BadSignature::Mismatch)
}

/// The header the provider would send for `body` at `timestamp` (for tests and the
/// local tools that replay events).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

fn mac(secret: &Secret, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn secrets(names: &[&str]) -> Vec<Secret> {
        names.iter().map(|s| Secret::from(*s)).collect()
    }

    #[test]
    fn a_signature_of_the_body_with_the_secret_is_accepted_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(&"whsec_a".into(), NOW, body);
        assert_eq!(verify(Some(&header), body, &secrets(&["whsec_a"]), NOW), Ok(()));
        assert_eq!(verify(Some(&header), body, &secrets(&["whsec_a"]), NOW + TOLERANCE_SECS), Ok(()));
        assert_eq!(
            verify(Some(&header), body, &secrets(&["whsec_a"]), NOW + TOLERANCE_SECS + 1),
            Err(BadSignature::Stale)
        );
    }

    #[test]
    fn a_changed_body_another_secret_or_a_malformed_header_is_refused() {
        let body = br#"{"id":"evt_1","amount":100}"#;
        let header = sign(&"whsec_a".into(), NOW, body);
        let changed = br#"{"id":"evt_1","amount":999}"#;
        assert_eq!(verify(Some(&header), changed, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Mismatch));
        assert_eq!(verify(Some(&header), body, &secrets(&["whsec_b"]), NOW), Err(BadSignature::Mismatch));
        assert_eq!(verify(None, body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Missing));
        assert_eq!(verify(Some("v1=00"), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed));
        assert_eq!(verify(Some(&format!("t={NOW}")), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed));
        // The timestamp is signed too: moving it breaks the signature.
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(verify(Some(&moved), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Mismatch));
    }

    #[test]
    fn during_a_rotation_either_secret_and_any_v1_value_may_match() {
        let body = b"{}";
        let old = sign(&"whsec_old".into(), NOW, body);
        let new = sign(&"whsec_new".into(), NOW, body);
        let both = format!("{new},v1={}", old.split("v1=").nth(1).unwrap());
        let rotating = secrets(&["whsec_new", "whsec_old"]);
        assert_eq!(verify(Some(&old), body, &rotating, NOW), Ok(()));
        assert_eq!(verify(Some(&both), body, &secrets(&["whsec_old"]), NOW), Ok(()));
        assert_eq!(verify(Some(&both), body, &secrets(&["whsec_new"]), NOW), Ok(()));
    }
}
