//! The payment provider's API, in Stripe's shape: PaymentIntents (create, read, cancel)
//! and refunds. Form-encoded calls with the secret key, each under the AWS call timeout
//! and behind a circuit breaker, so a provider that is down answers 503 at once.
//!
//! Every call that moves money carries an idempotency key (a payment's from the order
//! id, a refund's from the intent it gives back), so a retried call is the same call at
//! the provider. Every intent names the stack that created it and the order
//! ([`STACK_TAG`], `order_id` in its metadata): the account serves others too.

use std::collections::HashMap;

use serde::Deserialize;

use super::budget::{Budget, MONEY_PATIENCE};
use super::maker::{Maker, STACK_TAG};
use crate::config::{Config, Secrets};
use crate::domain::{Currency, Order, OrderId};
use crate::error::{causes, Error, Result};
use crate::secret::Secret;
use crate::stores::breaker::Breaker;
use crate::stores::redis::Redis;

pub struct Provider {
    http: reqwest::Client,
    /// `https://api.stripe.com`, or the local provider.
    api: String,
    secret_key: Secret,
    breaker: Breaker,
    /// The account's budget of calls, shared through Redis ([`Provider::with_budget`]);
    /// `None` only for a client no function serves with (the tests' own).
    budget: Option<Budget>,
    calls_per_sec: u32,
    redis_timeout: std::time::Duration,
    /// This stack's name, tagged on every intent it creates ([`STACK_TAG`]).
    stack: String,
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
    /// The charge that took the money (read expanded): refunds and disputes made at
    /// the provider show there.
    #[serde(default)]
    pub latest_charge: Option<LatestCharge>,
}

/// An intent's `latest_charge`: the charge itself when expanded, else its id.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum LatestCharge {
    Expanded(Charge),
    Id(String),
}

/// What a charge says of its money after it was taken.
#[derive(Clone, Debug, Deserialize)]
pub struct Charge {
    pub id: String,
    #[serde(default)]
    pub amount_refunded: u64,
    /// Refunded in full.
    #[serde(default)]
    pub refunded: bool,
    /// The card holder's bank disputes it (a chargeback).
    #[serde(default)]
    pub disputed: bool,
}

impl Intent {
    /// The order the intent was created for (its metadata says so), whoever created it.
    pub fn order_id(&self) -> Option<OrderId> {
        self.metadata.get("order_id")?.parse().ok()
    }

    /// Who made the intent, as its [`STACK_TAG`] says to `stack`.
    pub fn maker(&self, stack: &str) -> Maker {
        Maker::by_tag(self.metadata.get(STACK_TAG).map(String::as_str), stack)
    }

    /// Its charge, when the intent was read with it expanded and money was taken.
    pub fn charge(&self) -> Option<&Charge> {
        match &self.latest_charge {
            Some(LatestCharge::Expanded(charge)) => Some(charge),
            _ => None,
        }
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
            .connect_timeout(config.aws.timeout)
            .timeout(config.aws.timeout)
            .build()
            .map_err(|e| Error::Config(format!("payment provider client: {e}")))?;
        Ok(Provider {
            http,
            api: config.payments.api_url.trim_end_matches('/').to_string(),
            secret_key,
            breaker: Breaker::new("payments", config.breaker.failures, config.breaker.cooldown, config.aws.timeout),
            budget: None,
            calls_per_sec: config.payments.calls_per_sec,
            redis_timeout: config.redis.timeout * 2,
            stack: config.payments.stack_name.clone(),
        })
    }

    /// Every call from now on first takes its token from the account's budget in `redis`
    /// (see [`super::budget`]): each function that calls the provider builds it so.
    pub fn with_budget(mut self, redis: &Redis) -> Self {
        self.budget = Some(Budget::new(redis, &self.secret_key, self.calls_per_sec, self.redis_timeout));
        self
    }

    /// From the keys read at init; a function that takes money cannot start without them.
    pub fn from_config(config: &Config, secrets: &Secrets) -> Result<Self> {
        let keys = secrets
            .payment_keys
            .as_ref()
            .ok_or_else(|| Error::Config("FLASHSALE_PAYMENTS_SECRET must name the payment provider's keys".into()))?;
        Provider::new(config, keys.secret_key.clone())
    }

