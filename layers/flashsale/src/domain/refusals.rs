//! Why a stranger's request is refused by the parsers that take it: a waiting room's
//! pass and proof of work, the payment provider's webhook signature (with the bounds that
//! signature's header is held to). Pure values, so that the one error type can name them
//! without importing the capabilities that check them.

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

/// Why a proof does not let a shopper join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefused {
    #[error("joining takes a solved challenge: fetch one from .../queue/challenge")]
    Missing,
    #[error("the challenge is not ours or not solved")]
    Wrong,
    #[error("the challenge is for another sale or shopper")]
    NotYours,
    #[error("the challenge has expired: fetch a new one")]
    Expired,
    #[error("the challenge was used already: fetch a new one")]
    Used,
    #[error("the queue grew since the challenge was given: fetch a new one")]
    TooEasy,
}

/// How far a signature's timestamp may be from now, as the provider's own libraries allow.
pub const TOLERANCE_SECS: i64 = 300;

/// The longest header taken. A real one is `t=` and ten digits, one `v1=` of 64 hex digits
/// per secret the endpoint signs with (two during a rotation) and, in test mode, a `v0=`:
/// under 300 bytes.
pub const MAX_HEADER_LEN: usize = 512;

/// The most well-formed `v1` values a header may list: the provider sends one per secret
/// of the endpoint, two during a rotation.
pub const MAX_SIGNATURES: usize = 4;

/// Why a delivery is not the provider's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error(
        "the Stripe-Signature header is not one the provider sends: one timestamp, one to {MAX_SIGNATURES} v1 \
         signatures, at most {MAX_HEADER_LEN} bytes"
    )]
    Malformed,
    #[error("the signature's timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("no v1 signature matches the body")]
    Mismatch,
}
