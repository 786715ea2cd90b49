//! Redis adapter (ElastiCache): the sale's live state, the admission and release
//! scripts, and the outbox of admitted orders not yet in MySQL.
//!
//! Every key of a sale carries the hash tag `{sale:ID}`, so one script can touch them
//! all on a cluster.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::breaker::Breaker;
use crate::config::Config;
use crate::domain::{OrderId, Sale, SaleId, SaleState, UserId};
use crate::error::{Error, Result};
use crate::messages::OrderMessage;

/// Published sales, for lookups that start from an order id alone.
const SALES_KEY: &str = "flashsale:sales";

pub struct SaleKeys {
    pub meta: String,
    pub stock: String,
    pub bought: String,
    pub orders: String,
    pub outbox: String,
    pub outbox_at: String,
    pub released: String,
}

impl SaleKeys {
    pub fn new(sale: SaleId) -> Self {
        let tag = format!("{{sale:{sale}}}");
        SaleKeys {
            meta: format!("{tag}:meta"),
            stock: format!("{tag}:stock"),
            bought: format!("{tag}:bought"),
            orders: format!("{tag}:orders"),
            outbox: format!("{tag}:outbox"),
            outbox_at: format!("{tag}:outbox_at"),
            released: format!("{tag}:released"),
        }
    }

    pub fn all(&self) -> [&str; 7] {
        [&self.meta, &self.stock, &self.bought, &self.orders, &self.outbox, &self.outbox_at, &self.released]
    }
}

/// What the admission script decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted { order_id: OrderId, remaining: u64 },
    LimitReached { limit: u32, order_ids: Vec<OrderId> },
    SoldOut { remaining: u64 },
    NotStarted,
    Ended,
    UnknownSale,
    BadQuantity { limit: u32 },
}

impl Admission {
    fn parse(reply: Vec<String>) -> Result<Self> {
        let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or("");
        let number = |i: usize| {
            field(i)
                .parse::<u64>()
                .map_err(|_| Error::Internal(format!("admit.lua replied {reply:?}")))
        };
        Ok(match field(0) {
            "admitted" => Admission::Admitted { order_id: field(1).parse()?, remaining: number(2)? },
            "limit" => Admission::LimitReached {
                limit: number(1)? as u32,
                order_ids: field(2).split_whitespace().map(str::parse).collect::<Result<_>>()?,
            },
            "sold_out" => Admission::SoldOut { remaining: number(1)? },
            "not_started" => Admission::NotStarted,
            "ended" => Admission::Ended,
            "unknown" => Admission::UnknownSale,
            "bad_quantity" => Admission::BadQuantity { limit: number(1)? as u32 },
            _ => return Err(Error::Internal(format!("admit.lua replied {reply:?}"))),
        })
    }
}

/// The part of a sale shoppers poll, served from Redis alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSale {
    pub id: SaleId,
    pub name: String,
    pub price_cents: u64,
    pub stock: u32,
    pub per_user_limit: u32,
    pub remaining: u64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub server_time: DateTime<Utc>,
}

impl LiveSale {
    pub fn state(&self) -> SaleState {
        SaleState::at(self.server_time, self.starts_at, self.ends_at, self.remaining)
    }
}

