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
use crate::domain::{Order, OrderId, Sale, SaleId, SaleState, UserId};
use crate::error::{Error, Result};
use crate::messages::OrderMessage;

/// Published sales by the time (ms) their keys expire, for lookups that start from an
/// order id alone: they look only at sales whose keys still live.
const LIVE_SALES_KEY: &str = "flashsale:live_sales";

/// How long a sale's keys outlive its end: late closes and orders still on their way
/// to MySQL find them; after that MySQL alone answers.
pub const KEYS_GRACE: chrono::Duration = chrono::Duration::days(1);

pub struct SaleKeys {
    pub meta: String,
    pub stock: String,
    pub bought: String,
    pub orders: String,
    pub outbox: String,
    pub outbox_at: String,
    pub released: String,
    /// When this sale's state was first found missing (ms), while it is rebuilt.
    pub lost_at: String,
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
            lost_at: format!("{tag}:lost_at"),
        }
    }

    pub fn all(&self) -> [&str; 8] {
        [&self.meta, &self.stock, &self.bought, &self.orders, &self.outbox, &self.outbox_at, &self.released, &self.lost_at]
    }
}

/// Who held a sale's units at one moment, with its per-user limit.
#[derive(Debug)]
pub struct Holders {
    limit: u32,
    by_user: HashMap<String, (u32, Vec<OrderId>)>,
}

impl Holders {
    /// The limit and the shopper's orders when `quantity` more units would pass the
    /// limit, as `held_at_limit` tells it.
    pub fn at_limit(&self, user: &UserId, quantity: u32) -> Option<(u32, Vec<OrderId>)> {
        let (held, ids) = self.by_user.get(user.as_str())?;
        past_limit(*held, quantity, self.limit).then(|| (self.limit, ids.clone()))
    }
}

