//! The payment account's budget of provider calls. The provider limits the account as a
//! whole (Stripe: about 25 calls a second in test mode, 100 live), and the account serves
//! the rest of the shop's business too: a crowd's checkouts, or one shopper's retries,
//! must not spend it for everyone. Before each call, every container of every function
//! that calls the provider takes a token from one bucket per account in Redis
//! (`lua/provider_budget.lua`, refilled at `FLASHSALE_PROVIDER_CALLS_PER_SEC` and holding
//! at most one second of it). With none left the call is not made: the caller gets
//! [`Error::Throttled`], a 503 with `Retry-After` that no circuit breaker counts.
//!
//! Calls that move money and must happen (a close's cancel, a refund) wait a moment for
//! a token ([`MONEY_PATIENCE`]) rather than fail at once: failing them only means a
//! retry later (the close message comes back, the webhook is delivered again) that
//! costs a token all the same. Reads and a checkout's new payment do not wait: a waiting
//! request holds its container, and the page, the provider or reconcile asks again.
//!
//! With Redis unreachable the budget cannot be read, and the call is not made either
//! (503): a budget that opens when its store is down is no budget, and every caller but
//! the webhook needs Redis for its own work anyway.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::stores::redis::Redis;

/// How long a call that moves money waits for a token before it fails.
pub const MONEY_PATIENCE: Duration = Duration::from_secs(3);

/// One account's share of the provider's rate limit, as Redis keeps it.
pub struct Budget {
    conn: ConnectionManager,
    script: Script,
    /// `flashsale:provider_budget:` and a digest of the account's secret key: stacks (or
    /// tests) on other accounts have budgets of their own; the key itself never leaves.
    key: String,
    calls_per_sec: u32,
    timeout: Duration,
}

impl Budget {
    pub fn new(redis: &Redis, secret_key: &Secret, calls_per_sec: u32, timeout: Duration) -> Self {
        let account = hex::encode(&Sha256::digest(secret_key.expose().as_bytes())[..8]);
        Budget {
            conn: redis.conn.clone(),
            script: redis.scripts.provider_budget.clone(),
            key: format!("flashsale:provider_budget:{account}"),
            calls_per_sec: calls_per_sec.max(1),
            timeout,
        }
    }

    /// Takes one call's token, waiting for one at most `patience`.
    pub async fn take(&self, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            let wait_ms = self.try_take().await?;
            if wait_ms == 0 {
                return Ok(());
            }
            // Spread out, so the callers waiting for the same refill do not all come back
            // in the same millisecond.
            let wait = Duration::from_millis(wait_ms + rand::random::<u64>() % 20);
            if Instant::now() + wait > deadline {
                tracing::warn!(wait_ms, "provider budget spent: call not made");
                return Err(Error::Throttled { service: "payments", retry_after_secs: wait_ms.div_ceil(1000).max(1) });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// 0 when a token was taken, else the milliseconds until one is there.
    async fn try_take(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let mut take = self.script.key(&self.key);
        take.arg(self.calls_per_sec).arg(self.calls_per_sec);
        match tokio::time::timeout(self.timeout, take.invoke_async::<u64>(&mut conn)).await {
            Ok(answer) => answer.map_err(|e| Error::from(e).during("provider budget")),
            Err(_) => Err(Error::Unavailable { service: "redis", retry_after_secs: 1 }),
        }
    }
}
