//! Failing dependencies: SQS down loses no order, Redis down fails fast and recovers,
//! and racing containers never share a Snowflake worker id.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::*;
use flashsale::clock::SystemClock;
use flashsale::ids::leases::WorkerLeases;
use flashsale::ids::IdGenerator;
use flashsale::Config;
use redis::AsyncCommands;
use tokio::net::{TcpListener, TcpStream};

/// An `admit` under a leased worker id, whose SQS is reached through `sqs` (DynamoDB, for leases and the
/// pending-orders table, through the local services).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_down_still_admits_and_the_outbox_keeps_every_order() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(50, 1, 60, -1, 3600)).await;
    // An SQS endpoint where nothing listens.
    let dead_sqs = unreachable_aws().await;
    let live = flashsale::stores::aws::sdk_config(&stack.config).await;
    let admit = admit_with(&stack.config, &dead_sqs, &live).await;

    let mut order_ids = HashSet::new();
    for i in 0..20 {
        let response = admit.handle(purchase_request(sale, &format!("u{i}"))).await;
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        order_ids.insert(body["order_id"].as_str().unwrap().to_string());
    }
    let mut redis = redis(&stack).await;
    let outbox: std::collections::HashMap<String, String> = redis.hgetall(keys(sale).outbox).await.unwrap();
    assert_eq!(outbox.keys().cloned().collect::<HashSet<_>>(), order_ids, "every admitted order is in the outbox");
    for (id, payload) in outbox {
        let message: flashsale::domain::OrderMessage = serde_json::from_str(&payload).unwrap();
        assert_eq!(message.order_id.to_string(), id);
    }
    assert_eq!(redis_stock(&mut redis, sale).await, 30);
}

/// A TCP proxy in front of Redis that can black-hole traffic (a partition: no answer,
/// no reset) and come back (a restart: old connections are dropped).
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, connections2, upstream) = (up.clone(), connections.clone(), upstream.to_string());
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let up = up2.clone();
                let upstream = upstream.clone();
                connections2.lock().unwrap().push(tokio::spawn(async move {
                    if !up.load(Ordering::SeqCst) {
                        // Hold the socket and say nothing.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let mut server = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }));
            }
        });
        Proxy { addr, up, connections }
    }

    fn partition(&self) {
        self.up.store(false, Ordering::SeqCst);
        // Existing connections stall too: stop forwarding without closing them.
        for task in self.connections.lock().unwrap().iter() {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_with_503_then_recovers() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(100, 1, 60, -1, 3600)).await;

    let address = stack.config.redis_url.expose().trim_start_matches("redis://");
    let (upstream, database) = address.split_once('/').unwrap_or((address, ""));
    let proxy = Proxy::start(upstream).await;
    let mut config = stack.config.clone();
    config.redis_url = (format!("redis://{}/{database}", proxy.addr)).into();
    config.redis_timeout = Duration::from_millis(200);
    config.breaker_failures = 3;
    config.breaker_cooldown = Duration::from_secs(1);
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let admit = admit_with(&config, &sdk, &sdk).await;
    let buy = |user: String| {
        let admit = &admit;
        async move {
            let started = Instant::now();
            let r = admit.handle(purchase_request(sale, &user)).await;
            (r.status().as_u16(), r.headers().get("retry-after").is_some(), started.elapsed())
        }
    };
    assert_eq!(buy("before".into()).await.0, 202);

    proxy.partition();
    for i in 0..6 {
        let (status, retry_after, took) = buy(format!("during-{i}")).await;
        assert_eq!(status, 503, "request {i} during the outage");
        assert!(retry_after, "503 carries Retry-After");
        assert!(took < Duration::from_secs(2), "request {i} hung for {took:?}");
    }
    // Redis is back, but the breaker is open: still failing fast during the cool-down.
    proxy.restore();
    assert_eq!(buy("cooling".into()).await.0, 503);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    eventually("recovery", Duration::from_secs(5), || async {
        let (status, _, _) = buy("after".into()).await;
        (status == 202).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_containers_never_share_a_worker_id() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let mut config = stack.config.clone();
    config.lease_table = format!("leases-{:08x}", rand::random::<u32>());
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    flashsale_local::aws::provision::provision(
        &sdk,
        &flashsale_local::aws::provision::Names {
            prefix: format!("lease-test-{:08x}-", rand::random::<u32>()),
            lease_table: config.lease_table.clone(),
            pending_orders_table: config.pending_orders_table.clone(),
            bucket: config.bucket.clone(),
            max_receives: 5,
            visibility_timeout_secs: 1,
        },
    )
    .await
    .unwrap();
    let a = WorkerLeases::from_config(&sdk, &config);
    let b = WorkerLeases::from_config(&sdk, &config);
    async fn take(leases: &WorkerLeases) -> Vec<u16> {
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(leases.acquire().await.unwrap());
        }
        ids
    }
    let (ids_a, ids_b) = tokio::join!(take(&a), take(&b));
    let all: HashSet<u16> = ids_a.iter().chain(&ids_b).copied().collect();
    assert_eq!(all.len(), 80, "every lease is a distinct worker id");
    // Only the holder can renew.
    assert!(a.renew(ids_a[0]).await.unwrap());
    assert!(!b.renew(ids_a[0]).await.unwrap());

    // Two generators started together lease different ids and mint disjoint ids.
    let (g1, g2) = tokio::join!(
        IdGenerator::leased(WorkerLeases::from_config(&sdk, &config), Arc::new(SystemClock)),
        IdGenerator::leased(WorkerLeases::from_config(&sdk, &config), Arc::new(SystemClock)),
    );
    assert_ne!(g1.worker().unwrap(), g2.worker().unwrap());
    async fn mint(g: &IdGenerator) -> Vec<u64> {
        let mut ids = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            ids.push(g.next_id().await.unwrap().0);
        }
        ids
    }
    let (m1, m2) = tokio::join!(mint(&g1), mint(&g2));
    let minted: HashSet<u64> = m1.iter().chain(&m2).copied().collect();
    assert_eq!(minted.len(), 40_000, "no id minted twice");
}

/// A fresh machine's first `make test`: several stacks start at once on an empty
/// database and every one of them migrates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_starting_together_on_an_empty_database_all_migrate_it() {
    let mut config = Config::from_env().unwrap();
    let base = config.database_url.expose().rsplit_once('/').unwrap().0.to_string();
    let name = format!("flashsale_migrate_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    config.database_url = (format!("{base}/{name}")).into();

    let starts: Vec<_> = (0..6)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { flashsale::stores::mysql::Mysql::connect(&config)?.migrate().await })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(starts).await.into_iter().map(|r| r.unwrap()).collect();

    let db = sqlx::MySqlPool::connect(config.database_url.expose()).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version").fetch_all(&db).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('sales', 'orders')",
    )
    .bind(&name)
    .fetch_one(&db)
    .await
    .unwrap();
    db.close().await;
    sqlx::query(&format!("DROP DATABASE {name}")).execute(&admin).await.unwrap();

    for result in &results {
        assert!(result.is_ok(), "a concurrent migration failed: {result:?}");
    }
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations")).unwrap().count();
    assert_eq!(applied.len(), migrations, "each migration recorded once: {applied:?}");
    assert!(applied.iter().all(|(_, success)| *success));
    assert_eq!(tables, 2);
}
