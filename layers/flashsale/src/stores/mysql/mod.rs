//! The MySQL handle (Aurora MySQL; MariaDB locally): one pool per container, a circuit
//! breaker, IAM sign-in, the migrations, and the row mapping every capability shares.
//! The queries live with the capability they serve (`catalog`, `orders`, `recovery`).
//!
//! The database clock (`UTC_TIMESTAMP(3)`) is the one arbiter of payment windows: a
//! payment is started only while `expires_at > now`, close needs `expires_at <= now`.

pub mod iam;
pub mod schema;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::Row;

use self::iam::RdsAuth;
use crate::clock::SystemClock;
use crate::config::Config;
use chrono::{DateTime, Utc};

use crate::domain::{Currency, Order, OrderId, QueueMode, Refund, Sale, SaleId, UserId, WaitingRoom};
use crate::error::{Error, Result};
use crate::stores::breaker::Breaker;

pub struct Mysql {
    pub(crate) pool: MySqlPool,
    breaker: Breaker,
    iam: Option<IamSignIn>,
}

/// Signing in with IAM tokens: connections opened once the current token is this old
/// get a new one, well inside its 15 minutes (an open connection outlives its token).
const RENEW_TOKEN_AFTER_MS: u64 = 10 * 60 * 1000;

struct IamSignIn {
    auth: RdsAuth,
    options: MySqlConnectOptions,
    /// When the pool's current token was signed (ms); 0 before the first.
    signed_at: AtomicU64,
    renewing: tokio::sync::Mutex<()>,
}

pub(crate) const ORDER_COLUMNS: &str =
    "id, sale_id, user_id, status, quantity, amount_cents, payment_intent, created_at, expires_at, paid_at, closed_at, \
     refunded_at, refund_reason, \
     CAST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), expires_at) DIV 1000 AS SIGNED) AS remaining_ms";

pub(crate) const SALE_COLUMNS: &str =
    "id, name, description, price_cents, currency, stock, sold, per_user_limit, starts_at, ends_at, \
     payment_window_secs, queue_mode, queue_rate, queue_paused, queue_difficulty, \
     published_at IS NOT NULL AS published, created_at";

pub(crate) fn user_from(row: &MySqlRow) -> Result<UserId> {
    // A binary collation makes the column read as bytes.
    stored_user(String::from_utf8(row.try_get::<Vec<u8>, _>("user_id")?).unwrap_or_default())
}

/// A shopper id as `orders` holds it: one that is not valid is a fault of ours.
pub(crate) fn stored_user(id: String) -> Result<UserId> {
    UserId::new(id).map_err(|_| Error::Internal("bad user id in orders".into()))
}

pub(crate) fn order_from(row: &MySqlRow) -> Result<Order> {
    Ok(Order {
        order_id: OrderId(row.try_get("id")?),
        sale_id: SaleId(row.try_get("sale_id")?),
        user_id: user_from(row)?,
        status: row.try_get::<String, _>("status")?.parse()?,
        quantity: row.try_get("quantity")?,
        amount_cents: row.try_get("amount_cents")?,
        created_at: row.try_get("created_at")?,
        expires_at: Some(row.try_get("expires_at")?),
        paid_at: row.try_get("paid_at")?,
        closed_at: row.try_get("closed_at")?,
        refund: match row.try_get::<Option<DateTime<Utc>>, _>("refunded_at")? {
            Some(at) => {
                Some(Refund { at, reason: row.try_get::<Option<String>, _>("refund_reason")?.unwrap_or_default() })
            }
            None => None,
        },
        payment_intent: row.try_get("payment_intent")?,
    })
}