pub struct Cache {
    conn: ConnectionManager,
    admit: Script,
    release: Script,
    warm: Script,
    breaker: Breaker,
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Cache {
    /// Connects lazily: a container whose Redis is down still starts, and its
    /// requests fail fast through the breaker until Redis answers.
    pub fn connect(config: &Config) -> Result<Self> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            .set_response_timeout(Some(config.redis_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Ok(Cache {
            conn: client.get_connection_manager_lazy(manager_config)?,
            admit: Script::new(include_str!("../../../lua/admit.lua")),
            release: Script::new(include_str!("../../../lua/release.lua")),
            warm: Script::new(include_str!("../../../lua/warm.lua")),
            breaker: Breaker::new("redis", config.breaker_failures, config.breaker_cooldown, config.redis_timeout * 2),
        })
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Loads a sale into Redis (cache warming); see `lua/warm.lua`.
    pub async fn warm(&self, sale: &Sale) -> Result<()> {
        let keys = SaleKeys::new(sale.id);
        let mut conn = self.conn.clone();
        let meta = [
            ("name", sale.name.clone()),
            ("price_cents", sale.price_cents.to_string()),
            ("stock", sale.stock.to_string()),
            ("limit", sale.per_user_limit.to_string()),
            ("starts_at_ms", sale.starts_at.timestamp_millis().to_string()),
            ("ends_at_ms", sale.ends_at.timestamp_millis().to_string()),
            ("payment_window_secs", sale.payment_window_secs.to_string()),
        ];
        let wiped: i64 = self
            .breaker
            .call(async {
                let mut warm = self.warm.prepare_invoke();
                for key in keys.all() {
                    warm.key(key);
                }
                warm.arg(sale.created_at.timestamp_millis()).arg(sale.stock.saturating_sub(sale.sold));
                for (field, value) in &meta {
                    warm.arg(*field).arg(value);
                }
                let wiped = warm.invoke_async(&mut conn).await?;
                let _: () = conn.sadd(SALES_KEY, sale.id.0).await?;
                Ok(wiped)
            })
            .await?;
        if wiped == 1 {
            tracing::warn!(sale_id = %sale.id, "wiped Redis state left by an earlier sale with this id");
        }
        Ok(())
    }

    pub async fn admit(&self, order: &OrderMessage) -> Result<Admission> {
        let keys = SaleKeys::new(order.sale_id);
        let payload = serde_json::to_string(order).map_err(|e| Error::Internal(e.to_string()))?;
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .breaker
            .call(async {
                self.admit
                    .key(&keys.meta)
                    .key(&keys.stock)
                    .key(&keys.bought)
                    .key(&keys.orders)
                    .key(&keys.outbox)
                    .key(&keys.outbox_at)
                    .arg(order.user_id.as_str())
                    .arg(order.quantity)
                    .arg(order.order_id.to_string())
                    .arg(payload)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        Admission::parse(reply)
    }

    /// Gives an order's units back, once per order. `true` when this call released them.
    pub async fn release(&self, sale: SaleId, order: OrderId, user: &UserId, quantity: u32) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let released: i64 = self
            .breaker
            .call(async {
                self.release
                    .key(&keys.stock)
                    .key(&keys.bought)
                    .key(&keys.orders)
                    .key(&keys.outbox)
                    .key(&keys.outbox_at)
                    .key(&keys.released)
                    .arg(order.to_string())
                    .arg(user.as_str())
                    .arg(quantity)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        if released < 0 {
            tracing::warn!(sale_id = %sale, order_id = %order, "release skipped: sale not in Redis");
        }
        Ok(released == 1)
    }

    /// The sale as shoppers see it, with Redis's clock; `None` when not published.
    pub async fn live_sale(&self, sale: SaleId) -> Result<Option<LiveSale>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let (meta, remaining, (secs, micros)): (HashMap<String, String>, Option<i64>, (i64, i64)) = self
            .breaker
            .call(async {
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
        let num = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Ok(Some(LiveSale {
            id: sale,
            name: meta.get("name").cloned().unwrap_or_default(),
            price_cents: num("price_cents") as u64,
            stock: num("stock") as u32,
            per_user_limit: num("limit") as u32,
            remaining: remaining.unwrap_or(0).max(0) as u64,
            starts_at: ms_to_time(num("starts_at_ms")),
            ends_at: ms_to_time(num("ends_at_ms")),
            server_time: ms_to_time(secs * 1000 + micros / 1000),
        }))
    }

    pub async fn remaining(&self, sale: SaleId) -> Result<Option<i64>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.breaker
            .call(async { conn.get(&keys.stock).await.map_err(Error::from) })
            .await
    }

    /// An admitted order that MySQL does not have yet, found by id alone: one
    /// pipelined look into every published sale's outbox.
    pub async fn pending_order(&self, order: OrderId) -> Result<Option<(OrderMessage, DateTime<Utc>)>> {
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                let sales: Vec<u64> = conn.smembers(SALES_KEY).await?;
                let mut lookup = redis::pipe();
                for sale in &sales {
                    let keys = SaleKeys::new(SaleId(*sale));
                    lookup.hget(&keys.outbox, order.to_string()).zscore(&keys.outbox_at, order.to_string());
                }
                let found: Vec<(Option<String>, Option<f64>)> = lookup.query_async(&mut conn).await?;
                let Some((payload, at)) = found.into_iter().find_map(|(p, at)| p.map(|p| (p, at))) else {
                    return Ok(None);
                };
                let message = serde_json::from_str(&payload)
                    .map_err(|e| Error::Internal(format!("outbox entry {order}: {e}")))?;
                Ok(Some((message, ms_to_time(at.unwrap_or(0.0) as i64))))
            })
            .await
    }

    /// Outbox entries admitted before `before`, oldest first: the reconcile check-back.
    pub async fn outbox_before(&self, sale: SaleId, before: DateTime<Utc>, limit: usize) -> Result<Vec<OrderMessage>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                let ids: Vec<String> = conn
                    .zrangebyscore_limit(&keys.outbox_at, "-inf", before.timestamp_millis(), 0, limit as isize)
                    .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let payloads: Vec<Option<String>> = redis::cmd("HMGET")
                    .arg(&keys.outbox)
                    .arg(&ids)
                    .query_async(&mut conn)
                    .await?;
                Ok(payloads
                    .into_iter()
                    .flatten()
                    .filter_map(|p| serde_json::from_str(&p).ok())
                    .collect())
            })
            .await
    }

    /// Every outbox entry of a sale: admitted orders MySQL does not have yet.
    pub async fn pending_orders(&self, sale: SaleId) -> Result<Vec<OrderMessage>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let payloads: Vec<String> = self
            .breaker
            .call(async { conn.hvals(&keys.outbox).await.map_err(Error::from) })
            .await?;
        payloads
            .iter()
            .map(|p| serde_json::from_str(p).map_err(|e| Error::Internal(format!("outbox entry: {e}"))))
            .collect()
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
        self.breaker
            .call(async { touch.query_async::<()>(&mut conn).await.map_err(Error::from) })
            .await
    }

    /// Forgets an outbox entry once MySQL holds the order.
    pub async fn clear_outbox(&self, sale: SaleId, order: OrderId) -> Result<()> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                redis::pipe()
                    .atomic()
                    .hdel(&keys.outbox, order.to_string())
                    .ignore()
                    .zrem(&keys.outbox_at, order.to_string())
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await
    }
}
