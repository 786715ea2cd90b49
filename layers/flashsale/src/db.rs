//! MySQL adapter (Aurora MySQL; MariaDB locally): sales, orders, and the
//! transactions that move orders through their states.
//!
//! The database clock (`UTC_TIMESTAMP(3)`) is the one arbiter of payment windows:
//! pay needs `expires_at > now`, close needs `expires_at <= now`, so exactly one wins.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::Row;

use crate::breaker::Breaker;
use crate::cache::SaleOrders;
use crate::config::Config;
use crate::domain::{NewSale, Order, OrderId, OrderStatus, Sale, SaleId, UserId};
use crate::error::{Error, Result};
use crate::messages::OrderMessage;
use crate::rds_auth::RdsAuth;
use crate::snowflake::SystemClock;

pub struct Db {
    pool: MySqlPool,
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

/// Which orders a page of orders holds: every condition given must hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct OrderFilter<'a> {
    pub sale: Option<SaleId>,
    pub user: Option<&'a UserId>,
    pub status: Option<OrderStatus>,
}

/// Orders and units per status.
pub type StatusCounts = HashMap<OrderStatus, (u64, u64)>;

/// What persisting an order message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Persisted {
    /// Inserted as `UNPAID`; its stock is counted in `sales.sold`.
    Accepted(Order),
    /// Refused, recorded `REJECTED`: the `sold + q <= stock` guard had no room for it, or
    /// its shopper already holds the limit. No unit of it exists in MySQL.
    Rejected(Order),
    /// A redelivery: the order was already there, nothing changed.
    Duplicate(Order),
}

/// What a close attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Closing {
    /// Closed now: `UNPAID` → `CLOSED` and its units taken off `sales.sold`.
    Closed(Order),
    /// Closed before (a redelivery, or a crash before the Redis release).
    AlreadyClosed(Order),
    /// Still payable for this long by the database clock.
    NotDue { order: Order, remaining_ms: i64 },
    /// Paid or rejected: nothing to close.
    Settled(Order),
    Missing,
}

const ORDER_COLUMNS: &str = "id, sale_id, user_id, status, quantity, amount_cents, created_at, expires_at, paid_at, closed_at, \
     CAST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), expires_at) DIV 1000 AS SIGNED) AS remaining_ms";

const SALE_COLUMNS: &str = "id, name, description, price_cents, stock, sold, per_user_limit, starts_at, ends_at, \
     payment_window_secs, published_at IS NOT NULL AS published, created_at";

fn user_from(row: &MySqlRow) -> Result<UserId> {
    // A binary collation makes the column read as bytes.
    stored_user(String::from_utf8(row.try_get::<Vec<u8>, _>("user_id")?).unwrap_or_default())
}

/// A shopper id as `orders` holds it: one that is not valid is a fault of ours.
fn stored_user(id: String) -> Result<UserId> {
    UserId::new(id).map_err(|_| Error::Internal("bad user id in orders".into()))
}

fn order_from(row: &MySqlRow) -> Result<Order> {
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
    })
}

