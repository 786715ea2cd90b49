//! Reconcile is fair: each sale gets a slice of a run (provider reads and closes), the
//! sales a run did not reach begin the next one, and one sale's failing provider reads
//! skip neither its own overdue closes nor another sale's. A run starts no provider read
//! or close past its budget, and a run stopped part way (Lambda's timeout) still has the
//! next one begin past the sale it was on.

use std::time::{Duration, Instant};

use reconcile::{Reconcile, SaleCheck, Slices};

use crate::helpers::*;

/// A reconcile of `stack` that closes unpaid orders as soon as they are overdue and asks
/// the provider about every payment started, with `slices`.
async fn reconcile_with(stack: &flashsale_local::Stack, slices: Slices) -> Reconcile {
    reconcile_of(stack.config.clone(), slices).await
}

async fn reconcile_of(mut config: flashsale::Config, slices: Slices) -> Reconcile {
    config.orders.overdue_close_after = Duration::ZERO;
    config.orders.payment_check_after = Duration::ZERO;
    Reconcile::from_config(&config).await.unwrap().with_slices(slices)
}

/// [`reconcile_with`] whose provider calls go through a proxy of the test's own that
/// holds back every answer of the local provider `lag`, and the time one provider read
/// takes through it.
async fn reconcile_through_slow_provider(
    stack: &flashsale_local::Stack,
    slices: Slices,
    lag: Duration,
    intent: &str,
) -> (FaultProxy, Reconcile, Duration) {
    let upstream = stack.config.payments.api_url.trim_start_matches("http://").trim_end_matches('/');
    let proxy = FaultProxy::lagging(upstream.parse().expect("the local provider's address"), lag).await;
    proxy.lag_next_answers(u64::MAX);
    let mut config = stack.config.clone();
    config.payments.api_url = format!("http://{}", proxy.addr);
    let started = Instant::now();
    flashsale::payments::Provider::from_config(&config, &stack.secrets)
        .unwrap()
        .intent(intent)
        .await
        .expect("a read through the proxy");
    let read = started.elapsed();
    assert!(read >= lag, "the proxy holds the answer back");
    (proxy, reconcile_of(config, slices).await, read)
}

/// Makes `sale` the one the next run of `reconcile` begins with.
async fn begin_next_run_at(stack: &flashsale_local::Stack, reconcile: &Reconcile, sale: u64) {
    let mut redis = redis(stack).await;
    let () = redis::cmd("SET").arg(reconcile.rotation_key()).arg(sale).query_async(&mut redis).await.unwrap();
}

/// A sale with `orders` UNPAID orders in MySQL (one shopper each), their ids.
async fn sale_with_unpaid(api: &Api, orders: usize) -> (u64, Vec<u64>) {
    let sale = api.sale(sale_spec(orders as u32, 1, 600, -1, 3600)).await;
    let mut ids = Vec::new();
    for i in 0..orders {
        let user = format!("s{sale}-u{i}");
        let (status, body) = api.buy(sale, &user, None).await;
        assert_eq!(status, 202, "{body}");
        let order = body["order_id"].as_str().unwrap().to_string();
        api.await_status(&user, &order, "UNPAID").await;
        ids.push(order.parse().unwrap());
    }
    (sale, ids)
}

/// A sale with `orders` UNPAID orders (one shopper each) whose payments were started at
/// the provider, their ids.
async fn sale_with_payments(api: &Api, orders: usize) -> (u64, Vec<u64>) {
    let sale = api.sale(sale_spec(orders as u32, 1, 600, -1, 3600)).await;
    let ids = futures::future::join_all((0..orders).map(|i| async move {
        let user = format!("s{sale}-p{i}");
        let order = api.unpaid_order(sale, &user).await;
        let (status, payment) = api.payment(&user, &order).await;
        assert_eq!(status, 200, "a payment for {order}: {payment}");
        order.parse::<u64>().unwrap()
    }))
    .await;
    (sale, ids)
}

async fn intent_of(db: &sqlx::MySqlPool, order: u64) -> String {
    sqlx::query_scalar("SELECT payment_intent FROM orders WHERE id = ?").bind(order).fetch_one(db).await.unwrap()
}

/// Moves the orders' deadline an hour back: overdue.
async fn overdue(db: &sqlx::MySqlPool, orders: &[u64]) {
    for id in orders {
        sqlx::query("UPDATE orders SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 HOUR WHERE id = ?")
            .bind(id)
            .execute(db)
            .await
            .unwrap();
    }
}

async fn statuses(db: &sqlx::MySqlPool, orders: &[u64]) -> Vec<String> {
    let mut found = Vec::new();
    for id in orders {
        found.push(sqlx::query_scalar("SELECT status FROM orders WHERE id = ?").bind(id).fetch_one(db).await.unwrap());
    }
    found
}

