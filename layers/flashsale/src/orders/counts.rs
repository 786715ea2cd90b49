//! Orders counted per status, and the queries the audit of a sale checks its
//! promises with.

use std::collections::HashMap;

use sqlx::Row;

use crate::domain::{OrderId, OrderStatus, SaleId, SaleMoney, UserId, HOLDS_UNITS_SQL};
use crate::error::Result;
use crate::stores::mysql::{stored_user, Mysql};
use crate::tallies::StatusCounts;

impl Mysql {
    /// Orders and units per status for one sale, counted over its orders: what the
    /// audit checks the tallies ([`crate::tallies`]) against. O(orders): not for a poll.
    pub async fn count_statuses(&self, sale: SaleId) -> Result<StatusCounts> {
        self.call("count statuses", async {
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

    /// The units a sale's orders hold ([`HOLDS_UNITS_SQL`]): what `sales.sold` must be.
    pub async fn held_units(&self, sale: SaleId) -> Result<u64> {
        self.call("held units", async {
            let units: i64 = sqlx::query_scalar(&format!(
                "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM orders WHERE sale_id = ? AND {HOLDS_UNITS_SQL}"
            ))
            .bind(sale.0)
            .fetch_one(&self.pool)
            .await?;
            Ok(units as u64)
        })
        .await
    }

    /// Up to `max` shoppers whose orders of a sale hold more than `limit` units
    /// ([`HOLDS_UNITS_SQL`]), with the units they hold.
    pub async fn shoppers_above_limit(&self, sale: SaleId, limit: u32, max: u32) -> Result<Vec<(UserId, u64)>> {
        self.call("shoppers above limit", async {
            let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
                "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
                 WHERE sale_id = ? AND {HOLDS_UNITS_SQL} GROUP BY user_id HAVING SUM(quantity) > ? LIMIT ?",
            ))
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
        self.call("order ids", async {
            let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM orders WHERE sale_id = ?")
                .bind(sale.0)
                .fetch_all(&self.pool)
                .await?;
            Ok(ids.into_iter().map(OrderId).collect())
        })
        .await
    }

    /// The money of a sale counted over its orders: what the audit checks the tallies
    /// against. O(orders): not for a poll.
    pub async fn count_money(&self, sale: SaleId) -> Result<SaleMoney> {
        self.call("count money", async {
            let (captured, refunded, disputed, awaiting): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT \
                   CAST(COALESCE(SUM(CASE WHEN status IN ('PAID', 'REFUNDED', 'DISPUTED') THEN amount_cents END), 0) \
                     AS SIGNED), \
                   CAST(COALESCE(SUM(CASE WHEN status = 'REFUNDED' THEN amount_cents END), 0) AS SIGNED), \
                   CAST(COALESCE(SUM(CASE WHEN status = 'DISPUTED' THEN amount_cents END), 0) AS SIGNED), \
                   CAST(COALESCE(SUM(CASE WHEN status = 'UNPAID' AND payment_intent IS NOT NULL \
                     THEN amount_cents END), 0) AS SIGNED) \
                 FROM orders WHERE sale_id = ?",
            )
            .bind(sale.0)
            .fetch_one(&self.pool)
            .await?;
            Ok(SaleMoney {
                captured_cents: captured as u64,
                refunded_cents: refunded as u64,
                disputed_cents: disputed as u64,
                awaiting_cents: awaiting as u64,
            })
        })
        .await
    }
}
