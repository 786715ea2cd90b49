//! Redis is rebuildable, MySQL is the truth. When a sale's Redis state is gone (a
//! failover, a restart, a flush), the sale answers "recovering" (503) while the orders
//! in flight land, then its state is rebuilt from MySQL. And when MySQL refuses an
//! order, Redis is corrected down to what MySQL and the outbox account for instead of
//! putting a unit back on sale that never existed.

use std::time::Duration;

use chrono::Utc;

use crate::cache::Cache;
use crate::db::Db;
use crate::domain::{Order, Sale, SaleId};
use crate::error::{Error, Result};
use crate::fallback::PendingOrders;
use crate::memo::SaleMemo;
use crate::messages::OrderMessage;
use crate::queue::Outbound;

/// How long one rebuilder holds the right to rebuild a sale.
const REBUILD_CLAIM: Duration = Duration::from_secs(10);

/// What a recovery attempt found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The sale's state is in Redis: nothing to do.
    Present,
    /// Not published, or ended: nothing to rebuild.
    NotLive,
    /// Orders are still in flight (or another caller is rebuilding): ask again shortly.
    Waiting { in_flight: u64 },
    Rebuilt { remaining: i64 },
}

/// The answer a shopper gets while a sale recovers.
pub fn recovering() -> Error {
    Error::Unavailable { service: "sale (recovering)", retry_after_secs: 1 }
}

/// Rebuilds a sale's Redis state from MySQL, read under the sale's row lock so no order
/// lands or closes in between. `pending` are admitted orders kept outside Redis, put
/// back in its outbox. Without `force` it does nothing while the state is present.
pub async fn rebuild(db: &Db, cache: &Cache, sale: SaleId, pending: &[OrderMessage], force: bool) -> Result<Option<i64>> {
    let Some(mut locked) = db.lock_sale(sale).await? else {
        return Err(Error::NotFound("sale"));
    };
    let orders = locked.orders().await?;
    let remaining = cache.rebuild(&locked.sale, &orders, pending, force).await?;
    locked.release().await?;
    if let Some(remaining) = remaining {
        tracing::warn!(sale_id = %sale, remaining, holds = orders.holds.len(), "sale state rebuilt in Redis from MySQL");
    }
    Ok(remaining)
}

/// Brings back a published, running sale whose Redis state is missing, once the orders
/// queue has drained or `drain_bound` has passed since the loss was first seen. Orders
/// kept in the durable fallback go back into its outbox. Safe to call from many places
/// at once: one caller rebuilds, the others wait.
pub async fn recover(
    db: &Db,
    cache: &Cache,
    queue: &dyn Outbound,
    fallback: &dyn PendingOrders,
    sale: &Sale,
    drain_bound: Duration,
) -> Result<Recovery> {
    if !sale.published || sale.ends_at <= Utc::now() {
        return Ok(Recovery::NotLive);
    }
    if cache.has_sale(sale.id).await? {
        return Ok(Recovery::Present);
    }
    let lost_since_ms = cache.mark_lost(sale.id).await?;
    let waited = Duration::from_millis((Utc::now().timestamp_millis() - lost_since_ms).max(0) as u64);
    // Orders still in the queue hold units MySQL does not count yet; rebuilt before
    // they land, the sale would sell them again (MySQL would refuse the excess).
    let in_flight = match queue.orders_in_flight().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot see the orders queue; waiting out the bound");
            u64::MAX
        }
    };
    if in_flight > 0 && waited < drain_bound {
        return Ok(Recovery::Waiting { in_flight });
    }
    if !cache.claim_rebuild(sale.id, REBUILD_CLAIM).await? {
        return Ok(Recovery::Waiting { in_flight });
    }
    if in_flight > 0 {
        tracing::warn!(sale_id = %sale.id, in_flight, "rebuilding before the orders queue drained: the bound passed");
    }
    let pending = fallback.of_sale(sale.id).await?;
    Ok(match rebuild(db, cache, sale.id, &pending, false).await? {
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

/// What a function does when Redis does not know a sale a shopper asks for: MySQL says
/// whether it never was (404), has ended (409), or is running and was lost by Redis
/// (rebuilt once the orders in flight have landed; 503 "recovering" meanwhile). The
/// verdict is remembered per container for a moment, so a crowd costs MySQL one read.
pub struct MissingSales {
    memo: SaleMemo<Missing>,
    drain_bound: Duration,
}

impl MissingSales {
    pub fn new(memo_ttl: Duration, drain_bound: Duration) -> Self {
        MissingSales { memo: SaleMemo::new(memo_ttl), drain_bound }
    }

    /// The answer already known for a sale found missing a moment ago.
    pub fn known(&self, sale: SaleId) -> Option<Error> {
        self.memo.get(sale).map(Missing::error)
    }

    /// `Ok` once the sale is in Redis again (rebuilt by this call or another); else the
    /// error to answer with.
    pub async fn recover(&self, db: &Db, cache: &Cache, queue: &dyn Outbound, fallback: &dyn PendingOrders, sale: SaleId) -> Result<()> {
        if let Some(error) = self.known(sale) {
            return Err(error);
        }
        let verdict = match db.sale(sale).await? {
            Some(found) if found.published && found.ends_at > Utc::now() => {
                match recover(db, cache, queue, fallback, &found, self.drain_bound).await? {
                    Recovery::Rebuilt { .. } | Recovery::Present => return Ok(()),
                    Recovery::Waiting { in_flight } => {
                        tracing::warn!(sale_id = %sale, in_flight, "sale missing in Redis; recovering once the orders in flight land");
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

/// Settles an order MySQL refused: its hold leaves Redis and the stock on sale becomes
/// what MySQL and the outbox leave over, so a unit that never existed is not sold again.
pub async fn settle_rejected(db: &Db, cache: &Cache, order: &Order) -> Result<()> {
    let outbox = cache.outbox_ids(order.sale_id).await?;
    let Some(mut locked) = db.lock_sale(order.sale_id).await? else {
        return Ok(());
    };
    let in_mysql = locked.existing(&outbox).await?;
    let settled = cache.reject(order, locked.sale.stock, locked.sale.sold, &in_mysql).await?;
    locked.release().await?;
    if let Some(remaining) = settled {
        tracing::warn!(sale_id = %order.sale_id, order_id = %order.order_id, remaining, "refused order settled; stock set from MySQL");
    }
    Ok(())
}