fn check_of(checks: &[SaleCheck], sale: u64) -> &SaleCheck {
    checks.iter().find(|c| c.report.sale_id.0 == sale).expect("the sale was checked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_whose_payments_the_provider_cannot_read_still_closes_its_overdue_orders_and_every_sale_is_served_within_a_lap(
) {
    let stack = stack_with_own_database("fairness", |_| {}).await;
    let api = Api::new(&stack);
    let db = mysql(&stack).await;
    // Three sales with two overdue orders each; the middle one also has two orders whose
    // payments the provider has never heard of (every read of them fails).
    let mut sales = Vec::new();
    let mut late = Vec::new();
    for _ in 0..3 {
        let (sale, orders) = sale_with_unpaid(&api, 4).await;
        overdue(&db, &orders[..2]).await;
        sales.push(sale);
        late.push(orders);
    }
    let unknown: Vec<u64> = late[1][2..].to_vec();
    for id in &unknown {
        sqlx::query(
            "UPDATE orders SET payment_intent = ?, payment_started_at = UTC_TIMESTAMP(3) - INTERVAL 1 HOUR WHERE id = ?",
        )
        .bind(format!("pi_unknown_{id}"))
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    }
    let rows = {
        let mut rows = Vec::new();
        for sale in &sales {
            rows.push(sale_row(&stack, *sale).await);
        }
        rows
    };

    // A budget spent at once: each run gives one sale its slice, the next run begins
    // with the sales it did not reach. Three runs: each sale had its turn.
    let reconcile = reconcile_with(&stack, Slices { run_budget: Duration::ZERO, ..Slices::default() }).await;
    let mut served = Vec::new();
    for run in 0..3 {
        let checks = reconcile.visit(rows.clone()).await;
        assert_eq!(checks.len(), 3, "run {run}: every sale had its cheap checks");
        let turn: Vec<u64> = sales.iter().copied().filter(|s| !check_of(&checks, *s).deferred).collect();
        assert_eq!(turn.len(), 1, "run {run}: one sale's slice within a spent budget");
        let check = check_of(&checks, turn[0]);
        assert_eq!(check.closed, 2, "run {run}: sale {}'s overdue orders", turn[0]);
        if turn[0] == sales[1] {
            assert_eq!(check.payment_checks_failed, 2, "the unknown payments are counted, not fatal");
        }
        served.push(turn[0]);
    }
    served.sort_unstable();
    assert_eq!(served, sales, "each sale was served once in three runs");
    for (sale, orders) in sales.iter().zip(&late) {
        assert_eq!(statuses(&db, &orders[..2]).await, ["CLOSED", "CLOSED"], "sale {sale}'s overdue orders");
    }
    assert_eq!(statuses(&db, &unknown).await, ["UNPAID", "UNPAID"], "a payment nobody can read is left alone");

    // With time to spare, one run serves every sale, the failing one included.
    let (sale, orders) = sale_with_unpaid(&api, 2).await;
    overdue(&db, &orders).await;
    let reconcile = reconcile_with(&stack, Slices::default()).await;
    let mut rows = rows;
    rows.push(sale_row(&stack, sale).await);
    let checks = reconcile.visit(rows).await;
    assert!(checks.iter().all(|c| !c.deferred), "no sale waits for the next run");
    assert_eq!(check_of(&checks, sales[1]).payment_checks_failed, 2);
    assert_eq!(statuses(&db, &orders).await, ["CLOSED", "CLOSED"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_with_more_overdue_orders_than_its_slice_is_closed_over_runs_while_a_later_sale_is_served_in_the_first()
{
    let stack = stack_with_own_database("fairness", |_| {}).await;
    let api = Api::new(&stack);
    let db = mysql(&stack).await;
    let (busy, busy_orders) = sale_with_unpaid(&api, 5).await;
    let (later, later_orders) = sale_with_unpaid(&api, 1).await;
    assert!(later > busy, "the later sale comes after the busy one in id order");
    overdue(&db, &busy_orders).await;
    overdue(&db, &later_orders).await;
    let rows = vec![sale_row(&stack, busy).await, sale_row(&stack, later).await];
    let reconcile = reconcile_with(&stack, Slices { closes: 2, ..Slices::default() }).await;

    let checks = reconcile.visit(rows.clone()).await;
    assert_eq!(check_of(&checks, busy).closed, 2, "the busy sale gets its slice");
    assert_eq!(check_of(&checks, later).closed, 1, "the later sale is served in the same run");
    assert_eq!(statuses(&db, &later_orders).await, ["CLOSED"]);
    let mut closed_per_run = vec![2];
    for _ in 0..2 {
        let checks = reconcile.visit(rows.clone()).await;
        closed_per_run.push(check_of(&checks, busy).closed);
    }
    assert_eq!(closed_per_run, [2, 2, 1], "five overdue orders, two a run");
    assert!(statuses(&db, &busy_orders).await.iter().all(|s| s == "CLOSED"));
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, busy).await, 5, "every closed unit is back on sale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starts_no_provider_read_or_close_once_its_budget_is_spent() {
    let stack = stack_with_own_database("fairness", |_| {}).await;
    let api = Api::new(&stack);
    let db = mysql(&stack).await;
    // A quiet sale the run begins with, then one whose slice (25 payment reads and 40
    // closes, each a provider call, 8 at a time) takes several times the run's budget.
    let (quiet, _) = sale_with_unpaid(&api, 1).await;
    let (busy, busy_orders) = sale_with_payments(&api, 40).await;
    assert!(busy > quiet);
    overdue(&db, &busy_orders).await;
    let rows = vec![sale_row(&stack, quiet).await, sale_row(&stack, busy).await];
    let budget = Duration::from_secs(1);
    let (_proxy, reconcile, read) = reconcile_through_slow_provider(
        &stack,
        Slices { run_budget: budget, ..Slices::default() },
        Duration::from_millis(500),
        &intent_of(&db, busy_orders[0]).await,
    )
    .await;
    // A first run with its budget spent at once gives the quiet sale its turn and the
    // busy one only its cheap checks: what they cost (forgetting forty orders in the
    // pending-orders table) is not what is timed here.
    begin_next_run_at(&stack, &reconcile, quiet).await;
    let spent = Slices { run_budget: Duration::ZERO, ..Slices::default() };
    let checks = reconcile_with(&stack, spent).await.visit(rows.clone()).await;
    assert!(check_of(&checks, busy).deferred);
    begin_next_run_at(&stack, &reconcile, quiet).await;

    let started = Instant::now();
    let checks = reconcile.visit(rows).await;
    let took = started.elapsed();
    let check = check_of(&checks, busy);
    assert!(!check.deferred, "the busy sale was reached within the budget");
    // Each read takes at least the proxy's lag: the reads begun by the deadline are two
    // rounds at most, and the closes come after them.
    assert!(check.postponed >= 40 + (25 - 16), "the reads and closes past the budget wait: {check:?}");
    assert_eq!((check.closed, check.closes_failed), (0, 0), "no close starts past the budget");
    assert_eq!(check.payment_checks_failed, 0, "the reads in flight at the deadline finished");
    assert!(statuses(&db, &busy_orders).await.iter().all(|s| s == "UNPAID"));
    // The reads in flight at the deadline end one read later and nothing starts after:
    // the rest is the sale's cheap checks (a read of slack for them on a busy machine).
    // Before, the whole slice ran: about five times the budget.
    assert!(took < budget + read * 3, "a run of a {budget:?} budget took {took:?} (one provider read: {read:?})");

    // A later run with time to spare closes what this one left.
    let checks = reconcile_with(&stack, Slices::default()).await.visit(vec![sale_row(&stack, busy).await]).await;
    assert_eq!(check_of(&checks, busy).closed, 40);
    assert!(statuses(&db, &busy_orders).await.iter().all(|s| s == "CLOSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_part_way_through_a_sale_has_the_next_run_begin_with_the_sale_after_it() {
    let stack = stack_with_own_database("fairness", |_| {}).await;
    let api = Api::new(&stack);
    let db = mysql(&stack).await;
    let (slow, slow_orders) = sale_with_payments(&api, 16).await;
    overdue(&db, &slow_orders).await;
    let (next, next_orders) = sale_with_unpaid(&api, 1).await;
    overdue(&db, &next_orders).await;
    assert!(next > slow, "the next sale comes after the slow one in id order");
    let rows = vec![sale_row(&stack, slow).await, sale_row(&stack, next).await];
    // The slow sale's slice is two rounds of reads and two of closes, each at least
    // half a second: a run is stopped in it after one second, as Lambda stops a run at
    // its timeout (the future dropped, nothing after it runs).
    let (proxy, reconcile, _) = reconcile_through_slow_provider(
        &stack,
        Slices::default(),
        Duration::from_millis(500),
        &intent_of(&db, slow_orders[0]).await,
    )
    .await;
    begin_next_run_at(&stack, &reconcile, slow).await;
    let stopped = tokio::time::timeout(Duration::from_secs(1), reconcile.visit(rows.clone())).await;
    assert!(stopped.is_err(), "the run was stopped before its end");
    assert_eq!(statuses(&db, &next_orders).await, ["UNPAID"], "the stopped run never reached the next sale");

    // The next run (a budget for one sale's slice) serves the sale after the one the
    // stopped run was on, not that one again.
    proxy.lag_next_answers(0);
    let reconcile = reconcile_with(&stack, Slices { run_budget: Duration::ZERO, ..Slices::default() }).await;
    let checks = reconcile.visit(rows).await;
    assert!(!check_of(&checks, next).deferred, "the next run begins with the next sale");
    assert!(check_of(&checks, slow).deferred, "the slow sale waits its turn");
    assert_eq!(check_of(&checks, next).closed, 1);
    assert_eq!(statuses(&db, &next_orders).await, ["CLOSED"]);
}
