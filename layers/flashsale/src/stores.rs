//! The stores the order lifecycle works on, built once per container.

use crate::cache::Cache;
use crate::config::Config;
use crate::db::{Closing, Db};
use crate::domain::OrderId;
use crate::error::Result;
use crate::fallback::{Fallback, PendingOrders};
use crate::queue::{Outbound, Queue};

pub struct Stores {
    pub db: Db,
    pub cache: Cache,
    pub queue: Box<dyn Outbound>,
    pub fallback: Box<dyn PendingOrders>,
}

impl Stores {
    pub async fn from_config(config: &Config) -> Result<Self> {
        let (sdk, config) = crate::aws::load(config).await?;
        Stores::new(&sdk, &config)
    }

    /// With AWS clients from `sdk` (tests point it at an unreachable endpoint).
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config) -> Result<Self> {
        Ok(Stores {
            db: Db::from_config(config, sdk)?,
            cache: Cache::connect(config)?,
            queue: Box::new(Queue::new(sdk, config)),
            fallback: Box::new(Fallback::new(sdk, config)),
        })
    }

    /// Closes an order if it is unpaid and due (by the database clock), then gives its
    /// units back in Redis. Both steps are idempotent, so a redelivery, or reconcile
    /// closing the same order, completes a crashed close without doubling it.
    pub async fn close_if_due(&self, order: OrderId) -> Result<Closing> {
        let closing = self.db.close_if_due(order).await?;
        if let Closing::Closed(order) | Closing::AlreadyClosed(order) = &closing {
            let released = self.cache.release(order).await?;
            tracing::info!(order_id = %order.order_id, released, "order closed unpaid; stock back on sale");
        }
        Ok(closing)
    }
}
