//! Finding a sale Redis lost: a running sale whose state is missing answers
//! "recovering" (503) until every hand-off begun before the loss has recorded its
//! orders, then is rebuilt from MySQL and the pending-orders table ([`super::rebuild`]).
//! One caller rebuilds; the others wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::rebuild::rebuild;
use crate::domain::{Sale, SaleId};
use crate::error::{Error, Result};
use crate::memo::SaleMemo;
use crate::stores::dynamodb::PendingOrders;
use crate::stores::mysql::Mysql;
use crate::stores::redis::{Claim, Redis, SaleKeys};

/// How long one rebuilder holds the right to rebuild a sale.
const REBUILD_CLAIM: Duration = Duration::from_secs(10);

/// What a recovery attempt found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The sale's state is in Redis: nothing to do.
    Present,
    /// Not published, or ended: nothing to rebuild.
    NotLive,
    /// Hand-offs begun before the loss may still be recording orders, the table cannot
    /// be read, or another caller is rebuilding: ask again shortly. `stuck` once the wait
    /// has outlasted [`Drain::alarm_after`].
    Waiting {
        stuck: bool,
    },
    Rebuilt {
        remaining: i64,
    },
}

/// What a lost sale waits for before it is rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// By then every record an unanswered shopper waits for has been written or given
    /// up: admitted, `WAIT`ed for at most the durable bound, its record begun within
    /// one `FLASHSALE_AWS_TIMEOUT_MS` or not at all, and that call bounded by another
    /// (see [`crate::outbox::handoff`]). A shopper already answered 202 has the order
    /// on the replica, whose outbox the rebuild keeps.
    pub hand_off: Duration,
    /// A sale still waiting this long after the loss is reported stuck (reconcile's
    /// `RecoveryStuck` metric), and still not rebuilt: without the table's record of the
    /// orders in flight, it would sell their units again.
    pub alarm_after: Duration,
}

impl Drain {
    pub fn from_config(config: &crate::Config) -> Self {
        Drain {
            hand_off: config.aws.timeout * 2 + config.admission.durable_bound,
            alarm_after: config.orders.recovery_drain_bound,
        }
    }
}

/// The answer a shopper gets while a sale recovers.
pub fn recovering() -> Error {
    Error::Unavailable { service: "sale (recovering)", retry_after_secs: 1 }
}

/// Brings back a published, running sale whose Redis state is missing (or is a promoted
/// replica's copy), once every hand-off begun before the loss has recorded its orders.
/// What is admitted and not yet in MySQL is then exactly what the outbox (a promoted
/// replica's) and the pending-orders table hold, wherever the messages are (queue,
/// consumer, DLQ): the rebuild holds their units, no queue count involved. Never while
/// the table cannot be read. Safe to call from many places at once: one caller
/// rebuilds, the others wait.
pub async fn recover(
    mysql: &Mysql,
    redis: &Redis,
    recorded: &dyn PendingOrders,
    sale: &Sale,
    drain: Drain,
) -> Result<Recovery> {
    if !sale.published || sale.ends_at <= Utc::now() {
        return Ok(Recovery::NotLive);
    }
    if redis.has_sale(sale.id).await? {
        return Ok(Recovery::Present);
    }
    let waited = redis.mark_lost(sale.id).await?;
    let stuck = waited >= drain.alarm_after;
    if waited < drain.hand_off {
        return Ok(Recovery::Waiting { stuck });
    }
    // One caller reads the table and rebuilds; the crowd behind it waits.
    let Some(claim) = redis.claim_rebuild(sale.id, REBUILD_CLAIM).await? else {
        return Ok(Recovery::Waiting { stuck });
    };
    let pending = match recorded.of_sale(sale.id).await {
        Ok(pending) => pending,
        Err(e) => {
            // Rebuilt without them, the sale would sell the units of orders in flight again.
            match stuck {
                true => {
                    tracing::error!(sale_id = %sale.id, error = %e, waited_secs = waited.as_secs(), "sale still recovering: the pending orders cannot be read")
                }
                false => {
                    tracing::warn!(sale_id = %sale.id, error = %e, "the pending orders cannot be read; the sale stays recovering")
                }
            }
            // The next caller tries again at once, not once the claim lapses.
            if let Err(e) = redis.give_up(claim).await {
                tracing::warn!(error = %e, "rebuild claim left to lapse");
            }
            return Ok(Recovery::Waiting { stuck });
        }
    };
    Ok(match rebuild(mysql, redis, sale.id, &pending, false).await? {
        Some(remaining) => Recovery::Rebuilt { remaining },
        None => Recovery::Present,
    })
}

/// Why Redis does not know a sale, as MySQL told.
#[derive(Clone, Copy, Debug)]
enum Missing {
    /// No such sale, or not published.
    Unknown,
    Ended,
    /// Published and running: Redis lost it and it is being rebuilt.
    Recovering,
}

impl Missing {
    fn error(self) -> Error {
        match self {
            Missing::Unknown => Error::NotFound("sale"),
            Missing::Ended => Error::NotOpen("the sale has ended"),
            Missing::Recovering => recovering(),
        }
    }
}

/// Lookups of missing sales one container makes at once, each sale always in the same
/// lane: a crowd asking for one sale waits for one lookup, without a map of sales a
/// stranger could grow.
const LOOKUP_LANES: usize = 64;

