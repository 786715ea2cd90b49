//! Starting a payment: a PaymentIntent at the provider for an unpaid order's amount in
//! its sale's currency, attached to the order once. Asking again returns the same one.

use serde::Serialize;

use super::provider::{IntentStatus, Provider};
use crate::domain::{OrderId, OrderStatus, UserId};
use crate::error::{Error, Result};
use crate::orders::tallies;
use crate::stores::mysql::Mysql;

/// What the shopper's page pays with.
#[derive(Debug, Serialize)]
pub struct Checkout {
    pub order_id: OrderId,
    pub payment_intent: String,
    /// The provider's client secret: the page confirms the payment with it.
    pub client_secret: String,
    pub amount_cents: u64,
    pub currency: String,
    pub status: IntentStatus,
}

impl Mysql {
    /// Attaches `intent` to the order if it is the caller's, unpaid, within its window
    /// (by the database clock) and has none yet. `true` when this call attached it.
    pub async fn attach_intent(&self, id: OrderId, user: &UserId, intent: &str) -> Result<bool> {
        self.call("attach payment", async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE orders SET payment_intent = ?, payment_started_at = UTC_TIMESTAMP(3) \
                 WHERE id = ? AND user_id = ? AND status = 'UNPAID' \
                 AND payment_intent IS NULL AND expires_at > UTC_TIMESTAMP(3)",
            )
            .bind(intent)
            .bind(id.0)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
            let attached = done.rows_affected() == 1;
            if attached {
                tallies::payment_started(&mut tx, id).await?;
            }
            tx.commit().await?;
            Ok(attached)
        })
        .await
    }
}

/// The payment of the caller's order `id`: the one attached already, or a new one.
/// A paid, closed or lapsed order gets [`Error::NotPayable`]; one MySQL does not have
/// yet [`Error::NotFound`] (the caller looks in the outbox).
pub async fn checkout(mysql: &Mysql, provider: &Provider, user: &UserId, id: OrderId) -> Result<Checkout> {
    let order = mysql.order(id).await?.filter(|o| &o.user_id == user).ok_or(Error::NotFound("order"))?;
    match order.status {
        OrderStatus::Unpaid => {}
        status => return Err(Error::NotPayable { status, reason: "the order is no longer open" }),
    }
    let lapsed = Error::NotPayable { status: OrderStatus::Unpaid, reason: "the payment window has passed" };
    let intent = match &order.payment_intent {
        Some(attached) => provider.intent(attached).await?,
        None => {
            if order.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
                return Err(lapsed);
            }
            let sale = mysql.sale(order.sale_id).await?.ok_or(Error::NotFound("sale"))?;
            let created = provider.create_intent(&order, &sale.currency).await?;
            if mysql.attach_intent(id, user, &created.id).await? {
                tracing::info!(order_id = %id, payment_intent = %created.id, "payment started");
                created
            } else {
                // Another request attached one first, or the window closed meanwhile. A
                // provider that honours idempotency keys gave both the same intent;
                // otherwise this one is never shown to anyone: cancel it.
                let now = mysql.order(id).await?.ok_or(Error::NotFound("order"))?;
                if now.payment_intent.as_deref() != Some(created.id.as_str()) {
                    provider.cancel(&created.id).await?;
                }
                match (now.status, now.payment_intent) {
                    (OrderStatus::Unpaid, Some(attached)) => provider.intent(&attached).await?,
                    (OrderStatus::Unpaid, None) => return Err(lapsed),
                    (status, _) => return Err(Error::NotPayable { status, reason: "the order is no longer open" }),
                }
            }
        }
    };
    if intent.status == IntentStatus::Canceled {
        return Err(lapsed);
    }
    Ok(Checkout {
        order_id: id,
        client_secret: intent.client_secret.expose().to_string(),
        payment_intent: intent.id,
        amount_cents: intent.amount,
        currency: intent.currency,
        status: intent.status,
    })
}
