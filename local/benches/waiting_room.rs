//! The waiting room's costs, as ratios against baselines measured in the same run:
//!
//! - status reads/s and joins/s through the local edge (HTTP, as the pages send them),
//!   next to a static answer from nginx under the same client (`BENCH_NGINX_URL`,
//!   default `http://127.0.0.1:3200/`, which `scripts/bench.sh` starts; `none` puts a
//!   static answer served in this process in its place, for the short round `make test`
//!   runs where there is no nginx), and status reads
//!   straight to the API with the edge's cache out of the way;
//! - the function's CPU per proof-of-work check and per pass check, next to one SHA-256
//!   of the same input.
//!
//! `cargo bench -p flashsale-local --bench waiting_room` with the local services up.
//! `BENCH_REQUESTS` (default 20000) per phase and round, `BENCH_CONCURRENCY` (default
//! 64), `BENCH_ROUNDS` (default 3), `BENCH_CHECKS` (default 200000) checks timed per
//! round; medians are printed.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use flashsale::domain::{QueueMode, WaitingRoom};
use flashsale::waiting_room::{solve, Challenge, RoomKeys};
use flashsale::{SaleId, UserId};
use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use common::{env, median, open_sale, rate};

/// Nanoseconds per call of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        f(i);
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

/// A server of this process's own answering every request with a short static body:
/// the baseline where no nginx runs. Its address.
async fn static_answer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

