//! The provider's word about a payment, applied to its order: the same path for a
//! webhook delivery, for reconcile and for the close that found the money first. It
//! acts on the intent's current state as the provider tells it, so deliveries that come
//! twice, late or out of order change nothing more than one in time would.
//!
//! Only our money is ours: the provider's account also serves the shop's other business
//! (payment links, invoices, another stack). An intent counts only when this stack
//! created it for an order it has: its metadata names an existing order and that
//! order's sale, and either names this stack ([`STACK_TAG`]) or carries no tag at all
//! and is the very intent that order holds (`orders.payment_intent`). The second kind
//! are the intents made before intents were tagged (by the previous release, which a
//! canary deploy still runs beside this one): we made that id and attached it
//! ourselves, so its money is ours. Anything else, another stack's tag or an untagged
//! intent that names an order of ours which does not hold it, changes nothing and is
//! never refunded ([`Received::NotOurs`], logged with `not_ours` and counted in the
//! `ForeignPayments` metric).
//!
//! - Succeeded, for the unpaid order it is attached to, in the order's amount and the
//!   sale's currency: `UNPAID` → `PAID`.
//! - Succeeded in another amount or currency than the order's: the order stays
//!   `UNPAID` and the money goes back (see [`MISMATCH`]).
//! - Succeeded, for an order that cannot take it (closed, its unit back on sale; or an
//!   intent of ours the order does not hold, one whose attach lost the race): refunded at
//!   the provider, once (the refund's idempotency key is the intent's, and no row lock
//!   is held across the provider's calls); a closed order becomes `REFUNDED`, with when
//!   and why, whichever of its payments the money came by.
//! - The paid order's own payment refunded in full at the provider (its dashboard):
//!   `PAID` → `REFUNDED`; disputed by the card holder's bank: `PAID` → `DISPUTED`. The
//!   unit stays sold either way: what becomes of the goods is the shop's call.
//! - Anything else (failed, cancelled, waiting on the shopper): nothing to do.

use super::maker::{Maker, STACK_TAG};
use super::provider::{Intent, IntentStatus, Provider};
use crate::domain::{Order, OrderId, OrderStatus, SaleId};
use crate::error::{Error, Result};
use crate::stores::mysql::{order_from, Mysql, ORDER_COLUMNS};
use crate::tallies;

/// What applying the provider's word did.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// `UNPAID` → `PAID` now.
    Paid(Order),
    /// Paid before (a redelivery, or the close found the money first).
    AlreadyPaid(Order),
    /// Money that reached an order which could not take it, given back now.
    Refunded { order: Order, amount_cents: u64 },
    /// Given back before.
    AlreadyRefunded,
    /// No money yet (or none any more): nothing changed.
    NoMoney(IntentStatus),
    /// The paid order's payment went back in full at the provider: `PAID` → `REFUNDED`.
    RefundedAtProvider(Order),
    /// The paid order's payment is disputed: `PAID` → `DISPUTED`.
    Disputed(Order),
    /// Settled before (`DISPUTED`, or refunded at the provider): nothing changed.
    Unchanged(Order),
    /// Not an intent this stack created for an order it has: nothing changed, nothing
    /// refunded. Says why.
    NotOurs(&'static str),
}

