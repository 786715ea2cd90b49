//! The lease table (DynamoDB): Snowflake worker-id leases. One item per worker id; a container
//! takes an id with a conditional write that succeeds only when the id is free or its
//! lease has expired, and renews it with a write conditioned on still owning it.

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::snowflake::MAX_WORKER;
use crate::clock::now_ms;
use crate::error::{Error, Result};

pub struct WorkerLeases {
    client: Client,
    table: String,
    owner: String,
    duration: Duration,
    held: Mutex<Vec<u16>>,
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl WorkerLeases {
    pub fn new(client: Client, table: impl Into<String>, duration: Duration) -> Self {
        // The log stream names the container on Lambda; the random part tells apart
        // two generators in one process.
        let container = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "local".into());
        WorkerLeases {
            client,
            table: table.into(),
            owner: format!("{container}/{:016x}", rand::random::<u64>()),
            duration,
            held: Mutex::new(Vec::new()),
        }
    }

    pub fn from_config(sdk: &aws_config::SdkConfig, config: &crate::config::Config) -> Self {
        Self::new(Client::new(sdk), config.aws.lease_table.clone(), config.aws.lease_duration)
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes a free or expired worker id, starting at a random one so containers that
    /// start together do not all fight over id 0.
    pub async fn acquire(&self) -> Result<u16> {
        let ids = u32::from(MAX_WORKER) + 1;
        let start = rand::random::<u32>() % ids;
        for i in 0..ids {
            let worker = ((start + i) % ids) as u16;
            if self.write_lease(worker, false).await? {
                self.held.lock().unwrap().push(worker);
                return Ok(worker);
            }
        }
        Err(Error::Unavailable { service: "worker-id leases (all taken)", retry_after_secs: 5 })
    }

    /// Extends a lease this owner holds; `false` when it was lost to another owner.
    pub async fn renew(&self, worker: u16) -> Result<bool> {
        let renewed = self.write_lease(worker, true).await?;
        if !renewed {
            self.held.lock().unwrap().retain(|w| *w != worker);
        }
        Ok(renewed)
    }

    async fn write_lease(&self, worker: u16, renewal: bool) -> Result<bool> {
        let now = now_ms();
        let expires = now + self.duration.as_millis() as u64;
        let condition =
            if renewal { "#owner = :me" } else { "attribute_not_exists(worker_id) OR expires_at_ms < :now" };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("worker_id", n(u64::from(worker)))
            .item("owner", AttributeValue::S(self.owner.clone()))
            .item("expires_at_ms", n(expires))
            // Seconds, for the table's TTL attribute: DynamoDB deletes stale leases itself.
            .item("ttl", n(expires / 1000 + 3600))
            .condition_expression(condition);
        put = if renewal {
            put.expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
        } else {
            put.expression_attribute_values(":now", n(now))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(Error::aws("dynamodb", e)),
        }
    }

    /// Gives back every id this owner holds (best effort: an unreleased lease expires).
    pub async fn release_all(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        for worker in held {
            let r = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("worker_id", n(u64::from(worker)))
                .condition_expression("#owner = :me")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
                .send()
                .await;
            if let Err(e) = r {
                tracing::debug!(worker, error = %Error::aws("dynamodb", e), "lease release failed");
            }
        }
    }
}
