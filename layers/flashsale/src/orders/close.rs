//! Closing an unpaid order whose payment window passed: first in MySQL (`UNPAID` →
//! `CLOSED`, its units off `sales.sold`, by the database clock), then its units back on
//! sale in Redis (`lua/release.lua`, once per order). Both steps are idempotent, so a
//! redelivery, or reconcile closing the same order, completes a crashed close.

use sqlx::Row;

use crate::domain::{Order, OrderId, OrderStatus, SaleId};
use crate::error::Result;
use crate::stores::mysql::{order_from, Mysql, ORDER_COLUMNS};
use crate::stores::redis::Redis;
use crate::stores::Stores;

/// What a close attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Closing {
    /// Closed now: `UNPAID` → `CLOSED` and its units taken off `sales.sold`.
    Closed(Order),
    /// Closed before (a redelivery, or a crash before the Redis release).
    AlreadyClosed(Order),
    /// Still payable for this long by the database clock.
    NotDue {
        order: Order,
        remaining_ms: i64,
    },
    /// Paid or rejected: nothing to close.
    Settled(Order),
    Missing,
}

impl Mysql {
    /// Closes an unpaid order whose window has passed (by the database clock) and
    /// takes its units off `sales.sold`, in one transaction.
    pub async fn close_due(&self, id: OrderId) -> Result<Closing> {
        self.call("close due", async {
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

    /// Unpaid orders of a sale whose payment window ended more than `late` ago: their
    /// close message was lost or is stuck. Oldest first.
    pub async fn overdue_unpaid(&self, sale: SaleId, late: std::time::Duration, limit: u32) -> Result<Vec<OrderId>> {
        self.call("overdue unpaid", async {
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
}

impl Redis {
    /// Gives a closed order's units back, once per order. `true` when this call released them.
    pub async fn release_closed(&self, order: &Order) -> Result<bool> {
        let released = self.run_release("close", &order.message(), &[]).await?;
        if released == -1 {
            tracing::warn!(sale_id = %order.sale_id, order_id = %order.order_id, "release skipped: sale not in Redis");
        }
        Ok(released >= 0)
    }
}

impl Stores {
    /// Closes an order if it is unpaid and due (by the database clock), then gives its
    /// units back in Redis.
    pub async fn close_order(&self, order: OrderId) -> Result<Closing> {
        let closing = self.mysql.close_due(order).await?;
        if let Closing::Closed(order) | Closing::AlreadyClosed(order) = &closing {
            let released = self.redis.release_closed(order).await?;
            tracing::info!(order_id = %order.order_id, released, "order closed unpaid; stock back on sale");
        }
        Ok(closing)
    }
}
