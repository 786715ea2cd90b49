//! The SQS handle: the `orders` queue (admitted purchases on their way to MySQL) and the
//! `order-timeouts` delay queue (payment deadlines).

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use futures::future::BoxFuture;
use futures::StreamExt;

use crate::config::Config;
use crate::domain::{OrderMessage, TimeoutMessage};
use crate::error::{Error, Result};
use crate::stores::breaker::Breaker;

/// What the handlers ask of SQS. [`Queue`] is SQS itself; unit tests of handler logic
/// put a queue of their own in its place.
pub trait Outbound: Send + Sync {
    /// Hands an admitted order to the `orders` queue.
    fn send_order<'a>(&'a self, msg: &'a OrderMessage) -> BoxFuture<'a, Result<()>>;
    /// [`Outbound::send_order`] for many orders at once, with one outcome per message, in
    /// order. SQS takes them ten to a call.
    fn send_orders<'a>(&'a self, msgs: &'a [OrderMessage]) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(futures::future::join_all(msgs.iter().map(move |m| self.send_order(m))))
    }
    /// Schedules the close check of an order for its deadline: one delayed message of
    /// at most `max_delay_secs` ([`delay_secs`]); the consumer sends the next hop while
    /// it is early.
    fn schedule_close<'a>(
        &'a self,
        msg: &'a TimeoutMessage,
        now_ms: i64,
        max_delay_secs: u32,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`Outbound::schedule_close`] for many orders at once, with one outcome per message,
    /// in order. SQS takes them ten to a call.
    fn schedule_closes<'a>(
        &'a self,
        msgs: &'a [TimeoutMessage],
        now_ms: i64,
        max_delay_secs: u32,
    ) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(futures::future::join_all(msgs.iter().map(move |m| self.schedule_close(m, now_ms, max_delay_secs))))
    }
}

pub struct Queue {
    client: Client,
    orders_url: String,
    timeouts_url: String,
    breaker: Breaker,
}

impl Queue {
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        Queue {
            client: Client::new(sdk),
            orders_url: config.aws.orders_queue_url.clone(),
            timeouts_url: config.aws.timeouts_queue_url.clone(),
            breaker: Breaker::new("sqs", config.breaker.failures, config.breaker.cooldown, config.aws.timeout),
        }
    }

    async fn send(&self, url: &str, body: serde_json::Result<String>, delay_secs: u32) -> Result<()> {
        let body = body.map_err(|e| Error::serde("message", e))?;
        self.breaker
            .call(async {
                self.client
                    .send_message()
                    .queue_url(url)
                    .message_body(body)
                    .delay_seconds(delay_secs as i32)
                    .send()
                    .await
                    .map_err(|e| Error::aws("sqs", e))?;
                Ok(())
            })
            .await
    }
}

impl Queue {
    /// Up to ten messages (body, delay) in one `SendMessageBatch`; an entry SQS refuses
    /// fails alone. One outcome per message, in order.
    async fn send_batch(&self, url: &str, messages: Vec<(serde_json::Result<String>, u32)>) -> Vec<Result<()>> {
        let count = messages.len();
        let mut entries = Vec::with_capacity(count);
        for (i, (body, delay)) in messages.into_iter().enumerate() {
            let entry = body.map_err(|e| Error::serde("message", e)).and_then(|body| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(delay as i32)
                    .build()
                    .map_err(|e| Error::Internal(e.to_string()))
            });
            match entry {
                Ok(entry) => entries.push(entry),
                Err(e) => return (0..count).map(|_| Err(Error::Internal(format!("message: {e}")))).collect(),
            }
        }
        let sent = self
            .breaker
            .call(async {
                self.client
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| Error::aws("sqs", e))
            })
            .await;
        match sent {
            Ok(sent) => (0..count)
                .map(|i| match sent.failed().iter().find(|f| f.id() == i.to_string()) {
                    Some(f) => Err(Error::Internal(format!(
                        "sqs refused a message: {} {}",
                        f.code(),
                        f.message().unwrap_or_default()
                    ))),
                    None => Ok(()),
                })
                .collect(),
            Err(e) => {
                let message = e.to_string();
                let mut outcomes = vec![Err(e)];
                outcomes.extend((1..count).map(|_| Err(Error::Internal(message.clone()))));
                outcomes
            }
        }
    }

    /// [`Queue::send_batch`] ten at a time, at most four calls side by side.
    async fn send_all(&self, url: &str, messages: Vec<(serde_json::Result<String>, u32)>) -> Vec<Result<()>> {
        let mut messages = messages.into_iter();
        let mut chunks = Vec::new();
        loop {
            let chunk: Vec<_> = messages.by_ref().take(10).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(self.send_batch(url, chunk));
        }
        // A backlog re-sent at once must not become a hundred calls at once.
        futures::stream::iter(chunks).buffered(4).collect::<Vec<_>>().await.into_iter().flatten().collect()
    }
}

impl Outbound for Queue {
    fn send_order<'a>(&'a self, msg: &'a OrderMessage) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.send(&self.orders_url, serde_json::to_string(msg), 0))
    }

    fn schedule_close<'a>(
        &'a self,
        msg: &'a TimeoutMessage,
        now_ms: i64,
        max_delay_secs: u32,
    ) -> BoxFuture<'a, Result<()>> {
        let delay = delay_secs(msg.deadline_ms, now_ms, max_delay_secs);
        Box::pin(self.send(&self.timeouts_url, serde_json::to_string(msg), delay))
    }

    fn send_orders<'a>(&'a self, msgs: &'a [OrderMessage]) -> BoxFuture<'a, Vec<Result<()>>> {
        Box::pin(self.send_all(&self.orders_url, msgs.iter().map(|m| (serde_json::to_string(m), 0)).collect()))
    }

    fn schedule_closes<'a>(
        &'a self,
        msgs: &'a [TimeoutMessage],
        now_ms: i64,
        max_delay_secs: u32,
    ) -> BoxFuture<'a, Vec<Result<()>>> {
        let messages = msgs
            .iter()
            .map(|m| (serde_json::to_string(m), delay_secs(m.deadline_ms, now_ms, max_delay_secs)))
            .collect();
        Box::pin(self.send_all(&self.timeouts_url, messages))
    }
}

/// Whole seconds until `deadline_ms`, rounded up so a message never arrives early,
/// and capped at one hop (SQS allows at most 900 s).
pub fn delay_secs(deadline_ms: i64, now_ms: i64, max_delay_secs: u32) -> u32 {
    let secs = ((deadline_ms - now_ms).max(0) as u64).div_ceil(1000);
    secs.min(u64::from(max_delay_secs.min(900))) as u32
}

#[cfg(test)]
mod tests {
    use super::delay_secs;

    #[test]
    fn delays_round_up_and_hop_at_the_cap() {
        assert_eq!(delay_secs(10_000, 0, 900), 10);
        assert_eq!(delay_secs(10_001, 0, 900), 11);
        assert_eq!(delay_secs(0, 5_000, 900), 0);
        assert_eq!(delay_secs(1_200_000, 0, 900), 900);
        assert_eq!(delay_secs(1_200_000, 0, 5_000), 900);
        assert_eq!(delay_secs(1_200_000, 0, 60), 60);
    }
}
