//! `close-expired`: the consumer of the `order-timeouts` delay queue.
//!
//! A message that arrives before its deadline (windows longer than one 900 s hop) is
//! sent on with the remaining delay. A due one closes the order if it is still unpaid:
//! its payment, if the shopper started one, is cancelled at the provider first (money
//! that came first wins: the order is paid), then `UNPAID` → `CLOSED` and `sold -= q`
//! in one transaction, then the stock goes back in Redis with `lua/release.lua`, which
//! counts once per order, so a redelivery after a crash between the steps completes the
//! release without doubling it.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use flashsale::domain::TimeoutMessage;
use flashsale::lambda::sqs::each_record;
use flashsale::orders::Closing;
use flashsale::payments::Provider;
use flashsale::stores::Stores;
use flashsale::{Config, Result};
use tracing::Instrument;

pub struct CloseExpired {
    stores: Stores,
    provider: Provider,
    max_delay_secs: u32,
}

impl CloseExpired {
    pub fn new(stores: Stores, provider: Provider, max_delay_secs: u32) -> Self {
        CloseExpired { stores, provider, max_delay_secs }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[flashsale::config::Need::TimeoutsQueue])?;
        let (sdk, secrets) = flashsale::stores::aws::load(config).await?;
        let stores = Stores::new(&sdk, config, &secrets)?;
        // Its cancels within the account's budget, shared through Redis.
        let provider = Provider::from_config(config, &secrets)?.with_budget(&stores.redis);
        Ok(CloseExpired::new(stores, provider, config.orders.max_delay_secs))
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
        let closing = self.stores.close_order(&self.provider, msg.order_id).await?;
        if let Some(retry_in_ms) = closing.retry_in_ms() {
            // This container's clock ran ahead of the database's, or the provider is
            // still working on the payment: ask again later.
            let next = TimeoutMessage { deadline_ms: now_ms + retry_in_ms, ..msg };
            return self.stores.queue.schedule_close(&next, now_ms, self.max_delay_secs).await;
        }
        match closing {
            Closing::Settled(order) => tracing::debug!(status = %order.status, "nothing to close"),
            Closing::Missing => tracing::warn!("timeout for an order MySQL does not have"),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::SqsMessage;
    use flashsale::{OrderId, SaleId};
    use flashsale_testing::{stores, unreachable_provider, RecordingPendingOrders, RecordingQueue};

    use super::*;

    fn event(id: &str, msg: &TimeoutMessage) -> SqsEvent {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        record.body = Some(serde_json::to_string(msg).unwrap());
        let mut event = SqsEvent::default();
        event.records = vec![record];
        event
    }

    fn failed(response: &SqsBatchResponse) -> Vec<&str> {
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
    }

    fn due_in(ms: i64) -> TimeoutMessage {
        TimeoutMessage {
            order_id: OrderId(7),
            sale_id: SaleId(3),
            deadline_ms: chrono::Utc::now().timestamp_millis() + ms,
        }
    }

    #[tokio::test]
    async fn an_early_message_goes_on_as_the_next_hop_and_touches_no_store() {
        let queue = RecordingQueue::default();
        // MySQL and Redis are a closed port here: reaching for them would fail the record.
        let close = CloseExpired::new(stores(&queue, &RecordingPendingOrders::default()), unreachable_provider(), 900);
        let hour_away = due_in(3_600_000);
        assert!(failed(&close.handle(event("m1", &hour_away)).await).is_empty());
        assert_eq!(queue.closes(), [(hour_away, 900)], "one hop of the longest delay, same deadline");

        let queue = RecordingQueue::default();
        let close = CloseExpired::new(stores(&queue, &RecordingPendingOrders::default()), unreachable_provider(), 900);
        let soon = due_in(42_500);
        assert!(failed(&close.handle(event("m2", &soon)).await).is_empty());
        let (hop, delay) = &queue.closes()[0];
        assert_eq!(hop, &soon);
        assert!((42..=43).contains(delay), "the last hop waits out the rest, rounded up: {delay}");
    }

    #[tokio::test]
    async fn a_next_hop_sqs_refuses_is_redelivered() {
        let queue = RecordingQueue::default();
        queue.fail(true);
        let close = CloseExpired::new(stores(&queue, &RecordingPendingOrders::default()), unreachable_provider(), 900);
        assert_eq!(failed(&close.handle(event("m1", &due_in(3_600_000))).await), ["m1"]);
    }

    #[tokio::test]
    async fn a_due_message_closes_in_mysql_and_is_redelivered_while_mysql_is_away() {
        let queue = RecordingQueue::default();
        let close = CloseExpired::new(stores(&queue, &RecordingPendingOrders::default()), unreachable_provider(), 900);
        assert_eq!(failed(&close.handle(event("m1", &due_in(-1_000))).await), ["m1"]);
        assert!(queue.closes().is_empty(), "a due order is never sent round again");
    }
}
