//! SQS adapter: the `orders` queue (admitted purchases on their way to MySQL) and the
//! `order-timeouts` delay queue (payment deadlines).

use aws_sdk_sqs::Client;

use crate::breaker::Breaker;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::messages::{OrderMessage, TimeoutMessage};

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
            orders_url: config.orders_queue_url.clone(),
            timeouts_url: config.timeouts_queue_url.clone(),
            breaker: Breaker::new("sqs", config.breaker_failures, config.breaker_cooldown, config.sqs_timeout),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn send_order(&self, msg: &OrderMessage) -> Result<()> {
        self.send(&self.orders_url, serde_json::to_string(msg), 0).await
    }

    /// Sends a timeout message to arrive after `delay_secs` (capped at SQS's 900).
    pub async fn send_timeout(&self, msg: &TimeoutMessage, delay_secs: u32) -> Result<()> {
        self.send(&self.timeouts_url, serde_json::to_string(msg), delay_secs.min(900)).await
    }

    async fn send(&self, url: &str, body: serde_json::Result<String>, delay_secs: u32) -> Result<()> {
        let body = body.map_err(|e| Error::Internal(e.to_string()))?;
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

/// Loads the AWS configuration once per container. `AWS_ENDPOINT_URL` (honoured by
/// the SDK itself) points every client at the local stand-ins.
pub async fn aws_config(config: &Config) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(config.sqs_timeout)
        .operation_attempt_timeout(config.sqs_timeout)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}
