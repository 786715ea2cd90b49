//! The proof of work asked at a join, in ALTCHA's format (so its widget or any solver of
//! it works): the page finds `number` in `0..=maxnumber` whose SHA-256 of
//! `salt + number` is `challenge`; `signature` is our HMAC of `challenge`, so a challenge
//! is ours without anything stored. The salt carries its expiry, the sale and a tag of
//! the shopper, so a solution is good for one shopper's join of one sale, once (the join
//! spends it, `lua/join.lua`).
//!
//! Written here rather than taken from `altcha-lib-rs`: that crate brings second major
//! versions of `hmac`, `sha2` and `rand` into every function's build, and compares
//! signatures as strings, not in constant time.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use hmac::Mac;

use super::{mac, RoomKeys};
use crate::domain::{ProofRefused, SaleId, UserId};

/// How long a challenge may be solved and used.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// How long a challenge counts whatever the room asks since: a page's solve and join.
pub const FRESH: Duration = Duration::from_secs(10);

const ALGORITHM: &str = "SHA-256";

/// A challenge as the page receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub algorithm: String,
    pub challenge: String,
    pub maxnumber: u64,
    pub salt: String,
    pub signature: String,
}

/// A solution as the page sends it (ALTCHA's payload; `took` is the widget's own note).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    pub algorithm: String,
    pub challenge: String,
    pub number: u64,
    pub salt: String,
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took: Option<u64>,
}

/// A proof that checked out: the nonce the join spends, until when it had to be, and
/// the largest number its challenge hid (the work it stands for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentProof {
    pub nonce: String,
    pub expires_ms: i64,
    pub maxnumber: u64,
}

impl SpentProof {
    /// Whether it stands for enough work to join a room that asks `difficulty` at
    /// `now_ms`. A challenge's size is fixed when it is given, and the size a room asks
    /// grows with its queue (`RoomState::join_difficulty`): a farm that fetched its
    /// challenges while the queue was short must not join with them once it is long. A
    /// challenge given within [`FRESH`] always counts (the page solves and joins at once,
    /// however fast the crowd grows meanwhile); an older one must be at least half the
    /// size asked now.
    pub fn is_enough_for(&self, difficulty: u32, now_ms: i64) -> bool {
        let issued_ms = self.expires_ms - CHALLENGE_TTL.as_millis() as i64;
        now_ms.saturating_sub(issued_ms) <= FRESH.as_millis() as i64
            || self.maxnumber.saturating_mul(2) >= u64::from(difficulty)
    }
}

impl RoomKeys {
    pub fn challenge(&self, sale: SaleId, user: &UserId, maxnumber: u32, now_ms: i64) -> Challenge {
        let expires = (now_ms + CHALLENGE_TTL.as_millis() as i64) / 1000;
        let nonce = format!("{:024x}", rand::random::<u128>() >> 32);
        let salt = format!("{nonce}?expires={expires}&sale={sale}&user={}&max={maxnumber}&", user_tag(user));
        let number = rand::random_range(0..=u64::from(maxnumber));
        let challenge = digest(&salt, number);
        let signature = hex::encode(mac(&self.challenge, &challenge).finalize().into_bytes());
        Challenge { algorithm: ALGORITHM.into(), challenge, maxnumber: maxnumber.into(), salt, signature }
    }

    /// Checks a solution: ours, solved, unexpired, for this sale and shopper. Two hashes;
    /// whether it was used before is the join's to say.
    pub fn check_proof(
        &self,
        proof: &Proof,
        sale: SaleId,
        user: &UserId,
        now_ms: i64,
    ) -> Result<SpentProof, ProofRefused> {
        let signature = hex::decode(&proof.signature).map_err(|_| ProofRefused::Wrong)?;
        mac(&self.challenge, &proof.challenge).verify_slice(&signature).map_err(|_| ProofRefused::Wrong)?;
        if proof.algorithm != ALGORITHM || digest(&proof.salt, proof.number) != proof.challenge {
            return Err(ProofRefused::Wrong);
        }
        // The salt is signed with the challenge: its parameters are ours.
        let (nonce, params) = proof.salt.split_once('?').ok_or(ProofRefused::Wrong)?;
        let param = |name: &str| params.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='));
        let expires_ms =
            param("expires").and_then(|e| e.parse::<i64>().ok()?.checked_mul(1000)).ok_or(ProofRefused::Wrong)?;
        if param("sale") != Some(&sale.to_string()) || param("user") != Some(&user_tag(user)) {
            return Err(ProofRefused::NotYours);
        }
        if now_ms >= expires_ms {
            return Err(ProofRefused::Expired);
        }
        // Challenges given before their size was signed into the salt stand for none.
        let maxnumber = param("max").and_then(|m| m.parse().ok()).unwrap_or(0);
        Ok(SpentProof { nonce: nonce.to_string(), expires_ms, maxnumber })
    }
}

fn digest(salt: &str, number: u64) -> String {
    hex::encode(Sha256::new().chain_update(salt).chain_update(number.to_string()).finalize())
}

/// The shopper, as the salt names them: a digest, not the id itself.
fn user_tag(user: &UserId) -> String {
    hex::encode(&Sha256::digest(user.as_str())[..8])
}

