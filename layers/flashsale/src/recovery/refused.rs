//! An order MySQL refused puts no unit back on sale: MySQL had none for it. Redis is
//! corrected down to what MySQL and the outbox account for instead.

use crate::domain::{Order, OrderId};
use crate::error::Result;
use crate::stores::mysql::Mysql;
use crate::stores::redis::Redis;

/// Settles an order MySQL refused: its hold leaves Redis and the stock on sale becomes
/// what MySQL and the outbox leave over, so a unit that never existed is not sold again.
pub async fn correct_after_refusal(mysql: &Mysql, redis: &Redis, order: &Order) -> Result<()> {
    let Some(mut locked) = mysql.lock_sale(order.sale_id).await? else {
        return Ok(());
    };
    // Read under the lock: an order committed between a read before it and the lock
    // would be neither among the ids checked nor out of the outbox yet, and counted twice.
    let outbox = redis.outbox_ids(order.sale_id).await?;
    let in_mysql = locked.existing(&outbox).await?;
    let settled = redis.release_refused(order, locked.sale.stock, locked.sale.sold, &in_mysql).await?;
    locked.release().await?;
    if let Some(remaining) = settled {
        tracing::warn!(sale_id = %order.sale_id, order_id = %order.order_id, remaining, "refused order settled; stock set from MySQL");
    }
    Ok(())
}

impl Redis {
    /// Settles an order MySQL refused (see `lua/release.lua`): no unit goes back on sale
    /// for it; the stock becomes `stock - sold - outbox units MySQL lacks`. `sold` and
    /// `in_mysql` (outbox ids MySQL has) must be read under the sale's row lock.
    /// `Some(remaining)` when settled now.
    pub async fn release_refused(
        &self,
        order: &Order,
        stock: u32,
        sold: u32,
        in_mysql: &[OrderId],
    ) -> Result<Option<i64>> {
        let extra: Vec<String> =
            [stock.to_string(), sold.to_string()].into_iter().chain(in_mysql.iter().map(OrderId::to_string)).collect();
        let remaining = self.run_release("reject", &order.message(), &extra).await?;
        Ok((remaining >= 0).then_some(remaining))
    }
}
