//! The Redis handle (ElastiCache): one connection manager per container, the Lua
//! scripts of `lua/`, a circuit breaker, and the key layout of a sale. The operations
//! live with the capability they serve (`catalog`, `admission`, `outbox`, `orders`,
//! `recovery`).
//!
//! Redis holds state that must not be dropped (admissions, the outbox), so it is a
//! store, not a cache. Every key of a sale carries the hash tag `{sale:ID}`, so one
//! script can touch them all on a cluster.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncConnectionConfig;
use redis::Script;

use crate::config::{Config, RedisUser};
use crate::domain::{OrderId, OrderMessage, SaleId};
use crate::error::{Error, Result};
use crate::stores::breaker::Breaker;

/// Published sales by the time (ms) their keys expire, for lookups that start from an
/// order id alone: they look only at sales whose keys still live.
pub(crate) const LIVE_SALES_KEY: &str = "flashsale:live_sales";

pub struct SaleKeys {
    pub meta: String,
    pub stock: String,
    pub bought: String,
    pub orders: String,
    pub outbox: String,
    pub outbox_at: String,
    pub released: String,
    /// Orders a consumer has claimed for persistence: an undo leaves them standing.
    pub persisting: String,
    /// When this sale's state was first found missing (ms), while it is rebuilt.
    pub lost_at: String,
    /// The waiting room's places: user -> `e` (an early joiner of a shuffled room) or
    /// their number among the later joiners.
    pub queue: String,
    /// A shuffled room's early joiners by the draw made at their join.
    pub queue_early: String,
    /// The passes spent: pass id -> the order it bought.
    pub passes: String,
    /// Followed by a proof's nonce: the key that spends it (it expires with the proof).
    pub proof_prefix: String,
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
            persisting: format!("{tag}:persisting"),
            lost_at: format!("{tag}:lost_at"),
            queue: format!("{tag}:queue"),
            queue_early: format!("{tag}:queue_early"),
            passes: format!("{tag}:passes"),
            proof_prefix: format!("{tag}:proof:"),
        }
    }

    pub fn all(&self) -> [&str; 12] {
        [
            &self.meta,
            &self.stock,
            &self.bought,
            &self.orders,
            &self.outbox,
            &self.outbox_at,
            &self.released,
            &self.persisting,
            &self.lost_at,
            &self.queue,
            &self.queue_early,
            &self.passes,
        ]
    }
}

/// A claim held (see [`Redis::claim`]): the key, and the token that tells this holder's
/// claim from a later holder's once it has lapsed.
#[derive(Debug)]
pub struct Claim {
    key: String,
    token: String,
}

/// Idle admission connections kept for the next admissions; more are closed.
const IDLE_ADMITTING: usize = 64;

pub struct Redis {
    pub(crate) conn: ConnectionManager,
    /// The admission script's connections, each lent to one admission at a time:
    /// `WAIT` blocks its connection until the replicas answer (or it times out), so a
    /// lagging replica holds up only the admission that waits, never calls queued
    /// behind it on a shared connection. On Lambda (one request per container) this is
    /// one connection.
    client: redis::Client,
    admitting_config: AsyncConnectionConfig,
    idle_admitting: Mutex<Vec<MultiplexedConnection>>,
    pub(crate) scripts: Scripts,
    breaker: Breaker,
}

/// The Lua scripts of `lua/`, called by hash (EVALSHA; on a server without it, SCRIPT LOAD and again).
pub(crate) struct Scripts {
    pub(crate) admit: Script,
    pub(crate) release: Script,
    pub(crate) warm: Script,
    pub(crate) rebuild: Script,
    pub(crate) holders: Script,
    pub(crate) present: Script,
    pub(crate) claim: Script,
    pub(crate) lost: Script,
    pub(crate) persisting: Script,
    pub(crate) clear: Script,
    pub(crate) join: Script,
    pub(crate) queue_control: Script,
    pub(crate) provider_budget: Script,
    pub(crate) currency: Script,
}

/// A script of `lua/` that reads or writes a sale's state, after the epoch check it shares.
macro_rules! sale_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../../../../lua/epoch.lua"),
            include_str!(concat!("../../../../lua/", $file))
        ))
    };
}

/// An order id as Redis keeps it. Anything else there is a fault of ours, not a
/// request for an order that does not exist.
pub(crate) fn order_id(text: &str) -> Result<OrderId> {
    text.parse().map_err(|e| Error::Internal(format!("Redis holds {text:?} as an order id: {e}")))
}

/// Order ids as Redis keeps them, space-separated.
pub(crate) fn order_ids(text: &str) -> Result<Vec<OrderId>> {
    text.split_whitespace().map(order_id).collect()
}

pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Redis {
    /// Connects lazily: a container whose Redis is down still starts, and its
    /// requests fail fast through the breaker until Redis answers.
    /// Signs in as `user` when given (the function's own, read at init), else as the
    /// URL says.
    pub fn connect(config: &Config, user: Option<&RedisUser>) -> Result<Self> {
        crate::stores::aws::install_crypto_provider();
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.redis.url.expose())?;
        if let Some(user) = user {
            let mut settings = info.redis_settings().clone().set_password(user.password.expose());
            if let Some(name) = &user.username {
                settings = settings.set_username(name);
            }
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis.timeout))
            .set_response_timeout(Some(config.redis.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let admitting_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.redis.timeout))
            .set_response_timeout(Some(config.redis.timeout));
        Ok(Redis {
            conn: client.get_connection_manager_lazy(manager_config)?,
            client,
            admitting_config,
            idle_admitting: Mutex::new(Vec::new()),
            scripts: Scripts {
                admit: sale_script!("admit.lua"),
                release: sale_script!("release.lua"),
                warm: sale_script!("warm.lua"),
                rebuild: sale_script!("rebuild.lua"),
                holders: Script::new(include_str!("../../../../lua/holders.lua")),
                present: sale_script!("present.lua"),
                claim: Script::new(include_str!("../../../../lua/claim.lua")),
                lost: sale_script!("lost.lua"),
                persisting: Script::new(include_str!("../../../../lua/persisting.lua")),
                clear: Script::new(include_str!("../../../../lua/clear.lua")),
                join: Script::new(include_str!("../../../../lua/join.lua")),
                queue_control: Script::new(include_str!("../../../../lua/queue_control.lua")),
                provider_budget: Script::new(include_str!("../../../../lua/provider_budget.lua")),
                currency: Script::new(include_str!("../../../../lua/currency.lua")),
            },
            breaker: Breaker::new("redis", config.breaker.failures, config.breaker.cooldown, config.redis.timeout * 2),
        })
    }

    /// An admission connection of its own for the caller: an idle one, or a new one.
    pub(crate) async fn lend_admitting(&self) -> redis::RedisResult<MultiplexedConnection> {
        let idle = self.idle_admitting.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.client.get_multiplexed_async_connection_with_config(&self.admitting_config).await,
        }
    }

    /// Takes back a lent admission connection that served its caller without an error.
    pub(crate) fn give_back_admitting(&self, conn: MultiplexedConnection) {
        let mut idle = self.idle_admitting.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_ADMITTING {
            idle.push(conn);
        }
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs `work` under the breaker; a failure names `operation`.
    pub(crate) async fn call<T>(&self, operation: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.breaker.call(work).await.map_err(|e| e.during(operation))
    }

    /// One holder at a time: the claim when this caller now holds `key` for `ttl`.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Claim>> {
        let token = format!("{:016x}", rand::random::<u64>());
        let mut conn = self.conn.clone();
        self.call("claim", async {
            let claimed: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await?;
            Ok(claimed.map(|_| Claim { key: key.to_string(), token }))
        })
        .await
    }

    /// Holds a claim `ttl` longer from now; `false` when it lapsed and another caller
    /// holds it now.
    pub async fn renew(&self, claim: &Claim, ttl: Duration) -> Result<bool> {
        self.settle_claim("renew claim", claim, Some(ttl)).await
    }

    /// Gives up a claim before its time; `false` when it lapsed and another caller holds
    /// it now (theirs stays).
    pub async fn give_up(&self, claim: Claim) -> Result<bool> {
        self.settle_claim("give up claim", &claim, None).await
    }

    async fn settle_claim(&self, operation: &'static str, claim: &Claim, renew: Option<Duration>) -> Result<bool> {
        let mut conn = self.conn.clone();
        self.call(operation, async {
            let mut settle = self.scripts.claim.key(&claim.key);
            settle.arg(&claim.token);
            if let Some(ttl) = renew {
                settle.arg(ttl.as_millis() as u64);
            }
            let held: i64 = settle.invoke_async(&mut conn).await?;
            Ok(held == 1)
        })
        .await
    }

    /// Runs `lua/release.lua` in `mode` for an order; its reply as is.
    pub(crate) async fn run_release(&self, mode: &str, order: &OrderMessage, extra: &[String]) -> Result<i64> {
        let keys = SaleKeys::new(order.sale_id);
        let mut conn = self.conn.clone();
        self.call("release", async {
            let mut release = self.scripts.release.prepare_invoke();
            release
                .key(&keys.stock)
                .key(&keys.bought)
                .key(&keys.orders)
                .key(&keys.outbox)
                .key(&keys.outbox_at)
                .key(&keys.released)
                .key(&keys.meta)
                .key(&keys.persisting)
                .arg(mode)
                .arg(order.order_id.to_string())
                .arg(order.user_id.as_str())
                .arg(order.quantity);
            for arg in extra {
                release.arg(arg);
            }
            release.invoke_async(&mut conn).await.map_err(Error::from)
        })
        .await
    }
}
