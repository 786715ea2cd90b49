//! Keeping the pending-orders table to what is in flight: a recorded order is forgotten
//! once MySQL has it, or once Redis says its hold ended without it (an admission undone
//! after a record that failed ambiguously). Left there, a rebuild would hold its units.
//! A record nothing else will send (its order in neither MySQL nor the sale's outbox:
//! Redis lost it, say, with the sale ended and so never rebuilt) is sent from here.

use std::collections::HashSet;

use crate::domain::{OrderId, OrderMessage, SaleId};
use crate::error::{Error, Result};
use crate::stores::dynamodb::PendingOrders;
use crate::stores::mysql::{existing_ids, Mysql};
use crate::stores::redis::{Redis, SaleKeys};

/// What a look at a sale's records found.
#[derive(Debug, Default)]
pub struct Records {
    /// Forgotten: MySQL has them, or their admission was undone.
    pub forgotten: usize,
    /// Recorded orders that are neither in MySQL nor in the outbox: to send from here.
    pub stranded: Vec<OrderMessage>,
}

/// Forgets the sale's recorded orders that are no longer in flight, and finds those
/// only the table holds.
pub async fn settle_records(
    mysql: &Mysql,
    redis: &Redis,
    recorded: &dyn PendingOrders,
    sale: SaleId,
) -> Result<Records> {
    let orders = recorded.of_sale(sale).await?;
    if orders.is_empty() {
        return Ok(Records::default());
    }
    let ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
    let mut landed: HashSet<OrderId> = mysql.existing(&ids).await?.into_iter().collect();
    landed.extend(redis.released_among(sale, &ids).await?);
    let in_outbox: HashSet<OrderId> = redis.outbox_ids(sale).await?.into_iter().collect();
    let mut records = Records::default();
    for order in orders {
        if landed.contains(&order.order_id) {
            recorded.forget(&order).await?;
            records.forgotten += 1;
        } else if !in_outbox.contains(&order.order_id) {
            records.stranded.push(order);
        }
    }
    Ok(records)
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
