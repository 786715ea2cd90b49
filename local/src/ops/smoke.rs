//! The staging smoke test: one sale through a deployed stack, the way shoppers and staff
//! reach it (through CloudFront): staff create and publish a sale, whose page the site
//! serves and lists on its index, two shoppers each buy its last units, one pays with the payment
//! provider's test card (where a publishable key is given), and the other's order is
//! closed when its payment window ends, its unit back on sale. The deploy workflow runs
//! it against staging before production; `make test` runs it against the local stack.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

/// What the smoke test needs of the stack.
#[derive(Clone, Debug)]
pub struct Smoke {
    /// The site's origin (the CloudFront distribution), e.g. `https://d111.cloudfront.net`.
    pub base: String,
    /// A token of a member of the admin group.
    pub admin_token: String,
    /// Tokens of two shoppers.
    pub shopper_tokens: [String; 2],
    /// The payment provider's API origin and publishable key, to pay in its test mode;
    /// `None` skips the payment.
    pub payments: Option<(String, String)>,
    /// The sale's payment window: how long the close step waits, at least.
    pub window_secs: u32,
    /// How long each step may take to show its effect.
    pub within: Duration,
}

/// The site, called as a browser would.
struct Site {
    http: reqwest::Client,
    base: String,
}

impl Site {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let method: reqwest::Method = method.parse().map_err(|_| format!("{method} is no method"))?;
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// The answer's body if its status is `want`.
    async fn expect(
        &self,
        step: &str,
        want: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, String> {
        match self.call(method, path, token, body).await? {
            (status, body) if status == want => Ok(body),
            (status, body) => Err(format!("{step}: {method} {path} answered {status}, not {want}: {body}")),
        }
    }

    async fn order_status(&self, token: &str, order: &str) -> Result<String, String> {
        let (_, body) = self.call("GET", &format!("/api/orders/{order}"), Some(token), None).await?;
        Ok(body["status"].as_str().unwrap_or_default().to_string())
    }

    async fn wait_for_status(&self, limit: Duration, token: &str, order: &str, status: &str) -> Result<(), String> {
        within(limit, &format!("order {order} {status}"), || async {
            Ok((self.order_status(token, order).await? == status).then_some(()))
        })
        .await
    }
}

/// Runs the smoke test; each step's line, or the step that failed and why.
pub async fn run(smoke: &Smoke) -> Result<Vec<String>, String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
    let site = Site { http: http.clone(), base: smoke.base.trim_end_matches('/').to_string() };
    let admin = Some(smoke.admin_token.as_str());
    let [a, b] = [smoke.shopper_tokens[0].as_str(), smoke.shopper_tokens[1].as_str()];
    let mut report = Vec::new();

    let now = Utc::now();
    let spec = json!({
        "name": format!("Smoke test {}", now.format("%Y-%m-%d %H:%M:%S")),
        "description": "Created by the deploy's smoke test; it sells out to test shoppers.",
        "price_cents": 100,
        "stock": 2,
        "per_user_limit": 1,
        "starts_at": now - chrono::Duration::seconds(1),
        "ends_at": now + chrono::Duration::minutes(30),
        "payment_window_secs": smoke.window_secs,
    });
    let sale = site.expect("creating a sale", 201, "POST", "/api/admin/sales", admin, Some(spec)).await?;
    let id = sale["id"].as_u64().ok_or_else(|| format!("creating a sale: no id in {sale}"))?;
    site.expect("publishing it", 200, "POST", &format!("/api/admin/sales/{id}/publish"), admin, None).await?;
    report.push(format!("sale {id} created and published"));

    let page = format!("/sales/{id}");
    within(smoke.within, "its page, listed on the site's index", || async {
        let listed = match site.call("GET", "/", None, None).await? {
            (200, Value::String(index)) => index.contains(&format!("\"{page}\"")),
            _ => false,
        };
        Ok((listed && site.call("GET", &page, None, None).await?.0 == 200).then_some(()))
    })
    .await?;
    report.push(format!("its page {page} is served and listed on the index"));

    let mut orders = Vec::new();
    for (who, token) in [("the first shopper", a), ("the second shopper", b)] {
        let path = format!("/api/sales/{id}/purchase");
        let body = site.expect(who, 202, "POST", &path, Some(token), Some(json!({ "quantity": 1 }))).await?;
        orders.push(body["order_id"].as_str().ok_or_else(|| format!("{who}: no order id in {body}"))?.to_string());
    }
    report.push(format!("two shoppers admitted: orders {} and {}", orders[0], orders[1]));
    site.wait_for_status(smoke.within, a, &orders[0], "UNPAID").await?;
    site.wait_for_status(smoke.within, b, &orders[1], "UNPAID").await?;
    report.push("both orders persisted, awaiting payment".to_string());

    match &smoke.payments {
        Some((api, key)) => {
            let path = format!("/api/orders/{}/payment", orders[0]);
            let payment = site.expect("starting a payment", 200, "POST", &path, Some(a), None).await?;
            let secret = payment["client_secret"].as_str().ok_or_else(|| format!("no client secret in {payment}"))?;
            let intent = secret.split("_secret_").next().unwrap_or_default();
            // As the provider's script confirms from a page: the publishable key, the
            // client secret, and the provider's test card that pays.
            let card = [
                ("key", key.as_str()),
                ("client_secret", secret),
                ("payment_method_data[type]", "card"),
                ("payment_method_data[card][number]", "4242424242424242"),
                ("payment_method_data[card][exp_month]", "12"),
                ("payment_method_data[card][exp_year]", "2034"),
                ("payment_method_data[card][cvc]", "123"),
            ];
            let confirmed = http
                .post(format!("{}/v1/payment_intents/{intent}/confirm", api.trim_end_matches('/')))
                .form(&card)
                .send()
                .await
                .map_err(|e| format!("confirming the payment: {e}"))?;
            let answer: Value = confirmed.json().await.unwrap_or(Value::Null);
            if answer["status"] != "succeeded" {
                return Err(format!("confirming the payment: the provider answered {answer}"));
            }
            site.wait_for_status(smoke.within, a, &orders[0], "PAID").await?;
            report.push(format!("order {} paid with the provider's test card", orders[0]));
        }
        None => report.push("payment skipped: no publishable key given".to_string()),
    }

    let window = Duration::from_secs(u64::from(smoke.window_secs));
    site.wait_for_status(window + smoke.within, b, &orders[1], "CLOSED").await?;
    within(smoke.within, "its unit back on sale", || async {
        let (_, sale) = site.call("GET", &format!("/api/sales/{id}"), None, None).await?;
        Ok((sale["remaining"].as_u64() == Some(1)).then_some(()))
    })
    .await?;
    report.push(format!("order {} closed unpaid, its unit back on sale", orders[1]));
    Ok(report)
}

/// Polls `check` every second until it says yes, for at most `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<()>, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = check().await;
        match last {
            Ok(Some(())) => return Ok(()),
            Ok(None) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_secs(1)).await,
            Ok(None) => return Err(format!("{what}: not within {limit:?}")),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}
