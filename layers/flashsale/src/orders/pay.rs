//! Paying an order: one conditional update judged by the database clock, so exactly
//! one of pay and close wins.

use crate::domain::{Order, OrderId, OrderStatus, UserId};
use crate::error::{Error, Result};
use crate::stores::mysql::Mysql;

impl Mysql {
    /// Pays an order: one conditional update, so a payment a moment after the window
    /// loses to the close and the unit is never sold twice. Paying a paid order again
    /// answers with the order (a retried click is not an error).
    pub async fn pay(&self, id: OrderId, user: &UserId) -> Result<Order> {
        self.call("pay", async {
            sqlx::query(
                "UPDATE orders SET status = 'PAID', paid_at = UTC_TIMESTAMP(3) WHERE id = ? AND user_id = ? \
                 AND status = 'UNPAID' AND expires_at > UTC_TIMESTAMP(3)",
            )
            .bind(id.0)
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
            let order = self.fetch_order(id).await?.filter(|o| &o.user_id == user).ok_or(Error::NotFound("order"))?;
            match order.status {
                OrderStatus::Paid => Ok(order),
                OrderStatus::Unpaid => {
                    Err(Error::NotPayable { status: order.status, reason: "the payment window has passed" })
                }
                status => Err(Error::NotPayable { status, reason: "the order is no longer open" }),
            }
        })
        .await
    }
}
