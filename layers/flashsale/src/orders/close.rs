//! Closing an unpaid order whose payment window passed: first the payment, if the
//! shopper started one, is cancelled at the provider (if the money came first, the
//! order is paid instead and its unit stays sold); then MySQL (`UNPAID` → `CLOSED`, its
//! units off `sales.sold`, by the database clock, only while the order holds the
//! payment just cancelled or none); then its units back on sale in Redis
//! (`lua/release.lua`, once per order). Every step is idempotent, so a redelivery, or
//! reconcile closing the same order, completes a crashed close.

use sqlx::Row;

use crate::domain::{Order, OrderId, OrderMessage, OrderStatus, SaleId};
use crate::error::Result;
use crate::payments::{received, IntentStatus, Provider, Received};
use crate::stores::mysql::{order_from, user_from, Mysql, ORDER_COLUMNS};
use crate::stores::redis::{order_id, Redis, SaleKeys};
use crate::stores::Stores;
use crate::tallies;

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
    /// Paid, refunded or rejected: nothing to close. Paid includes an order whose
    /// money the provider had when the close went to cancel its payment.
    Settled(Order),
    /// Due, with a payment the close has not (yet) settled at the provider.
    PaymentOpen {
        order: Order,
        payment_intent: String,
    },
    Missing,
}

/// How long a close waits on a payment the provider is still working on.
const PAYMENT_IN_FLIGHT_RETRY_MS: i64 = 5_000;

impl Closing {
    /// When to try the close again, if it is not done: the rest of the window by the
    /// database clock, or a moment for a payment still open at the provider.
    pub fn retry_in_ms(&self) -> Option<i64> {
        match self {
            Closing::NotDue { remaining_ms, .. } => Some(*remaining_ms),
            Closing::PaymentOpen { .. } => Some(PAYMENT_IN_FLIGHT_RETRY_MS),
            _ => None,
        }
    }
}

impl Mysql {
    /// Closes an unpaid order whose window has passed (by the database clock) and
    /// takes its units off `sales.sold`, in one transaction; only while the order holds
    /// `cancelled`, the payment the caller cancelled at the provider, or none.
    pub async fn close_due(&self, id: OrderId, cancelled: Option<&str>) -> Result<Closing> {
        self.call("close due", async {
            let mut tx = self.pool.begin().await?;
            let closed = sqlx::query(
                "UPDATE orders SET status = 'CLOSED', closed_at = UTC_TIMESTAMP(3) \
                 WHERE id = ? AND status = 'UNPAID' AND expires_at <= UTC_TIMESTAMP(3) AND payment_intent <=> ?",
            )
            .bind(id.0)
            .bind(cancelled)
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
                tallies::move_order(&mut tx, id, OrderStatus::Unpaid, OrderStatus::Closed).await?;
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
                    let remaining_ms = row.try_get::<i64, _>("remaining_ms")?;
                    match order.payment_intent.clone() {
                        Some(payment_intent) if remaining_ms <= 0 => Closing::PaymentOpen { order, payment_intent },
                        _ => Closing::NotDue { order, remaining_ms: remaining_ms.max(1) },
                    }
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

    /// A sale's closed orders, as their admission messages had them.
    pub async fn closed_orders(&self, sale: SaleId) -> Result<Vec<OrderMessage>> {
        self.call("closed orders", async {
            let rows = sqlx::query("SELECT id, user_id, quantity FROM orders WHERE sale_id = ? AND status = 'CLOSED'")
                .bind(sale.0)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(OrderMessage {
                        order_id: OrderId(row.try_get("id")?),
                        sale_id: sale,
                        user_id: user_from(row)?,
                        quantity: row.try_get("quantity")?,
                    })
                })
                .collect()
        })
        .await
    }
}

impl Redis {
    /// Gives a closed order's units back, once per order. `true` when this call released them.
    pub async fn release_closed(&self, order: &OrderMessage) -> Result<bool> {
        let released = self.run_release("close", order, &[]).await?;
        if released == -1 {
            tracing::warn!(sale_id = %order.sale_id, order_id = %order.order_id, "release skipped: sale not in Redis");
        }
        Ok(released >= 0)
    }

    /// Which of a sale's orders `lua/release.lua` has settled (closed, refused or undone).
    async fn settled(&self, sale: SaleId, orders: &[OrderId]) -> Result<Vec<OrderId>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let ids: Vec<String> = orders.iter().map(ToString::to_string).collect();
        let settled: Vec<bool> = self
            .call("settled orders", async {
                Ok(redis::cmd("SMISMEMBER").arg(&keys.released).arg(&ids).query_async(&mut conn).await?)
            })
            .await?;
        ids.iter().zip(settled).filter(|(_, settled)| *settled).map(|(id, _)| order_id(id)).collect()
    }
}

impl Stores {
    /// Closes an order if it is unpaid and due (by the database clock), its payment
    /// cancelled at the provider first, then gives its units back in Redis.
    pub async fn close_order(&self, provider: &Provider, order: OrderId) -> Result<Closing> {
        let mut closing = self.mysql.close_due(order, None).await?;
        if let Closing::PaymentOpen { order: open, payment_intent } = closing {
            let intent = provider.cancel(&payment_intent).await?;
            closing = match intent.status {
                IntentStatus::Canceled => self.mysql.close_due(order, Some(&payment_intent)).await?,
                // The money came first: the payment wins and the unit stays sold.
                IntentStatus::Succeeded => match received::apply(&self.mysql, provider, &intent).await? {
                    Received::Paid(paid) | Received::AlreadyPaid(paid) => Closing::Settled(paid),
                    // Its money went back (another amount or currency than the order's):
                    // no money can come by this payment any more, so the order closes.
                    Received::Refunded { .. } | Received::AlreadyRefunded => {
                        self.mysql.close_due(order, Some(&payment_intent)).await?
                    }
                    other => {
                        tracing::warn!(order_id = %order, ?other, "succeeded payment not taken by its order");
                        Closing::PaymentOpen { order: open, payment_intent }
                    }
                },
                // Processing, or held for capture: still open, ask again in a moment.
                _ => Closing::PaymentOpen { order: open, payment_intent },
            };
        }
        if let Closing::Closed(order) | Closing::AlreadyClosed(order) = &closing {
            let released = self.redis.release_closed(&order.message()).await?;
            tracing::info!(order_id = %order.order_id, released, "order closed unpaid; stock back on sale");
        }
        Ok(closing)
    }

    /// Gives back the units of a sale's closed orders that Redis still holds: their close
    /// committed in MySQL and the release after it failed (Redis down, the process
    /// killed between the two), with no redelivery to finish it (reconcile's own close,
    /// or a close message that went to the DLQ). Call it only while the sale's state is
    /// current in Redis: a rebuild counts closed orders itself. Returns how many.
    pub async fn release_unreleased(&self, sale: SaleId) -> Result<usize> {
        let closed = self.mysql.closed_orders(sale).await?;
        if closed.is_empty() {
            return Ok(0);
        }
        let ids: Vec<OrderId> = closed.iter().map(|o| o.order_id).collect();
        let settled: std::collections::HashSet<OrderId> = self.redis.settled(sale, &ids).await?.into_iter().collect();
        let mut released = 0;
        for order in closed.iter().filter(|o| !settled.contains(&o.order_id)) {
            if self.redis.release_closed(order).await? {
                tracing::warn!(order_id = %order.order_id, "closed order's units had never gone back on sale; released");
                released += 1;
            }
        }
        Ok(released)
    }
}
