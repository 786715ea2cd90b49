//! The provider's word about a payment, applied to its order: the same path for a
//! webhook delivery, for reconcile and for the close that found the money first. It
//! acts on the intent's current state as the provider tells it, so deliveries that come
//! twice, late or out of order change nothing more than one in time would.
//!
//! - Succeeded, for the unpaid order it is attached to: `UNPAID` → `PAID`.
//! - Succeeded, for an order that cannot take it (closed, its unit back on sale; or an
//!   intent the order does not hold): refunded at the provider, once, under the order's
//!   row lock; a closed order becomes `REFUNDED`, with when and why, whichever of its
//!   payments the money came by.
//! - Anything else (failed, cancelled, waiting on the shopper): nothing to do.

use super::provider::{Intent, IntentStatus, Provider};
use crate::domain::{Order, OrderId, OrderStatus, SaleId};
use crate::error::{Error, Result};
use crate::orders::tallies;
use crate::stores::mysql::{order_from, Mysql, ORDER_COLUMNS};

/// What applying the provider's word did.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// `UNPAID` → `PAID` now.
    Paid(Order),
    /// Paid before (a redelivery, or the close found the money first).
    AlreadyPaid(Order),
    /// Money that reached an order which could not take it, given back now.
    Refunded { order: Option<Order>, amount_cents: u64 },
    /// Given back before.
    AlreadyRefunded,
    /// No money yet (or none any more): nothing changed.
    NoMoney(IntentStatus),
}

impl Mysql {
    /// `UNPAID` → `PAID` for the order holding `intent`. `true` when this call paid it.
    pub async fn mark_paid(&self, id: OrderId, intent: &str) -> Result<bool> {
        self.call("mark paid", async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE orders SET status = 'PAID', paid_at = UTC_TIMESTAMP(3) \
                 WHERE id = ? AND status = 'UNPAID' AND payment_intent = ?",
            )
            .bind(id.0)
            .bind(intent)
            .execute(&mut *tx)
            .await?;
            let paid = done.rows_affected() == 1;
            if paid {
                tallies::move_order(&mut tx, id, OrderStatus::Unpaid, OrderStatus::Paid).await?;
            }
            tx.commit().await?;
            Ok(paid)
        })
        .await
    }
}

impl Mysql {
    /// Unpaid orders of a sale whose payment started more than `after` ago: where a
    /// dropped webhook would leave money the order does not know of (a webhook in time
    /// arrives within seconds). Longest waiting first.
    pub async fn awaiting_payment(
        &self,
        sale: SaleId,
        after: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<(OrderId, String)>> {
        self.call("awaiting payment", async {
            let rows: Vec<(u64, String)> = sqlx::query_as(
                "SELECT id, payment_intent FROM orders WHERE sale_id = ? AND status = 'UNPAID' \
                 AND payment_started_at <= UTC_TIMESTAMP(3) - INTERVAL ? SECOND ORDER BY payment_started_at LIMIT ?",
            )
            .bind(sale.0)
            .bind(after.as_secs())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(id, intent)| (OrderId(id), intent)).collect())
        })
        .await
    }
}

/// Applies `intent`'s current state to the order its metadata names.
pub async fn apply(mysql: &Mysql, provider: &Provider, intent: &Intent) -> Result<Received> {
    if intent.status != IntentStatus::Succeeded {
        return Ok(Received::NoMoney(intent.status));
    }
    let Some(id) = intent.order_id() else {
        tracing::warn!(payment_intent = %intent.id, "money for no order of ours: refunding");
        return refund_once(mysql, provider, intent, None).await;
    };
    if mysql.mark_paid(id, &intent.id).await? {
        let order = mysql.order(id).await?.ok_or(Error::NotFound("order"))?;
        tracing::info!(order_id = %id, payment_intent = %intent.id, "paid");
        return Ok(Received::Paid(order));
    }
    match mysql.order(id).await? {
        Some(order) if order.status == OrderStatus::Paid && order.payment_intent.as_deref() == Some(&intent.id) => {
            Ok(Received::AlreadyPaid(order))
        }
        // Closed before the money came, a second payment of a paid order, or an intent
        // the order never held: the money goes back.
        _ => refund_once(mysql, provider, intent, Some(id)).await,
    }
}

/// Why a closed order's money went back.
const LATE: &str = "the payment arrived after the order had closed";

/// Refunds `intent` unless the provider has it refunded already, holding the order's
/// row lock meanwhile so two deliveries cannot both refund (whatever the provider does
/// with idempotency keys); a closed order is recorded `REFUNDED`.
async fn refund_once(mysql: &Mysql, provider: &Provider, intent: &Intent, id: Option<OrderId>) -> Result<Received> {
    let db = |e: sqlx::Error| Error::from(e).during("refund");
    let mut tx = mysql.pool.begin().await.map_err(db)?;
    let order = match id {
        Some(id) => sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ? FOR UPDATE"))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .as_ref()
            .map(order_from)
            .transpose()?,
        None => None,
    };
    let holds_it = order.as_ref().is_some_and(|o| o.payment_intent.as_deref() == Some(&intent.id));
    if holds_it && order.as_ref().is_some_and(|o| o.status == OrderStatus::Paid) {
        // Paid by this very intent after all (mark_paid raced with us): keep the money.
        return Ok(Received::AlreadyPaid(order.expect("checked")));
    }
    let refunded = provider.refunded(&intent.id).await?;
    let fresh = refunded < intent.amount;
    if fresh {
        let reason = match &order {
            Some(o) if matches!(o.status, OrderStatus::Closed | OrderStatus::Refunded) => LATE,
            Some(_) => "a payment the order could not take",
            None => "a payment for no order",
        };
        provider.refund(&intent.id, id.unwrap_or(OrderId(0)), reason).await?;
        tracing::warn!(order_id = ?id.map(|i| i.0), payment_intent = %intent.id, reason, "payment refunded");
    }
    let order = match order {
        Some(o) if o.status == OrderStatus::Closed => {
            let refunded = sqlx::query(
                "UPDATE orders SET status = 'REFUNDED', refunded_at = UTC_TIMESTAMP(3), refund_reason = ? \
                 WHERE id = ? AND status = 'CLOSED'",
            )
            .bind(LATE)
            .bind(o.order_id.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if refunded.rows_affected() == 1 {
                tallies::move_order(&mut tx, o.order_id, OrderStatus::Closed, OrderStatus::Refunded)
                    .await
                    .map_err(db)?;
            }
            let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
                .bind(o.order_id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            Some(order_from(&row)?)
        }
        other => other,
    };
    tx.commit().await.map_err(db)?;
    Ok(if fresh { Received::Refunded { order, amount_cents: intent.amount } } else { Received::AlreadyRefunded })
}