/// Whether `quantity` more units would take a shopper holding `held` past `limit`, as
/// `lua/admit.lua` decides it.
fn past_limit(held: u32, quantity: u32, limit: u32) -> bool {
    held + quantity > limit
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

/// An order id as Redis keeps it. Anything else there is a fault of ours, not a
/// request for an order that does not exist.
fn order_id(text: &str) -> Result<OrderId> {
    text.parse().map_err(|e| Error::Internal(format!("Redis holds {text:?} as an order id: {e}")))
}

/// Order ids as Redis keeps them, space-separated.
fn order_ids(text: &str) -> Result<Vec<OrderId>> {
    text.split_whitespace().map(order_id).collect()
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
            "admitted" => Admission::Admitted { order_id: order_id(field(1))?, remaining: number(2)? },
            "limit" => Admission::LimitReached { limit: number(1)? as u32, order_ids: order_ids(field(2))? },
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
    rebuild: Script,
    holders: Script,
    breaker: Breaker,
}

/// A sale's orders as MySQL has them, for rebuilding its Redis state.
#[derive(Clone, Debug, Default)]
pub struct SaleOrders {
    /// Live (`UNPAID`, `PAID`) orders: `(user, order, quantity)`.
    pub holds: Vec<(UserId, OrderId, u32)>,
    /// `CLOSED` and `REJECTED` orders: their units must never be released again.
    pub settled: Vec<OrderId>,
}

/// The meta hash of a sale, as the admission script and the shop read it.
fn meta_fields(sale: &Sale) -> Vec<(&'static str, String)> {
    vec![
        ("created_at_ms", sale.created_at.timestamp_millis().to_string()),
        ("name", sale.name.clone()),
        ("price_cents", sale.price_cents.to_string()),
        ("stock", sale.stock.to_string()),
        ("limit", sale.per_user_limit.to_string()),
        ("starts_at_ms", sale.starts_at.timestamp_millis().to_string()),
        ("ends_at_ms", sale.ends_at.timestamp_millis().to_string()),
        ("payment_window_secs", sale.payment_window_secs.to_string()),
    ]
}

fn keys_expire_at(sale: &Sale) -> DateTime<Utc> {
    sale.ends_at + KEYS_GRACE
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Cache {
    /// Connects lazily: a container whose Redis is down still starts, and its
    /// requests fail fast through the breaker until Redis answers.
    pub fn connect(config: &Config) -> Result<Self> {
        crate::aws::install_crypto_provider();
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.redis_url.as_str())?;
        if let Some(password) = &config.redis_password {
            let settings = info.redis_settings().clone().set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)?;
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
            rebuild: Script::new(include_str!("../../../lua/rebuild.lua")),
            holders: Script::new(include_str!("../../../lua/holders.lua")),
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
        let meta = meta_fields(sale);
        let wiped: i64 = self
            .breaker
            .call(async {
                let mut warm = self.warm.prepare_invoke();
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
    async fn track_live(&self, conn: &mut ConnectionManager, sale: &Sale) -> Result<()> {
        redis::pipe()
            .zadd(LIVE_SALES_KEY, sale.id.0, keys_expire_at(sale).timestamp_millis())
            .ignore()
            .zrembyscore(LIVE_SALES_KEY, "-inf", Utc::now().timestamp_millis())
            .ignore()
            .query_async::<()>(conn)
            .await?;
        Ok(())
    }

    /// Puts the state of a sale back from MySQL's `orders` (see `lua/rebuild.lua`):
    /// only while it is missing, or always with `force`. `Some(remaining)` when rebuilt.
    pub async fn rebuild(
        &self,
        sale: &Sale,
        orders: &SaleOrders,
        pending: &[OrderMessage],
        force: bool,
    ) -> Result<Option<i64>> {
        let keys = SaleKeys::new(sale.id);
        let meta: Vec<String> = meta_fields(sale).into_iter().flat_map(|(f, v)| [f.to_string(), v]).collect();
        let pending: Vec<String> = pending
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let snapshot = serde_json::json!({
            "force": force,
            "meta": meta,
            "stock": sale.stock,
            "sold": sale.sold,
            "holds": orders.holds.iter().map(|(u, id, q)| serde_json::json!([u, id, q])).collect::<Vec<_>>(),
            "settled": orders.settled,
            "pending": pending,
        });
        let mut conn = self.conn.clone();
        let remaining: i64 = self
            .breaker
            .call(async {
                let mut rebuild = self.rebuild.prepare_invoke();
                for key in keys.all() {
                    rebuild.key(key);
                }
                let remaining = rebuild.arg(snapshot.to_string()).invoke_async(&mut conn).await?;
                if remaining >= 0 {
                    self.track_live(&mut conn, sale).await?;
                }
                Ok(remaining)
            })
            .await?;
        Ok((remaining >= 0).then_some(remaining))
    }

    /// Whether the sale's state is in Redis.
    pub async fn has_sale(&self, sale: SaleId) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.breaker.call(async { conn.exists(&keys.meta).await.map_err(Error::from) }).await
    }

    /// Records that the sale's state was found missing; returns since when (ms), the
    /// first finder's time, so every container waits on the same clock.
    pub async fn mark_lost(&self, sale: SaleId) -> Result<i64> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                let (since,): (i64,) = redis::pipe()
                    .cmd("SET")
                    .arg(&keys.lost_at)
                    .arg(Utc::now().timestamp_millis())
                    .arg("NX")
                    .arg("EX")
                    .arg(3600)
                    .ignore()
                    .get(&keys.lost_at)
                    .query_async(&mut conn)
                    .await?;
                Ok(since)
            })
            .await
    }

    /// One rebuilder at a time per sale: `true` when this caller holds the right for `ttl`.
    pub async fn claim_rebuild(&self, sale: SaleId, ttl: Duration) -> Result<bool> {
        let key = format!("{{sale:{sale}}}:rebuilding");
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                let claimed: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async(&mut conn)
                    .await?;
                Ok(claimed.is_some())
            })
            .await
    }

    /// Gives the state of an ended sale an end of life, once no order of it waits in the
    /// outbox. `true` when set.
    pub async fn expire_ended(&self, sale: &Sale) -> Result<bool> {
        let keys = SaleKeys::new(sale.id);
        let at = keys_expire_at(sale).timestamp_millis();
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
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

    /// The orders a shopper holds in a sale, when one more of `quantity` would pass the
    /// limit: what a repeat click gets back even once the sale sold out.
    pub async fn held_at_limit(&self, sale: SaleId, user: &UserId, quantity: u32) -> Result<Option<(u32, Vec<OrderId>)>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let (limit, held, ids): (Option<u32>, Option<u32>, Option<String>) = self
            .breaker
            .call(async {
                redis::pipe()
                    .hget(&keys.meta, "limit")
                    .hget(&keys.bought, user.as_str())
                    .hget(&keys.orders, user.as_str())
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        match (limit, held) {
            (Some(limit), Some(held)) if past_limit(held, quantity, limit) => {
                let ids = order_ids(&ids.unwrap_or_default())?;
                Ok(Some((limit, ids)))
            }
            _ => Ok(None),
        }
    }

    /// Who holds the sale's units and its per-user limit, when at most `max` shoppers do
    /// (see `lua/holders.lua`).
    pub async fn holders(&self, sale: SaleId, max: usize) -> Result<Option<Holders>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let reply: Option<(u32, HashMap<String, u32>, HashMap<String, String>)> = self
            .breaker
            .call(async {
                self.holders
                    .key(&keys.meta)
                    .key(&keys.bought)
                    .key(&keys.orders)
                    .arg(max)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        let Some((limit, bought, orders)) = reply else { return Ok(None) };
        let by_user = bought
            .into_iter()
            .map(|(user, units)| {
                let ids = order_ids(orders.get(&user).map_or("", String::as_str))?;
                Ok((user, (units, ids)))
            })
            .collect::<Result<_>>()?;
        Ok(Some(Holders { limit, by_user }))
    }

    /// Whether an admitted order waits in the outbox: after a Redis call that timed out,
    /// it tells whether the admission script ran.
    pub async fn in_outbox(&self, sale: SaleId, order: OrderId) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        self.breaker
            .call(async { conn.hexists(&keys.outbox, order.to_string()).await.map_err(Error::from) })
            .await
    }

    /// The ids of a sale's outbox entries.
    pub async fn outbox_ids(&self, sale: SaleId) -> Result<Vec<OrderId>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let ids: Vec<String> = self.breaker.call(async { conn.hkeys(&keys.outbox).await.map_err(Error::from) }).await?;
        ids.iter().map(|id| order_id(id)).collect()
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

    /// Runs `lua/release.lua` in `mode` for an order; its reply as is.
    async fn settle(&self, mode: &str, order: &OrderMessage, extra: &[String]) -> Result<i64> {
        let keys = SaleKeys::new(order.sale_id);
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                let mut settle = self.release.prepare_invoke();
                settle
                    .key(&keys.stock)
                    .key(&keys.bought)
                    .key(&keys.orders)
                    .key(&keys.outbox)
                    .key(&keys.outbox_at)
                    .key(&keys.released)
                    .arg(mode)
                    .arg(order.order_id.to_string())
                    .arg(order.user_id.as_str())
                    .arg(order.quantity);
                for arg in extra {
                    settle.arg(arg);
                }
                settle.invoke_async(&mut conn).await.map_err(Error::from)
            })
            .await
    }

    /// Gives a closed order's units back, once per order. `true` when this call released them.
    pub async fn release(&self, order: &Order) -> Result<bool> {
        let released = self.settle("close", &order.message(), &[]).await?;
        if released == -1 {
            tracing::warn!(sale_id = %order.sale_id, order_id = %order.order_id, "release skipped: sale not in Redis");
        }
        Ok(released >= 0)
    }

    /// Settles an order MySQL refused (see `lua/release.lua`): no unit goes back on sale
    /// for it; the stock becomes `stock - sold - outbox units MySQL lacks`. `sold` and
    /// `in_mysql` (outbox ids MySQL has) must be read under the sale's row lock.
    /// `Some(remaining)` when settled now.
    pub async fn reject(&self, order: &Order, stock: u32, sold: u32, in_mysql: &[OrderId]) -> Result<Option<i64>> {
        let extra: Vec<String> =
            [stock.to_string(), sold.to_string()].into_iter().chain(in_mysql.iter().map(OrderId::to_string)).collect();
        let remaining = self.settle("reject", &order.message(), &extra).await?;
        Ok((remaining >= 0).then_some(remaining))
    }

    /// Takes back an admission whose order could be kept nowhere durable, so the shopper
    /// can be told 503 truthfully. `false` when the order had already left the outbox
    /// for MySQL: then it stands.
    pub async fn undo_admission(&self, order: &OrderMessage) -> Result<bool> {
        Ok(self.settle("undo", order, &[]).await? != -3)
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
                let sales: Vec<u64> =
                    conn.zrangebyscore(LIVE_SALES_KEY, Utc::now().timestamp_millis(), "+inf").await?;
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

    /// Forgets outbox entries once MySQL holds their orders, in one round trip.
    pub async fn clear_outbox(&self, sale: SaleId, orders: &[OrderId]) -> Result<()> {
        if orders.is_empty() {
            return Ok(());
        }
        let keys = SaleKeys::new(sale);
        let ids: Vec<String> = orders.iter().map(OrderId::to_string).collect();
        let mut conn = self.conn.clone();
        self.breaker
            .call(async {
                redis::pipe()
                    .atomic()
                    .hdel(&keys.outbox, &ids)
                    .ignore()
                    .zrem(&keys.outbox_at, &ids)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await
    }
}
