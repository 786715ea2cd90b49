//! Starting a payment: a PaymentIntent at the provider for an unpaid order's amount in
//! its sale's currency, attached to the order once. Asking again returns the same one.
//!
//! Asking again costs the provider nothing: the payment's answer is kept in Redis, under
//! the sale's hash tag, until the order's payment window ends, and given back while MySQL
//! (read first, as always) still has the order unpaid with that payment. A shopper who
//! presses "Pay" 200 times makes one provider call, not 200, and cannot spend the
//! account's budget ([`super::budget`]) for the crowd. Redis, not MySQL: the client
//! secret is needed only while the window lasts and then expires with it, instead of
//! lying in the orders' table and its backups for good; losing it costs one read.
//! While one request calls the provider for an order, the order's other requests wait
//! for its answer rather than call too.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::provider::{IntentStatus, Provider};
use crate::domain::{Order, OrderId, OrderStatus, SaleId, UserId};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::stores::mysql::Mysql;
use crate::stores::redis::Redis;
use crate::tallies;

/// What the shopper's page pays with.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkout {
    pub order_id: OrderId,
    pub payment_intent: String,
    /// The provider's client secret: the page confirms the payment with it. Only its
    /// order's owner is given it; never logged.
    #[serde(serialize_with = "expose")]
    pub client_secret: Secret,
    pub amount_cents: u64,
    pub currency: String,
    /// The intent's state when it was started or last read: the order's own status
    /// (MySQL) is the truth of whether it is paid.
    pub status: IntentStatus,
}

fn expose<S: serde::Serializer>(secret: &Secret, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

/// How long one request may call the provider for an order before another may.
const CALLING_TTL: Duration = Duration::from_secs(10);
/// How long a request waits for another's answer for the same order, and how often it looks.
const WAIT_FOR_ANSWER: Duration = Duration::from_secs(3);
const LOOK_EVERY: Duration = Duration::from_millis(50);
/// How long the answer of an order without a deadline is kept.
const KEPT_WITHOUT_DEADLINE: Duration = Duration::from_secs(900);

/// The Redis keys of an order's payment answer, under its sale's hash tag.
struct CheckoutKeys {
    /// The answer (JSON of [`Checkout`]), until the payment window ends.
    answer: String,
    /// Held while one request calls the provider for the order.
    calling: String,
}

impl CheckoutKeys {
    fn new(sale: SaleId, order: OrderId) -> Self {
        let prefix = format!("{{sale:{sale}}}:checkout:{order}");
        CheckoutKeys { calling: format!("{prefix}:calling"), answer: prefix }
    }
}

impl Redis {
    /// The payment answer kept for the order, if any.
    async fn kept_checkout(&self, keys: &CheckoutKeys) -> Result<Option<Checkout>> {
        let mut conn = self.conn.clone();
        let kept: Option<String> = self
            .call("kept payment", async { Ok(redis::cmd("GET").arg(&keys.answer).query_async(&mut conn).await?) })
            .await?;
        // One that does not read (a release before wrote another shape) is asked again.
        Ok(kept.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Keeps the order's payment answer until `until` (ms since the epoch).
    async fn keep_checkout(&self, keys: &CheckoutKeys, checkout: &Checkout, until_ms: i64) -> Result<()> {
        let json = serde_json::to_string(checkout).map_err(|e| Error::serde("payment answer", e))?;
        let mut conn = self.conn.clone();
        self.call("keep payment", async {
            Ok(redis::cmd("SET").arg(&keys.answer).arg(json).arg("PXAT").arg(until_ms).query_async(&mut conn).await?)
        })
        .await
    }
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
/// yet [`Error::NotFound`] (the caller looks in the outbox). Asked again while the window
/// lasts, the kept answer (see the module's comment).
pub async fn checkout(
    mysql: &Mysql,
    redis: &Redis,
    provider: &Provider,
    user: &UserId,
    id: OrderId,
) -> Result<Checkout> {
    let order = mysql.order(id).await?.filter(|o| &o.user_id == user).ok_or(Error::NotFound("order"))?;
    match order.status {
        OrderStatus::Unpaid => {}
        status => return Err(Error::NotPayable { status, reason: "the order is no longer open" }),
    }
    if order.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(Error::NotPayable { status: OrderStatus::Unpaid, reason: "the payment window has passed" });
    }
    let keys = CheckoutKeys::new(order.sale_id, id);
    // Kept for this order and, once MySQL has one attached, for that payment.
    let current = |kept: &Checkout| {
        kept.order_id == id && order.payment_intent.as_deref().is_none_or(|attached| attached == kept.payment_intent)
    };
    if let Some(kept) = redis.kept_checkout(&keys).await?.filter(current) {
        return Ok(kept);
    }
    let Some(calling) = redis.claim(&keys.calling, CALLING_TTL).await? else {
        // Another request is asking the provider for this order: its answer, soon.
        let deadline = tokio::time::Instant::now() + WAIT_FOR_ANSWER;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(LOOK_EVERY).await;
            if let Some(kept) = redis.kept_checkout(&keys).await?.filter(current) {
                return Ok(kept);
            }
        }
        return Err(Error::Throttled { service: "payments", retry_after_secs: 1 });
    };
    // The request that held the claim before may have kept its answer just now.
    let answer = match redis.kept_checkout(&keys).await?.filter(current) {
        Some(kept) => Ok(kept),
        None => start_or_read(mysql, provider, &order, user).await,
    };
    if let Ok(checkout) = &answer {
        let until = order.expires_at.unwrap_or_else(|| chrono::Utc::now() + KEPT_WITHOUT_DEADLINE);
        if let Err(e) = redis.keep_checkout(&keys, checkout, until.timestamp_millis()).await {
            tracing::warn!(order_id = %id, error = %e, "payment answer not kept; the next request asks the provider");
        }
    }
    if let Err(e) = redis.give_up(calling).await {
        tracing::warn!(order_id = %id, error = %e, "payment claim not given up; it lapses");
    }
    answer
}

/// The provider's answer for the order: its attached payment read, or a new one started
/// and attached.
async fn start_or_read(mysql: &Mysql, provider: &Provider, order: &Order, user: &UserId) -> Result<Checkout> {
    let id = order.order_id;
    let lapsed = Error::NotPayable { status: OrderStatus::Unpaid, reason: "the payment window has passed" };
    let intent = match &order.payment_intent {
        Some(attached) => provider.intent(attached).await?,
        None => {
            let sale = mysql.sale(order.sale_id).await?.ok_or(Error::NotFound("sale"))?;
            let created = provider.create_intent(order, &sale.currency).await?;
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
        client_secret: intent.client_secret,
        payment_intent: intent.id,
        amount_cents: intent.amount,
        currency: intent.currency,
        status: intent.status,
    })
}
