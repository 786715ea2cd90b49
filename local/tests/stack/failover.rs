//! A real failover, the commonest ElastiCache incident: a primary and its replica, the
//! replication link through a proxy of this test's own (so it can be cut: the replica
//! lags), Redis Sentinel (Debian's `redis-sentinel`) watching both, and in front of the
//! stack a "primary endpoint" that follows Sentinel's primary, as ElastiCache's primary
//! endpoint follows its group's. Shoppers buy while replication is cut, the primary is
//! killed with SIGKILL, Sentinel promotes the replica (which lacks the last admissions),
//! and the stack must notice (the primary's epoch changed), rebuild the sale from MySQL
//! and sell out with every promise kept.

use std::net::SocketAddr;
use std::time::Duration;

use crate::faults::{settled_and_sound, stampede, Outcomes, Proxy};
use crate::helpers::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Redis Sentinel over one primary, quorum 1, quick to act.
pub(crate) struct Sentinel {
    port: u16,
    _child: tokio::process::Child,
}

const GROUP: &str = "flashsale";

impl Sentinel {
    pub(crate) async fn start(primary: u16) -> Self {
        let port = free_port().await;
        // Sentinel rewrites its configuration file as it learns the group.
        let dir = std::env::temp_dir().join(format!("flashsale-sentinel-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {GROUP} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {GROUP} 1000\n\
                 sentinel failover-timeout {GROUP} 5000\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-sentinel is installed (scripts/services.sh installs it)");
        let sentinel = Sentinel { port, _child: child };
        eventually("sentinel sees the primary and its replica", Duration::from_secs(20), || async {
            let replicas: Vec<redis::Value> =
                sentinel.ask(redis::cmd("SENTINEL").arg("REPLICAS").arg(GROUP)).await.ok()?;
            (!replicas.is_empty()).then_some(())
        })
        .await;
        sentinel
    }

    async fn ask<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async(&mut conn).await
    }

    async fn primary(&self) -> Option<SocketAddr> {
        let (host, port): (String, u16) =
            self.ask(redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(GROUP)).await.ok()?;
        format!("{host}:{port}").parse().ok()
    }
}

/// The stack's Redis address: connections go to Sentinel's current primary, and when
/// it changes every open connection is dropped, as a DNS-following client sees it.
pub(crate) struct PrimaryEndpoint {
    addr: SocketAddr,
    pub(crate) primary: watch::Receiver<SocketAddr>,
}

impl PrimaryEndpoint {
    pub(crate) async fn start(sentinel: &Sentinel) -> Self {
        let (tell, primary) = watch::channel(sentinel.primary().await.expect("sentinel knows the primary"));
        let sentinel_port = sentinel.port;
        tokio::spawn(async move {
            let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel_port}")).unwrap();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(mut conn) = client.get_multiplexed_async_connection().await else { continue };
                let asked: redis::RedisResult<(String, u16)> =
                    redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(GROUP).query_async(&mut conn).await;
                if let Some(now) = asked.ok().and_then(|(h, p)| format!("{h}:{p}").parse().ok()) {
                    tell.send_if_modified(|was| std::mem::replace(was, now) != now);
                }
                if tell.is_closed() {
                    return;
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let follow = primary.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let mut changed = follow.clone();
                let upstream = *changed.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        PrimaryEndpoint { addr, primary }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_lagging_replica_breaks_no_promise() {
    let _heavy = one_heavy_test_at_a_time().await;
    let mut primary = OwnRedis::start().await;
    let link = Proxy::start(format!("127.0.0.1:{}", primary.port).parse().unwrap()).await;
    let replica = OwnRedis::replica_of(link.addr).await;
    let sentinel = Sentinel::start(primary.port).await;
    let endpoint = PrimaryEndpoint::start(&sentinel).await;
    let stack = stack_with(|o| {
        crate::faults::faulty_stack_options(o);
        o.config.redis_url = endpoint.url().into();
        o.config.redis_wait_replicas = 1;
        o.config.admit_durable_bound = Duration::from_millis(50);
        o.config.recovery_drain_bound = Duration::from_secs(10);
        o.config.outbox_resend_after = Duration::from_secs(5);
    })
    .await;
    let api = Api::new(&stack);
    let stock = 120;
    let sale = api.sale(sale_spec(stock, 1, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    let shopper = |i: usize| format!("failover-{i}");

    // Replication healthy: the replica acknowledges each admission.
    stampede(&api, sale, (0..40).map(shopper), &mut outcomes).await;
    // Replication cut: the replica lags, so each 202 waits for the order's record in the
    // pending-orders table.
    link.cut();
    stampede(&api, sale, (40..80).map(shopper), &mut outcomes).await;
    let told_before = outcomes.told.len();
    assert!(told_before >= 70, "the stack sold while the replica lagged: {:?}", outcomes.statuses);

    // The primary dies with what the replica never got; Sentinel promotes the replica.
    primary.kill();
    let promoted: SocketAddr = format!("127.0.0.1:{}", replica.port).parse().unwrap();
    let mut follow = endpoint.primary.clone();
    tokio::time::timeout(Duration::from_secs(30), follow.wait_for(|now| *now == promoted))
        .await
        .expect("Sentinel promoted the replica within 30 s")
        .unwrap();

    // The crowd goes on, new shoppers and those told 503, until the sale is sold out.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut next = 80;
    while outcomes.statuses.get(&409).copied().unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "the sale sold out after the failover: {:?}", outcomes.statuses);
        stampede(&api, sale, (next..next + 40).map(shopper), &mut outcomes).await;
        next += 40;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(outcomes.told.len() > told_before, "the stack sold after the failover");
    eprintln!("failover: {:?}", outcomes.statuses);
    // Reconcile's check-back runs as deployed (on this sale alone: the tests share MySQL):
    // it clears the entries of orders whose consumer committed while the failover broke
    // the outbox clear.
    let sale_row = sale_row(&stack, sale).await;
    let check_back = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Err(e) = stack.functions.reconcile.check(&sale_row).await {
                eprintln!("failover: reconcile: {e}");
            }
        }
    };
    tokio::select! {
        () = settled_and_sound(&stack, sale, &outcomes.told) => {}
        () = check_back => unreachable!(),
    }
    let db = mysql(&stack).await;
    let (_, sold) = mysql_sale(&db, sale).await;
    assert_eq!(sold, stock, "sold out: every unit of stock sold once, {:?}", outcomes.statuses);
    assert_eq!(outcomes.told.len() as u32, stock, "one unit per 202 (limit 1)");
}
