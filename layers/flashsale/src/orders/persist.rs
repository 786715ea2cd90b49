//! Persistence: a batch of admitted orders of one sale becomes rows in MySQL in one
//! transaction, exactly once, within the stock and each shopper's limit.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::admission::limit::fitting;
use crate::domain::{Order, OrderId, OrderMessage, OrderStatus, SaleId, HOLDS_UNITS_SQL};
use crate::error::{Error, Result};
use crate::stores::mysql::{existing_ids, placeholders, Mysql};
use crate::tallies;

/// What persisting an order message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Persisted {
    /// Inserted as `UNPAID`; its stock is counted in `sales.sold`.
    Accepted(Order),
    /// Refused, recorded `REJECTED`: the `sold + q <= stock` guard had no room for it, or
    /// its shopper already holds the limit. No unit of it exists in MySQL.
    Rejected(Order),
    /// A redelivery: the order was already there, nothing changed.
    Duplicate(Order),
}

impl Mysql {
    /// Writes a batch of admitted orders of one sale in one transaction, under the
    /// sale's row lock: orders MySQL has already are redeliveries and change nothing;
    /// the new ones are taken in turn while the stock and each shopper's limit have room
    /// (see [`fitting`]), the rest recorded `REJECTED`; all of them go in with one insert,
    /// and the units of those that fit onto `sales.sold` with one guarded update. One
    /// outcome per message, in the batch's order. A failure writes nothing of the batch.
    pub async fn persist_orders(&self, sale: SaleId, batch: &[OrderMessage]) -> Result<Vec<Persisted>> {
        if batch.iter().any(|m| m.sale_id != sale) {
            return Err(Error::Internal(format!("a batch of sale {sale} holds another sale's order")));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.call("persist orders", self.persist_orders_tx(sale, batch)).await
    }

    async fn persist_orders_tx(&self, sale: SaleId, batch: &[OrderMessage]) -> Result<Vec<Persisted>> {
        let mut tx = self.pool.begin().await?;
        // The sale's row lock orders the batches of one sale, so the holdings and the
        // orders read below include every batch committed before this one.
        let row = sqlx::query(
            "SELECT price_cents, payment_window_secs, per_user_limit, stock, sold FROM sales WHERE id = ? FOR UPDATE",
        )
        .bind(sale.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("sale"))?;
        let price: u64 = row.try_get("price_cents")?;
        let window: u32 = row.try_get("payment_window_secs")?;
        let limit: u32 = row.try_get("per_user_limit")?;
        let room = row.try_get::<u32, _>("stock")?.saturating_sub(row.try_get("sold")?);

        let ids: Vec<OrderId> = batch.iter().map(|m| m.order_id).collect();
        let stored: HashSet<OrderId> = existing_ids(&mut tx, &ids).await?.into_iter().collect();
        // A message twice in one batch is its own redelivery.
        let mut seen = HashSet::new();
        let is_new: Vec<bool> =
            batch.iter().map(|m| !stored.contains(&m.order_id) && seen.insert(m.order_id)).collect();
        let fresh: Vec<&OrderMessage> = batch.iter().zip(&is_new).filter(|(_, new)| **new).map(|(m, _)| m).collect();
        let mut fits = Vec::new();
        if !fresh.is_empty() {
            // Redis checks the limit too, but a Redis that lost its state (or a rebuild
            // racing a late message) cannot let a shopper hold more than the limit here.
            // Every order that holds units counts, disputed and provider-refunded too.
            let shoppers: Vec<&str> =
                fresh.iter().map(|m| m.user_id.as_str()).collect::<HashSet<_>>().into_iter().collect();
            let sql = format!(
                "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
                 WHERE sale_id = ? AND {HOLDS_UNITS_SQL} AND user_id IN ({}) GROUP BY user_id",
                placeholders(shoppers.len())
            );
            let mut held_query = sqlx::query_as::<_, (String, i64)>(&sql).bind(sale.0);
            for shopper in &shoppers {
                held_query = held_query.bind(*shopper);
            }
            let held: HashMap<String, u64> =
                held_query.fetch_all(&mut *tx).await?.into_iter().map(|(user, units)| (user, units as u64)).collect();
            fits = fitting(room, limit, held, fresh.iter().map(|m| (m.user_id.as_str(), m.quantity)));

            let sql = format!(
                "INSERT INTO orders (id, sale_id, user_id, quantity, amount_cents, status, created_at, expires_at) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL ? SECOND)"; fresh.len()].join(", ")
            );
            let mut insert = sqlx::query(&sql);
            for (m, fit) in fresh.iter().zip(&fits) {
                // A refused order has no payment window: it expires as it is created.
                let (status, window) = if *fit { ("UNPAID", window) } else { ("REJECTED", 0) };
                insert = insert
                    .bind(m.order_id.0)
                    .bind(sale.0)
                    .bind(m.user_id.as_str())
                    .bind(m.quantity)
                    .bind(price.saturating_mul(u64::from(m.quantity)))
                    .bind(status)
                    .bind(window);
            }
            insert.execute(&mut *tx).await?;
            let units: u64 = fresh.iter().zip(&fits).filter(|(_, fit)| **fit).map(|(m, _)| u64::from(m.quantity)).sum();
            // The last line against overselling, whatever the arithmetic above says.
            if units > 0
                && sqlx::query("UPDATE sales SET sold = sold + ? WHERE id = ? AND sold + ? <= stock")
                    .bind(units)
                    .bind(sale.0)
                    .bind(units)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    != 1
            {
                return Err(Error::Internal(format!("the stock guard of sale {sale} refused {units} units that fit")));
            }
            for status in [OrderStatus::Rejected, OrderStatus::Unpaid] {
                let created = fresh.iter().zip(&fits).filter(|(_, fit)| **fit == (status == OrderStatus::Unpaid));
                let tally = created.fold((0, 0, 0), |(orders, units, cents), (m, _)| {
                    (orders + 1, units + u64::from(m.quantity), cents + price.saturating_mul(u64::from(m.quantity)))
                });
                tallies::add(&mut tx, sale, status, tally).await?;
            }
        }
        tx.commit().await?;

        let orders: HashMap<OrderId, Order> =
            self.orders_by_id(&ids).await?.into_iter().map(|o| (o.order_id, o)).collect();
        let mut fits = fits.into_iter();
        batch
            .iter()
            .zip(is_new)
            .map(|(m, new)| {
                let order = orders
                    .get(&m.order_id)
                    .cloned()
                    .ok_or_else(|| Error::Internal(format!("order {} vanished after commit", m.order_id)))?;
                Ok(match (new, new && fits.next() == Some(true)) {
                    (true, true) => Persisted::Accepted(order),
                    (true, false) => Persisted::Rejected(order),
                    (false, _) => Persisted::Duplicate(order),
                })
            })
            .collect()
    }
}
