//! Reconcile is fair: each sale gets a slice of a run (provider reads and closes), the
//! sales a run did not reach begin the next one, and one sale's failing provider reads
//! skip neither its own overdue closes nor another sale's.

use std::time::Duration;

use reconcile::{Reconcile, SaleCheck, Slices};

use crate::helpers::*;

/// A reconcile of `stack` that closes unpaid orders as soon as they are overdue and asks
/// the provider about every payment started, with `slices`.
async fn reconcile_with(stack: &flashsale_local::Stack, slices: Slices) -> Reconcile {
    let mut config = stack.config.clone();
    config.overdue_close_after = Duration::ZERO;
    config.payment_check_after = Duration::ZERO;
    Reconcile::from_config(&config).await.unwrap().with_slices(slices)
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
    let stack = stack().await;
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
    let stack = stack().await;
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
