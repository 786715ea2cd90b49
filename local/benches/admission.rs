//! Admission throughput, as ratios against the raw EVALSHA rate of the same script on
//! the same Redis, measured in the same run (this machine is noisy; ratios travel).
//!
//! `cargo bench -p flashsale-local --bench admission` with the local services up
//! (`scripts/services.sh up`). `BENCH_REQUESTS` (default 20000) per phase and round,
//! `BENCH_CONCURRENCY` (default 64), `BENCH_ROUNDS` (default 3); medians are printed.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flashsale_local::aws::gateway::lambda_request;

use common::{admit_call, env, median, open_sale, rate};

async fn sale(stack: &flashsale_local::Stack, stock: u32) -> u64 {
    let new = open_sale("bench", stock);
    let sale = stack.functions.admin.create_sale(&new).await.unwrap();
    stack.functions.admin.publish(sale.id).await.unwrap();
    sale.id.0
}

/// A purchase by `user` as CloudFront forwards it to `admit`: with the origin header.
fn purchase(origin: &str, sale: u64, user: String) -> lambda_http::Request {
    let claims = Some([("sub".to_string(), user)].into());
    let mut request = lambda_request("POST", &format!("/api/sales/{sale}/purchase"), claims, b"");
    request.headers_mut().insert(flashsale::lambda::http::ORIGIN_HEADER, origin.parse().unwrap());
    request
}

#[tokio::main]
async fn main() {
    let requests = env("BENCH_REQUESTS", 20_000);
    let concurrency = env("BENCH_CONCURRENCY", 64);
    let rounds = env("BENCH_ROUNDS", 3);
    let mut options = flashsale_local::Options::from_env().unwrap();
    options.addr = "127.0.0.1:0".parse().unwrap();
    options.queue_prefix = format!("bench-{:08x}-", rand::random::<u32>());
    options.consumers = 0;
    options.reconcile_every_secs = 0;
    options.config.admission.sold_out_ttl = Duration::ZERO;
    let stack = flashsale_local::start(options).await.expect("local services up?");

    let redis = redis::Client::open(stack.config.redis.url.expose()).unwrap();
    let conn = redis.get_multiplexed_async_connection().await.unwrap();
    let script = redis::Script::new(concat!(include_str!("../../lua/epoch.lua"), include_str!("../../lua/admit.lua")));
    let next_id = Arc::new(AtomicU64::new(1));
    let functions = stack.functions.clone();
    let http = reqwest::Client::new();
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    let queued = || async {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&stack.resources.orders_queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut sent_to_sqs = Vec::new();

    let (mut raw_admit, mut raw_reject, mut handler_admit, mut handler_reject, mut http_reject) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Admitting: every call is a new shopper on a sale with ample stock.
        let raw_sale = sale(&stack, requests as u32).await;
        raw_admit.push(
            rate(requests, concurrency, |i| {
                let (mut conn, script, id) = (conn.clone(), &script, next_id.fetch_add(1, Ordering::Relaxed));
                async move {
                    let _: Vec<String> =
                        admit_call(script, raw_sale, &format!("u{i}"), id).invoke_async(&mut conn).await.unwrap();
                }
            })
            .await,
        );
        let handler_sale = sale(&stack, requests as u32).await;
        let origin = stack.secrets.origin_values[0].expose().to_string();
        let before = queued().await;
        handler_admit.push(
            rate(requests, concurrency, |i| {
                let (functions, origin) = (functions.clone(), origin.clone());
                async move {
                    let r = functions.admit.handle(purchase(&origin, handler_sale, format!("u{i}"))).await;
                    assert_eq!(r.status(), 202);
                }
            })
            .await,
        );
        sent_to_sqs.push(queued().await - before);
        // Turning away: the same sales, now sold out.
        raw_reject.push(
            rate(requests, concurrency, |i| {
                let (mut conn, script) = (conn.clone(), &script);
                async move {
                    let _: Vec<String> =
                        admit_call(script, raw_sale, &format!("late{i}"), 0).invoke_async(&mut conn).await.unwrap();
                }
            })
            .await,
        );
        handler_reject.push(
            rate(requests, concurrency, |i| {
                let (functions, origin) = (functions.clone(), origin.clone());
                async move {
                    let r = functions.admit.handle(purchase(&origin, handler_sale, format!("late{i}"))).await;
                    assert_eq!(r.status(), 409);
                }
            })
            .await,
        );
        let tokens: Vec<String> = (0..concurrency).map(|i| stack.token(&format!("h{i}"), false)).collect();
        http_reject.push(
            rate(requests, concurrency, |i| {
                let (http, url, token) =
                    (&http, stack.url(&format!("/api/sales/{handler_sale}/purchase")), &tokens[i % concurrency]);
                async move {
                    let r = http.post(url).bearer_auth(token).send().await.unwrap();
                    assert!(r.status() == 409 || r.status() == 429);
                }
            })
            .await,
        );
        eprintln!("round {} done", round + 1);
    }
    let (ra, rr, ha, hr, xr) =
        (median(raw_admit), median(raw_reject), median(handler_admit), median(handler_reject), median(http_reject));
    println!("admission throughput, medians of {rounds} rounds of {requests} requests at concurrency {concurrency}");
    println!("{:<58} {:>10} {:>8}", "", "req/s", "ratio");
    println!("{:<58} {:>10.0} {:>8}", "raw EVALSHA admit.lua, admitting (baseline)", ra, "1.00");
    println!("{:<58} {:>10.0} {:>8.2}", "admit handler, admitting (EVALSHA + id + SQS send)", ha, ha / ra);
    println!(
        "  of which sent to SQS (moto) per round: {sent_to_sqs:?} of {requests}; the rest stayed in the outbox \
         (send timed out or the SQS breaker was open); reconcile re-sends them"
    );
    println!("{:<58} {:>10.0} {:>8}", "raw EVALSHA admit.lua, sold out (baseline)", rr, "1.00");
    println!("{:<58} {:>10.0} {:>8.2}", "admit handler, sold out (memo off)", hr, hr / rr);
    println!("{:<58} {:>10.0} {:>8.2}", "HTTP through the local gateway, sold out (memo off)", xr, xr / rr);
}
