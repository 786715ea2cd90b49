//! The outbox in Redis: an admitted order's message, written by the admission script
//! itself, until MySQL has the order. Found by id (a shopper's pending order), by age
//! (reconcile's check-back), all at once (a sale's drift), touched when re-sent and
//! cleared once persisted.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use crate::domain::{OrderId, OrderMessage, SaleId};
use crate::error::{Error, Result};
use crate::stores::redis::{ms_to_time, order_id, Redis, SaleKeys, LIVE_SALES_KEY};

impl Redis {
    /// Whether an admitted order waits in the outbox: after a Redis call that timed out,
    /// it tells whether the admission script ran.
    pub async fn in_outbox(&self, sale: SaleId, order: OrderId) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.call("in outbox", async { conn.hexists(&keys.outbox, order.to_string()).await.map_err(Error::from) }).await
    }

    /// The ids of a sale's outbox entries.
    pub async fn outbox_ids(&self, sale: SaleId) -> Result<Vec<OrderId>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let ids: Vec<String> =
            self.call("outbox ids", async { conn.hkeys(&keys.outbox).await.map_err(Error::from) }).await?;
        ids.iter().map(|id| order_id(id)).collect()
    }

    /// An admitted order that MySQL does not have yet, found by id alone: one
    /// pipelined look into every published sale's outbox.
    pub async fn outbox_order(&self, order: OrderId) -> Result<Option<(OrderMessage, DateTime<Utc>)>> {
        let mut conn = self.conn.clone();
        self.call("pending order", async {
            let sales: Vec<u64> = conn.zrangebyscore(LIVE_SALES_KEY, Utc::now().timestamp_millis(), "+inf").await?;
            let mut lookup = redis::pipe();
            for sale in &sales {
                let keys = SaleKeys::new(SaleId(*sale));
                lookup.hget(&keys.outbox, order.to_string()).zscore(&keys.outbox_at, order.to_string());
            }
            let found: Vec<(Option<String>, Option<f64>)> = lookup.query_async(&mut conn).await?;
            let Some((payload, at)) = found.into_iter().find_map(|(p, at)| p.map(|p| (p, at))) else {
                return Ok(None);
            };
            let message = serde_json::from_str(&payload).map_err(|e| Error::serde("outbox entry", e))?;
            Ok(Some((message, ms_to_time(at.unwrap_or(0.0) as i64))))
        })
        .await
    }

    /// Outbox entries admitted before `before`, oldest first: the reconcile check-back.
    pub async fn outbox_before(&self, sale: SaleId, before: DateTime<Utc>, limit: usize) -> Result<Vec<OrderMessage>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.call("outbox before", async {
            let ids: Vec<String> =
                conn.zrangebyscore_limit(&keys.outbox_at, "-inf", before.timestamp_millis(), 0, limit as isize).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let payloads: Vec<Option<String>> =
                redis::cmd("HMGET").arg(&keys.outbox).arg(&ids).query_async(&mut conn).await?;
            Ok(payloads.into_iter().flatten().filter_map(|p| serde_json::from_str(&p).ok()).collect())
        })
        .await
    }

    /// How many orders the outbox holds and their units (meta's tally, kept by the scripts
    /// that add and remove entries): O(1), what the console and reconcile read.
    pub async fn outbox_tally(&self, sale: SaleId) -> Result<(u64, i64)> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.call("outbox tally", async {
            let (orders, units): (u64, Option<i64>) =
                redis::pipe().hlen(&keys.outbox).hget(&keys.meta, "outbox_units").query_async(&mut conn).await?;
            Ok((orders, units.unwrap_or(0)))
        })
        .await
    }

    /// Every outbox entry of a sale: admitted orders MySQL does not have yet. O(outbox):
    /// for the audit, which checks [`Redis::outbox_tally`] against it.
    pub async fn outbox_orders(&self, sale: SaleId) -> Result<Vec<OrderMessage>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let payloads: Vec<String> =
            self.call("pending orders", async { conn.hvals(&keys.outbox).await.map_err(Error::from) }).await?;
        payloads.iter().map(|p| serde_json::from_str(p).map_err(|e| Error::serde("outbox entry", e))).collect()
    }

    /// Marks outbox entries as sent again just now, so the next check-back waits a whole
    /// period before sending them once more (no re-send storm while SQS is slow).
    pub async fn touch_outbox(&self, sale: SaleId, orders: &[OrderId]) -> Result<()> {
        if orders.is_empty() {
            return Ok(());
        }
        let keys = SaleKeys::new(sale);
        let now = Utc::now().timestamp_millis();
        let mut touch = redis::cmd("ZADD");
        touch.arg(&keys.outbox_at).arg("XX");
        for order in orders {
            touch.arg(now).arg(order.to_string());
        }
        let mut conn = self.conn.clone();
        self.call("touch outbox", async { touch.query_async::<()>(&mut conn).await.map_err(Error::from) }).await
    }

    /// Claims orders for persistence just before their transaction (`lua/persisting.lua`):
    /// an undo from then on leaves them standing. Answers those of them whose hold
    /// already ended, an admission undone above all: its shopper was told 503, and an
    /// SQS send that failed ambiguously may still have delivered its message.
    pub async fn claim_for_persisting(&self, sale: SaleId, orders: &[OrderId]) -> Result<HashSet<OrderId>> {
        if orders.is_empty() {
            return Ok(HashSet::new());
        }
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let ended: Vec<String> = self
            .call("claim for persisting", async {
                let mut claim = self.scripts.persisting.key(&keys.stock);
                claim.key(&keys.released).key(&keys.persisting);
                for order in orders {
                    claim.arg(order.to_string());
                }
                claim.invoke_async(&mut conn).await.map_err(Error::from)
            })
            .await?;
        ended.iter().map(|id| order_id(id)).collect()
    }

    /// Forgets outbox entries (and their claims) once MySQL holds their orders, and their
    /// units off the outbox's tally, in one round trip (`lua/clear.lua`).
    pub async fn clear_outbox(&self, sale: SaleId, orders: &[OrderId]) -> Result<()> {
        if orders.is_empty() {
            return Ok(());
        }
        let keys = SaleKeys::new(sale);
        let ids: Vec<String> = orders.iter().map(OrderId::to_string).collect();
        let mut conn = self.conn.clone();
        self.call("clear outbox", async {
            let mut clear = self.scripts.clear.key(&keys.meta);
            clear.key(&keys.outbox).key(&keys.outbox_at).key(&keys.persisting).arg(&ids);
            clear.invoke_async::<i64>(&mut conn).await.map_err(Error::from)?;
            Ok(())
        })
        .await
    }
}
