//! A published sale's live state in Redis: loaded (warmed) at publication, read by the
//! shoppers' polls, listed among the live sales, and given an end of life once it ended.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use crate::domain::{Currency, QueueMode, Sale, SaleId, SaleState};
use crate::error::{Error, Result};
use crate::stores::mysql::Mysql;
use crate::stores::redis::{ms_to_time, Redis, SaleKeys, LIVE_SALES_KEY};

/// How long a sale's keys outlive its end: late closes and orders still on their way
/// to MySQL find them; after that MySQL alone answers.
pub const KEYS_GRACE: chrono::Duration = chrono::Duration::days(1);

/// The part of a sale shoppers poll, served from Redis alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSale {
    pub id: SaleId,
    pub name: String,
    /// In the currency's minor unit.
    pub price_cents: u64,
    pub currency: Currency,
    pub stock: u32,
    pub per_user_limit: u32,
    pub remaining: u64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub server_time: DateTime<Utc>,
    /// The mode of its waiting room, when it has one.
    pub waiting_room: Option<QueueMode>,
}

impl LiveSale {
    pub fn state(&self) -> SaleState {
        SaleState::at(self.server_time, self.starts_at, self.ends_at, self.remaining)
    }
}

/// The meta hash of a sale, as the admission script and the shop read it.
pub(crate) fn meta_fields(sale: &Sale) -> Vec<(&'static str, String)> {
    vec![
        ("created_at_ms", sale.created_at.timestamp_millis().to_string()),
        ("name", sale.name.clone()),
        ("price_cents", sale.price_cents.to_string()),
        ("currency", sale.currency.to_string()),
        ("stock", sale.stock.to_string()),
        ("limit", sale.per_user_limit.to_string()),
        ("starts_at_ms", sale.starts_at.timestamp_millis().to_string()),
        ("ends_at_ms", sale.ends_at.timestamp_millis().to_string()),
        ("payment_window_secs", sale.payment_window_secs.to_string()),
        // The waiting room's settings ('' mode: none); the number it serves is rebased
        // by lua/queue_control.lua only.
        ("q_mode", sale.waiting_room.map_or("", |room| room.mode.as_str()).to_string()),
        ("q_rate", sale.waiting_room.map_or(0, |room| room.rate).to_string()),
        ("q_paused", u8::from(sale.waiting_room.is_some_and(|room| room.paused)).to_string()),
        ("q_difficulty", sale.waiting_room.map_or(0, |room| room.difficulty).to_string()),
    ]
}

pub(crate) fn keys_expire_at(sale: &Sale) -> DateTime<Utc> {
    sale.ends_at + KEYS_GRACE
}

impl Redis {
    /// Loads a sale into Redis (cache warming); see `lua/warm.lua`.
    pub async fn warm(&self, sale: &Sale) -> Result<()> {
        let keys = SaleKeys::new(sale.id);
        let mut conn = self.conn.clone();
        let meta = meta_fields(sale);
        let wiped: i64 = self
            .call("warm", async {
                let mut warm = self.scripts.warm.prepare_invoke();
                for key in keys.all() {
                    warm.key(key);
                }
                warm.arg(sale.created_at.timestamp_millis()).arg(sale.stock.saturating_sub(sale.sold));
                for (field, value) in &meta[1..] {
                    warm.arg(*field).arg(value);
                }
                let wiped = warm.invoke_async(&mut conn).await?;
                self.track_live(&mut conn, sale).await?;
                Ok(wiped)
            })
            .await?;
        if wiped == 1 {
            tracing::warn!(sale_id = %sale.id, "wiped Redis state left by an earlier sale with this id");
        }
        Ok(())
    }

