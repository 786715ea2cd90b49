//! Rebuilding a sale's Redis state from MySQL, the truth, read under the sale's row
//! lock so no order lands or closes in between (`lua/rebuild.lua`).

use crate::catalog::live::meta_fields;
use crate::domain::{OrderId, OrderMessage, OrderStatus, Sale, SaleId, UserId};
use crate::error::{Error, Result};
use crate::stores::mysql::{existing_ids, sale_from, user_from, Mysql, SALE_COLUMNS};
use crate::stores::redis::{Redis, SaleKeys};
use sqlx::Row;

/// Rebuilds a sale's Redis state from MySQL, read under the sale's row lock so no order
/// lands or closes in between. `kept` are admitted orders kept outside Redis (the
/// pending-orders table), put back in its outbox. Without `force` it does nothing while the state is present.
pub async fn rebuild(
    mysql: &Mysql,
    redis: &Redis,
    sale: SaleId,
    kept: &[OrderMessage],
    force: bool,
) -> Result<Option<i64>> {
    let Some(mut locked) = mysql.lock_sale(sale).await? else {
        return Err(Error::NotFound("sale"));
    };
    let orders = locked.orders().await?;
    let remaining = redis.rebuild(&locked.sale, &orders, kept, force).await?;
    locked.release().await?;
    if let Some(remaining) = remaining {
        tracing::warn!(sale_id = %sale, remaining, holds = orders.holds.len(), "sale state rebuilt in Redis from MySQL");
    }
    Ok(remaining)
}

/// A sale's orders as MySQL has them, for rebuilding its Redis state.
#[derive(Clone, Debug, Default)]
pub struct SaleOrders {
    /// Orders that hold their units ([`Order::holds_units`](crate::domain::Order::holds_units):
    /// `UNPAID`, `PAID`, `DISPUTED`, refunded at the provider): `(user, order, quantity)`.
    pub holds: Vec<(UserId, OrderId, u32)>,
    /// Orders whose hold ended (`CLOSED`, `REJECTED`, refunded after the close): their
    /// units must never be released again.
    pub settled: Vec<OrderId>,
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
        let rows = sqlx::query("SELECT id, user_id, quantity, status, paid_at FROM orders WHERE sale_id = ?")
            .bind(self.sale.id.0)
            .fetch_all(&mut *self.tx)
            .await?;
        let mut orders = SaleOrders::default();
        for row in rows {
            let id = OrderId(row.try_get("id")?);
            let status: OrderStatus = row.try_get::<String, _>("status")?.parse()?;
            let paid = row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("paid_at")?.is_some();
            // A disputed or provider-refunded order keeps its unit and its shopper's
            // allowance: leaving it out would put both on sale again.
            if status.holds_units(paid) {
                orders.holds.push((user_from(&row)?, id, row.try_get("quantity")?))
            } else {
                orders.settled.push(id)
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

impl Mysql {
    /// Locks a sale's row until the returned guard is released: no order of the sale is
    /// persisted or closed meanwhile, so what is read through the guard stays true while
    /// Redis is set from it.
    pub async fn lock_sale(&self, id: SaleId) -> Result<Option<LockedSale>> {
        self.call("lock sale", async {
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
}

impl Redis {
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
            .map_err(|e| Error::serde("outbox entry", e))?;
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
            .call("rebuild", async {
                let mut rebuild = self.scripts.rebuild.prepare_invoke();
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
}
