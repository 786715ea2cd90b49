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

pub use challenge::{solve, Challenge, Proof, SpentProof, CHALLENGE_TTL, FRESH};
pub use pass::IssuedPass;
pub use room::{Joined, RoomState};

use crate::config::Secrets;
use crate::error::{Error, Result};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The keys that sign passes and challenges, each derived from the one secret
/// (`FLASHSALE_QUEUE_SECRET`), so a challenge's signature is never a pass's.
pub struct RoomKeys {
    pass: Secret,
    challenge: Secret,
}

impl RoomKeys {
    pub fn new(key: &Secret) -> Self {
        let derive = |label: &str| {
            let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
            mac.update(label.as_bytes());
            Secret::new(hex::encode(mac.finalize().into_bytes()))
        };
        RoomKeys { pass: derive("flashsale pass v1"), challenge: derive("flashsale challenge v1") }
    }

    /// The key read at init's (`FLASHSALE_QUEUE_SECRET`); `None` without one, and then
    /// the waiting rooms' routes fail rather than sign with a key no other container
    /// shares (shop-api signs what admit checks).
    pub fn from_secrets(secrets: &Secrets) -> Option<Self> {
        if secrets.room_key.is_none() {
            tracing::warn!("no FLASHSALE_QUEUE_SECRET: waiting rooms cannot be joined or bought from");
        }
        secrets.room_key.as_ref().map(RoomKeys::new)
    }

    /// The keys, or why a waiting room cannot be served.
    pub fn required(keys: &Option<RoomKeys>) -> Result<&RoomKeys> {
        keys.as_ref().ok_or_else(|| {
            Error::Config("FLASHSALE_QUEUE_SECRET is not set: waiting rooms cannot sign or check passes".into())
        })
    }
}

fn mac(key: &Secret, message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    mac
}
