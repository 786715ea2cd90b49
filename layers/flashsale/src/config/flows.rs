//! The sections of the flows' configuration: admission, the orders' close and check-back,
//! payments, the waiting rooms, the pages and the edge.

use std::time::Duration;

use super::{millis, millis_or_alias, number, optional, secs, var, ConfigError};

#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// `FLASHSALE_ADMIT_DURABLE_BOUND_MS` (formerly `FLASHSALE_ADMIT_SEND_BOUND_MS`): how
    /// long `admit` waits for the replicas' acknowledgement before it waits for the
    /// order's record in the pending-orders table instead.
    pub durable_bound: Duration,
    /// `FLASHSALE_ADMIT_SETTLE_BOUND_MS`: how long, after answering, an `admit` container
    /// on Lambda stays thawed for the sends of the orders it admitted. Past it the
    /// container may freeze with a send still on its way: the order is durable (the
    /// replicas hold it), the send goes on at the next thaw, or reconcile's check-back
    /// re-sends it. Holding until every send ended would turn a slow SQS into that many
    /// times the admit concurrency.
    pub settle_bound: Duration,
    /// `FLASHSALE_SOLD_OUT_TTL_MS`: how long a container answers sold-out from memory.
    pub sold_out_ttl: Duration,
}

impl AdmissionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(AdmissionConfig {
            durable_bound: millis_or_alias("FLASHSALE_ADMIT_DURABLE_BOUND_MS", "FLASHSALE_ADMIT_SEND_BOUND_MS", 50)?,
            settle_bound: millis("FLASHSALE_ADMIT_SETTLE_BOUND_MS", 200)?,
            sold_out_ttl: millis("FLASHSALE_SOLD_OUT_TTL_MS", 1000)?,
        })
    }
}

/// The orders after admission: their close messages, and what reconcile's run does
/// about the late and the lost.
#[derive(Clone, Debug)]
pub struct OrdersConfig {
    /// `FLASHSALE_MAX_DELAY_SECS`: the longest delay of one timeout message (SQS allows 900);
    /// longer payment windows are a chain of messages.
    pub max_delay_secs: u32,
    /// `FLASHSALE_OUTBOX_RESEND_AFTER_SECS`: outbox entries older than this are re-sent by reconcile.
    pub outbox_resend_after: Duration,
    /// `FLASHSALE_RECOVERY_DRAIN_SECS`: a sale whose Redis state was lost and is still
    /// not rebuilt this long after the loss (the pending-orders table cannot be read) is
    /// reported stuck.
    pub recovery_drain_bound: Duration,
    /// `FLASHSALE_OVERDUE_CLOSE_SECS`: reconcile closes unpaid orders this long past their
    /// deadline itself (their close message was lost or is stuck).
    pub overdue_close_after: Duration,
    /// `FLASHSALE_PAYMENT_CHECK_AFTER_SECS`: reconcile asks the provider about an unpaid
    /// order's payment once it started this long ago (its webhook is late or lost).
    pub payment_check_after: Duration,
}