fn sale_from(row: &MySqlRow) -> Result<Sale> {
    Ok(Sale {
        id: SaleId(row.try_get("id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_cents: row.try_get("price_cents")?,
        stock: row.try_get("stock")?,
        sold: row.try_get("sold")?,
        per_user_limit: row.try_get("per_user_limit")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        payment_window_secs: row.try_get("payment_window_secs")?,
        published: row.try_get::<i64, _>("published")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Connects lazily, so a container starts while the database is unreachable and
    /// its requests fail fast through the breaker. With `database_iam_auth`, the user
    /// of the URL signs in with IAM tokens made from `sdk`'s credentials.
    pub fn from_config(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Self> {
        let options: MySqlConnectOptions = config.database_url.parse()?;
        if !config.database_iam_auth {
            return Ok(Db::connect_with(config, options));
        }
        let (host, port, user) = (options.get_host(), options.get_port(), options.get_username());
        let auth = RdsAuth::new(sdk, host, port, user, Arc::new(SystemClock))?;
        Ok(Db::connect_with_iam(config, options, auth))
    }

    /// As [`Db::from_config`], with the password of the URL (the local stack and tests).
    pub fn connect(config: &Config) -> Result<Self> {
        if config.database_iam_auth {
            return Err(Error::Config("FLASHSALE_DATABASE_IAM_AUTH needs AWS credentials: use Db::from_config".into()));
        }
        Ok(Db::connect_with(config, config.database_url.parse()?))
    }

    /// As [`Db::from_config`], signing in with the tokens `auth` makes.
    pub fn connect_with_iam(config: &Config, options: MySqlConnectOptions, auth: RdsAuth) -> Self {
        // The proxy asks for the token in clear text; the URL's `ssl-mode=required` (and
        // the proxy's RequireTLS) keep it inside TLS.
        let options = options.enable_cleartext_plugin(true);
        let mut db = Db::connect_with(config, options.clone());
        db.iam = Some(IamSignIn { auth, options, signed_at: AtomicU64::new(0), renewing: Default::default() });
        db
    }

    /// As [`Db::connect`], to the server and as the user `options` name.
    pub fn connect_with(config: &Config, options: MySqlConnectOptions) -> Self {
        let pool = MySqlPoolOptions::new()
            .max_connections(config.db_max_connections)
            .acquire_timeout(config.db_timeout)
            .connect_lazy_with(options);
        Db {
            pool,
            breaker: Breaker::new("mysql", config.breaker_failures, config.breaker_cooldown, config.db_timeout * 2),
            iam: None,
        }
    }

    /// Runs `work` through the breaker, with a current token for any connection it opens.
    async fn call<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.signed_in().await?;
        self.breaker.call(work).await
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

    /// Applies `migrations/`, one process at a time. sqlx's own lock is
    /// `GET_LOCK(name, -1)` with its answer ignored, and MariaDB answers a negative
    /// timeout with NULL at once: two processes migrating an empty database together
    /// both insert the first version and one fails (1062). So the migrations run on
    /// one connection that first holds a lock of ours, with a real wait.
    pub async fn migrate(&self) -> Result<()> {
        const LOCK: &str = "flashsale.migrate";
        const WAIT_SECS: u32 = 120;
        self.signed_in().await?;
        let mut conn = self.pool.acquire().await?;
        let held: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(LOCK)
            .bind(WAIT_SECS)
            .fetch_one(&mut *conn)
            .await?;
        if held != Some(1) {
            return Err(Error::Internal(format!("no migration lock within {WAIT_SECS}s")));
        }
        let migrated = sqlx::migrate!("../../migrations").run_direct(&mut *conn).await;
        let released = sqlx::query("SELECT RELEASE_LOCK(?)").bind(LOCK).execute(&mut *conn).await;
        migrated?;
        released?;
        Ok(())
    }

    pub async fn create_sale(&self, new: &NewSale) -> Result<Sale> {
        let id = self
            .call(async {
                let done = sqlx::query(
                    "INSERT INTO sales (name, description, price_cents, stock, per_user_limit, starts_at, ends_at, \
                     payment_window_secs, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))",
                )
                .bind(&new.name)
                .bind(&new.description)
                .bind(new.price_cents)
                .bind(new.stock)
                .bind(new.per_user_limit)
                // As DATETIME: sqlx sends a DateTime<Utc> as a TIMESTAMP, which MariaDB
                // turns into NULL past 2038-01-19, and the sale would not be stored.
                .bind(new.starts_at.naive_utc())
                .bind(new.ends_at.naive_utc())
                .bind(new.payment_window_secs)
                .execute(&self.pool)
                .await?;
                Ok(SaleId(done.last_insert_id()))
            })
            .await?;
        self.sale(id).await?.ok_or(Error::Internal("sale vanished after insert".into()))
    }

    pub async fn sale(&self, id: SaleId) -> Result<Option<Sale>> {
        self.call(async {
            let row = sqlx::query(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = ?"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(sale_from).transpose()
        })
        .await
    }

    /// Sales whose window has not ended, for reconcile and the pages.
    pub async fn open_sales(&self) -> Result<Vec<Sale>> {
        self.call(async {
            let rows = sqlx::query(&format!(
                "SELECT {SALE_COLUMNS} FROM sales WHERE published_at IS NOT NULL \
                 AND ends_at > UTC_TIMESTAMP(3) - INTERVAL 1 DAY ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(sale_from).collect()
        })
        .await
    }

    /// Up to `limit` sales, newest first, older than `before` when given, each with its
    /// orders and units per status.
    pub async fn sales_page(&self, before: Option<SaleId>, limit: u32) -> Result<Vec<(Sale, StatusCounts)>> {
        self.call(async {
            let rows = sqlx::query(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE id < ? ORDER BY id DESC LIMIT ?"))
                .bind(before.map_or(u64::MAX, |id| id.0))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            let sales: Vec<Sale> = rows.iter().map(sale_from).collect::<Result<_>>()?;
            if sales.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT sale_id, status, CAST(COUNT(*) AS SIGNED) AS orders, CAST(SUM(quantity) AS SIGNED) AS units \
                 FROM orders WHERE sale_id IN ({}) GROUP BY sale_id, status",
                placeholders(sales.len())
            );
            let mut query = sqlx::query(&sql);
            for sale in &sales {
                query = query.bind(sale.id.0);
            }
            let mut counts: HashMap<SaleId, StatusCounts> = HashMap::new();
            for row in query.fetch_all(&self.pool).await? {
                let (orders, units): (i64, i64) = (row.try_get("orders")?, row.try_get("units")?);
                counts
                    .entry(SaleId(row.try_get("sale_id")?))
                    .or_default()
                    .insert(row.try_get::<String, _>("status")?.parse()?, (orders as u64, units as u64));
            }
            Ok(sales
                .into_iter()
                .map(|sale| {
                    let sale_counts = counts.remove(&sale.id).unwrap_or_default();
                    (sale, sale_counts)
                })
                .collect())
        })
        .await
    }

    /// Up to `limit` orders matching `filter`, newest first (ids grow with time), older
    /// than `before` when given.
    pub async fn orders_page(&self, filter: OrderFilter<'_>, before: Option<OrderId>, limit: u32) -> Result<Vec<Order>> {
        self.call(async {
            let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id < ?");
            for (condition, given) in [
                (" AND sale_id = ?", filter.sale.is_some()),
                (" AND user_id = ?", filter.user.is_some()),
                (" AND status = ?", filter.status.is_some()),
            ] {
                if given {
                    sql.push_str(condition);
                }
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            let mut query = sqlx::query(&sql).bind(before.map_or(u64::MAX, |id| id.0));
            if let Some(sale) = filter.sale {
                query = query.bind(sale.0);
            }
            if let Some(user) = filter.user {
                query = query.bind(user.as_str());
            }
            if let Some(status) = filter.status {
                query = query.bind(status.to_string());
            }
            query.bind(limit).fetch_all(&self.pool).await?.iter().map(order_from).collect()
        })
        .await
    }

    pub async fn mark_published(&self, id: SaleId) -> Result<()> {
        self.call(async {
            sqlx::query("UPDATE sales SET published_at = COALESCE(published_at, UTC_TIMESTAMP(3)) WHERE id = ?")
                .bind(id.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn order(&self, id: OrderId) -> Result<Option<Order>> {
        self.call(self.fetch_order(id)).await
    }

    async fn fetch_order(&self, id: OrderId) -> Result<Option<Order>> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from).transpose()
    }

    /// Writes a batch of admitted orders of one sale in one transaction, under the
    /// sale's row lock: orders MySQL has already are redeliveries and change nothing;
    /// the new ones are taken in turn while the stock and each shopper's limit have room
    /// (see [`fitting`]), the rest recorded `REJECTED`; all of them go in with one insert,
    /// and the units of those that fit onto `sales.sold` with one guarded update. One
    /// outcome per message, in the batch's order. A failure writes nothing of the batch.
    pub async fn persist_orders(&self, sale: SaleId, batch: &[OrderMessage]) -> Result<Vec<Persisted>> {
        if batch.iter().any(|m| m.sale_id != sale) {
            return Err(Error::Internal(format!("a batch of sale {sale} holds another sale's order")));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.call(self.persist_orders_tx(sale, batch)).await
    }

    async fn persist_orders_tx(&self, sale: SaleId, batch: &[OrderMessage]) -> Result<Vec<Persisted>> {
        let mut tx = self.pool.begin().await?;
        // The sale's row lock orders the batches of one sale, so the holdings and the
        // orders read below include every batch committed before this one.
        let row = sqlx::query(
            "SELECT price_cents, payment_window_secs, per_user_limit, stock, sold FROM sales WHERE id = ? FOR UPDATE",
        )
        .bind(sale.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("sale"))?;
        let price: u64 = row.try_get("price_cents")?;
        let window: u32 = row.try_get("payment_window_secs")?;
        let limit: u32 = row.try_get("per_user_limit")?;
        let room = row.try_get::<u32, _>("stock")?.saturating_sub(row.try_get("sold")?);

        let ids: Vec<OrderId> = batch.iter().map(|m| m.order_id).collect();
        let stored: HashSet<OrderId> = existing_ids(&mut tx, &ids).await?.into_iter().collect();
        // A message twice in one batch is its own redelivery.
        let mut seen = HashSet::new();
        let is_new: Vec<bool> = batch.iter().map(|m| !stored.contains(&m.order_id) && seen.insert(m.order_id)).collect();
        let fresh: Vec<&OrderMessage> = batch.iter().zip(&is_new).filter(|(_, new)| **new).map(|(m, _)| m).collect();
        let mut fits = Vec::new();
        if !fresh.is_empty() {
            // Redis checks the limit too, but a Redis that lost its state (or a rebuild
            // racing a late message) cannot let a shopper hold more than the limit here.
            let shoppers: Vec<&str> = fresh.iter().map(|m| m.user_id.as_str()).collect::<HashSet<_>>().into_iter().collect();
            let sql = format!(
                "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
                 WHERE sale_id = ? AND status IN ('UNPAID', 'PAID') AND user_id IN ({}) GROUP BY user_id",
                placeholders(shoppers.len())
            );
            let mut held_query = sqlx::query_as::<_, (String, i64)>(&sql).bind(sale.0);
            for shopper in &shoppers {
                held_query = held_query.bind(*shopper);
            }
            let held: HashMap<String, u64> =
                held_query.fetch_all(&mut *tx).await?.into_iter().map(|(user, units)| (user, units as u64)).collect();
            fits = fitting(room, limit, held, fresh.iter().map(|m| (m.user_id.as_str(), m.quantity)));

            let sql = format!(
                "INSERT INTO orders (id, sale_id, user_id, quantity, amount_cents, status, created_at, expires_at) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL ? SECOND)"; fresh.len()].join(", ")
            );
            let mut insert = sqlx::query(&sql);
            for (m, fit) in fresh.iter().zip(&fits) {
                // A refused order has no payment window: it expires as it is created.
                let (status, window) = if *fit { ("UNPAID", window) } else { ("REJECTED", 0) };
                insert = insert
                    .bind(m.order_id.0)
                    .bind(sale.0)
                    .bind(m.user_id.as_str())
                    .bind(m.quantity)
                    .bind(price.saturating_mul(u64::from(m.quantity)))
                    .bind(status)
                    .bind(window);
            }
            insert.execute(&mut *tx).await?;
            let units: u64 = fresh.iter().zip(&fits).filter(|(_, fit)| **fit).map(|(m, _)| u64::from(m.quantity)).sum();
            // The last line against overselling, whatever the arithmetic above says.
            if units > 0
                && sqlx::query("UPDATE sales SET sold = sold + ? WHERE id = ? AND sold + ? <= stock")
                    .bind(units)
                    .bind(sale.0)
                    .bind(units)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    != 1
            {
                return Err(Error::Internal(format!("the stock guard of sale {sale} refused {units} units that fit")));
            }
        }
        tx.commit().await?;

        let orders: HashMap<OrderId, Order> = self.orders_by_id(&ids).await?.into_iter().map(|o| (o.order_id, o)).collect();
        let mut fits = fits.into_iter();
        batch
            .iter()
            .zip(is_new)
            .map(|(m, new)| {
                let order = orders
                    .get(&m.order_id)
                    .cloned()
                    .ok_or_else(|| Error::Internal(format!("order {} vanished after commit", m.order_id)))?;
                Ok(match (new, new && fits.next() == Some(true)) {
                    (true, true) => Persisted::Accepted(order),
                    (true, false) => Persisted::Rejected(order),
                    (false, _) => Persisted::Duplicate(order),
                })
            })
            .collect()
    }

    async fn orders_by_id(&self, ids: &[OrderId]) -> Result<Vec<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id IN ({})", placeholders(ids.len()));
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.0);
        }
        query.fetch_all(&self.pool).await?.iter().map(order_from).collect()
    }

    /// Locks a sale's row until the returned guard is released: no order of the sale is
    /// persisted or closed meanwhile, so what is read through the guard stays true while
    /// Redis is set from it.
    pub async fn lock_sale(&self, id: SaleId) -> Result<Option<LockedSale>> {
        self.call(async {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = ? FOR UPDATE"))
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some(row) => Ok(Some(LockedSale { sale: sale_from(&row)?, tx })),
                None => Ok(None),
            }
        })
        .await
    }

    /// Unpaid orders of a sale whose payment window ended more than `late` ago: their
    /// close message was lost or is stuck. Oldest first.
    pub async fn overdue_unpaid(&self, sale: SaleId, late: std::time::Duration, limit: u32) -> Result<Vec<OrderId>> {
        self.call(async {
            let ids: Vec<u64> = sqlx::query_scalar(
                "SELECT id FROM orders WHERE sale_id = ? AND status = 'UNPAID' \
                 AND expires_at <= UTC_TIMESTAMP(3) - INTERVAL ? SECOND ORDER BY expires_at LIMIT ?",
            )
            .bind(sale.0)
            .bind(late.as_secs())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(ids.into_iter().map(OrderId).collect())
        })
        .await
    }

    /// Pays an order: one conditional update, so a payment a moment after the window
    /// loses to the close and the unit is never sold twice. Paying a paid order again
    /// answers with the order (a retried click is not an error).
    pub async fn pay(&self, id: OrderId, user: &UserId) -> Result<Order> {
        self.call(async {
            sqlx::query(
                "UPDATE orders SET status = 'PAID', paid_at = UTC_TIMESTAMP(3) WHERE id = ? AND user_id = ? \
                 AND status = 'UNPAID' AND expires_at > UTC_TIMESTAMP(3)",
            )
            .bind(id.0)
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
            let order = self.fetch_order(id).await?.filter(|o| &o.user_id == user).ok_or(Error::NotFound("order"))?;
            match order.status {
                OrderStatus::Paid => Ok(order),
                OrderStatus::Unpaid => Err(Error::NotPayable {
                    status: order.status,
                    reason: "the payment window has passed",
                }),
                status => Err(Error::NotPayable { status, reason: "the order is no longer open" }),
            }
        })
        .await
    }

    /// Closes an unpaid order whose window has passed (by the database clock) and
    /// takes its units off `sales.sold`, in one transaction.
    pub async fn close_if_due(&self, id: OrderId) -> Result<Closing> {
        self.call(async {
            let mut tx = self.pool.begin().await?;
            let closed = sqlx::query(
                "UPDATE orders SET status = 'CLOSED', closed_at = UTC_TIMESTAMP(3) \
                 WHERE id = ? AND status = 'UNPAID' AND expires_at <= UTC_TIMESTAMP(3)",
            )
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if closed {
                sqlx::query(
                    "UPDATE sales JOIN orders ON orders.sale_id = sales.id \
                     SET sales.sold = sales.sold - orders.quantity WHERE orders.id = ?",
                )
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else { return Ok(Closing::Missing) };
            let order = order_from(&row)?;
            Ok(match order.status {
                OrderStatus::Closed if closed => Closing::Closed(order),
                OrderStatus::Closed => Closing::AlreadyClosed(order),
                OrderStatus::Unpaid => {
                    let remaining_ms = row.try_get::<i64, _>("remaining_ms")?.max(1);
                    Closing::NotDue { order, remaining_ms }
                }
                _ => Closing::Settled(order),
            })
        })
        .await
    }

    /// Orders and units per status for one sale.
    pub async fn status_counts(&self, sale: SaleId) -> Result<HashMap<OrderStatus, (u64, u64)>> {
        self.call(async {
            let rows = sqlx::query(
                "SELECT status, CAST(COUNT(*) AS SIGNED) AS orders, CAST(SUM(quantity) AS SIGNED) AS units \
                 FROM orders WHERE sale_id = ? GROUP BY status",
            )
            .bind(sale.0)
            .fetch_all(&self.pool)
            .await?;
            let mut counts = HashMap::new();
            for row in rows {
                let status: OrderStatus = row.try_get::<String, _>("status")?.parse()?;
                let orders: i64 = row.try_get("orders")?;
                let units: i64 = row.try_get("units")?;
                counts.insert(status, (orders as u64, units as u64));
            }
            Ok(counts)
        })
        .await
    }

    /// Up to `max` shoppers whose live (UNPAID or PAID) orders of a sale hold more than
    /// `limit` units, with the units they hold.
    pub async fn shoppers_above_limit(&self, sale: SaleId, limit: u32, max: u32) -> Result<Vec<(UserId, u64)>> {
        self.call(async {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
                 WHERE sale_id = ? AND status IN ('UNPAID', 'PAID') GROUP BY user_id HAVING SUM(quantity) > ? LIMIT ?",
            )
            .bind(sale.0)
            .bind(limit)
            .bind(max)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter().map(|(user, units)| Ok((stored_user(user)?, units as u64))).collect()
        })
        .await
    }

    /// The ids of every order of a sale, whatever its status.
    pub async fn order_ids(&self, sale: SaleId) -> Result<Vec<OrderId>> {
        self.call(async {
            let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM orders WHERE sale_id = ?")
                .bind(sale.0)
                .fetch_all(&self.pool)
                .await?;
            Ok(ids.into_iter().map(OrderId).collect())
        })
        .await
    }
}

/// A sale read under its row lock (see [`Db::lock_sale`]). Dropping it without
/// [`LockedSale::release`] rolls back, which releases the lock too.
pub struct LockedSale {
    pub sale: Sale,
    tx: sqlx::Transaction<'static, sqlx::MySql>,
}

impl LockedSale {
    /// The sale's orders: live ones with their holders, settled ones by id.
    pub async fn orders(&mut self) -> Result<SaleOrders> {
        let rows = sqlx::query("SELECT id, user_id, quantity, status FROM orders WHERE sale_id = ?")
            .bind(self.sale.id.0)
            .fetch_all(&mut *self.tx)
            .await?;
        let mut orders = SaleOrders::default();
        for row in rows {
            let id = OrderId(row.try_get("id")?);
            match row.try_get::<String, _>("status")?.parse()? {
                OrderStatus::Unpaid | OrderStatus::Paid => orders.holds.push((user_from(&row)?, id, row.try_get("quantity")?)),
                _ => orders.settled.push(id),
            }
        }
        Ok(orders)
    }

    /// Which of `ids` MySQL has.
    pub async fn existing(&mut self, ids: &[OrderId]) -> Result<Vec<OrderId>> {
        existing_ids(&mut self.tx, ids).await
    }

    pub async fn release(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Which of `ids` the `orders` table has.
async fn existing_ids(conn: &mut sqlx::MySqlConnection, ids: &[OrderId]) -> Result<Vec<OrderId>> {
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

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Which orders of a batch fit, taken in turn: each needs room in the units left
/// (`room`) and must keep its shopper within `limit`, counting what the shopper holds
/// already (`held`) and what the batch gave them before it. An order that does not fit
/// takes nothing, so a later, smaller one may still fit.
pub fn fitting<'a>(
    mut room: u32,
    limit: u32,
    mut held: HashMap<String, u64>,
    orders: impl IntoIterator<Item = (&'a str, u32)>,
) -> Vec<bool> {
    orders
        .into_iter()
        .map(|(shopper, quantity)| {
            let holds = held.entry(shopper.to_string()).or_default();
            let fits = quantity <= room && *holds + u64::from(quantity) <= u64::from(limit);
            if fits {
                room -= quantity;
                *holds += u64::from(quantity);
            }
            fits
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_orders_in_turn_while_stock_and_limits_have_room() {
        let held = HashMap::from([("carol".to_string(), 1)]);
        let orders = [("alice", 2), ("bob", 2), ("carol", 1), ("alice", 1), ("dave", 1), ("erin", 1)];
        // 4 units left, limit 2: alice and bob take 2 each; carol already holds 1 but
        // the stock is gone; alice is at her limit; dave and erin find no room.
        assert_eq!(fitting(4, 2, held.clone(), orders), [true, true, false, false, false, false]);
        // With room to spare only the limits refuse: carol may add one, alice may not.
        assert_eq!(fitting(100, 2, held, orders), [true, true, true, false, true, true]);
    }

    #[test]
    fn a_refused_order_leaves_its_room_to_a_later_smaller_one() {
        assert_eq!(fitting(1, 5, HashMap::new(), [("a", 3), ("b", 1), ("c", 1)]), [false, true, false]);
        assert_eq!(fitting(0, 5, HashMap::new(), [("a", 1)]), [false]);
    }
}
