//! The provider's webhook signature (`Stripe-Signature: t=<unix secs>,v1=<hex>,v1=…`):
//! HMAC-SHA256 with the endpoint's signing secret over `<t>.<raw body>`. Any `v1` may
//! match any of the secrets, so a secret can be rotated without dropping events, and
//! a timestamp outside the tolerance is refused, so a captured event cannot be replayed
//! later. Pure: no clock, no I/O.
//!
//! The route is open to anyone, so refusing a forgery costs no more than accepting a real
//! event: the header is at most [`MAX_HEADER_LEN`] bytes, a stale timestamp is refused
//! before any hashing, the body is hashed once per secret (never once per listed value),
//! and the MAC is compared with each of at most [`MAX_SIGNATURES`] candidates in constant
//! time. A `v1` entry that is not exactly 64 hex digits is ignored, as entries of other
//! schemes (`v0`) are: the provider never sends one, and it cannot match. More well-formed
//! `v1` values than [`MAX_SIGNATURES`], or a second timestamp, make the header malformed.

use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::domain::{BadSignature, MAX_HEADER_LEN, MAX_SIGNATURES, TOLERANCE_SECS};
use crate::secret::Secret;

/// Hex digits in a `v1` value: an HMAC-SHA256.
const SIGNATURE_HEX_LEN: usize = 64;

/// Checks `header` against `body` as received, with any of `secrets`, at `now` (unix secs).
pub fn verify(header: Option<&str>, body: &[u8], secrets: &[Secret], now: i64) -> Result<(), BadSignature> {
    let Header { timestamp, signatures } = parse(header.ok_or(BadSignature::Missing)?)?;
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(BadSignature::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        let expected = mac(secret, timestamp, body).finalize();
        // CtOutput's equality compares in constant time.
        signatures.iter().fold(false, |found, candidate| found | (expected == CtOutput::new(*candidate)))
    });
    matches.then_some(()).ok_or(BadSignature::Mismatch)
}

/// The header the provider would send for `body` at `timestamp` (for tests and the
/// local tools that replay events).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// What a header says, read within the bounds.
struct Header {
    timestamp: i64,
    signatures: Vec<Output<Hmac<Sha256>>>,
}