/// What a function does when Redis does not know a sale a shopper asks for: MySQL says
/// whether it never was (404), has ended (409), or is running and was lost by Redis
/// (rebuilt once the hand-offs begun before the loss have ended; 503 "recovering"
/// meanwhile). The verdict is remembered per container for a moment (in a bounded
/// memo: the ids are a stranger's), and requests for a sale already being looked up
/// wait for that lookup's verdict, so a crowd, or a flood of requests for a sale that
/// does not exist, costs MySQL one read per sale per memo period. An id above the
/// highest sale id (read once per memo period) cannot be a sale: no read at all, so a
/// bot cycling through ids that were never made costs MySQL one read per period.
pub struct MissingSales {
    memo: SaleMemo<Missing>,
    drain: Drain,
    lanes: [tokio::sync::Mutex<()>; LOOKUP_LANES],
    /// The highest sale id MySQL had, and when it said so: read again once the memo's
    /// TTL has passed, by one caller at a time.
    highest: tokio::sync::Mutex<Option<(Instant, u64)>>,
    lookups: AtomicU64,
}

impl MissingSales {
    pub fn new(memo_ttl: Duration, drain: Drain) -> Self {
        MissingSales {
            memo: SaleMemo::new(memo_ttl),
            drain,
            lanes: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            highest: tokio::sync::Mutex::new(None),
            lookups: AtomicU64::new(0),
        }
    }

    /// Whether `sale` is above every sale id MySQL has made (as of at most a memo
    /// period ago): such an id is no sale. A sale made since is in Redis once published,
    /// so it does not come here; only a sale made and lost by Redis within one memo
    /// period would be a 404 for that long.
    async fn cannot_exist(&self, mysql: &Mysql, sale: SaleId) -> Result<bool> {
        let mut highest = self.highest.lock().await;
        let known = highest.filter(|(at, _)| at.elapsed() < self.memo.ttl());
        let highest_id = match known {
            Some((_, id)) => id,
            None => {
                self.lookups.fetch_add(1, Ordering::Relaxed);
                let id = mysql.highest_sale_id().await?;
                *highest = Some((Instant::now(), id));
                id
            }
        };
        Ok(sale.0 > highest_id)
    }

    /// How many times this container asked MySQL about a sale Redis did not know.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// The answer already known for a sale found missing a moment ago.
    pub fn known(&self, sale: SaleId) -> Option<Error> {
        self.memo.get(sale).map(Missing::error)
    }

    /// `Ok` once the sale is in Redis again (rebuilt by this call or another); else the
    /// error to answer with.
    pub async fn recover(
        &self,
        mysql: &Mysql,
        redis: &Redis,
        recorded: &dyn PendingOrders,
        sale: SaleId,
    ) -> Result<()> {
        if let Some(error) = self.known(sale) {
            return Err(error);
        }
        let _lane = self.lanes[(sale.0 % LOOKUP_LANES as u64) as usize].lock().await;
        // The lookup this one waited for may have just told.
        if let Some(error) = self.known(sale) {
            return Err(error);
        }
        if self.cannot_exist(mysql, sale).await? {
            self.memo.mark(sale, Missing::Unknown);
            return Err(Missing::Unknown.error());
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let verdict = match mysql.sale(sale).await? {
            Some(found) if found.published && found.ends_at > Utc::now() => {
                match recover(mysql, redis, recorded, &found, self.drain).await? {
                    Recovery::Rebuilt { .. } | Recovery::Present => return Ok(()),
                    Recovery::Waiting { .. } => {
                        tracing::warn!(sale_id = %sale, "sale missing in Redis; recovering once the hand-offs begun before the loss have ended");
                        Missing::Recovering
                    }
                    Recovery::NotLive => Missing::Unknown,
                }
            }
            Some(found) if found.published => Missing::Ended,
            _ => Missing::Unknown,
        };
        self.memo.mark(sale, verdict);
        Err(verdict.error())
    }
}

impl Mysql {
    /// The highest sale id there is (0 with none): ids come from the table's sequence,
    /// so no sale has a higher one yet.
    pub async fn highest_sale_id(&self) -> Result<u64> {
        self.call("highest sale id", async {
            let id: Option<u64> =
                sqlx::query_scalar("SELECT id FROM sales ORDER BY id DESC LIMIT 1").fetch_optional(&self.pool).await?;
            Ok(id.unwrap_or(0))
        })
        .await
    }
}

impl Redis {
    /// Whether the sale's state is in Redis and was written on this primary: a promoted
    /// replica's copy may lack the last writes (see `lua/epoch.lua`).
    pub async fn has_sale(&self, sale: SaleId) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.call("has sale", async {
            let present: i64 = self.scripts.present.key(&keys.meta).invoke_async(&mut conn).await?;
            Ok(present == 1)
        })
        .await
    }

    /// Records that the sale's state was found missing; returns how long ago the first
    /// finder found it so, by Redis's clock, so every container waits the same wait.
    pub async fn mark_lost(&self, sale: SaleId) -> Result<Duration> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.call("mark lost", async {
            let waited_ms: i64 = self.scripts.lost.key(&keys.lost_at).invoke_async(&mut conn).await?;
            Ok(Duration::from_millis(waited_ms.max(0) as u64))
        })
        .await
    }

    /// One rebuilder at a time per sale: `Some` when this caller holds the right for `ttl`.
    pub async fn claim_rebuild(&self, sale: SaleId, ttl: Duration) -> Result<Option<Claim>> {
        // Once the rebuild ran, never given up: it lapses, by when the rebuild has long ended.
        self.claim(&format!("{{sale:{sale}}}:rebuilding"), ttl).await
    }
}