impl Mysql {
    /// Whether an order holds `intent` as its payment: one read of the unique key on
    /// `orders.payment_intent`. An untagged intent no order holds is not ours.
    pub async fn holds_payment(&self, intent: &str) -> Result<bool> {
        self.call("order of payment", async {
            let held: Option<u64> = sqlx::query_scalar("SELECT id FROM orders WHERE payment_intent = ?")
                .bind(intent)
                .fetch_optional(&self.pool)
                .await?;
            Ok(held.is_some())
        })
        .await
    }

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
    /// `PAID` → `to` (`REFUNDED` or `DISPUTED`) for the order paid by `intent`, as the
    /// provider reports; a refund records when and why. `true` when this call moved it.
    pub async fn settle_paid(&self, id: OrderId, intent: &str, to: OrderStatus) -> Result<bool> {
        self.call("settle paid", async {
            let mut tx = self.pool.begin().await?;
            let refunded = to == OrderStatus::Refunded;
            let done = sqlx::query(
                "UPDATE orders SET status = ?, \
                   refunded_at = IF(?, UTC_TIMESTAMP(3), refunded_at), refund_reason = IF(?, ?, refund_reason) \
                 WHERE id = ? AND status = 'PAID' AND payment_intent = ?",
            )
            .bind(to.as_str())
            .bind(refunded)
            .bind(refunded)
            .bind(AT_PROVIDER)
            .bind(id.0)
            .bind(intent)
            .execute(&mut *tx)
            .await?;
            let moved = done.rows_affected() == 1;
            if moved {
                tallies::move_order(&mut tx, id, OrderStatus::Paid, to).await?;
            }
            tx.commit().await?;
            Ok(moved)
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

/// Applies `intent`'s current state to the order this stack created it for; an intent
/// that is not ours changes nothing.
pub async fn apply(mysql: &Mysql, provider: &Provider, intent: &Intent) -> Result<Received> {
    let untagged = match intent.maker(provider.stack()) {
        Maker::This => false,
        Maker::Untagged => true,
        Maker::Another => return Ok(not_ours(intent, "created by another stack")),
    };
    let order = match intent.order_id() {
        Some(id) => mysql.order(id).await?,
        None => None,
    };
    let Some(order) = order else {
        return Ok(not_ours(intent, if untagged { UNTAGGED } else { "tagged with this stack, for no order it has" }));
    };
    let id = order.order_id;
    if intent.metadata.get("sale_id") != Some(&order.sale_id.to_string()) {
        return Ok(not_ours(
            intent,
            if untagged { UNTAGGED } else { "tagged with this stack, for another sale than the order's" },
        ));
    }
    let holds_it = order.payment_intent.as_deref() == Some(intent.id.as_str());
    // An untagged intent is ours only if we attached it to the order it names.
    if untagged && !holds_it {
        return Ok(not_ours(intent, UNTAGGED));
    }
    if intent.status != IntentStatus::Succeeded {
        return Ok(Received::NoMoney(intent.status));
    }
    let order = if holds_it && order.status == OrderStatus::Unpaid {
        let sale = mysql.sale(order.sale_id).await?.ok_or(Error::NotFound("sale"))?;
        let currency = sale.currency.to_string();
        // The provider spells currencies in lower case; the sale may not.
        if intent.amount != order.amount_cents || !intent.currency.eq_ignore_ascii_case(&currency) {
            tracing::warn!(
                order_id = %id, payment_intent = %intent.id, amount = intent.amount, currency = %intent.currency,
                order_amount = order.amount_cents, order_currency = %currency,
                "payment in another amount or currency than the order's: not paid"
            );
            return refund_once(mysql, provider, intent, id, MISMATCH).await;
        }
        if mysql.mark_paid(id, &intent.id).await? {
            let order = mysql.order(id).await?.ok_or(Error::NotFound("order"))?;
            tracing::info!(order_id = %id, payment_intent = %intent.id, "paid");
            // Refunded or disputed already (its events may come in any order): so is the order.
            if intent.charge().is_some_and(|c| c.disputed || c.refunded) {
                return paid_order(mysql, intent, order).await;
            }
            return Ok(Received::Paid(order));
        }
        // Closed or paid meanwhile: as it is now.
        mysql.order(id).await?.ok_or(Error::NotFound("order"))?
    } else {
        order
    };
    match order.status {
        OrderStatus::Paid if holds_it => paid_order(mysql, intent, order).await,
        OrderStatus::Disputed if holds_it => Ok(Received::Unchanged(order)),
        OrderStatus::Refunded if holds_it && order.paid_at.is_some() => Ok(Received::Unchanged(order)),
        // Closed before the money came, a second payment of a paid order, or an intent
        // of ours the order never held (its attach lost the race): the money goes back.
        _ => {
            let reason = if matches!(order.status, OrderStatus::Closed | OrderStatus::Refunded) {
                LATE
            } else {
                "a payment the order could not take"
            };
            refund_once(mysql, provider, intent, id, reason).await
        }
    }
}

/// A paid order's payment as the provider has it now: refunded in full or disputed there
/// (its dashboard, the card holder's bank), the order follows.
async fn paid_order(mysql: &Mysql, intent: &Intent, order: Order) -> Result<Received> {
    let Some(charge) = intent.charge() else {
        return Ok(Received::AlreadyPaid(order));
    };
    let to = if charge.disputed {
        OrderStatus::Disputed
    } else if charge.refunded && charge.amount_refunded >= intent.amount {
        OrderStatus::Refunded
    } else {
        if charge.amount_refunded > 0 {
            tracing::warn!(order_id = %order.order_id, payment_intent = %intent.id, refunded = charge.amount_refunded,
                "part of a paid order's payment refunded at the provider: the order stays PAID");
        }
        return Ok(Received::AlreadyPaid(order));
    };
    let id = order.order_id;
    let moved = mysql.settle_paid(id, &intent.id, to).await?;
    let order = mysql.order(id).await?.ok_or(Error::NotFound("order"))?;
    if !moved {
        return Ok(Received::Unchanged(order));
    }
    tracing::warn!(order_id = %id, payment_intent = %intent.id, status = %to, "paid order moved by the provider");
    Ok(match to {
        OrderStatus::Disputed => Received::Disputed(order),
        _ => Received::RefundedAtProvider(order),
    })
}

/// An intent this stack did not create for an order it has: logged (`not_ours`) and
/// counted (`ForeignPayments`, embedded metric format), never acted on.
fn not_ours(intent: &Intent, why: &'static str) -> Received {
    tracing::info!(
        payment_intent = %intent.id, status = ?intent.status, stack = intent.metadata.get(STACK_TAG).map(String::as_str),
        not_ours = why, "a payment that is not ours: nothing changed"
    );
    count_foreign();
    Received::NotOurs(why)
}

/// One `ForeignPayments` count, as a CloudWatch embedded-metric line.
pub fn count_foreign() {
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "flashsale",
                "Dimensions": [[]],
                "Metrics": [{"Name": "ForeignPayments", "Unit": "Count"}],
            }],
        },
        "ForeignPayments": 1,
    });
    println!("{line}");
}

