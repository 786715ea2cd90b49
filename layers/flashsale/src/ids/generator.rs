//! Minting order ids under a worker-id lease. The worker id is leased from DynamoDB
//! ([`super::leases`]) because Lambda containers come and go: two containers with the
//! same configured id would mint the same ids. Without a valid lease no id is minted.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::leases::WorkerLeases;
use super::snowflake::{Snowflake, Step};
use crate::clock::Clock;
use crate::domain::OrderId;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug)]
struct Lease {
    worker: u16,
    /// Local, monotonic end of validity, kept short of the lease's end in DynamoDB
    /// so that clock skew between containers cannot overlap two holders.
    valid_until: Instant,
}

/// How long a request waits for its container to renew or re-acquire a lease that
/// lapsed while the container sat frozen between invocations.
const INLINE_LEASE_BOUND: Duration = Duration::from_secs(1);

/// Mints order ids under a worker-id lease. Built once per container.
pub struct IdGenerator {
    state: Mutex<Snowflake>,
    lease: Mutex<Option<Lease>>,
    clock: Arc<dyn Clock>,
    /// Where leases come from; `None` for a generator that owns its worker id otherwise.
    leases: Option<Arc<WorkerLeases>>,
    /// One lease write at a time: concurrent requests that find the lease lapsed wait
    /// for the first one's write instead of each taking a worker id.
    refreshing: tokio::sync::Mutex<()>,
}

impl IdGenerator {
    /// A generator that holds `worker` until `valid_until`, with no lease renewal:
    /// for tests and tools that own their worker id by other means.
    pub fn with_worker(worker: u16, valid_for: Duration, clock: Arc<dyn Clock>) -> Self {
        IdGenerator {
            state: Mutex::new(Snowflake::default()),
            lease: Mutex::new(Some(Lease { worker, valid_until: Instant::now() + valid_for })),
            clock,
            leases: None,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Leases a worker id from DynamoDB and keeps renewing it in the background for as
    /// long as the generator lives. A failed first lease does not fail the start: the
    /// generator refuses ids (503) until it gets one. On Lambda the background task
    /// does not run while the container is frozen between invocations (a countdown's
    /// idle minutes): a request that finds the lease lapsed renews or re-acquires it
    /// itself, within [`INLINE_LEASE_BOUND`].
    pub async fn leased(leases: WorkerLeases, clock: Arc<dyn Clock>) -> Arc<Self> {
        let leases = Arc::new(leases);
        let generator = Arc::new(IdGenerator {
            state: Mutex::new(Snowflake::default()),
            lease: Mutex::new(None),
            clock,
            leases: Some(leases.clone()),
            refreshing: tokio::sync::Mutex::new(()),
        });
        if let Err(e) = refresh(&generator, &leases).await {
            tracing::error!(error = %e, "could not lease a worker id; ids are refused until one is leased");
        }
        let weak = Arc::downgrade(&generator);
        tokio::spawn(keep_leased(weak, leases));
        generator
    }

    /// Gives the worker id back, for a container shutting down: the next container may
    /// take it at once instead of after the lease lapses. No id is minted after.
    pub async fn release(&self) {
        *self.lease.lock().unwrap() = None;
        if let Some(leases) = &self.leases {
            leases.release_all().await;
        }
    }

    pub fn worker(&self) -> Option<u16> {
        self.current_lease().map(|l| l.worker)
    }

    fn current_lease(&self) -> Option<Lease> {
        let lease = *self.lease.lock().unwrap();
        lease.filter(|l| l.valid_until > Instant::now())
    }

    /// The lease in force, renewed or re-acquired first if it lapsed.
    async fn lease_now(&self) -> Result<Lease> {
        let unavailable = || Error::Unavailable { service: "order ids (no worker-id lease)", retry_after_secs: 1 };
        if let Some(lease) = self.current_lease() {
            return Ok(lease);
        }
        let leases = self.leases.as_ref().ok_or_else(unavailable)?;
        let _one_writer = self.refreshing.lock().await;
        if let Some(lease) = self.current_lease() {
            return Ok(lease);
        }
        match tokio::time::timeout(INLINE_LEASE_BOUND, refresh(self, leases)).await {
            Ok(Ok(())) => self.current_lease().ok_or_else(unavailable),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "worker-id lease lapsed and could not be renewed");
                Err(unavailable())
            }
            Err(_) => Err(unavailable()),
        }
    }

    pub async fn next_id(&self) -> Result<OrderId> {
        loop {
            let lease = self.lease_now().await?;
            let now = self.clock.now_ms();
            let step = self.state.lock().unwrap().next(now, lease.worker);
            match step {
                Step::Id(id) => return Ok(OrderId(id)),
                Step::WaitUntil(ms) => {
                    let wait = ms.saturating_sub(self.clock.now_ms()).clamp(1, 1000);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
    }
}

async fn refresh(generator: &IdGenerator, leases: &WorkerLeases) -> Result<()> {
    let started = Instant::now();
    let held = generator.lease.lock().unwrap().map(|l| l.worker);
    let worker = match held {
        Some(w) if leases.renew(w).await? => w,
        _ => leases.acquire().await?,
    };
    let valid_for = leases.duration().mul_f64(5.0 / 6.0);
    let mut lease = generator.lease.lock().unwrap();
    if lease.map(|l| l.worker) != Some(worker) {
        tracing::info!(worker, "leased worker id");
    }
    *lease = Some(Lease { worker, valid_until: started + valid_for });
    Ok(())
}

async fn keep_leased(generator: Weak<IdGenerator>, leases: Arc<WorkerLeases>) {
    let period = leases.duration() / 3;
    loop {
        let held = generator.upgrade().map(|g| g.current_lease().is_some());
        let wait = match held {
            None => break,
            Some(true) => period,
            Some(false) => Duration::from_millis(500),
        };
        tokio::time::sleep(wait).await;
        let Some(g) = generator.upgrade() else { break };
        let _one_writer = g.refreshing.lock().await;
        if let Err(e) = refresh(&g, &leases).await {
            tracing::warn!(error = %e, "worker-id lease renewal failed");
        }
    }
    // The generator is gone: give the worker id back for the next container.
    leases.release_all().await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::clock::SystemClock;

    /// The system clock shifted by an offset the test moves.
    struct SteppingClock(AtomicI64);
    impl Clock for SteppingClock {
        fn now_ms(&self) -> u64 {
            (SystemClock.now_ms() as i64 + self.0.load(Ordering::Relaxed)) as u64
        }
    }

    #[tokio::test]
    async fn a_million_ids_are_unique_and_increasing_across_a_clock_step_back() {
        let clock = Arc::new(SteppingClock(AtomicI64::new(0)));
        let ids = IdGenerator::with_worker(42, Duration::from_secs(600), clock.clone());
        let mut last = 0u64;
        for i in 0..1_000_000u32 {
            if i == 300_000 {
                clock.0.store(-20, Ordering::Relaxed); // NTP steps the clock 20 ms back
            }
            if i == 600_000 {
                clock.0.store(0, Ordering::Relaxed);
            }
            let id = ids.next_id().await.unwrap().0;
            assert!(id > last, "id {i} went from {last} to {id}");
            last = id;
        }
    }

    #[tokio::test]
    async fn refuses_ids_without_a_valid_lease() {
        let ids = IdGenerator::with_worker(1, Duration::ZERO, Arc::new(SystemClock));
        assert!(matches!(ids.next_id().await, Err(Error::Unavailable { .. })));
    }
}
