//! What Lambda bills for `admit`: the handler fed its API Gateway payload-v2 event (the
//! authorizer's claims in it; the event written and parsed as the runtime parses it), in
//! this process, one invocation at a time as a Lambda container takes them, against the
//! real Redis, its replica and moto. Per path: wall time per invocation (p50, p99) and
//! CPU per invocation (every thread's time on a CPU over the phase, so the
//! hand-off's send after the answer is counted too), next to the raw round trips the
//! admitted path needs, timed the same way in the same run: `EVALSHA admit.lua`, and
//! that followed by `WAIT 1` on its connection.
//!
//! `cargo bench -p flashsale-local --bench handler_cost` with the local services up
//! (`scripts/services.sh up`: Redis with its replica). `BENCH_INVOCATIONS` (default
//! 5000) per path and round, `BENCH_ROUNDS` (default 3); medians of the rounds.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flashsale_local::aws::gateway::lambda_request;

use common::{admit_call, env, median, open_sale};

/// The process's CPU time so far: every thread's time on a CPU (Linux's schedstat, in
/// nanoseconds; a thread that ended takes its time with it, and none end here).
fn cpu_time() -> Duration {
    let threads = std::fs::read_dir("/proc/self/task").expect("Linux's /proc");
    let ns: u64 = threads
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// One path's figures for one round.
#[derive(Clone, Copy, Default)]
struct Cost {
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
}

/// Runs `call(i)` for `0..n` one after the other, as one container takes its invocations.
async fn cost<F, Fut>(n: usize, mut call: F) -> Cost
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut walls = Vec::with_capacity(n);
    let cpu = cpu_time();
    for i in 0..n {
        let started = Instant::now();
        call(i).await;
        walls.push(started.elapsed().as_secs_f64() * 1e6);
    }
    // The hand-off's sends after the last answers are part of the bill.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu_us = (cpu_time() - cpu).as_secs_f64() * 1e6 / n as f64;
    walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Cost { p50_us: walls[n / 2], p99_us: walls[n * 99 / 100], cpu_us }
}

/// One invocation of `admit` for `user` buying on `sale`, answered `status`, carrying
/// the origin header as CloudFront forwards it.
async fn invoke(admit: &admit::Admit, origin: &str, sale: u64, user: String, status: u16) {
    let claims = Some([("sub".to_string(), user)].into());
    let mut request = lambda_request("POST", &format!("/api/sales/{sale}/purchase"), claims, b"");
    request.headers_mut().insert(flashsale::lambda::http::ORIGIN_HEADER, origin.parse().unwrap());
    let response = admit.handle(request).await;
    assert_eq!(response.status(), status);
}

