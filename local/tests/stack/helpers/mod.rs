//! What the integration tests share, by concern: the stack and its presets (`stack`), the
//! HTTP API (`api`), the stores' state (`stores`), the functions run by hand
//! (`functions`), Redis servers of the test's own and Sentinel (`own_redis`), the stack
//! as real processes (`processes`), the fault proxy (`proxy`), the promises checked
//! after a fault (`invariants`), the waiting room (`room`), the money's fixtures
//! (`payments`), the payment provider behind a proxy (`provider`) and a webhook endpoint
//! of the test's own (`webhook`). `use crate::helpers::*;` brings all of it.

use std::future::Future;
use std::time::{Duration, Instant};

mod api;
mod functions;
mod invariants;
mod own_redis;
mod payments;
mod processes;
mod provider;
mod proxy;
mod room;
mod stack;
mod stores;
mod webhook;

pub use api::*;
pub use functions::*;
pub use invariants::*;
pub use own_redis::*;
pub use payments::*;
pub use processes::*;
pub use provider::*;
pub use proxy::*;
pub use room::*;
pub use stack::*;
pub use stores::*;
pub use webhook::*;

/// The tests that load the machine (a crowd of thousands, qemu, a browser) or that check
/// what they see against a schedule of their own (the failover, the nemesis) run one at
/// a time: on two cores, two of them together starve each other past their bounds.
/// Lighter tests still run beside whichever holds this.
pub async fn one_heavy_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// Polls `check` until it yields a value, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