#[tokio::main]
async fn main() {
    let requests = env("BENCH_REQUESTS", 20_000);
    let concurrency = env("BENCH_CONCURRENCY", 64);
    let rounds = env("BENCH_ROUNDS", 3);
    let (nginx, baseline) = match std::env::var("BENCH_NGINX_URL").as_deref() {
        Ok("none") => (static_answer().await, "static answer served in this process (baseline)"),
        Ok(url) => (url.to_string(), "static answer from nginx, same client (baseline)"),
        Err(_) => ("http://127.0.0.1:3200/".to_string(), "static answer from nginx, same client (baseline)"),
    };
    let mut options = flashsale_local::Options::from_env().unwrap();
    options.addr = "127.0.0.1:0".parse().unwrap();
    options.queue_prefix = format!("bench-{:08x}-", rand::random::<u32>());
    options.consumers = 0;
    options.reconcile_every_secs = 0;
    options.stage_rate = (1e9, 1_000_000);
    options.queue_rate = (1e9, 1_000_000);
    let stack = flashsale_local::start(options).await.expect("local services up?");
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let get = |url: String| {
        let http = &http;
        async move {
            let response = http.get(url).send().await.expect("answers");
            assert!(response.status().as_u16() < 500, "{}", response.status());
            response.bytes().await.unwrap();
        }
    };
    assert!(http.get(&nginx).send().await.is_ok(), "nginx at {nginx} (BENCH_NGINX_URL; scripts/bench.sh starts it)");

    let room = WaitingRoom { mode: QueueMode::Fifo, rate: 1000, difficulty: 1_000, paused: false };
    let mut draft = (*open_sale("bench room", 1000)).clone();
    draft.waiting_room = Some(room);
    let new = flashsale::domain::NewSale::try_from(draft).unwrap();
    let sale = stack.functions.admin.create_sale(&new).await.unwrap();
    stack.functions.admin.publish(sale.id).await.unwrap();
    let status_url = stack.url(&format!("/api/sales/{}/queue/status", sale.id));
    let direct_status = format!("http://{}/api/sales/{}/queue/status", stack.api_addr, sale.id);
    let origin = stack.secrets.origin_values[0].expose().to_string();

    let (mut nginx_rates, mut edge_rates, mut origin_rates, mut join_rates) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        nginx_rates.push(rate(requests, concurrency, |_| get(nginx.clone())).await);
        edge_rates.push(rate(requests, concurrency, |_| get(status_url.clone())).await);
        origin_rates.push(
            rate(requests, concurrency, |_| {
                let (http, url, origin) = (&http, direct_status.clone(), origin.clone());
                async move {
                    let response =
                        http.get(url).header(flashsale::lambda::http::ORIGIN_HEADER, origin).send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    response.bytes().await.unwrap();
                }
            })
            .await,
        );
        // Joins: each a shopper of its own with a challenge solved beforehand (the page's
        // work, not the function's), sent as the page sends it.
        let joins: Vec<(String, String)> = stream::iter(0..requests)
            .map(|i| {
                let http = &http;
                let url = stack.url(&format!("/api/sales/{}/queue/challenge", sale.id));
                let token = stack.token(&format!("joiner-{round}-{i}"), false);
                async move {
                    let challenge: Challenge =
                        http.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                    let proof = solve(&challenge).unwrap();
                    (token, serde_json::json!({ "proof": proof }).to_string())
                }
            })
            .buffered(concurrency)
            .collect()
            .await;
        let join_url = stack.url(&format!("/api/sales/{}/queue", sale.id));
        join_rates.push(
            rate(requests, concurrency, |i| {
                let (http, url, (token, body)) = (&http, join_url.clone(), &joins[i]);
                async move {
                    let response = http
                        .post(url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 201);
                    response.bytes().await.unwrap();
                }
            })
            .await,
        );
    }

    // The function's CPU per check, one core, next to one SHA-256 of the same salt.
    let keys = RoomKeys::new(stack.secrets.room_key.as_ref().unwrap());
    let user = UserId::new("bench-shopper").unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let proof = solve(&keys.challenge(SaleId(1), &user, 1_000, now_ms)).unwrap();
    let pass = keys.issue_pass(SaleId(1), &user, now_ms, Duration::from_secs(60));
    let n = env("BENCH_CHECKS", 200_000);
    let (mut sha, mut proofs, mut passes) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        sha.push(per_call(n, |i| {
            black_box(Sha256::new().chain_update(&proof.salt).chain_update(i.to_string()).finalize());
        }));
        proofs.push(per_call(n, |_| {
            black_box(keys.check_proof(black_box(&proof), SaleId(1), &user, now_ms)).unwrap();
        }));
        passes.push(per_call(n, |_| {
            black_box(keys.check_pass(black_box(&pass.token), SaleId(1), &user, now_ms)).unwrap();
        }));
    }

    let (nginx, edge, origin, join) =
        (median(nginx_rates), median(edge_rates), median(origin_rates), median(join_rates));
    println!("waiting room through the local edge, medians of {rounds} rounds of {requests} requests, {concurrency} in flight");
    println!("{:<66} {:>10} {:>8}", "", "requests/s", "ratio");
    println!("{:<66} {:>10.0} {:>8.2}", baseline, nginx, 1.0);
    println!("{:<66} {:>10.0} {:>8.2}", "GET .../queue/status through the edge (cached a second)", edge, edge / nginx);
    println!(
        "{:<66} {:>10.0} {:>8.2}",
        "GET .../queue/status at the API, no edge cache (origin reads)",
        origin,
        origin / nginx
    );
    println!(
        "{:<66} {:>10.0} {:>8.2}",
        "POST .../queue, a new shopper each with a solved challenge",
        join,
        join / nginx
    );
    println!();
    println!("the function's CPU per check, medians of {rounds} rounds of {n}");
    println!("{:<66} {:>10} {:>8}", "", "ns", "ratio");
    let sha = median(sha);
    println!("{:<66} {:>10.0} {:>8.2}", "one SHA-256 of the challenge's salt and a number (baseline)", sha, 1.0);
    let proofs = median(proofs);
    println!("{:<66} {:>10.0} {:>8.2}", "a join's proof of work checked (HMAC, SHA-256, salt)", proofs, proofs / sha);
    let passes = median(passes);
    println!("{:<66} {:>10.0} {:>8.2}", "a purchase's pass checked (HMAC)", passes, passes / sha);
}
