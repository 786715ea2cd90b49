//! The one clock of the crate: milliseconds since the Unix epoch, behind a trait so
//! the id generator and the token signer can be tested across a clock step.

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// Now, in milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}