fn parse(header: &str) -> Result<Header, BadSignature> {
    if header.len() > MAX_HEADER_LEN {
        return Err(BadSignature::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::with_capacity(MAX_SIGNATURES);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", _)) if timestamp.is_some() => return Err(BadSignature::Malformed),
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| BadSignature::Malformed)?),
            Some(("v1", hex)) if hex.len() == SIGNATURE_HEX_LEN => {
                let mut signature = Output::<Hmac<Sha256>>::default();
                if hex::decode_to_slice(hex, &mut signature).is_err() {
                    continue;
                }
                if signatures.len() == MAX_SIGNATURES {
                    return Err(BadSignature::Malformed);
                }
                signatures.push(signature);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(BadSignature::Malformed)?;
    if signatures.is_empty() {
        return Err(BadSignature::Malformed);
    }
    Ok(Header { timestamp, signatures })
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
        assert_eq!(verify(Some(&both), body, &rotating, NOW), Ok(()));
    }

    /// The `v1=…` entry of a header made by [`sign`].
    fn v1_of(header: &str) -> &str {
        header.split(',').find(|part| part.starts_with("v1=")).unwrap()
    }

    #[test]
    fn a_header_longer_than_the_bound_is_malformed_even_with_the_right_signature() {
        let body = b"{}";
        let header = sign(&"whsec_a".into(), NOW, body);
        let padding = "x".repeat(MAX_HEADER_LEN - header.len() - 1);
        let longest = format!("{header},{padding}");
        assert_eq!(longest.len(), MAX_HEADER_LEN);
        assert_eq!(verify(Some(&longest), body, &secrets(&["whsec_a"]), NOW), Ok(()));
        let longer = format!("{longest}x");
        assert_eq!(verify(Some(&longer), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed));
        // What the vulnerable check hashed the body for, 2,400 times over.
        let empty_entries = format!("t={NOW}{}", ",v1=".repeat(2_400));
        assert_eq!(verify(Some(&empty_entries), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed));
    }

    #[test]
    fn at_most_the_bound_of_well_formed_v1_values_are_read_and_ill_formed_ones_are_ignored() {
        let body = b"{}";
        let real = sign(&"whsec_a".into(), NOW, body);
        let wrong = format!("v1={}", "ab".repeat(32));
        let with = |others: usize| format!("{real}{}", format!(",{wrong}").repeat(others));
        assert_eq!(verify(Some(&with(MAX_SIGNATURES - 1)), body, &secrets(&["whsec_a"]), NOW), Ok(()));
        assert_eq!(
            verify(Some(&with(MAX_SIGNATURES)), body, &secrets(&["whsec_a"]), NOW),
            Err(BadSignature::Malformed)
        );
        // Empty, short, long or non-hex values cannot be a MAC: skipped, like a v0.
        let ill_formed = ["v1=", "v1=00", &format!("v1={}", "a".repeat(63)), &format!("v1={}", "a".repeat(65))];
        let ill_formed = [&ill_formed[..], &[&format!("v1={}", "zz".repeat(32)), "v0=00"]].concat().join(",");
        let header = format!("{ill_formed},{real}");
        assert_eq!(verify(Some(&header), body, &secrets(&["whsec_a"]), NOW), Ok(()));
        let only_ill_formed = format!("t={NOW},{ill_formed}");
        assert_eq!(verify(Some(&only_ill_formed), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed));
        // Upper-case hex is hex.
        let upper = format!("t={NOW},v1={}", v1_of(&real)[3..].to_uppercase());
        assert_eq!(verify(Some(&upper), body, &secrets(&["whsec_a"]), NOW), Ok(()));
    }

    #[test]
    fn a_second_or_unreadable_timestamp_is_malformed() {
        let body = b"{}";
        let real = sign(&"whsec_a".into(), NOW, body);
        let twice = format!("t={NOW},{real}");
        assert_eq!(verify(Some(&twice), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed));
        for t in ["", "now", "1e9", "99999999999999999999"] {
            let header = format!("t={t},{}", v1_of(&real));
            assert_eq!(verify(Some(&header), body, &secrets(&["whsec_a"]), NOW), Err(BadSignature::Malformed), "{t}");
        }
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_are_stale_not_an_overflow() {
        let body = b"{}";
        for (t, now) in [(i64::MIN, NOW), (i64::MAX, NOW), (i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MIN)] {
            let header = sign(&"whsec_a".into(), t, body);
            assert_eq!(
                verify(Some(&header), body, &secrets(&["whsec_a"]), now),
                Err(BadSignature::Stale),
                "t={t} now={now}"
            );
        }
        let header = sign(&"whsec_a".into(), i64::MIN, body);
        assert_eq!(verify(Some(&header), body, &secrets(&["whsec_a"]), i64::MIN + TOLERANCE_SECS), Ok(()));
    }

    /// Fuzzing: arbitrary headers and bodies, a fixed number of cases each.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn cases(cases: u32) -> ProptestConfig {
            ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
        }

        /// An entry a forger may write: timestamps near now and anywhere, well-formed and
        /// ill-formed `v1` values, other keys, anything.
        fn forged_entry() -> impl Strategy<Value = String> {
            prop_oneof![
                (-400i64..400).prop_map(|d| format!("t={}", NOW + d)),
                any::<i64>().prop_map(|t| format!("t={t}")),
                any::<[u8; 32]>().prop_map(|mac| format!("v1={}", hex::encode(mac))),
                "[0-9a-fA-F]{0,70}".prop_map(|hex| format!("v1={hex}")),
                "[^,]{0,12}=[^,]{0,40}",
                ".{0,40}",
            ]
        }

        /// An entry the real header may carry beside its signature without changing its
        /// meaning: other schemes and keys, `v1` values that cannot be a MAC.
        fn junk_entry() -> impl Strategy<Value = String> {
            prop_oneof![
                "v0=[0-9a-f]{64}",
                "[a-su-z][a-z0-9]{0,6}=[^,]{0,20}",
                "[^,=]{0,20}",
                "v1=[0-9a-f]{0,63}",
                "v1=[0-9a-f]{65,80}",
                "v1=[g-z]{64}",
            ]
        }

        proptest! {
            #![proptest_config(cases(2_000))]

            #[test]
            fn any_header_of_anything_is_refused_without_a_panic(header in ".{0,600}", body in any::<Vec<u8>>(), now in any::<i64>()) {
                prop_assert!(verify(Some(&header), &body, &secrets(&["whsec_a"]), now).is_err());
            }

            #[test]
            fn a_forged_header_is_never_accepted(
                entries in prop::collection::vec(forged_entry(), 0..16),
                body in prop::collection::vec(any::<u8>(), 0..256),
                now in prop_oneof![Just(NOW), any::<i64>()],
            ) {
                let header = entries.join(",");
                let refused = verify(Some(&header), &body, &secrets(&["whsec_a", "whsec_b"]), now);
                prop_assert!(refused.is_err(), "{header:?} accepted");
                if header.len() > MAX_HEADER_LEN {
                    prop_assert_eq!(refused, Err(BadSignature::Malformed));
                }
            }

            #[test]
            fn the_real_signature_among_junk_within_the_bounds_is_accepted(
                t in (i64::MIN + TOLERANCE_SECS)..=(i64::MAX - TOLERANCE_SECS),
                skew in -TOLERANCE_SECS..=TOLERANCE_SECS,
                body in prop::collection::vec(any::<u8>(), 0..256),
                junk in prop::collection::vec(junk_entry(), 0..12),
                wrong in prop::collection::vec(any::<[u8; 32]>(), 0..MAX_SIGNATURES),
                at in any::<prop::sample::Index>(),
                new_first in any::<bool>(),
            ) {
                let real = sign(&"whsec_new".into(), t, &body);
                let mut entries: Vec<String> = wrong.iter().map(|mac| format!("v1={}", hex::encode(mac))).collect();
                entries.extend(junk);
                entries.insert(at.index(entries.len() + 1), v1_of(&real).to_string());
                entries.insert(0, format!("t={t}"));
                // Junk is dropped from the end until the header fits.
                while entries.join(",").len() > MAX_HEADER_LEN {
                    let last = entries.iter().rposition(|e| !e.starts_with("t=") && e != v1_of(&real)).unwrap();
                    entries.remove(last);
                }
                let header = entries.join(",");
                let rotating = if new_first { secrets(&["whsec_new", "whsec_old"]) } else { secrets(&["whsec_old", "whsec_new"]) };
                prop_assert_eq!(verify(Some(&header), &body, &rotating, t + skew), Ok(()), "{}", header);
                prop_assert_eq!(verify(Some(&header), &body, &secrets(&["whsec_old"]), t + skew), Err(BadSignature::Mismatch));
            }
        }
    }
}
