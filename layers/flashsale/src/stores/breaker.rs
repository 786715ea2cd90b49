//! A circuit breaker: after a run of failures a dependency is left alone for a
//! cool-down, and callers fail fast with 503 instead of piling up on it. After the
//! cool-down one call at a time probes it; a success closes the breaker.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Breaker {
    service: &'static str,
    threshold: u32,
    cooldown: Duration,
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    /// While set and in the future, calls fail fast. Once passed, the next caller
    /// probes and pushes it forward again, so probes are one per cool-down.
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(service: &'static str, threshold: u32, cooldown: Duration, timeout: Duration) -> Self {
        Breaker { service, threshold: threshold.max(1), cooldown, timeout, state: Mutex::new(State::default()) }
    }

    /// Runs `call` under the breaker with the call timeout. Only dependency failures
    /// (errors for which [`Error::is_dependency_failure`] holds, and time-outs) count.
    pub async fn call<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.admit()?;
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::Unavailable { service: self.service, retry_after_secs: self.retry_after_secs() }),
        };
        match &outcome {
            Err(e) if e.is_dependency_failure() => self.record_failure(),
            _ => self.record_success(),
        }
        outcome
    }

    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap();
        matches!(state.open_until, Some(t) if t > Instant::now())
    }

    fn admit(&self) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        match state.open_until {
            Some(until) if until > Instant::now() => {
                Err(Error::CircuitOpen { service: self.service, retry_after_secs: self.retry_after_secs() })
            }
            Some(_) => {
                // Half-open: this caller probes, the others keep failing fast meanwhile.
                state.open_until = Some(Instant::now() + self.cooldown);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record_success(&self) {
        let mut state = self.state.lock().unwrap();
        state.consecutive_failures = 0;
        state.open_until = None;
    }

    fn record_failure(&self) {
        let mut state = self.state.lock().unwrap();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if state.consecutive_failures >= self.threshold {
            if state.open_until.is_none() {
                tracing::warn!(service = self.service, "circuit breaker opened");
            }
            state.open_until = Some(Instant::now() + self.cooldown);
        }
    }

    fn retry_after_secs(&self) -> u64 {
        self.cooldown.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing() -> Result<()> {
        Err(Error::aws("x", std::io::Error::other("down")))
    }

    #[tokio::test]
    async fn opens_after_threshold_then_probes_after_cooldown() {
        let b = Breaker::new("x", 3, Duration::from_millis(50), Duration::from_secs(1));
        for _ in 0..3 {
            assert!(matches!(b.call(async { failing() }).await, Err(Error::Aws { .. })));
        }
        assert!(b.is_open());
        // Open: the call is not even made.
        let called = std::sync::atomic::AtomicBool::new(false);
        let r = b
            .call(async {
                called.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(Error::CircuitOpen { .. })));
        assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(b.call(async { Ok(()) }).await.is_ok());
        assert!(!b.is_open());
    }

    #[tokio::test]
    async fn rule_errors_do_not_count_and_timeouts_do() {
        let b = Breaker::new("x", 2, Duration::from_secs(10), Duration::from_millis(20));
        for _ in 0..5 {
            let _ = b.call(async { Err::<(), _>(Error::SoldOut { remaining: 0 }) }).await;
        }
        assert!(!b.is_open());
        for _ in 0..2 {
            let r = b
                .call(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(())
                })
                .await;
            assert!(matches!(r, Err(Error::Unavailable { .. })));
        }
        assert!(b.is_open());
    }
}
