//! The payment provider's API, in Stripe's shape: PaymentIntents (create, read, cancel)
//! and refunds. Form-encoded calls with the secret key, each under the AWS call timeout
//! and behind a circuit breaker, so a provider that is down answers 503 at once.
//!
//! Every call that moves money carries an idempotency key made from the order id, so a
//! retried call is the same call at the provider.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::{Config, Secret};
use crate::domain::{Currency, Order, OrderId};
use crate::error::{causes, Error, Result};
use crate::stores::breaker::Breaker;

pub struct Provider {
    http: reqwest::Client,
    /// `https://api.stripe.com`, or the local provider.
    api: String,
    secret_key: Secret,
    breaker: Breaker,
}

/// Where a PaymentIntent is, as the provider says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

impl IntentStatus {
    /// No money can arrive any more.
    pub fn is_final(self) -> bool {
        matches!(self, IntentStatus::Canceled | IntentStatus::Succeeded)
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Intent {
    pub id: String,
    pub status: IntentStatus,
    pub amount: u64,
    pub currency: String,
    /// What the shopper's page confirms the payment with; only its owner may see it.
    pub client_secret: Secret,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

impl Intent {
    /// The order the intent was created for (its metadata says so).
    pub fn order_id(&self) -> Option<OrderId> {
        self.metadata.get("order_id")?.parse().ok()
    }
}

#[derive(Deserialize)]
struct Refunds {
    data: Vec<RefundRecord>,
}

#[derive(Deserialize)]
struct RefundRecord {
    amount: u64,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct ProviderError {
    error: ProviderErrorBody,
}

#[derive(Deserialize)]
struct ProviderErrorBody {
    #[serde(default)]
    message: Option<String>,
}

impl Provider {
    pub fn new(config: &Config, secret_key: Secret) -> Result<Self> {
        // reqwest takes its TLS from the process's provider: without one it cannot build.
        crate::stores::aws::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.aws_timeout)
            .timeout(config.aws_timeout)
            .build()
            .map_err(|e| Error::Config(format!("payment provider client: {e}")))?;
        Ok(Provider {
            http,
            api: config.payments_api_url.trim_end_matches('/').to_string(),
            secret_key,
            breaker: Breaker::new("payments", config.breaker_failures, config.breaker_cooldown, config.aws_timeout),
        })
    }

    /// From the keys read at init; a function that takes money cannot start without them.
    pub fn from_config(config: &Config) -> Result<Self> {
        let keys = config
            .payment_keys
            .as_ref()
            .ok_or_else(|| Error::Config("FLASHSALE_PAYMENTS_SECRET must name the payment provider's keys".into()))?;
        Provider::new(config, keys.secret_key.clone())
    }

    /// A PaymentIntent for the order's amount: the same one however often it is asked
    /// for (the idempotency key is the order's).
    pub async fn create_intent(&self, order: &Order, currency: &Currency) -> Result<Intent> {
        // The amount is in the currency's minor unit already (`Sale::price_cents`); one
        // the provider would refuse (a sale stored before its bounds were checked) is
        // not sent: the order cannot be paid, which is no fault of the provider's.
        let amount = currency.chargeable(order.amount_cents).map_err(|why| {
            tracing::warn!(order_id = %order.order_id, amount = order.amount_cents, %currency, %why, "not chargeable");
            Error::NotPayable { status: order.status, reason: "the sale's price cannot be charged in its currency" }
        })?;
        let form = [
            ("amount", amount.to_string()),
            ("currency", currency.to_string()),
            ("metadata[order_id]", order.order_id.to_string()),
            ("metadata[sale_id]", order.sale_id.to_string()),
        ];
        let key = format!("order-{}-intent", order.order_id);
        self.send("create payment", self.post("/v1/payment_intents", Some(&key)).form(&form)).await
    }

    pub async fn intent(&self, id: &str) -> Result<Intent> {
        self.send("read payment", self.http.get(self.url(&format!("/v1/payment_intents/{id}")))).await
    }

    /// Cancels the intent so no money can arrive for it any more, and returns it as it
    /// is now: `Canceled`, or (when the provider refused because the money came first)
    /// `Succeeded`, or whatever state keeps it from being cancelled yet.
    pub async fn cancel(&self, id: &str) -> Result<Intent> {
        match self.send::<Intent>("cancel payment", self.post(&format!("/v1/payment_intents/{id}/cancel"), None)).await
        {
            Ok(intent) => Ok(intent),
            // Refused (already succeeded, cancelled, processing): its state says why.
            Err(Error::Provider { status: Some(status), .. }) if (400..500).contains(&status) => self.intent(id).await,
            Err(e) => Err(e),
        }
    }

    /// The amount given back on the intent so far.
    pub async fn refunded(&self, intent: &str) -> Result<u64> {
        let request = self.http.get(self.url("/v1/refunds")).query(&[("payment_intent", intent), ("limit", "100")]);
        let refunds: Refunds = self.send("read refunds", request).await?;
        Ok(refunds.data.iter().filter(|r| r.status.as_deref() != Some("failed")).map(|r| r.amount).sum())
    }

    /// Gives the whole of the intent's money back, once per order (idempotency key).
    pub async fn refund(&self, intent: &str, order: OrderId, reason: &str) -> Result<()> {
        let form = [
            ("payment_intent", intent.to_string()),
            ("metadata[order_id]", order.to_string()),
            ("metadata[reason]", reason.to_string()),
        ];
        let key = format!("order-{order}-refund");
        let _: serde_json::Value =
            self.send("refund payment", self.post("/v1/refunds", Some(&key)).form(&form)).await?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    fn post(&self, path: &str, idempotency_key: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.post(self.url(path));
        match idempotency_key {
            Some(key) => request.header("idempotency-key", key),
            None => request,
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T> {
        let request = request.bearer_auth(self.secret_key.expose());
        self.breaker
            .call(async {
                let failed = |status: Option<u16>, message: String| Error::Provider { operation, status, message };
                let response = request.send().await.map_err(|e| failed(None, causes(&e)))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| failed(Some(status.as_u16()), causes(&e)))?;
                if !status.is_success() {
                    let message = serde_json::from_slice::<ProviderError>(&body)
                        .ok()
                        .and_then(|e| e.error.message)
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
                    return Err(failed(Some(status.as_u16()), message));
                }
                serde_json::from_slice(&body)
                    .map_err(|e| failed(Some(status.as_u16()), format!("unreadable answer: {e}")))
            })
            .await
    }
}
