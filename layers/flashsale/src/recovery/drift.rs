//! Where a sale's units are, by store: the drift check of reconcile and the admin report.
//!
//! Every unit of stock is in exactly one place: on sale in Redis, in an admitted order
//! not yet in MySQL (the outbox), or held by a live order in MySQL (`sales.sold`). So
//! `stock - (redis remaining + outbox units + sold)` is 0 once in-flight work settles.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{OrderStatus, Sale, SaleId};
use crate::error::Result;
use crate::stores::mysql::Mysql;
use crate::stores::redis::Redis;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatusCount {
    pub orders: u64,
    pub units: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SaleReport {
    pub sale_id: SaleId,
    pub stock: u32,
    pub mysql_sold: u32,
    /// `None` when the sale is not in Redis (not published, or Redis lost it).
    pub redis_remaining: Option<i64>,
    pub pending_orders: u64,
    pub pending_units: u64,
    /// `None` when it cannot be computed (no Redis state).
    pub drift: Option<i64>,
    pub orders: BTreeMap<OrderStatus, StatusCount>,
    /// The money the orders record: captured, refunded, awaiting the provider.
    pub money: crate::domain::SaleMoney,
}

pub async fn sale_report(mysql: &Mysql, redis: &Redis, sale: &Sale) -> Result<SaleReport> {
    let tallies = mysql.tallies(sale.id).await?;
    let redis_remaining = redis.remaining(sale.id).await?;
    let (pending_orders, pending_units) = redis.outbox_tally(sale.id).await?;
    let mut orders: BTreeMap<OrderStatus, StatusCount> =
        tallies.counts.into_iter().map(|(status, (orders, units))| (status, StatusCount { orders, units })).collect();
    // A tally gone wrong shows as drift; the count shown stays a count.
    let drift = redis_remaining.map(|r| i64::from(sale.stock) - (r + pending_units + i64::from(sale.sold)));
    let pending_units = pending_units.max(0) as u64;
    orders.insert(OrderStatus::Pending, StatusCount { orders: pending_orders, units: pending_units });
    Ok(SaleReport {
        sale_id: sale.id,
        stock: sale.stock,
        mysql_sold: sale.sold,
        redis_remaining,
        pending_orders,
        pending_units,
        drift,
        orders,
        money: tallies.money,
    })
}
