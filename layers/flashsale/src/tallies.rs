//! Each sale's orders tallied per status (`order_tallies`): what the staff console polls,
//! read as six rows instead of counted over every order of the sale on the writer.
//!
//! The transaction that creates an order or changes its status moves its tally as its
//! last write, so the tally rows are the last locks it takes and no lock order changes
//! (persist takes the sale's row, then inserts; close and pay take the order's row, then
//! the sale's or none). The audit checks the tallies against a count of the orders.

use std::collections::HashMap;

use sqlx::{MySql, Row, Transaction};

use crate::domain::{OrderId, OrderStatus, SaleId, SaleMoney};
use crate::error::Result;
use crate::stores::mysql::{placeholders, Mysql};

/// Orders and units per status.
pub type StatusCounts = HashMap<OrderStatus, (u64, u64)>;

/// A sale's tallies: orders and units per status, and the money they hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tallies {
    pub counts: StatusCounts,
    pub money: SaleMoney,
}

/// The statuses MySQL holds (an order is PENDING only in Redis).
fn tallied() -> impl Iterator<Item = OrderStatus> {
    OrderStatus::ALL.into_iter().filter(|status| *status != OrderStatus::Pending)
}

/// The zero tallies of a new sale, created with it: every later move is an UPDATE of a
/// row that exists (an upsert's gap locks would let two first orders deadlock).
pub(crate) async fn open(tx: &mut Transaction<'_, MySql>, sale: SaleId) -> sqlx::Result<()> {
    let sql =
        format!("INSERT INTO order_tallies (sale_id, status) VALUES {}", vec!["(?, ?)"; tallied().count()].join(", "));
    let mut insert = sqlx::query(&sql);
    for status in tallied() {
        insert = insert.bind(sale.0).bind(status.as_str());
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

/// `orders` new orders of `units` units and `cents` money, created as `status`.
pub(crate) async fn add(
    tx: &mut Transaction<'_, MySql>,
    sale: SaleId,
    status: OrderStatus,
    (orders, units, cents): (u64, u64, u64),
) -> sqlx::Result<()> {
    if orders == 0 {
        return Ok(());
    }
    let done = sqlx::query(
        "UPDATE order_tallies SET orders = orders + ?, units = units + ?, amount_cents = amount_cents + ? \
         WHERE sale_id = ? AND status = ?",
    )
    // Signed: a tally below zero must stay writable (MySQL refuses an unsigned sum < 0).
    .bind(orders as i64)
    .bind(units as i64)
    .bind(cents as i64)
    .bind(sale.0)
    .bind(status.as_str())
    .execute(&mut **tx)
    .await?;
    untallied(format_args!("sale {sale}"), done.rows_affected(), 1);
    Ok(())
}

/// A sale without its tally rows (created by a release before them, during a deploy)
/// is not tallied: never a reason to fail an order's write, but the audit's to see.
fn untallied(of: impl std::fmt::Display, moved: u64, expected: u64) {
    if moved != expected {
        tracing::error!(%of, moved, expected, "order tallies missing: the console's counts are off");
    }
}

/// Order `id` went from `from` to `to`: its count, units and money move with it (as
/// signed numbers: MySQL refuses an unsigned product below 0). One statement, so the
/// two rows are locked in index order, the same in every transaction.
pub(crate) async fn move_order(
    tx: &mut Transaction<'_, MySql>,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
) -> sqlx::Result<()> {
    let done = sqlx::query(
        "UPDATE order_tallies JOIN orders ON orders.sale_id = order_tallies.sale_id \
         SET order_tallies.orders = order_tallies.orders + IF(order_tallies.status = ?, 1, -1), \
             order_tallies.units = order_tallies.units + IF(order_tallies.status = ?, 1, -1) * CAST(orders.quantity AS SIGNED), \
             order_tallies.amount_cents = order_tallies.amount_cents \
               + IF(order_tallies.status = ?, 1, -1) * CAST(orders.amount_cents AS SIGNED), \
             order_tallies.started_cents = order_tallies.started_cents \
               + IF(order_tallies.status = ?, 1, -1) * IF(orders.payment_intent IS NULL, 0, CAST(orders.amount_cents AS SIGNED)) \
         WHERE orders.id = ? AND order_tallies.status IN (?, ?)",
    )
    .bind(to.as_str())
    .bind(to.as_str())
    .bind(to.as_str())
    .bind(to.as_str())
    .bind(id.0)
    .bind(from.as_str())
    .bind(to.as_str())
    .execute(&mut **tx)
    .await?;
    untallied(format_args!("order {id}"), done.rows_affected(), 2);
    Ok(())
}

/// A payment was attached to unpaid order `id`: its money now awaits the provider.
pub(crate) async fn payment_started(tx: &mut Transaction<'_, MySql>, id: OrderId) -> sqlx::Result<()> {
    let done = sqlx::query(
        "UPDATE order_tallies JOIN orders ON orders.sale_id = order_tallies.sale_id \
         SET order_tallies.started_cents = order_tallies.started_cents + CAST(orders.amount_cents AS SIGNED) \
         WHERE orders.id = ? AND order_tallies.status = 'UNPAID'",
    )
    .bind(id.0)
    .execute(&mut **tx)
    .await?;
    untallied(format_args!("order {id}"), done.rows_affected(), 1);
    Ok(())
}

impl Mysql {
    /// The statuses of a sale whose tally went below zero: the console shows 0 there, the
    /// audit reports them.
    pub async fn negative_tallies(&self, sale: SaleId) -> Result<Vec<String>> {
        self.call("negative tallies", async {
            let statuses: Vec<String> = sqlx::query_scalar(
                "SELECT status FROM order_tallies WHERE sale_id = ? \
                 AND (orders < 0 OR units < 0 OR amount_cents < 0 OR started_cents < 0)",
            )
            .bind(sale.0)
            .fetch_all(&self.pool)
            .await?;
            Ok(statuses)
        })
        .await
    }

    /// The tallies of one sale.
    pub async fn tallies(&self, sale: SaleId) -> Result<Tallies> {
        Ok(self.tallies_of(&[sale]).await?.remove(&sale).unwrap_or_default())
    }

    /// The tallies of several sales at once (a sale with none has no entry).
    pub async fn tallies_of(&self, sales: &[SaleId]) -> Result<HashMap<SaleId, Tallies>> {
        if sales.is_empty() {
            return Ok(HashMap::new());
        }
        self.call("tallies", async {
            let sql = format!(
                "SELECT sale_id, status, orders, units, amount_cents, started_cents FROM order_tallies \
                 WHERE sale_id IN ({})",
                placeholders(sales.len())
            );
            let mut query = sqlx::query(&sql);
            for sale in sales {
                query = query.bind(sale.0);
            }
            let mut tallies: HashMap<SaleId, Tallies> = HashMap::new();
            for row in query.fetch_all(&self.pool).await? {
                let tally = tallies.entry(SaleId(row.try_get("sale_id")?)).or_default();
                let status: OrderStatus = row.try_get::<String, _>("status")?.parse()?;
                // Negative only if a tally went wrong; the audit says so, the console shows 0.
                let get = |column: &str| row.try_get::<i64, _>(column).map(|n| n.max(0) as u64);
                let (orders, units, cents) = (get("orders")?, get("units")?, get("amount_cents")?);
                if orders > 0 {
                    tally.counts.insert(status, (orders, units));
                }
                match status {
                    OrderStatus::Paid => tally.money.captured_cents += cents,
                    OrderStatus::Refunded => {
                        tally.money.captured_cents += cents;
                        tally.money.refunded_cents += cents;
                    }
                    OrderStatus::Disputed => {
                        tally.money.captured_cents += cents;
                        tally.money.disputed_cents += cents;
                    }
                    OrderStatus::Unpaid => tally.money.awaiting_cents += get("started_cents")?,
                    _ => {}
                }
            }
            Ok(tallies)
        })
        .await
    }
}
