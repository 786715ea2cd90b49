//! The sections of the services' configuration: how each store is reached and how long
//! a call to it may take.

use std::time::Duration;

use super::{flag, millis, millis_or_alias, number, optional, secs, var, var_or_aliases, ConfigError};
use crate::secret::Secret;

#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `FLASHSALE_REDIS_URL`: a secret, since a URL may carry a password.
    pub url: Secret,
    /// `FLASHSALE_REDIS_AUTH_SECRET`: the Secrets Manager secret holding the function's
    /// Redis user (`{"username", "password"}`, ElastiCache RBAC) or an AUTH token (a
    /// plain string), read at init ([`crate::stores::aws::load`]); unset, no AUTH
    /// (locally, unless the local stack gives a function a user of its own).
    pub auth_secret: Option<String>,
    /// `FLASHSALE_REDIS_TIMEOUT_MS`: per Redis call.
    pub timeout: Duration,
    /// `FLASHSALE_REDIS_WAIT_REPLICAS`: how many Redis replicas must acknowledge an
    /// admission (`WAIT`) for it to count as durable; 0 (no replica) leaves its record
    /// in the pending-orders table as the only thing that makes it so.
    pub wait_replicas: u32,
}

impl RedisConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(RedisConfig {
            url: Secret::new(var("FLASHSALE_REDIS_URL", "redis://127.0.0.1:6379")),
            auth_secret: optional("FLASHSALE_REDIS_AUTH_SECRET"),
            timeout: millis("FLASHSALE_REDIS_TIMEOUT_MS", 250)?,
            wait_replicas: number("FLASHSALE_REDIS_WAIT_REPLICAS", 0)?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct MysqlConfig {
    /// `FLASHSALE_DATABASE_URL`: without a password when IAM authentication is on.
    pub url: Secret,
    /// `FLASHSALE_DATABASE_IAM_AUTH`: `true` to sign in with IAM tokens (RDS Proxy on
    /// AWS) made from the function's own credentials, instead of a password.
    pub iam_auth: bool,
    /// `FLASHSALE_DB_MAX_CONNECTIONS`: per container; keep it small, Lambda multiplies it.
    pub max_connections: u32,
    /// `FLASHSALE_DB_TIMEOUT_MS`: to get a pooled MySQL connection.
    pub timeout: Duration,
    /// `FLASHSALE_DB_LOCK_WAIT_SECS`: the server gives up a statement that waits this long
    /// for a row lock (`innodb_lock_wait_timeout`, set on each connection); 0 leaves the
    /// server's own (on AWS the proxy's `InitQuery` sets it: a `SET` from the client would
    /// pin its connection).
    pub lock_wait_secs: u32,
    /// `FLASHSALE_DB_IDLE_TRANSACTION_SECS`: the server disconnects a client gone silent
    /// inside a transaction after this long, rolling it back (MariaDB's
    /// `idle_transaction_timeout`; MySQL ignores it): a client cut off while it held a
    /// sale's row would hold it until TCP gave up. 0 leaves the server's own.
    pub idle_transaction_secs: u32,
}

impl MysqlConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(MysqlConfig {
            url: Secret::new(var("FLASHSALE_DATABASE_URL", "mysql://flashsale:flashsale@127.0.0.1:3306/flashsale")),
            iam_auth: flag("FLASHSALE_DATABASE_IAM_AUTH")?,
            max_connections: number("FLASHSALE_DB_MAX_CONNECTIONS", 10)?,
            timeout: millis("FLASHSALE_DB_TIMEOUT_MS", 3000)?,
            lock_wait_secs: number("FLASHSALE_DB_LOCK_WAIT_SECS", 5)?,
            idle_transaction_secs: number("FLASHSALE_DB_IDLE_TRANSACTION_SECS", 10)?,
        })
    }
}

/// The AWS resources a function works with, and how long a call to one may take.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// `FLASHSALE_AWS_TIMEOUT_MS` (formerly `FLASHSALE_SQS_TIMEOUT_MS`, still accepted):
    /// per call to an AWS service (SQS, DynamoDB, S3, CloudFront, Secrets Manager).
    pub timeout: Duration,
    /// `FLASHSALE_ORDERS_QUEUE_URL`
    pub orders_queue_url: String,
    /// `FLASHSALE_TIMEOUTS_QUEUE_URL`
    pub timeouts_queue_url: String,
    /// `FLASHSALE_LEASE_TABLE`: DynamoDB table of Snowflake worker-id leases.
    pub lease_table: String,
    /// `FLASHSALE_LEASE_SECS`: how long a worker-id lease lasts; renewed at a third of it.
    pub lease_duration: Duration,
    /// `FLASHSALE_PENDING_ORDERS_TABLE` (`FLASHSALE_FALLBACK_TABLE` and
    /// `FLASHSALE_PENDING_TABLE`, its older names, are read too): the DynamoDB
    /// pending-orders table: every admitted order is recorded there before its SQS send,
    /// until reconcile sees MySQL has it (see `outbox`).
    pub pending_orders_table: String,
    /// `FLASHSALE_BUCKET`: S3 bucket of the rendered pages.
    pub bucket: String,
    /// `FLASHSALE_CLOUDFRONT_DISTRIBUTION_ID`: invalidate changed pages there; unset, none.
    pub cloudfront_distribution_id: Option<String>,
}

impl AwsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(AwsConfig {
            timeout: millis_or_alias("FLASHSALE_AWS_TIMEOUT_MS", "FLASHSALE_SQS_TIMEOUT_MS", 2000)?,
            orders_queue_url: var("FLASHSALE_ORDERS_QUEUE_URL", ""),
            timeouts_queue_url: var("FLASHSALE_TIMEOUTS_QUEUE_URL", ""),
            lease_table: var("FLASHSALE_LEASE_TABLE", "flashsale-id-leases"),
            lease_duration: secs("FLASHSALE_LEASE_SECS", 60)?,
            pending_orders_table: var_or_aliases(
                "FLASHSALE_PENDING_ORDERS_TABLE",
                &["FLASHSALE_FALLBACK_TABLE", "FLASHSALE_PENDING_TABLE"],
                "flashsale-pending-orders",
            ),
            bucket: var("FLASHSALE_BUCKET", "flashsale-pages"),
            cloudfront_distribution_id: optional("FLASHSALE_CLOUDFRONT_DISTRIBUTION_ID"),
        })
    }
}

/// Every store's circuit breaker (and the payment provider's).
#[derive(Clone, Debug)]
pub struct BreakerConfig {
    /// `FLASHSALE_BREAKER_FAILURES`: consecutive failures that open a circuit breaker.
    pub failures: u32,
    /// `FLASHSALE_BREAKER_COOLDOWN_MS`: how long an open breaker fails fast before it probes.
    pub cooldown: Duration,
}

impl BreakerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(BreakerConfig {
            failures: number("FLASHSALE_BREAKER_FAILURES", 5)?,
            cooldown: millis("FLASHSALE_BREAKER_COOLDOWN_MS", 2000)?,
        })
    }
}