/// Solves a challenge the way a page does, trying every number in turn: for tests,
/// benchmarks and tools.
pub fn solve(challenge: &Challenge) -> Option<Proof> {
    let number = (0..=challenge.maxnumber).find(|n| digest(&challenge.salt, *n) == challenge.challenge)?;
    Some(Proof {
        algorithm: challenge.algorithm.clone(),
        challenge: challenge.challenge.clone(),
        number,
        salt: challenge.salt.clone(),
        signature: challenge.signature.clone(),
        took: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_solved_challenge_proves_work_for_its_shopper_and_sale_until_it_expires() {
        let keys = RoomKeys::new(&Secret::new("k".repeat(32)));
        let (ann, bob) = (UserId::new("ann").unwrap(), UserId::new("bob").unwrap());
        let challenge = keys.challenge(SaleId(3), &ann, 2_000, 1_000);
        let proof = solve(&challenge).expect("solvable within maxnumber");
        let spent = keys.check_proof(&proof, SaleId(3), &ann, 1_000).unwrap();
        assert_eq!((spent.expires_ms, spent.maxnumber), (301_000, 2_000));
        // Fresh, enough for any room; older, for a room asking up to twice its size.
        assert!(spent.is_enough_for(1_000_000, 11_000));
        assert!(spent.is_enough_for(4_000, 11_001) && !spent.is_enough_for(4_001, 11_001));
        assert_eq!(keys.check_proof(&proof, SaleId(3), &bob, 1_000), Err(ProofRefused::NotYours));
        assert_eq!(keys.check_proof(&proof, SaleId(4), &ann, 1_000), Err(ProofRefused::NotYours));
        assert_eq!(keys.check_proof(&proof, SaleId(3), &ann, 301_000), Err(ProofRefused::Expired));
        let wrong = Proof { number: proof.number + 1, ..proof.clone() };
        assert_eq!(keys.check_proof(&wrong, SaleId(3), &ann, 1_000), Err(ProofRefused::Wrong));
        // A salt rewritten for a longer life, or a challenge of our own making, is not signed.
        let forged = Challenge { salt: challenge.salt.replace("sale=3", "sale=4"), ..challenge.clone() };
        let forged = Challenge { challenge: digest(&forged.salt, 0), ..forged };
        let forged = Proof { number: 0, ..solve(&forged).unwrap() };
        assert_eq!(keys.check_proof(&forged, SaleId(4), &ann, 1_000), Err(ProofRefused::Wrong));
        let theirs = RoomKeys::new(&Secret::new("x".repeat(32)));
        assert_eq!(theirs.check_proof(&proof, SaleId(3), &ann, 1_000), Err(ProofRefused::Wrong));
    }

    /// Fuzzing the proof a join sends, which any signed-in stranger may: a fixed number of
    /// cases.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn keys() -> RoomKeys {
            RoomKeys::new(&Secret::new("k".repeat(32)))
        }

        fn ann() -> UserId {
            UserId::new("ann").unwrap()
        }

        /// Text shaped like a proof's field, or anything.
        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(ALGORITHM.to_string()),
                prop::collection::vec(any::<u8>(), 32).prop_map(hex::encode),
                "[0-9a-fA-F]{0,70}",
                "[0-9a-f]{0,24}\\?expires=[-0-9]{0,21}&sale=[0-9]{0,3}&user=[0-9a-f]{0,16}&",
                ".{0,80}",
            ]
        }

        fn proof() -> impl Strategy<Value = Proof> {
            (field(), field(), any::<u64>(), field(), field(), any::<Option<u64>>()).prop_map(
                |(algorithm, challenge, number, salt, signature, took)| Proof {
                    algorithm,
                    challenge,
                    number,
                    salt,
                    signature,
                    took,
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn no_made_up_proof_is_accepted(proof in proof(), sale in 0u64..5, now_ms in any::<i64>()) {
                prop_assert!(keys().check_proof(&proof, SaleId(sale), &ann(), now_ms).is_err());
            }

            #[test]
            fn any_json_is_a_proof_or_refused_and_never_accepted(json in prop_oneof![".{0,300}", proof().prop_map(|p| serde_json::to_string(&p).unwrap())]) {
                if let Ok(proof) = serde_json::from_str::<Proof>(&json) {
                    prop_assert!(keys().check_proof(&proof, SaleId(3), &ann(), 1_000).is_err());
                }
            }

            #[test]
            fn our_challenge_is_accepted_only_with_its_solution(number in 0u64..=64, now_ms in 0i64..4_000_000_000_000) {
                let keys = keys();
                let challenge = keys.challenge(SaleId(3), &ann(), 64, now_ms);
                let solved = solve(&challenge).unwrap();
                let proof = Proof { number, ..solved.clone() };
                let checked = keys.check_proof(&proof, SaleId(3), &ann(), now_ms);
                prop_assert_eq!(checked.is_ok(), number == solved.number, "{:?}", checked);
            }

            /// Even a salt we signed ourselves (as if our key had leaked), whatever it says,
            /// is refused or accepted without a panic: no overflow in its expiry.
            #[test]
            fn any_salt_we_signed_is_checked_without_a_panic(salt in field(), number in any::<u64>(), now_ms in any::<i64>()) {
                let keys = keys();
                let challenge = digest(&salt, number);
                let signature = hex::encode(mac(&keys.challenge, &challenge).finalize().into_bytes());
                let proof = Proof { algorithm: ALGORITHM.into(), challenge, number, salt, signature, took: None };
                let _ = keys.check_proof(&proof, SaleId(3), &ann(), now_ms);
            }
        }

        #[test]
        fn an_expiry_past_the_range_is_wrong_not_an_overflow() {
            let keys = keys();
            let salt = format!("00?expires={}&sale=3&user={}&", i64::MAX / 10, user_tag(&ann()));
            let challenge = digest(&salt, 0);
            let signature = hex::encode(mac(&keys.challenge, &challenge).finalize().into_bytes());
            let proof = Proof { algorithm: ALGORITHM.into(), challenge, number: 0, salt, signature, took: None };
            assert_eq!(keys.check_proof(&proof, SaleId(3), &ann(), 0), Err(ProofRefused::Wrong));
        }
    }
}
