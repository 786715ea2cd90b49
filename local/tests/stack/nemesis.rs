//! A randomized fault schedule (a nemesis): shoppers buy while a seeded schedule applies,
//! overlapping, a failover to a lagging replica, a Redis flush, SIGKILL and restart of
//! the stack, a MySQL cut, a slow and a refusing AWS endpoint (SQS, and the
//! pending-orders table behind the same endpoint), and the consumers stopped with SIGSTOP. Then every
//! promise is checked: each 202 exactly one MySQL order and none REJECTED, nothing
//! oversold, nobody above the limit, every unit accounted for, the sale sold out, and no
//! 5xx but 503 with `Retry-After`.
//!
//! The stack runs as real processes (`flashsale-local serve`): the edge and functions in
//! one, the consumers and reconcile in another. `FLASHSALE_NEMESIS_SEED` replays a
//! schedule (the seed is printed; `random` draws one, and `make test` replays a fixed
//! one); `FLASHSALE_NEMESIS_SECS` (45) sets its length, `FLASHSALE_NEMESIS_REPORT` a
//! file for the figures (`scripts/nemesis.sh`), and `FLASHSALE_NEMESIS_LOGS` a folder
//! where each process writes its log (`edge.log`, `consumers.log`; `RUST_LOG`, else
//! `warn`), to see what a failing schedule did.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fault {
    /// Replication cut, then the primary killed: Sentinel promotes the lagging replica.
    Failover,
    Flush,
    KillStack,
    MysqlCut,
    AwsSlow,
    AwsRefused,
    ConsumersStopped,
    /// The edge's wall clock stepped back or ahead by up to 5 s (NTP stepping it), then
    /// back: it mints the order ids, and its worker-id lease allows a sixth of the lease
    /// (10 s) of skew. Every other clock that decides (the sale window, the outbox's age,
    /// a lost sale's wait) is Redis's or MySQL's.
    ClockStep,
}

/// The faults a schedule draws from first; clock steps are drawn after them, so a seed
/// replays the same schedule of these as before they came.
const FAULTS: [Fault; 7] = [
    Fault::Failover,
    Fault::Flush,
    Fault::KillStack,
    Fault::MysqlCut,
    Fault::AwsSlow,
    Fault::AwsRefused,
    Fault::ConsumersStopped,
];

/// The schedule `make test` replays: every fault at least once, a failover and a flush
/// among them. It found reconcile stalled for a minute by a claim the failover brought
/// back (a run's give-up the lagging replica never saw), while orders AWS had refused
/// waited in the outbox for its re-send; the flush then took them. Other seeds:
/// `FLASHSALE_NEMESIS_SEED` (`random` draws one).
const MAKE_TEST_SEED: u64 = 5502929747087264493;

/// By then reconcile (every 2 s, for outbox entries older than 5 s) has re-sent what the
/// outbox alone held.
const RESENT_WITHIN: Duration = Duration::from_secs(9);

/// Redis as the nemesis sees it: the current primary and its replica behind a link.
struct Cluster {
    primary: OwnRedis,
    link: FaultProxy,
    replica: OwnRedis,
}

impl Cluster {
    /// The link cut (the replica lags), then the primary killed; returns once the stack's
    /// endpoint follows the promoted replica, which then gets a replica of its own.
    async fn fail_over(&mut self, endpoint: &PrimaryEndpoint) {
        self.link.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.primary.kill();
        let promoted: SocketAddr = format!("127.0.0.1:{}", self.replica.port).parse().unwrap();
        let mut follow = endpoint.primary.clone();
        tokio::time::timeout(Duration::from_secs(30), follow.wait_for(|now| *now == promoted))
            .await
            .expect("Sentinel promoted the replica within 30 s")
            .unwrap();
        let link = FaultProxy::start(promoted).await;
        let replica = OwnRedis::replica_of(link.addr).await;
        let primary = std::mem::replace(&mut self.replica, replica);
        self.primary = primary;
        self.link = link;
    }

    async fn flush(&self) {
        let client = redis::Client::open(self.primary.url()).unwrap();
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let _: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut conn).await;
        }
    }
}