/// Why an untagged intent is not ours: the order it names (if any) does not hold it.
const UNTAGGED: &str = "untagged, and not the payment of the order it names";

/// Why a closed order's money went back.
const LATE: &str = "the payment arrived after the order had closed";

/// Why money on our own intent for an order went back when its amount or currency is not
/// the order's (someone changed the intent at the provider): the order cannot be paid
/// with it, and keeping it would take money for an order that then closes unpaid, its
/// unit back on sale. The intent is ours and for this order, so the money is the
/// shopper's to have back, and only this order's refund can give it.
const MISMATCH: &str = "a payment of another amount or currency than the order's";

/// Why a paid order became `REFUNDED` without us.
const AT_PROVIDER: &str = "refunded at the provider";

/// Refunds `intent` (ours, for order `id`) unless the provider has it refunded already;
/// a closed order is recorded `REFUNDED`.
///
/// No row lock is held across the provider's calls (a slow provider, or the refund's
/// wait for the account's budget, would hold the order's row, and every close, payment
/// and admin read of it, for seconds). Two deliveries at once (or a delivery and
/// reconcile) are made one refund by the provider: the refund's idempotency key is the
/// intent's ([`super::provider::refund_key`]), so the second is the first one answered
/// again (Stripe keeps a key 24 h; after that the read of what was refunded already
/// stops a second). They are made one record by MySQL: `CLOSED` → `REFUNDED` only where
/// the order is still `CLOSED`, the tallies moved only by the update that changed it.
///
/// Money may be kept only by the order that holds this intent and is `PAID` by it, read
/// here after the caller's read: an order that holds the intent and is `UNPAID` does
/// not reach this (the caller marks it paid, or its amount or currency is not the
/// order's, which no later read changes), and `CLOSED` and `REFUNDED` are final. So no
/// order can become `PAID` by this intent while its money goes back.
async fn refund_once(
    mysql: &Mysql,
    provider: &Provider,
    intent: &Intent,
    id: OrderId,
    reason: &'static str,
) -> Result<Received> {
    let order = mysql.order(id).await?.ok_or(Error::NotFound("order"))?;
    let holds_it = order.payment_intent.as_deref() == Some(intent.id.as_str());
    if holds_it && order.status == OrderStatus::Paid {
        // Paid by this very intent after all (mark_paid raced with us): keep the money.
        return Ok(Received::AlreadyPaid(order));
    }
    let refunded = provider.refunded(&intent.id).await?;
    let fresh = refunded < intent.amount;
    if fresh {
        provider.refund(&intent.id, id, reason).await?;
        tracing::warn!(order_id = %id, payment_intent = %intent.id, reason, "payment refunded");
    }
    let order = if order.status == OrderStatus::Closed { mysql.record_late_refund(id).await? } else { order };
    Ok(if fresh { Received::Refunded { order, amount_cents: intent.amount } } else { Received::AlreadyRefunded })
}

impl Mysql {
    /// `CLOSED` → `REFUNDED` for an order whose late money went back, and its tallies
    /// moved, once: only the update that changed the row moves them. The order as it is now.
    async fn record_late_refund(&self, id: OrderId) -> Result<Order> {
        self.call("refund", async {
            let mut tx = self.pool.begin().await?;
            let refunded = sqlx::query(
                "UPDATE orders SET status = 'REFUNDED', refunded_at = UTC_TIMESTAMP(3), refund_reason = ? \
                 WHERE id = ? AND status = 'CLOSED'",
            )
            .bind(LATE)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
            if refunded.rows_affected() == 1 {
                tallies::move_order(&mut tx, id, OrderStatus::Closed, OrderStatus::Refunded).await?;
            }
            tx.commit().await?;
            let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
                .bind(id.0)
                .fetch_one(&self.pool)
                .await?;
            order_from(&row)
        })
        .await
    }
}
