//! The stack's HTTP API as a shopper, the staff and the provider's page call it.

use std::time::Duration;

use flashsale_local::Stack;
use serde_json::{json, Value};

use super::*;

/// A sale spec: `starts_in` and `lasts` in seconds from now.
pub fn sale_spec(stock: u32, limit: u32, window_secs: u32, starts_in: i64, lasts: i64) -> Value {
    let now = chrono::Utc::now();
    json!({
        "name": "Test phone",
        "description": "<b>escaped</b>",
        "price_cents": 1000,
        "stock": stock,
        "per_user_limit": limit,
        "starts_at": now + chrono::Duration::seconds(starts_in),
        "ends_at": now + chrono::Duration::seconds(starts_in + lasts),
        "payment_window_secs": window_secs,
    })
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub admin: String,
    secret: String,
    /// The local payment provider's API.
    pub payments: String,
}

/// Stripe's test cards: one that pays, one that is declined.
pub const CARD_OK: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";

impl Api {
    pub fn new(stack: &Stack) -> Self {
        flashsale::stores::aws::install_crypto_provider();
        Api {
            http: reqwest::Client::builder().pool_max_idle_per_host(200).build().unwrap(),
            base: stack.url(""),
            admin: stack.token("admin", true),
            secret: stack.jwt_secret.clone(),
            payments: stack.config.payments.api_url.clone(),
        }
    }

    /// The same client and tokens, against the stack at `base`.
    pub fn at(mut self, base: String) -> Self {
        self.base = base;
        self
    }

    pub fn token(&self, user: &str) -> String {
        flashsale_local::sign_in::token(&self.secret, user, false, 3600)
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the stack answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates and publishes a sale, returning its id.
    pub async fn sale(&self, spec: Value) -> u64 {
        let (status, sale) = self.call("POST", "/api/admin/sales", Some(&self.admin), Some(spec)).await;
        assert_eq!(status, 201, "{sale}");
        let id = sale["id"].as_u64().unwrap();
        let (status, body) =
            self.call("POST", &format!("/api/admin/sales/{id}/publish"), Some(&self.admin), None).await;
        assert_eq!(status, 200, "{body}");
        id
    }

    pub async fn buy(&self, sale: u64, user: &str, quantity: Option<u32>) -> (u16, Value) {
        let body = quantity.map(|q| json!({ "quantity": q }));
        self.call("POST", &format!("/api/sales/{sale}/purchase"), Some(&self.token(user)), body).await
    }

    pub async fn order(&self, user: &str, order: &str) -> (u16, Value) {
        self.call("GET", &format!("/api/orders/{order}"), Some(&self.token(user)), None).await
    }

    /// What the page asks for before it pays: the order's payment and client secret.
    pub async fn payment(&self, user: &str, order: &str) -> (u16, Value) {
        self.call("POST", &format!("/api/orders/{order}/payment"), Some(&self.token(user)), None).await
    }

    /// Confirms a payment with a test card at the provider, as the provider's script
    /// does from the page (publishable key and client secret): the provider's answer.
    pub async fn confirm_card(&self, client_secret: &str, card: &str) -> (u16, Value) {
        let intent = client_secret.split("_secret_").next().unwrap();
        let body = json!({
            "key": "pk_test_flashsale_local",
            "client_secret": client_secret,
            "payment_method_data": {"type": "card", "card": {"number": card, "exp_month": "12", "exp_year": "2034", "cvc": "123"}},
        });
        let url = format!("{}/v1/payment_intents/{intent}/confirm", self.payments);
        let response = self.http.post(url).json(&body).send().await.expect("the payment provider answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// A shopper pays `order` with `card` through the provider: the provider's answer
    /// to the confirmation. The order is PAID only once the provider's webhook arrived.
    pub async fn pay(&self, user: &str, order: &str, card: &str) -> (u16, Value) {
        let (status, payment) = self.payment(user, order).await;
        assert_eq!(status, 200, "a payment for {order}: {payment}");
        self.confirm_card(payment["client_secret"].as_str().unwrap(), card).await
    }

    /// An UNPAID order of `user` in `sale`, once MySQL has it.
    pub async fn unpaid_order(&self, sale: u64, user: &str) -> String {
        let (status, body) = self.buy(sale, user, None).await;
        assert_eq!(status, 202, "{body}");
        let order = body["order_id"].as_str().unwrap().to_string();
        self.await_status(user, &order, "UNPAID").await;
        order
    }

    /// Posts a delivery to the stack's webhook through the edge, as the provider does.
    pub async fn post_delivery(&self, body: &str, signature: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/payments/webhook", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .expect("the stack answers")
    }

    /// A delivery's `(status, body)`.
    pub async fn deliver(&self, body: &str, signature: &str) -> (u16, Value) {
        let response = self.post_delivery(body, signature).await;
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Waits for the order to be `status` (through the shop API, as its owner).
    pub async fn await_status(&self, user: &str, order: &str, status: &str) -> Value {
        eventually(&format!("order {order} {status}"), Duration::from_secs(20), || async {
            let (_, body) = self.order(user, order).await;
            (body["status"] == status).then_some(body)
        })
        .await
    }

    /// The payment intent as the provider has it (with the stack's secret key).
    pub async fn intent(&self, stack: &Stack, id: &str) -> Value {
        let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
        let url = format!("{}/v1/payment_intents/{id}", self.payments);
        self.http.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap()
    }

    /// The amount the provider refunded on an intent.
    pub async fn refunded(&self, stack: &Stack, intent: &str) -> u64 {
        let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
        let url = format!("{}/v1/refunds?payment_intent={intent}", self.payments);
        let refunds: Value = self.http.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        refunds["data"].as_array().unwrap().iter().map(|r| r["amount"].as_u64().unwrap()).sum()
    }

    /// Points the stack's webhook endpoint at the provider to `url` (the stack's own when
    /// `None`), as one edits an endpoint in the provider's dashboard.
    pub async fn webhook_to(&self, stack: &Stack, url: Option<&str>) {
        let keys = stack.secrets.payment_keys.as_ref().unwrap();
        let own = stack.url("/api/payments/webhook");
        flashsale_local::register_webhook(&self.payments, keys, keys.secret_key.expose(), url.unwrap_or(&own))
            .await
            .unwrap();
    }
}

/// Buys as each of `users` in turn, each told 202: `(user, order id)`.
pub async fn admitted(api: &Api, sale: u64, users: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for user in users {
        let (status, body) = api.buy(sale, &user, None).await;
        assert_eq!(status, 202, "{body}");
        out.push((user, body["order_id"].as_str().unwrap().to_string()));
    }
    out
}
