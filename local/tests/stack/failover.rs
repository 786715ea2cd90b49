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

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_lagging_replica_breaks_no_promise() {
    let _heavy = one_heavy_test_at_a_time().await;
    let mut primary = OwnRedis::start().await;
    let link = FaultProxy::start(format!("127.0.0.1:{}", primary.port).parse().unwrap()).await;
    let replica = OwnRedis::replica_of(link.addr).await;
    let sentinel = Sentinel::start(primary.port).await;
    let endpoint = PrimaryEndpoint::start(&sentinel).await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.config.redis.url = endpoint.url().into();
        o.config.redis.wait_replicas = 1;
        o.config.admission.durable_bound = Duration::from_millis(50);
        o.config.orders.recovery_drain_bound = Duration::from_secs(10);
        o.config.orders.outbox_resend_after = Duration::from_secs(5);
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
