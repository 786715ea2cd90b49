//! The money of a sale as its orders record it: what the provider captured (paid
//! orders, disputed ones, and those whose money was refunded: late, or at the
//! provider), what went back, and what is disputed.

use serde::Serialize;

use crate::domain::SaleId;
use crate::error::Result;
use crate::stores::mysql::Mysql;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Money {
    /// Taken by the provider: `PAID`, `DISPUTED` and `REFUNDED` orders.
    pub captured_cents: u64,
    /// Given back: `REFUNDED` orders.
    pub refunded_cents: u64,
    /// Contested by the card holders' banks: `DISPUTED` orders (captured, and may go back).
    pub disputed_cents: u64,
    /// Unpaid orders with a payment started, not yet decided.
    pub awaiting_cents: u64,
}

impl Mysql {
    /// The money of a sale counted over its orders: what the audit checks the tallies
    /// against. O(orders): not for a poll.
    pub async fn count_money(&self, sale: SaleId) -> Result<Money> {
        self.call("count money", async {
            let (captured, refunded, disputed, awaiting): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT \
                   CAST(COALESCE(SUM(CASE WHEN status IN ('PAID', 'REFUNDED', 'DISPUTED') THEN amount_cents END), 0) \
                     AS SIGNED), \
                   CAST(COALESCE(SUM(CASE WHEN status = 'REFUNDED' THEN amount_cents END), 0) AS SIGNED), \
                   CAST(COALESCE(SUM(CASE WHEN status = 'DISPUTED' THEN amount_cents END), 0) AS SIGNED), \
                   CAST(COALESCE(SUM(CASE WHEN status = 'UNPAID' AND payment_intent IS NOT NULL \
                     THEN amount_cents END), 0) AS SIGNED) \
                 FROM orders WHERE sale_id = ?",
            )
            .bind(sale.0)
            .fetch_one(&self.pool)
            .await?;
            Ok(Money {
                captured_cents: captured as u64,
                refunded_cents: refunded as u64,
                disputed_cents: disputed as u64,
                awaiting_cents: awaiting as u64,
            })
        })
        .await
    }
}
