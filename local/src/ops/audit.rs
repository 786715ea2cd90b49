//! The consistency audit of one sale, from MySQL and Redis directly: the invariants a
//! flash sale promises, each reported as passed or failed with the numbers behind it.

use std::collections::HashSet;

use flashsale::recovery::drift::sale_report;
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::{Error, OrderId, Result, SaleId};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check { name, passed, detail }
}

/// Audits `sale`. With `admitted` (the order ids the shoppers were given, every
/// purchase of the sale), also checks that the sale's orders in MySQL are exactly
/// those: none missing, and none that no shopper was told of (a purchase turned into
/// two orders, say).
pub async fn audit(db: &Mysql, cache: &Redis, sale: SaleId, admitted: Option<&[OrderId]>) -> Result<Vec<Check>> {
    let row = db.sale(sale).await?.ok_or(Error::NotFound("sale"))?;
    let report = sale_report(db, cache, &row).await?;
    // Counted over the orders, not read from the tallies: the audit checks those too.
    let counted = db.count_statuses(sale).await?;
    let money = db.count_money(sale).await?;
    let tallied = db.tallies(sale).await?;
    let negative = db.negative_tallies(sale).await?;
    let outbox = cache.outbox_orders(sale).await?;
    let outbox_units: i64 = outbox.iter().map(|m| i64::from(m.quantity)).sum();
    // Units held (`HOLDS_UNITS_SQL`): a disputed or provider-refunded order keeps its
    // unit sold, as `sales.sold` does.
    let live = db.held_units(sale).await?;
    let over_limit: Vec<String> = db
        .shoppers_above_limit(sale, row.per_user_limit, 10)
        .await?
        .into_iter()
        .map(|(user, units)| format!("{user} holds {units}"))
        .collect();

    let mut checks = vec![
        check(
            "live orders within stock",
            live <= u64::from(row.stock),
            format!("units held {live}, stock {}", row.stock),
        ),
        check(
            "no shopper above the limit",
            over_limit.is_empty(),
            if over_limit.is_empty() {
                format!("limit {}", row.per_user_limit)
            } else {
                format!("limit {}: {}", row.per_user_limit, over_limit.join(", "))
            },
        ),
        check(
            "MySQL sold equals live orders",
            u64::from(row.sold) == live,
            format!("sales.sold {}, units held {live}", row.sold),
        ),
        check(
            "the tallies agree with the orders",
            tallied.counts == counted && tallied.money == money && negative.is_empty(),
            format!(
                "tallied {:?} {:?}, counted {counted:?} {money:?}, below zero: {negative:?}",
                tallied.counts, tallied.money
            ),
        ),
        check(
            "the outbox tally agrees with the outbox",
            (report.pending_orders, report.pending_units as i64) == (outbox.len() as u64, outbox_units),
            format!(
                "tallied {} orders of {} units, the outbox holds {} of {outbox_units}",
                report.pending_orders,
                report.pending_units,
                outbox.len()
            ),
        ),
        match report.redis_remaining {
            Some(remaining) => check(
                "every unit accounted for",
                report.drift == Some(0) && remaining >= 0,
                format!(
                    "Redis remaining {remaining} + outbox units {} + MySQL sold {} = {} (stock {})",
                    report.pending_units,
                    row.sold,
                    remaining + report.pending_units as i64 + i64::from(row.sold),
                    row.stock
                ),
            ),
            None => check("every unit accounted for", false, "the sale is not in Redis".into()),
        },
    ];
    if let Some(admitted) = admitted {
        let told: HashSet<OrderId> = admitted.iter().copied().collect();
        let stored: HashSet<OrderId> = db.order_ids(sale).await?.into_iter().collect();
        let missing = told.difference(&stored).count();
        let untold = stored.difference(&told).count();
        checks.push(check(
            "every admitted order in MySQL once",
            told.len() == admitted.len() && missing == 0 && untold == 0,
            format!(
                "{} admitted ({} distinct ids), {} orders in MySQL: {missing} missing, {untold} no shopper was told of",
                admitted.len(),
                told.len(),
                stored.len()
            ),
        ));
    }
    Ok(checks)
}

pub fn print(checks: &[Check]) {
    for c in checks {
        println!("{} {:<36} {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
}
