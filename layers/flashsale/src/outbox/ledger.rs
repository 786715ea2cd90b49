//! Keeping the pending-orders table to what is in flight: a recorded order is forgotten
//! once MySQL has it, or once Redis says its hold ended without it (an admission undone
//! after a record that failed ambiguously). Left there, a rebuild would hold its units.

use crate::domain::{OrderId, SaleId};
use crate::error::{Error, Result};
use crate::stores::dynamodb::KeptOrders;
use crate::stores::mysql::{existing_ids, Mysql};
use crate::stores::redis::{Redis, SaleKeys};

/// Forgets the sale's recorded orders that are no longer in flight; returns how many.
pub async fn forget_landed(mysql: &Mysql, redis: &Redis, recorded: &dyn KeptOrders, sale: SaleId) -> Result<usize> {
    let orders = recorded.of_sale(sale).await?;
    if orders.is_empty() {
        return Ok(0);
    }
    let ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
    let mut landed = mysql.existing(&ids).await?;
    landed.extend(redis.released_among(sale, &ids).await?);
    let mut forgotten = 0;
    for order in orders.iter().filter(|o| landed.contains(&o.order_id)) {
        recorded.forget(order).await?;
        forgotten += 1;
    }
    Ok(forgotten)
}

impl Mysql {
    /// Which of `ids` MySQL has.
    pub async fn existing(&self, ids: &[OrderId]) -> Result<Vec<OrderId>> {
        self.call("existing orders", async {
            let mut conn = self.pool.acquire().await?;
            existing_ids(&mut conn, ids).await
        })
        .await
    }
}

impl Redis {
    /// Which of `ids` have a hold that ended (closed, or the admission undone).
    pub async fn released_among(&self, sale: SaleId, ids: &[OrderId]) -> Result<Vec<OrderId>> {
        let keys = SaleKeys::new(sale);
        let members: Vec<String> = ids.iter().map(OrderId::to_string).collect();
        let mut conn = self.conn.clone();
        let released: Vec<bool> = self
            .call("released orders", async {
                redis::cmd("SMISMEMBER")
                    .arg(&keys.released)
                    .arg(&members)
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        Ok(ids.iter().zip(released).filter(|(_, r)| *r).map(|(id, _)| *id).collect())
    }
}
