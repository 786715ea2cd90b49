//! `close-expired`: the consumer of the `order-timeouts` delay queue.
//!
//! A message that arrives before its deadline (windows longer than one 900 s hop) is
//! sent on with the remaining delay. A due one closes the order if it is still unpaid
//! (`UNPAID` → `CLOSED` and `sold -= q` in one transaction), then gives the stock back
//! in Redis with `lua/release.lua`, which counts once per order, so a redelivery after
//! a crash between the two steps completes the release without doubling it.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashsale::consumer::each_record;
use flashsale::db::Closing;
use flashsale::messages::TimeoutMessage;
use flashsale::stores::Stores;
use flashsale::{Config, Result};
use tracing::Instrument;

pub struct CloseExpired {
    stores: Stores,
    max_delay_secs: u32,
}

impl CloseExpired {
    pub fn new(stores: Stores, max_delay_secs: u32) -> Self {
        CloseExpired { stores, max_delay_secs }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[flashsale::config::Need::TimeoutsQueue])?;
        Ok(CloseExpired::new(Stores::from_config(config).await?, config.max_delay_secs))
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        each_record(event, |msg: TimeoutMessage| {
            let span = tracing::info_span!("close", sale_id = %msg.sale_id, order_id = %msg.order_id);
            async move { self.close(msg).await }.instrument(span)
        })
        .await
    }

    async fn close(&self, msg: TimeoutMessage) -> Result<()> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        if msg.deadline_ms > now_ms {
            tracing::debug!(remaining_ms = msg.deadline_ms - now_ms, "early; next hop");
            return self.stores.queue.schedule_close(&msg, now_ms, self.max_delay_secs).await;
        }
        match self.stores.close_if_due(msg.order_id).await? {
            Closing::Closed(_) | Closing::AlreadyClosed(_) => {}
            Closing::NotDue { remaining_ms, .. } => {
                // This container's clock ran ahead of the database's: ask again later.
                let next = TimeoutMessage { deadline_ms: now_ms + remaining_ms, ..msg };
                self.stores.queue.schedule_close(&next, now_ms, self.max_delay_secs).await?;
            }
            Closing::Settled(order) => tracing::debug!(status = %order.status, "nothing to close"),
            Closing::Missing => tracing::warn!("timeout for an order MySQL does not have"),
        }
        Ok(())
    }
}