pub(crate) fn sale_from(row: &MySqlRow) -> Result<Sale> {
    Ok(Sale {
        id: SaleId(row.try_get("id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_cents: row.try_get("price_cents")?,
        currency: Currency::stored(row.try_get::<String, _>("currency")?),
        stock: row.try_get("stock")?,
        sold: row.try_get("sold")?,
        per_user_limit: row.try_get("per_user_limit")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        payment_window_secs: row.try_get("payment_window_secs")?,
        waiting_room: match row.try_get::<Option<String>, _>("queue_mode")? {
            Some(mode) => Some(WaitingRoom {
                mode: QueueMode::parse(&mode).ok_or_else(|| Error::Internal(format!("sales.queue_mode {mode:?}")))?,
                rate: row.try_get("queue_rate")?,
                paused: row.try_get::<i8, _>("queue_paused")? != 0,
                difficulty: row.try_get("queue_difficulty")?,
            }),
            None => None,
        },
        published: row.try_get::<i64, _>("published")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

impl Mysql {
    /// Connects lazily, so a container starts while the database is unreachable and
    /// its requests fail fast through the breaker. With `database_iam_auth`, the user
    /// of the URL signs in with IAM tokens made from `sdk`'s credentials.
    pub fn from_config(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Self> {
        let options: MySqlConnectOptions = config.mysql.url.expose().parse()?;
        if !config.mysql.iam_auth {
            return Ok(Mysql::connect_with(config, options));
        }
        let (host, port, user) = (options.get_host(), options.get_port(), options.get_username());
        let auth = RdsAuth::new(sdk, host, port, user, Arc::new(SystemClock))?;
        Ok(Mysql::connect_with_iam(config, options, auth))
    }

    /// As [`Mysql::from_config`], with the password of the URL (the local stack and tests).
    pub fn connect(config: &Config) -> Result<Self> {
        if config.mysql.iam_auth {
            return Err(Error::Config(
                "FLASHSALE_DATABASE_IAM_AUTH needs AWS credentials: use Mysql::from_config".into(),
            ));
        }
        Ok(Mysql::connect_with(config, config.mysql.url.expose().parse()?))
    }

    /// As [`Mysql::from_config`], signing in with the tokens `auth` makes.
    pub fn connect_with_iam(config: &Config, options: MySqlConnectOptions, auth: RdsAuth) -> Self {
        // The proxy asks for the token in clear text; the URL's `ssl-mode=required` (and
        // the proxy's RequireTLS) keep it inside TLS.
        let options = options.enable_cleartext_plugin(true);
        let mut db = Mysql::connect_with(config, options.clone());
        db.iam = Some(IamSignIn { auth, options, signed_at: AtomicU64::new(0), renewing: Default::default() });
        db
    }

    /// As [`Mysql::connect`], to the server and as the user `options` name.
    pub fn connect_with(config: &Config, options: MySqlConnectOptions) -> Self {
        let mut pool =
            MySqlPoolOptions::new().max_connections(config.mysql.max_connections).acquire_timeout(config.mysql.timeout);
        if let Some(set) = session_timeouts(config) {
            pool = pool.after_connect(move |conn, _| {
                let set = set.clone();
                Box::pin(async move { sqlx::Executor::execute(conn, set.as_str()).await.map(drop) })
            });
        }
        let pool = pool.connect_lazy_with(options);
        Mysql {
            pool,
            breaker: Breaker::new("mysql", config.breaker.failures, config.breaker.cooldown, config.mysql.timeout * 2),
            iam: None,
        }
    }

    /// Runs `work` through the breaker, with a current token for any connection it opens;
    /// a failure names `operation`.
    pub(crate) async fn call<T>(&self, operation: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.signed_in().await.map_err(|e| e.during(operation))?;
        self.breaker.call(work).await.map_err(|e| e.during(operation))
    }

    async fn signed_in(&self) -> Result<()> {
        let Some(iam) = &self.iam else { return Ok(()) };
        let current = |iam: &IamSignIn| {
            let at = iam.signed_at.load(Ordering::Acquire);
            at != 0 && iam.auth.now_ms() < at + RENEW_TOKEN_AFTER_MS
        };
        if current(iam) {
            return Ok(());
        }
        let _renewing = iam.renewing.lock().await;
        if !current(iam) {
            let (token, signed_at) = iam.auth.token().await?;
            self.pool.set_connect_options(iam.options.clone().password(token.expose()));
            iam.signed_at.store(signed_at, Ordering::Release);
        }
        Ok(())
    }

    /// Applies `migrations/` (see [`schema`]).
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_with(&schema::migrations()).await
    }

    /// Applies `migrator`, one process at a time. sqlx's own lock is
    /// `GET_LOCK(name, -1)` with its answer ignored, and MariaDB answers a negative
    /// timeout with NULL at once: two processes migrating an empty database together
    /// both insert the first version and one fails (1062). So the migrations run on
    /// one connection that first holds a lock of ours, with a real wait.
    pub async fn migrate_with(&self, migrator: &sqlx::migrate::Migrator) -> Result<()> {
        const LOCK: &str = "flashsale.migrate";
        const WAIT_SECS: u32 = 120;
        self.signed_in().await?;
        let mut conn = self.pool.acquire().await?;
        let held: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(?, ?)").bind(LOCK).bind(WAIT_SECS).fetch_one(&mut *conn).await?;
        if held != Some(1) {
            return Err(Error::Internal(format!("no migration lock within {WAIT_SECS}s")));
        }
        let migrated = schema::run(&mut conn, migrator).await;
        let released = sqlx::query("SELECT RELEASE_LOCK(?)").bind(LOCK).execute(&mut *conn).await;
        migrated?;
        released?;
        Ok(())
    }
}

/// The `SET` that gives each new connection the server-side timeouts of `config`, when
/// it sets any. A transaction the client gave up on (its future dropped at the client
/// timeout, its network cut) would otherwise keep a sale's hot row locked until the
/// server noticed, and every consumer would queue behind it. `/*M! */` is run by MariaDB
/// alone.
fn session_timeouts(config: &Config) -> Option<Arc<String>> {
    let (lock_wait, idle) = (config.mysql.lock_wait_secs, config.mysql.idle_transaction_secs);
    if lock_wait == 0 && idle == 0 {
        return None;
    }
    let lock_wait = if lock_wait > 0 { lock_wait.to_string() } else { "@@GLOBAL.innodb_lock_wait_timeout".into() };
    let idle = if idle > 0 { format!(" /*M! , SESSION idle_transaction_timeout = {idle} */") } else { String::new() };
    Some(Arc::new(format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}{idle}")))
}

/// Which of `ids` the `orders` table has.
pub(crate) async fn existing_ids(conn: &mut sqlx::MySqlConnection, ids: &[OrderId]) -> Result<Vec<OrderId>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!("SELECT id FROM orders WHERE id IN ({})", placeholders(chunk.len()));
        let mut query = sqlx::query_scalar::<_, u64>(&sql);
        for id in chunk {
            query = query.bind(id.0);
        }
        found.extend(query.fetch_all(&mut *conn).await?.into_iter().map(OrderId));
    }
    Ok(found)
}

pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