    /// The stack whose intents this client creates (and whose alone it acts on).
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// A PaymentIntent for the order's amount, tagged with this stack and the order:
    /// the same one however often it is asked for (the idempotency key is the order's).
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
            ("metadata[flashsale_stack]", self.stack.clone()),
        ];
        let key = format!("order-{}-intent", order.order_id);
        self.send("create payment", self.post("/v1/payment_intents", Some(&key)).form(&form)).await
    }

    /// The intent as it is now, with its charge expanded (refunds and disputes).
    pub async fn intent(&self, id: &str) -> Result<Intent> {
        let request =
            self.http.get(self.url(&format!("/v1/payment_intents/{id}"))).query(&[("expand[]", "latest_charge")]);
        self.send("read payment", request).await
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

    /// Gives the whole of the intent's money back, once per intent: the idempotency key
    /// is the intent's, so a repeated refund is the same refund at the provider (an
    /// order's key would make two intents of one order, or every intent of none, one).
    pub async fn refund(&self, intent: &str, order: OrderId, reason: &str) -> Result<()> {
        let form = [
            ("payment_intent", intent.to_string()),
            ("metadata[order_id]", order.to_string()),
            ("metadata[reason]", reason.to_string()),
        ];
        let key = refund_key(intent);
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
        if let Some(budget) = &self.budget {
            // Calls that move money and must happen wait a moment for a token.
            let must_happen = ["cancel payment", "refund payment"].contains(&operation);
            budget.take(if must_happen { MONEY_PATIENCE } else { std::time::Duration::ZERO }).await?;
        }
        self.breaker
            .call(async {
                let failed = |status: Option<u16>, message: String| Error::Provider { operation, status, message };
                let response = request.send().await.map_err(|e| failed(None, causes(&e)))?;
                let status = response.status();
                if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    // The provider saying "slower", not "down": a 503 with Retry-After
                    // that the breaker does not count.
                    let retry_after_secs = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .clamp(1, 60);
                    tracing::warn!(operation, retry_after_secs, "payment provider rate-limited the call");
                    return Err(Error::Throttled { service: "payments", retry_after_secs });
                }
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

/// The idempotency key of the refund of `intent`.
pub fn refund_key(intent: &str) -> String {
    format!("refund-{intent}")
}

#[cfg(test)]
mod budget_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A provider of the test's own that answers every request with `status` (a 429 with
    /// `Retry-After: 7`): its address, and how many requests reached it.
    async fn answering(status: u16) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"error":{"message":"slow down"}}"#;
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nretry-after: 7\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, asked)
    }

    fn provider_at(api: String) -> Provider {
        let mut config = Config::from_env().unwrap();
        config.payments.api_url = api;
        config.breaker.failures = 2;
        Provider::new(&config, Secret::from("sk_test_budget")).unwrap()
    }

    /// The provider's 429 says "slower", not "down": each one is a 503 with the provider's
    /// `Retry-After`, every call is still made, and the breaker stays closed. A provider
    /// that fails (500) opens it, as before.
    #[tokio::test]
    async fn the_providers_429_is_a_503_with_retry_after_and_opens_no_breaker() {
        let (api, asked) = answering(429).await;
        let provider = provider_at(api);
        for _ in 0..6 {
            let refused = provider.intent("pi_1").await.unwrap_err();
            assert!(matches!(refused, Error::Throttled { retry_after_secs: 7, .. }), "{refused:?}");
            let answer = crate::lambda::http::problem(&refused);
            assert_eq!(answer.status(), 503);
            assert_eq!(answer.headers()["retry-after"], "7");
        }
        assert!(!provider.breaker.is_open(), "a 429 is not a failure of the provider");
        assert_eq!(asked.load(Ordering::SeqCst), 6, "no call was turned away by an open breaker");

        let (api, asked) = answering(500).await;
        let provider = provider_at(api);
        for _ in 0..6 {
            let _ = provider.intent("pi_1").await;
        }
        assert!(provider.breaker.is_open(), "a provider that fails opens the breaker");
        assert_eq!(asked.load(Ordering::SeqCst), 2, "after the threshold, calls fail fast");
    }
}
