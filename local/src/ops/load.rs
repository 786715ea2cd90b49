//! A stampede against a base URL (the local stack, or a deployed CloudFront/API URL):
//! N shoppers, R purchase requests at concurrency C, an optional ramp, and retry on
//! 429 with backoff and jitter as the shopper page does. Reports throughput, latency
//! percentiles (HDR histogram), outcomes, and how long it took until every admitted
//! order was in MySQL. With a waiting room each request is a shopper's whole way in:
//! the challenge solved, the join, the pass, the purchase with it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flashsale::waiting_room::{solve, Challenge};
use flashsale::{Error, OrderId, Result};
use futures::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

/// How shoppers get their tokens.
#[derive(Clone, Debug)]
pub enum Tokens {
    /// Dev tokens signed with the local stack's secret.
    Signed { secret: String },
    /// One token per line of a file, used round-robin (for a deployment).
    Listed(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub base_url: String,
    /// Take this sale; otherwise one is created and published (needs `admin_token`).
    pub sale: Option<u64>,
    pub stock: u32,
    pub per_user_limit: u32,
    pub shoppers: usize,
    pub requests: usize,
    pub concurrency: usize,
    /// Requests start evenly spread over this time instead of all at once.
    pub ramp: Duration,
    pub retry_429: bool,
    pub tokens: Tokens,
    pub admin_token: Option<String>,
    pub progress: bool,
    /// How long to wait for the admitted orders to reach MySQL.
    pub settle_timeout: Duration,
}

/// Shoppers buy through the sale's waiting room ([`run_through_room`]); a sale created
/// for the run gets this one: fifo, `rate` shoppers let through a second, proofs of
/// work of `difficulty`.
#[derive(Clone, Copy, Debug)]
pub struct Room {
    pub rate: u32,
    pub difficulty: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    pub sale_id: u64,
    pub requests: usize,
    pub shoppers: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub latency: Latency,
    /// The same, per outcome: a shopper admitted waits on more than one turned away.
    pub latency_by_outcome: BTreeMap<&'static str, Latency>,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Through a waiting room, each step's own latency (challenge, join, pass, purchase;
    /// a pass asked again while the room did not serve the shopper yet counts each time).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<&'static str, Latency>,
    pub admitted: usize,
    /// From the first request until every admitted order was in MySQL.
    pub persisted_after_secs: Option<f64>,
    #[serde(skip)]
    pub admitted_ids: Vec<OrderId>,
}

fn outcome(status: u16, body: &Value) -> &'static str {
    match (status, body["type"].as_str().unwrap_or("")) {
        (202, _) => "admitted",
        (409, t) if t.ends_with("/sold-out") => "sold_out",
        (409, t) if t.ends_with("/limit-reached") => "limit_reached",
        (409, t) if t.ends_with("/not-open") => "not_open",
        (429, _) => "throttled",
        (503, _) => "unavailable",
        (400..=499, _) => "other_4xx",
        _ => "server_error",
    }
}

pub async fn run(options: &LoadOptions) -> Result<LoadReport> {
    run_through_room(options, None).await
}

/// [`run`], each request a shopper's whole way through the sale's waiting room when
/// `room` is given.
pub async fn run_through_room(options: &LoadOptions, room: Option<Room>) -> Result<LoadReport> {
    flashsale::stores::aws::install_crypto_provider();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let base = options.base_url.trim_end_matches('/').to_string();
    let sale = match options.sale {
        Some(sale) => sale,
        None => create_sale(&http, &base, options, room).await?,
    };
    let tokens: Vec<String> = match &options.tokens {
        Tokens::Signed { secret } => (0..options.shoppers)
            .map(|i| crate::sign_in::token(secret, &format!("load-{sale}-{i}"), false, 3600))
            .collect(),
        Tokens::Listed(tokens) if !tokens.is_empty() => tokens.clone(),
        Tokens::Listed(_) => return Err(Error::Invalid("the token file has no tokens".into())),
    };

    let progress = if options.progress {
        indicatif::ProgressBar::new(options.requests as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let new_histogram = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
    let by_outcome: Mutex<BTreeMap<&'static str, Histogram<u64>>> = Mutex::new(BTreeMap::new());
    let outcomes: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
    let steps: Steps = Mutex::new(BTreeMap::new());
    let admitted_ids: Mutex<Vec<OrderId>> = Mutex::new(Vec::new());
    let url = format!("{base}/api/sales/{sale}");
    let started = Instant::now();

    stream::iter(0..options.requests)
        .map(|i| {
            let (http, url, token) = (&http, &url, &tokens[i % options.shoppers.min(tokens.len()).max(1)]);
            let (by_outcome, outcomes, admitted_ids, progress) = (&by_outcome, &outcomes, &admitted_ids, &progress);
            let steps = &steps;
            let new_histogram = &new_histogram;
            async move {
                let start_at = options.ramp.mul_f64(i as f64 / options.requests as f64);
                if let Some(wait) = start_at.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                let sent = Instant::now();
                let (status, body) = match room {
                    None => {
                        let (purchase, body) = (format!("{url}/purchase"), Some(json!({"quantity": 1})));
                        send(http, reqwest::Method::POST, &purchase, token, body, options.retry_429).await
                    }
                    Some(_) => through_room(http, url, token, options.retry_429, steps).await,
                };
                let took = sent.elapsed().as_micros() as u64;
                let kind = outcome(status, &body);
                by_outcome.lock().unwrap().entry(kind).or_insert_with(new_histogram).saturating_record(took);
                if kind == "admitted" {
                    if let Some(id) = body["order_id"].as_str().and_then(|s| s.parse().ok()) {
                        admitted_ids.lock().unwrap().push(OrderId(id));
                    }
                }
                let mut outcomes = outcomes.lock().unwrap();
                *outcomes.entry(kind).or_default() += 1;
                progress.inc(1);
                if i % 100 == 0 {
                    progress.set_message(format!("{outcomes:?}"));
                }
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let admitted_ids = admitted_ids.into_inner().unwrap();
    let persisted_after_secs = match &options.admin_token {
        _ if admitted_ids.is_empty() => None,
        Some(admin) => wait_persisted(&http, &base, admin, sale, admitted_ids.len(), options.settle_timeout)
            .await?
            .then(|| started.elapsed().as_secs_f64()),
        None => None,
    };
    // Every request's latency is in exactly one outcome's histogram.
    let by_outcome = by_outcome.into_inner().unwrap();
    let mut all = new_histogram();
    for histogram in by_outcome.values() {
        all.add(histogram).expect("histograms of the same bounds");
    }
    let latency = |histogram: &Histogram<u64>| {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Latency { p50_ms: ms(0.5), p90_ms: ms(0.9), p99_ms: ms(0.99), max_ms: histogram.max() as f64 / 1000.0 }
    };
    let steps = steps.into_inner().unwrap().iter().map(|(step, h)| (*step, latency(h))).collect();
    Ok(LoadReport {
        sale_id: sale,
        requests: options.requests,
        shoppers: options.shoppers,
        concurrency: options.concurrency,
        seconds,
        requests_per_sec: options.requests as f64 / seconds,
        latency: latency(&all),
        latency_by_outcome: by_outcome.iter().map(|(kind, h)| (*kind, latency(h))).collect(),
        outcomes: outcomes.into_inner().unwrap(),
        steps,
        admitted: admitted_ids.len(),
        persisted_after_secs,
        admitted_ids,
    })
}

/// Each step's latencies (µs) through a waiting room.
type Steps = Mutex<BTreeMap<&'static str, Histogram<u64>>>;

/// One shopper through the sale's waiting room, as the page goes: the challenge, solved
/// here; the join; the pass, asked again every 100 ms (at most a minute) while the room
/// does not serve the shopper yet; the purchase with it. The first step that fails is
/// the answer.
async fn through_room(http: &reqwest::Client, url: &str, token: &str, retry_429: bool, steps: &Steps) -> (u16, Value) {
    let timed = |step: &'static str, method: reqwest::Method, path: &'static str, body: Option<Value>| async move {
        let sent = Instant::now();
        let answer = send(http, method, &format!("{url}{path}"), token, body, retry_429).await;
        let mut steps = steps.lock().unwrap();
        let histogram = steps
            .entry(step)
            .or_insert_with(|| Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"));
        histogram.saturating_record(sent.elapsed().as_micros() as u64);
        answer
    };
    let (status, challenge) = timed("challenge", reqwest::Method::GET, "/queue/challenge", None).await;
    if status != 200 {
        return (status, challenge);
    }
    let Some(proof) = serde_json::from_value::<Challenge>(challenge).ok().as_ref().and_then(solve) else {
        return (0, json!({"detail": "an unsolvable challenge"}));
    };
    let (status, place) = timed("join", reqwest::Method::POST, "/queue", Some(json!({ "proof": proof }))).await;
    if !matches!(status, 200 | 201) {
        return (status, place);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let pass = loop {
        let (status, body) = timed("pass", reqwest::Method::POST, "/pass", None).await;
        let waiting = status == 409 && body["type"].as_str().is_some_and(|t| t.ends_with("/not-your-turn"));
        match status {
            200 => break body["pass"].clone(),
            _ if waiting && Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return (status, body),
        }
    };
    timed("purchase", reqwest::Method::POST, "/purchase", Some(json!({"quantity": 1, "pass": pass}))).await
}

/// One request, retried on 429 with exponential backoff and full jitter (as the page does).
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
    retry_429: bool,
) -> (u16, Value) {
    let mut backoff = Duration::from_millis(250);
    for attempt in 0..6 {
        let mut request = http.request(method.clone(), url).bearer_auth(token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await;
        let (status, body) = match response {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        };
        if status != 429 || !retry_429 || attempt == 5 {
            return (status, body);
        }
        tokio::time::sleep(backoff.mul_f64(rand::random::<f64>())).await;
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
    unreachable!("the last attempt returns")
}

async fn create_sale(http: &reqwest::Client, base: &str, options: &LoadOptions, room: Option<Room>) -> Result<u64> {
    let admin = options
        .admin_token
        .as_deref()
        .ok_or(Error::Invalid("creating a sale needs an admin token (--admin-token, or the local secret)".into()))?;
    let now = chrono::Utc::now();
    let mut spec = json!({
        "name": format!("Load test {}", now.format("%H:%M:%S")),
        "description": "Created by flashsale-local load",
        "price_cents": 100,
        "stock": options.stock,
        "per_user_limit": options.per_user_limit,
        "starts_at": now - chrono::Duration::seconds(1),
        "ends_at": now + chrono::Duration::hours(1),
        "payment_window_secs": 600,
    });
    if let Some(room) = room {
        spec["waiting_room"] =
            json!({"mode": "fifo", "rate": room.rate, "difficulty": room.difficulty, "paused": false});
    }
    let sale: Value =
        admin_call(http, reqwest::Method::POST, &format!("{base}/api/admin/sales"), admin, Some(spec)).await?;
    let id = sale["id"].as_u64().ok_or(Error::Internal(format!("unexpected sale: {sale}")))?;
    admin_call(http, reqwest::Method::POST, &format!("{base}/api/admin/sales/{id}/publish"), admin, None).await?;
    Ok(id)
}

async fn admin_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| Error::Internal(format!("{url}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(Error::Internal(format!("{url}: {status} {body}")));
    }
    Ok(body)
}

/// Polls the admin report until MySQL holds every admitted order and the outbox is empty.
async fn wait_persisted(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    sale: u64,
    admitted: usize,
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let url = format!("{base}/api/admin/sales/{sale}/report");
    loop {
        let report = admin_call(http, reqwest::Method::GET, &url, admin, None).await?;
        let in_mysql: u64 = ["UNPAID", "PAID", "CLOSED", "REJECTED"]
            .iter()
            .map(|s| report["orders"][s]["orders"].as_u64().unwrap_or(0))
            .sum();
        if in_mysql >= admitted as u64 && report["pending_orders"].as_u64() == Some(0) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn print(report: &LoadReport) {
    println!(
        "sale {}: {} requests from {} shoppers at concurrency {} in {:.2}s = {:.0} req/s",
        report.sale_id, report.requests, report.shoppers, report.concurrency, report.seconds, report.requests_per_sec
    );
    let line =
        |l: &Latency| format!("p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}", l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms);
    println!("latency ms: {}", line(&report.latency));
    for (kind, l) in &report.latency_by_outcome {
        println!("  {kind}: {}", line(l));
    }
    let outcomes: Vec<String> = report.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("outcomes: {}", outcomes.join(", "));
    for (step, l) in &report.steps {
        println!("  step {step}: {}", line(l));
    }
    match report.persisted_after_secs {
        Some(s) => println!("all {} admitted orders in MySQL after {s:.2}s", report.admitted),
        None => println!("{} admitted; persistence not confirmed", report.admitted),
    }
}
