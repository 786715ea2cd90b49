//! The admission: one atomic script (`lua/admit.lua`) checks the sale window by Redis's
//! clock, the per-user limit before any deduction, and the stock, then takes the units
//! and writes the order's outbox entry. Undoing it takes an admission back when the
//! order could be kept nowhere durable.

use crate::domain::{OrderId, OrderMessage};
use crate::error::{Error, Result};
use crate::stores::redis::{order_id, order_ids, Redis, SaleKeys};

/// What the admission script decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted { order_id: OrderId, remaining: u64 },
    LimitReached { limit: u32, order_ids: Vec<OrderId> },
    SoldOut { remaining: u64 },
    NotStarted,
    Ended,
    UnknownSale,
    BadQuantity { limit: u32 },
}

impl Admission {
    fn parse(reply: Vec<String>) -> Result<Self> {
        let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or("");
        let number =
            |i: usize| field(i).parse::<u64>().map_err(|_| Error::Internal(format!("admit.lua replied {reply:?}")));
        Ok(match field(0) {
            "admitted" => Admission::Admitted { order_id: order_id(field(1))?, remaining: number(2)? },
            "limit" => Admission::LimitReached { limit: number(1)? as u32, order_ids: order_ids(field(2))? },
            "sold_out" => Admission::SoldOut { remaining: number(1)? },
            "not_started" => Admission::NotStarted,
            "ended" => Admission::Ended,
            "unknown" => Admission::UnknownSale,
            "bad_quantity" => Admission::BadQuantity { limit: number(1)? as u32 },
            _ => return Err(Error::Internal(format!("admit.lua replied {reply:?}"))),
        })
    }
}

impl Redis {
    pub async fn admit(&self, order: &OrderMessage) -> Result<Admission> {
        let keys = SaleKeys::new(order.sale_id);
        let payload = serde_json::to_string(order).map_err(|e| Error::serde("order message", e))?;
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .call("admit", async {
                self.scripts
                    .admit
                    .key(&keys.meta)
                    .key(&keys.stock)
                    .key(&keys.bought)
                    .key(&keys.orders)
                    .key(&keys.outbox)
                    .key(&keys.outbox_at)
                    .arg(order.user_id.as_str())
                    .arg(order.quantity)
                    .arg(order.order_id.to_string())
                    .arg(payload)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        Admission::parse(reply)
    }

    /// Takes back an admission whose order could be kept nowhere durable, so the shopper
    /// can be told 503 truthfully. `false` when the order had already left the outbox
    /// for MySQL: then it stands.
    pub async fn undo_admission(&self, order: &OrderMessage) -> Result<bool> {
        Ok(self.run_release("undo", order, &[]).await? != -3)
    }
}