    /// Lists the sale among those whose keys live, and forgets sales whose keys expired.
    pub(crate) async fn track_live(&self, conn: &mut ConnectionManager, sale: &Sale) -> Result<()> {
        redis::pipe()
            .zadd(LIVE_SALES_KEY, sale.id.0, keys_expire_at(sale).timestamp_millis())
            .ignore()
            .zrembyscore(LIVE_SALES_KEY, "-inf", Utc::now().timestamp_millis())
            .ignore()
            .query_async::<()>(conn)
            .await?;
        Ok(())
    }

    /// The sales whose keys live (see [`Redis::track_live`]).
    pub async fn live_sales(&self) -> Result<Vec<SaleId>> {
        let mut conn = self.conn.clone();
        let ids: Vec<u64> = self
            .call("live sales", async {
                Ok(conn.zrangebyscore(LIVE_SALES_KEY, Utc::now().timestamp_millis(), "+inf").await?)
            })
            .await?;
        Ok(ids.into_iter().map(SaleId).collect())
    }

    /// The sale as shoppers see it, with Redis's clock; `None` when not published.
    ///
    /// A sale warmed by a release that did not keep its currency in Redis (before prices
    /// were counted in each currency's minor unit) has none there: its currency is read
    /// from MySQL, where every sale has one, and kept in the meta (`lua/currency.lua`), so
    /// this happens once per sale.
    pub async fn live_sale(&self, mysql: &Mysql, sale: SaleId) -> Result<Option<LiveSale>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let (meta, remaining, (secs, micros)): (HashMap<String, String>, Option<i64>, (i64, i64)) = self
            .call("live sale", async {
                redis::pipe()
                    .hgetall(&keys.meta)
                    .get(&keys.stock)
                    .cmd("TIME")
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let currency = match meta.get("currency") {
            Some(code) => Currency::stored(code.clone()),
            None => self.keep_currency(mysql, sale).await?,
        };
        let num = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Ok(Some(LiveSale {
            id: sale,
            name: meta.get("name").cloned().unwrap_or_default(),
            price_cents: num("price_cents") as u64,
            currency,
            stock: num("stock") as u32,
            per_user_limit: num("limit") as u32,
            remaining: remaining.unwrap_or(0).max(0) as u64,
            starts_at: ms_to_time(num("starts_at_ms")),
            ends_at: ms_to_time(num("ends_at_ms")),
            server_time: ms_to_time(secs * 1000 + micros / 1000),
            waiting_room: meta.get("q_mode").and_then(|mode| QueueMode::parse(mode)),
        }))
    }

    /// The sale's currency as MySQL holds it, kept in its Redis meta if that has none.
    async fn keep_currency(&self, mysql: &Mysql, sale: SaleId) -> Result<Currency> {
        let currency = mysql.sale(sale).await?.ok_or(Error::NotFound("sale"))?.currency;
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let kept: i64 = self
            .call("keep currency", async {
                Ok(self.scripts.currency.key(&keys.meta).arg(currency.as_str()).invoke_async(&mut conn).await?)
            })
            .await?;
        if kept == 1 {
            tracing::info!(sale_id = %sale, %currency, "sale's currency kept in Redis (warmed without it)");
        }
        Ok(currency)
    }

    pub async fn remaining(&self, sale: SaleId) -> Result<Option<i64>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.call("remaining", async { conn.get(&keys.stock).await.map_err(Error::from) }).await
    }

    /// Gives the state of an ended sale an end of life, once no order of it waits in the
    /// outbox. `true` when set.
    pub async fn expire_ended(&self, sale: &Sale) -> Result<bool> {
        let keys = SaleKeys::new(sale.id);
        let at = keys_expire_at(sale).timestamp_millis();
        let mut conn = self.conn.clone();
        self.call("expire ended", async {
            let waiting: u64 = conn.hlen(&keys.outbox).await?;
            if waiting > 0 {
                return Ok(false);
            }
            let mut expire = redis::pipe();
            for key in keys.all() {
                expire.cmd("PEXPIREAT").arg(key).arg(at).ignore();
            }
            expire.query_async::<()>(&mut conn).await?;
            Ok(true)
        })
        .await
    }
}