/// What the crowd got.
#[derive(Default)]
struct Tally {
    requests: u64,
    told: Vec<(String, String)>,
    statuses: HashMap<u16, u64>,
    /// Shoppers whose request got no answer (the stack died under it).
    unanswered: HashSet<String>,
    /// 5xx other than 503, and 503 without `Retry-After`.
    violations: Vec<String>,
    sold_out: bool,
}

async fn wave(http: &reqwest::Client, api: &Api, sale: u64, users: Vec<String>, tally: &Mutex<Tally>) {
    let answers = futures::future::join_all(users.into_iter().map(|user| async move {
        let sent = http
            .post(format!("{}/api/sales/{sale}/purchase", api.base))
            .bearer_auth(api.token(&user))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body: Value = response.json().await.unwrap_or(Value::Null);
                Some((status, retry_after, body))
            }
            Err(_) => None,
        };
        (user, answer)
    }))
    .await;
    let mut tally = tally.lock().await;
    for (user, answer) in answers {
        tally.requests += 1;
        let Some((status, retry_after, body)) = answer else {
            tally.unanswered.insert(user);
            continue;
        };
        *tally.statuses.entry(status).or_default() += 1;
        match status {
            202 => tally.told.push((user, body["order_id"].as_str().unwrap().to_string())),
            409 if body["type"] == "/problems/sold-out" => tally.sold_out = true,
            503 if retry_after => {}
            s if s >= 500 => tally.violations.push(format!("{s} {body}")),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_fault_schedule_breaks_no_promise() {
    let _heavy = one_heavy_test_at_a_time().await;
    // `make test` replays one schedule; `scripts/nemesis.sh` draws new ones.
    let seed: u64 = match std::env::var("FLASHSALE_NEMESIS_SEED").as_deref() {
        Ok("random") => rand::random(),
        Ok(seed) if !seed.is_empty() => seed.parse().expect("FLASHSALE_NEMESIS_SEED is a number or `random`"),
        _ => MAKE_TEST_SEED,
    };
    let secs: u64 = std::env::var("FLASHSALE_NEMESIS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45);
    eprintln!("nemesis: seed {seed} (FLASHSALE_NEMESIS_SEED={seed} replays this schedule), {secs} s");
    let mut rng = StdRng::seed_from_u64(seed);

    // Redis: primary, replica behind a link, Sentinel, the endpoint the stack uses.
    let primary = OwnRedis::start().await;
    let link = FaultProxy::start(format!("127.0.0.1:{}", primary.port).parse().unwrap()).await;
    let replica = OwnRedis::replica_of(link.addr).await;
    let sentinel = Sentinel::start(primary.port).await;
    let endpoint = PrimaryEndpoint::start(&sentinel).await;
    let cluster = Arc::new(Mutex::new(Cluster { primary, link, replica }));
    // MySQL and AWS (moto: SQS, DynamoDB, S3) through proxies of the nemesis's own.
    let mysql_proxy = FaultProxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("moto's address in AWS_ENDPOINT_URL");
    let slow_aws =
        FaultProxy::lagging(moto.trim_start_matches("http://").parse().unwrap(), Duration::from_millis(700)).await;
    let aws = FaultProxy::start(slow_aws.addr).await;

    // A database of the nemesis's own: reconcile looks at every open sale, and in the
    // shared one, other tests' sales (in other Redis servers) would each look lost to
    // it and be rebuilt in this one, run after run, delaying the re-send of what only
    // this sale's outbox holds past the flush that takes it.
    let config = flashsale::Config::from_env().unwrap();
    let server = config.mysql.url.expose().rsplit_once('/').unwrap().0.to_string();
    let database = format!("flashsale_nemesis_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await.unwrap();
    // The sale, created through an in-process stack on the same Redis and database.
    let setup = stack_with(|o| {
        o.consumers = 0;
        o.config.redis.url = endpoint.url().into();
        o.config.mysql.url = format!("{server}/{database}").into();
    })
    .await;
    let stock = 400;
    let api = Api::new(&setup);
    // No order times out during the run: every unit sold stays sold.
    let window = (secs + 600) as u32;
    let sale = api.sale(sale_spec(stock, 1, window, -1, (secs + 3600) as i64)).await;

    let database_url = setup.config.mysql.url.expose().replace("127.0.0.1:3306", &mysql_proxy.addr.to_string());
    let prefix = format!("nemesis-{:08x}-", rand::random::<u32>());
    let env = |consumers: &str, reconcile: &str| -> Vec<(String, String)> {
        [
            ("FLASHSALE_REDIS_URL", endpoint.url()),
            ("FLASHSALE_REDIS_WAIT_REPLICAS", "1".into()),
            ("FLASHSALE_DATABASE_URL", database_url.clone()),
            ("AWS_ENDPOINT_URL", format!("http://{}", aws.addr)),
            ("FLASHSALE_LOCAL_QUEUE_PREFIX", prefix.clone()),
            ("FLASHSALE_PENDING_ORDERS_TABLE", setup.config.aws.pending_orders_table.clone()),
            ("FLASHSALE_DEV_JWT_SECRET", setup.jwt_secret.clone()),
            ("FLASHSALE_LOCAL_CONSUMERS", consumers.into()),
            ("FLASHSALE_LOCAL_RECONCILE_SECS", reconcile.into()),
            ("FLASHSALE_LOCAL_VISIBILITY_SECS", "2".into()),
            ("FLASHSALE_LOCAL_MAX_RECEIVES", "1000".into()),
            ("FLASHSALE_OUTBOX_RESEND_AFTER_SECS", "5".into()),
            ("FLASHSALE_RECOVERY_DRAIN_SECS", "10".into()),
            ("FLASHSALE_SOLD_OUT_TTL_MS", "200".into()),
            ("FLASHSALE_BREAKER_COOLDOWN_MS", "300".into()),
            ("FLASHSALE_AWS_TIMEOUT_MS", "1000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let clock = EdgeClock::new();
    let edge = Arc::new(Mutex::new(Process::new("edge", [env("0", "0"), clock.env()].concat()).await));
    let consumers = Arc::new(Mutex::new(Process::new("consumers", env("2", "2")).await));
    edge.lock().await.start().await;
    consumers.lock().await.start().await;
    let api = Api::new(&setup).at(format!("http://{}", edge.lock().await.addr));

    // The schedule: every fault at least once, at random times, overlapping; longer
    // runs add more. A failover needs Sentinel's failover timeout between two.
    let mut schedule: Vec<(Duration, Duration, Fault)> = Vec::new();
    let mut kinds: Vec<Fault> = FAULTS.to_vec();
    kinds.extend((0..secs / 15).map(|_| FAULTS[rng.random_range(1..FAULTS.len())]));
    kinds.extend((0..secs / 120).map(|_| Fault::Failover));
    kinds.shuffle(&mut rng);
    let mut failovers = 0;
    for fault in kinds {
        let at = if fault == Fault::Failover {
            failovers += 1;
            Duration::from_secs((secs * (failovers - 1) / (secs / 120 + 1)) + rng.random_range(2..8))
        } else {
            Duration::from_millis(rng.random_range(1_000..secs * 1000 - 3_000))
        };
        schedule.push((at, Duration::from_millis(rng.random_range(1_000..6_000)), fault));
    }
    // The one loss no design avoids: an admission its replica acknowledged, whose hand-off
    // (its record in the pending-orders table, then SQS) then failed (AWS refused, or the container died), is
    // only in Redis until reconcile re-sends it from the outbox; a flush, which empties
    // the replicas too, loses it. So a flush comes only once such orders are out (docs/operations.md).
    let only_in_redis: Vec<(Duration, Duration)> = schedule
        .iter()
        // Stopped consumers stop reconcile too: it runs in their process.
        .filter(|(_, _, f)| matches!(f, Fault::AwsRefused | Fault::KillStack | Fault::ConsumersStopped))
        .map(|&(at, lasts, _)| (at, at + lasts + RESENT_WITHIN))
        .collect();
    for (at, _, fault) in schedule.iter_mut() {
        while *fault == Fault::Flush && only_in_redis.iter().any(|(from, to)| (*from..*to).contains(at)) {
            *at += Duration::from_millis(500);
        }
    }
    for _ in 0..=secs / 120 {
        let at = Duration::from_millis(rng.random_range(1_000..secs * 1000 - 3_000));
        schedule.push((at, Duration::from_millis(rng.random_range(1_000..6_000)), Fault::ClockStep));
    }
    schedule.sort_by_key(|(at, _, _)| *at);
    for (at, lasts, fault) in &schedule {
        eprintln!("nemesis: at {:>6.1} s for {:.1} s: {fault:?}", at.as_secs_f64(), lasts.as_secs_f64());
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let applied = futures::future::join_all(schedule.iter().map(|&(at, lasts, fault)| {
        let (cluster, edge, consumers) = (cluster.clone(), edge.clone(), consumers.clone());
        let (endpoint, mysql_proxy, aws, slow_aws, clock) = (&endpoint, &mysql_proxy, &aws, &slow_aws, &clock);
        let step_secs = rng.random_range(1..=5) * if rng.random_bool(0.5) { -1 } else { 1 };
        async move {
            tokio::time::sleep_until((started + at).into()).await;
            match fault {
                Fault::Failover => cluster.lock().await.fail_over(endpoint).await,
                Fault::Flush => cluster.lock().await.flush().await,
                Fault::KillStack => {
                    edge.lock().await.kill();
                    tokio::time::sleep(lasts).await;
                    edge.lock().await.start().await;
                }
                Fault::MysqlCut => {
                    mysql_proxy.cut();
                    tokio::time::sleep(lasts).await;
                    mysql_proxy.restore();
                }
                Fault::AwsSlow => {
                    slow_aws.lag_next_answers(u64::MAX);
                    tokio::time::sleep(lasts).await;
                    slow_aws.lag_next_answers(0);
                }
                Fault::AwsRefused => {
                    aws.cut();
                    tokio::time::sleep(lasts).await;
                    aws.restore();
                }
                Fault::ConsumersStopped => {
                    consumers.lock().await.signal("-STOP");
                    tokio::time::sleep(lasts).await;
                    consumers.lock().await.signal("-CONT");
                }
                Fault::ClockStep => {
                    eprintln!("nemesis: the edge's clock steps {step_secs:+} s");
                    clock.step(step_secs);
                    tokio::time::sleep(lasts).await;
                    clock.step(0);
                }
            }
        }
    }));
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let crowd = async {
        let mut next = 0;
        while started.elapsed() < Duration::from_secs(secs) {
            let users: Vec<String> = (next..next + 8).map(|i| format!("nemesis-{i}")).collect();
            next += 8;
            wave(&http, &api, sale, users, &tally).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        next
    };
    let (_, mut next) = tokio::join!(applied, crowd);

    // Healed: the crowd goes on until the sale is sold out, as Redis says after the last
    // fault (a flush after the sell-out leaves a sale to rebuild).
    tally.lock().await.sold_out = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !tally.lock().await.sold_out {
        assert!(Instant::now() < deadline, "sold out once healed: {:?}", tally.lock().await.statuses);
        let users: Vec<String> = (next..next + 40).map(|i| format!("nemesis-{i}")).collect();
        next += 40;
        wave(&http, &api, sale, users, &tally).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let tally = tally.lock().await;
    let report = format!(
        "seed {seed}, {secs} s: {} requests, {} answered 202, statuses {:?}, {} unanswered, {} faults applied ({}), violations: {}",
        tally.requests,
        tally.told.len(),
        tally.statuses,
        tally.unanswered.len(),
        schedule.len(),
        FAULTS
            .iter()
            .chain([&Fault::ClockStep])
            .map(|f| format!("{f:?} ×{}", schedule.iter().filter(|(_, _, g)| g == f).count()))
            .collect::<Vec<_>>()
            .join(", "),
        tally.violations.len(),
    );
    eprintln!("nemesis: {report}");
    assert!(tally.violations.is_empty(), "no 5xx but 503 with Retry-After: {:?}", tally.violations);
    settled_and_sound_besides(&setup, sale, &tally.told, &tally.unanswered).await;
    let (_, sold) = mysql_sale(&mysql(&setup).await, sale).await;
    assert_eq!(sold, stock, "sold out");
    if let Ok(path) = std::env::var("FLASHSALE_NEMESIS_REPORT") {
        std::fs::write(path, format!("{report}\n")).unwrap();
    }
    sqlx::query(&format!("DROP DATABASE {database}")).execute(&admin).await.unwrap();
}
