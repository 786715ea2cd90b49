//! The waiting room in front of a sale: shoppers join it (proving some work), wait
//! while the number it serves grows with time at the sale's rate, and take a short-lived
//! signed pass when their turn comes; the admission script spends the pass
//! (`lua/admit.lua`), so a pass buys at most once.
//!
//! Places live in Redis beside the sale's other keys (`lua/join.lua`); the number served
//! is a function of the time and the room's settings ([`crate::domain::ServingClock`]),
//! so nothing ticks it and a status read is one pipeline.

mod challenge;
mod pass;
mod room;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use challenge::{solve, Challenge, Proof, ProofRefused, SpentProof, CHALLENGE_TTL};
pub use pass::{IssuedPass, PassRefused};
pub use room::{Joined, RoomState};

use crate::config::{Config, Secret};

type HmacSha256 = Hmac<Sha256>;

/// The keys that sign passes and challenges, each derived from the one secret
/// (`FLASHSALE_QUEUE_SECRET`), so a challenge's signature is never a pass's.
pub struct QueueKeys {
    pass: Secret,
    challenge: Secret,
}

impl QueueKeys {
    pub fn new(key: &Secret) -> Self {
        let derive = |label: &str| {
            let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
            mac.update(label.as_bytes());
            Secret::new(hex::encode(mac.finalize().into_bytes()))
        };
        QueueKeys { pass: derive("flashsale pass v1"), challenge: derive("flashsale challenge v1") }
    }

    /// The configured key's, or, without one, a key of this container's own (a single
    /// process, as `sam local` runs, agrees with itself; a fleet would not).
    pub fn from_config(config: &Config) -> Self {
        match &config.queue_key {
            Some(key) => QueueKeys::new(key),
            None => {
                tracing::warn!("no FLASHSALE_QUEUE_SECRET: waiting rooms sign with this container's own key");
                QueueKeys::new(&Secret::new(format!("{:032x}", rand::random::<u128>())))
            }
        }
    }
}

fn mac(key: &Secret, message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    mac
}