async fn sale(stack: &flashsale_local::Stack, stock: u32) -> u64 {
    let sale = stack.functions.admin.create_sale(&open_sale("bench", stock)).await.unwrap();
    stack.functions.admin.publish(sale.id).await.unwrap();
    sale.id.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = env("BENCH_INVOCATIONS", 5_000);
    let rounds = env("BENCH_ROUNDS", 3);
    let mut options = flashsale_local::Options::from_env().unwrap();
    options.addr = "127.0.0.1:0".parse().unwrap();
    options.queue_prefix = format!("bench-{:08x}-", rand::random::<u32>());
    options.consumers = 0;
    options.reconcile_every_secs = 0;
    options.config.redis.wait_replicas = 1;
    let stack = flashsale_local::start(options).await.expect("local services up?");
    // The same handler without replicas to wait for: its 202 waits for the order's record instead.
    let mut config = stack.config.clone();
    config.redis.wait_replicas = 0;
    let unreplicated = admit::Admit::from_config(&config).await.unwrap();
    // Turned away with the sold-out memo off: every click asks Redis.
    let mut config = stack.config.clone();
    config.admission.sold_out_ttl = Duration::ZERO;
    let unmemoized = admit::Admit::from_config(&config).await.unwrap();

    let origin = stack.secrets.origin_values[0].expose();
    let redis = redis::Client::open(stack.config.redis.url.expose()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let replicas: i64 = redis::cmd("WAIT").arg(1).arg(1000).query_async(&mut conn).await.unwrap();
    assert_eq!(replicas, 1, "a replica acknowledges (scripts/services.sh up starts one)");
    let script = redis::Script::new(concat!(include_str!("../../lua/epoch.lua"), include_str!("../../lua/admit.lua")));
    let next_id = AtomicU64::new(1);
    let evalsha = |sale: u64, user: String| {
        let (mut conn, script, id) = (conn.clone(), &script, next_id.fetch_add(1, Ordering::Relaxed));
        async move {
            let answer: Vec<String> = admit_call(script, sale, &user, id).invoke_async(&mut conn).await.unwrap();
            assert_eq!(answer[0], "admitted");
            conn
        }
    };
    let paths = [
        "raw EVALSHA admit.lua (baseline)",
        "raw EVALSHA admit.lua + WAIT 1 (baseline)",
        "admit handler, admitted, WAIT 1 (replicated)",
        "admit handler, admitted, no replicas (202 once recorded)",
        "admit handler, turned away, sold-out memo off (EVALSHA)",
        "admit handler, turned away, sold-out memo on",
    ];
    let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        let raw = sale(&stack, (2 * n) as u32).await;
        costs[0].push(cost(n, |i| async move { drop(evalsha(raw, format!("r{round}-{i}")).await) }).await);
        costs[1].push(
            cost(n, |i| async move {
                let mut conn = evalsha(raw, format!("w{round}-{i}")).await;
                let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query_async(&mut conn).await.unwrap();
                assert_eq!(acked, 1);
            })
            .await,
        );
        let replicated = sale(&stack, n as u32).await;
        costs[2].push(cost(n, |i| invoke(&stack.functions.admit, origin, replicated, format!("a{i}"), 202)).await);
        let queued = sale(&stack, n as u32).await;
        costs[3].push(cost(n, |i| invoke(&unreplicated, origin, queued, format!("q{i}"), 202)).await);
        // The first sale is sold out now: the flood after the last unit.
        costs[4].push(cost(n, |i| invoke(&unmemoized, origin, replicated, format!("late{i}"), 409)).await);
        costs[5].push(cost(n, |i| invoke(&stack.functions.admit, origin, replicated, format!("late{i}"), 409)).await);
        eprintln!("round {} done", round + 1);
    }
    let medians: Vec<Cost> = costs
        .into_iter()
        .map(|c| Cost {
            p50_us: median(c.iter().map(|c| c.p50_us).collect()),
            p99_us: median(c.iter().map(|c| c.p99_us).collect()),
            cpu_us: median(c.iter().map(|c| c.cpu_us).collect()),
        })
        .collect();
    println!("admit per invocation, one at a time, medians of {rounds} rounds of {n} invocations per path");
    println!("{:<62} {:>9} {:>9} {:>9} {:>14}", "", "p50 µs", "p99 µs", "CPU µs", "p50 / needed");
    let (evalsha_p50, wait_p50) = (medians[0].p50_us, medians[1].p50_us);
    for (i, (path, c)) in paths.iter().zip(&medians).enumerate() {
        // Each handler path beside the raw round trips it needs of Redis.
        let ratio = match i {
            2 => format!("{:.2}", c.p50_us / wait_p50),
            3 | 4 => format!("{:.2}", c.p50_us / evalsha_p50),
            _ => String::new(),
        };
        println!("{path:<62} {:>9.0} {:>9.0} {:>9.1} {ratio:>14}", c.p50_us, c.p99_us, c.cpu_us);
    }
    println!(
        "goals: admitted (WAIT 1) p50 <= 1.3x EVALSHA + WAIT: {:.2}x; turned away <= 50 µs of CPU: {:.1} µs (memo off), {:.1} µs (memo on)",
        medians[2].p50_us / wait_p50,
        medians[4].cpu_us,
        medians[5].cpu_us
    );
}