impl OrdersConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(OrdersConfig {
            max_delay_secs: number::<u32>("FLASHSALE_MAX_DELAY_SECS", 900)?.clamp(1, 900),
            outbox_resend_after: secs("FLASHSALE_OUTBOX_RESEND_AFTER_SECS", 30)?,
            recovery_drain_bound: secs("FLASHSALE_RECOVERY_DRAIN_SECS", 30)?,
            overdue_close_after: secs("FLASHSALE_OVERDUE_CLOSE_SECS", 120)?,
            payment_check_after: secs("FLASHSALE_PAYMENT_CHECK_AFTER_SECS", 30)?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct PaymentsConfig {
    /// `FLASHSALE_PAYMENTS_API_URL`: the payment provider's API (Stripe's shape).
    pub api_url: String,
    /// `FLASHSALE_PAYMENTS_SECRET`: the Secrets Manager secret holding the provider's
    /// keys as JSON (`{"secret_key": "sk_…", "webhook_secrets": ["whsec_…"]}`, the newest
    /// signing secret first while one is rotated), read at init; never in the environment.
    pub keys_secret: Option<String>,
    /// `FLASHSALE_PROVIDER_CALLS_PER_SEC`: the account's budget of provider calls a second,
    /// shared by every container of every function through Redis
    /// ([`crate::payments::budget`]). Below the provider's own limit (Stripe: about 25 a
    /// second in test mode, 100 live), leaving room for the rest of the shop's business.
    pub calls_per_sec: u32,
    /// `FLASHSALE_WEBHOOK_DEADLINE_MS`: the longest the payment webhook works on one
    /// delivery (its provider read, MySQL, the refunds read, a refund with its wait for
    /// the account's budget) before it answers 503 with `Retry-After` and the provider
    /// delivers again. Below the function's timeout (10 s); on Lambda the invocation's
    /// own deadline, less a margin to answer, bounds it too.
    pub webhook_deadline: Duration,
    /// `FLASHSALE_STACK_NAME`: names this stack in the metadata of every payment it
    /// creates, so its webhook and reconcile act only on their own money when the
    /// provider's account serves others too (the shop's other business, a second stack).
    /// The template sets the CloudFormation stack's name; each local stack its own.
    pub stack_name: String,
    /// `FLASHSALE_PAYMENTS_PUBLISHABLE_KEY`: the provider's public key the pages pay with.
    pub publishable_key: String,
    /// `FLASHSALE_PAYMENTS_JS_URL`: the provider's script the pages load (Stripe.js).
    pub js_url: String,
}

impl PaymentsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(PaymentsConfig {
            api_url: var("FLASHSALE_PAYMENTS_API_URL", "https://api.stripe.com"),
            keys_secret: optional("FLASHSALE_PAYMENTS_SECRET"),
            calls_per_sec: number::<u32>("FLASHSALE_PROVIDER_CALLS_PER_SEC", 20)?.max(1),
            webhook_deadline: millis("FLASHSALE_WEBHOOK_DEADLINE_MS", 8000)?,
            stack_name: var("FLASHSALE_STACK_NAME", "flashsale-local"),
            publishable_key: var("FLASHSALE_PAYMENTS_PUBLISHABLE_KEY", ""),
            js_url: var("FLASHSALE_PAYMENTS_JS_URL", "https://js.stripe.com/v3/"),
        })
    }
}

#[derive(Clone, Debug)]
pub struct WaitingRoomConfig {
    /// `FLASHSALE_QUEUE_SECRET`: the Secrets Manager secret holding the key that signs
    /// the waiting rooms' passes and proof-of-work challenges, read at init. Unset, the
    /// waiting rooms' routes fail: shop-api signs what admit checks, so the key must be
    /// one.
    pub key_secret: Option<String>,
    /// `FLASHSALE_PASS_TTL_SECS`: how long a waiting room's pass may be used.
    pub pass_ttl: Duration,
}

impl WaitingRoomConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(WaitingRoomConfig {
            key_secret: optional("FLASHSALE_QUEUE_SECRET"),
            pass_ttl: Duration::from_secs(number::<u64>("FLASHSALE_PASS_TTL_SECS", 60)?.clamp(5, 3600)),
        })
    }
}

/// The pages, and the edge in front of the API.
#[derive(Clone, Debug)]
pub struct SiteConfig {
    /// `FLASHSALE_API_BASE`: where the pages find the API (same origin through CloudFront).
    pub api_base: String,
    /// `FLASHSALE_SIGN_IN_URL`: where the pages send a shopper to sign in (the identity
    /// provider's hosted UI on AWS; the local stack's dev sign-in locally).
    pub sign_in_url: String,
    /// `FLASHSALE_ORIGIN_SECRET`: the Secrets Manager secret holding the value CloudFront
    /// sends in `x-origin-verify` to the API (`{"current": "…", "previous": "…"}`), read
    /// at init. Set, the API functions refuse a request without it: one that reached the
    /// API Gateway endpoint without passing the edge. Unset, every request is taken
    /// (`sam local`, tests of a function alone).
    pub origin_secret: Option<String>,
}

impl SiteConfig {
    pub fn from_env() -> Self {
        SiteConfig {
            api_base: var("FLASHSALE_API_BASE", "/api"),
            sign_in_url: var("FLASHSALE_SIGN_IN_URL", "/dev/oauth2/authorize?client_id=flashsale-local"),
            origin_secret: optional("FLASHSALE_ORIGIN_SECRET"),
        }
    }
}
