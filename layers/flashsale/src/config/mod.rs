//! Configuration from the environment. Every variable has a default that suits the
//! local stack; on AWS the SAM template sets them. README lists them all.

use std::time::Duration;

use crate::secret::Secret;

#[derive(Clone, Debug)]
pub struct Config {
    /// `FLASHSALE_REDIS_URL`: a secret, since a URL may carry a password.
    pub redis_url: Secret,
    /// `FLASHSALE_REDIS_AUTH_SECRET`: the Secrets Manager secret holding the function's
    /// Redis user (`{"username", "password"}`, ElastiCache RBAC) or an AUTH token (a
    /// plain string), read at init ([`crate::stores::aws::load`]); unset, no AUTH
    /// (locally).
    pub redis_auth_secret: Option<String>,
    /// The Redis user to sign in as, once read (or set by a local stack); `None`: the
    /// default user.
    pub redis_username: Option<String>,
    /// Its password, or the AUTH token, once read; never from the environment.
    pub redis_password: Option<Secret>,
    /// `FLASHSALE_DATABASE_URL`: without a password when IAM authentication is on.
    pub database_url: Secret,
    /// `FLASHSALE_DATABASE_IAM_AUTH`: `true` to sign in with IAM tokens (RDS Proxy on
    /// AWS) made from the function's own credentials, instead of a password.
    pub database_iam_auth: bool,
    /// `FLASHSALE_DB_MAX_CONNECTIONS`: per container; keep it small, Lambda multiplies it.
    pub db_max_connections: u32,
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
    /// `FLASHSALE_REDIS_TIMEOUT_MS`: per Redis call.
    pub redis_timeout: Duration,
    /// `FLASHSALE_AWS_TIMEOUT_MS` (formerly `FLASHSALE_SQS_TIMEOUT_MS`, still accepted):
    /// per call to an AWS service (SQS, DynamoDB, S3, CloudFront, Secrets Manager).
    pub aws_timeout: Duration,
    /// `FLASHSALE_REDIS_WAIT_REPLICAS`: how many Redis replicas must acknowledge an
    /// admission (`WAIT`) for it to count as durable; 0 (no replica) leaves its record
    /// in the pending-orders table as the only thing that makes it so.
    pub redis_wait_replicas: u32,
    /// `FLASHSALE_ADMIT_DURABLE_BOUND_MS` (formerly `FLASHSALE_ADMIT_SEND_BOUND_MS`): how
    /// long `admit` waits for the replicas' acknowledgement before it waits for the
    /// order's record in the pending-orders table instead.
    pub admit_durable_bound: Duration,
    /// `FLASHSALE_ADMIT_SETTLE_BOUND_MS`: how long, after answering, an `admit` container
    /// on Lambda stays thawed for the sends of the orders it admitted. Past it the
    /// container may freeze with a send still on its way: the order is durable (the
    /// replicas hold it), the send goes on at the next thaw, or reconcile's check-back
    /// re-sends it. Holding until every send ended would turn a slow SQS into that many
    /// times the admit concurrency.
    pub admit_settle_bound: Duration,
    /// `FLASHSALE_DB_TIMEOUT_MS`: to get a pooled MySQL connection.
    pub db_timeout: Duration,
    /// `FLASHSALE_DB_LOCK_WAIT_SECS`: the server gives up a statement that waits this long
    /// for a row lock (`innodb_lock_wait_timeout`, set on each connection); 0 leaves the
    /// server's own (on AWS the proxy's `InitQuery` sets it: a `SET` from the client would
    /// pin its connection).
    pub db_lock_wait_secs: u32,
    /// `FLASHSALE_DB_IDLE_TRANSACTION_SECS`: the server disconnects a client gone silent
    /// inside a transaction after this long, rolling it back (MariaDB's
    /// `idle_transaction_timeout`; MySQL ignores it): a client cut off while it held a
    /// sale's row would hold it until TCP gave up. 0 leaves the server's own.
    pub db_idle_transaction_secs: u32,
    /// `FLASHSALE_BREAKER_FAILURES`: consecutive failures that open a circuit breaker.
    pub breaker_failures: u32,
    /// `FLASHSALE_BREAKER_COOLDOWN_MS`: how long an open breaker fails fast before it probes.
    pub breaker_cooldown: Duration,
    /// `FLASHSALE_SOLD_OUT_TTL_MS`: how long a container answers sold-out from memory.
    pub sold_out_ttl: Duration,
    /// `FLASHSALE_MAX_DELAY_SECS`: the longest delay of one timeout message (SQS allows 900);
    /// longer payment windows are a chain of messages.
    pub max_delay_secs: u32,
    /// `FLASHSALE_OUTBOX_RESEND_AFTER_SECS`: outbox entries older than this are re-sent by reconcile.
    pub outbox_resend_after: Duration,
    /// `FLASHSALE_RECOVERY_DRAIN_SECS`: a sale whose Redis state was lost and is still
    /// not rebuilt this long after the loss (the pending-orders table cannot be read) is
    /// reported stuck.
    pub recovery_drain_bound: Duration,
    /// `FLASHSALE_OVERDUE_CLOSE_SECS`: reconcile closes unpaid orders this long past their
    /// deadline itself (their close message was lost or is stuck).
    pub overdue_close_after: Duration,
    /// `FLASHSALE_PAYMENT_CHECK_AFTER_SECS`: reconcile asks the provider about an unpaid
    /// order's payment once it started this long ago (its webhook is late or lost).
    pub payment_check_after: Duration,
    /// `FLASHSALE_CLOUDFRONT_DISTRIBUTION_ID`: invalidate changed pages there; unset, none.
    pub cloudfront_distribution_id: Option<String>,
    /// `FLASHSALE_API_BASE`: where the pages find the API (same origin through CloudFront).
    pub api_base: String,
    /// `FLASHSALE_PAYMENTS_API_URL`: the payment provider's API (Stripe's shape).
    pub payments_api_url: String,
    /// `FLASHSALE_PROVIDER_CALLS_PER_SEC`: the account's budget of provider calls a second,
    /// shared by every container of every function through Redis
    /// ([`crate::payments::budget`]). Below the provider's own limit (Stripe: about 25 a
    /// second in test mode, 100 live), leaving room for the rest of the shop's business.
    pub provider_calls_per_sec: u32,
    /// `FLASHSALE_WEBHOOK_DEADLINE_MS`: the longest the payment webhook works on one
    /// delivery (its provider read, MySQL, the refunds read, a refund with its wait for
    /// the account's budget) before it answers 503 with `Retry-After` and the provider
    /// delivers again. Below the function's timeout (10 s); on Lambda the invocation's
    /// own deadline, less a margin to answer, bounds it too.
    pub webhook_deadline: Duration,
    /// `FLASHSALE_STACK_NAME`: names this stack in the metadata of every payment it
    /// creates, so its webhook and reconcile act only on their own money when the
    /// provider's account serves others too (the shop's other business, a second stack).
    /// The template sets the CloudFormation stack's name; each local stack its own.
    pub stack_name: String,
    /// `FLASHSALE_PAYMENTS_SECRET`: the Secrets Manager secret holding the provider's
    /// keys as JSON (`{"secret_key": "sk_…", "webhook_secrets": ["whsec_…"]}`, the newest
    /// signing secret first while one is rotated), read at init; never in the environment.
    pub payments_secret: Option<String>,
    /// `FLASHSALE_ORIGIN_SECRET`: the Secrets Manager secret holding the value CloudFront
    /// sends in `x-origin-verify` to the API (`{"current": "…", "previous": "…"}`), read
    /// at init. Set, the API functions refuse a request without it: one that reached the
    /// API Gateway endpoint without passing the edge.
    pub origin_secret: Option<String>,
    /// The values accepted in `x-origin-verify`, once read (the local stack sets its own).
    /// Empty: every request is taken (`sam local`, tests of a function alone).
    pub origin_verify: Vec<Secret>,
    /// `FLASHSALE_QUEUE_SECRET`: the Secrets Manager secret holding the key that signs
    /// the waiting rooms' passes and proof-of-work challenges, read at init.
    pub queue_secret: Option<String>,
    /// That key, once read (the local stack sets its own). Unset, the waiting rooms'
    /// routes fail: shop-api signs what admit checks, so the key must be one.
    pub queue_key: Option<Secret>,
    /// `FLASHSALE_PASS_TTL_SECS`: how long a waiting room's pass may be used.
    pub pass_ttl: Duration,
    /// The keys themselves, once read ([`crate::stores::aws::load`]).
    pub payment_keys: Option<PaymentKeys>,
    /// `FLASHSALE_PAYMENTS_PUBLISHABLE_KEY`: the provider's public key the pages pay with.
    pub payments_publishable_key: String,
    /// `FLASHSALE_PAYMENTS_JS_URL`: the provider's script the pages load (Stripe.js).
    pub payments_js_url: String,
    /// `FLASHSALE_SIGN_IN_URL`: where the pages send a shopper to sign in (the identity
    /// provider's hosted UI on AWS; the local stack's dev sign-in locally).
    pub sign_in_url: String,
}

/// Configuration a function cannot work without on AWS (the defaults serve the local
/// stack, which fills these in itself).
#[derive(Clone, Copy, Debug)]
pub enum Need {
    OrdersQueue,
    TimeoutsQueue,
}

impl Config {
    /// Stops a function at init, with the variable's name, when something it needs is
    /// missing: better than failing the first send of a sale.
    pub fn require(&self, needs: &[Need]) -> Result<(), ConfigError> {
        for need in needs {
            let (name, value) = match need {
                Need::OrdersQueue => ("FLASHSALE_ORDERS_QUEUE_URL", &self.orders_queue_url),
                Need::TimeoutsQueue => ("FLASHSALE_TIMEOUTS_QUEUE_URL", &self.timeouts_queue_url),
            };
            if value.is_empty() {
                return Err(ConfigError(format!("{name} must be set")));
            }
        }
        Ok(())
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            redis_url: Secret::new(var("FLASHSALE_REDIS_URL", "redis://127.0.0.1:6379")),
            redis_auth_secret: Some(var("FLASHSALE_REDIS_AUTH_SECRET", "")).filter(|v| !v.is_empty()),
            redis_username: None,
            redis_password: None,
            database_url: Secret::new(var(
                "FLASHSALE_DATABASE_URL",
                "mysql://flashsale:flashsale@127.0.0.1:3306/flashsale",
            )),
            database_iam_auth: flag("FLASHSALE_DATABASE_IAM_AUTH")?,
            db_max_connections: number("FLASHSALE_DB_MAX_CONNECTIONS", 10)?,
            orders_queue_url: var("FLASHSALE_ORDERS_QUEUE_URL", ""),
            timeouts_queue_url: var("FLASHSALE_TIMEOUTS_QUEUE_URL", ""),
            lease_table: var("FLASHSALE_LEASE_TABLE", "flashsale-id-leases"),
            lease_duration: Duration::from_secs(number("FLASHSALE_LEASE_SECS", 60)?),
            pending_orders_table: var_or_aliases(
                "FLASHSALE_PENDING_ORDERS_TABLE",
                &["FLASHSALE_FALLBACK_TABLE", "FLASHSALE_PENDING_TABLE"],
                "flashsale-pending-orders",
            ),
            bucket: var("FLASHSALE_BUCKET", "flashsale-pages"),
            redis_timeout: Duration::from_millis(number("FLASHSALE_REDIS_TIMEOUT_MS", 250)?),
            aws_timeout: Duration::from_millis(number_or_alias(
                "FLASHSALE_AWS_TIMEOUT_MS",
                "FLASHSALE_SQS_TIMEOUT_MS",
                2000,
            )?),
            redis_wait_replicas: number("FLASHSALE_REDIS_WAIT_REPLICAS", 0)?,
            admit_durable_bound: Duration::from_millis(number_or_alias(
                "FLASHSALE_ADMIT_DURABLE_BOUND_MS",
                "FLASHSALE_ADMIT_SEND_BOUND_MS",
                50,
            )?),
            admit_settle_bound: Duration::from_millis(number("FLASHSALE_ADMIT_SETTLE_BOUND_MS", 200)?),
            db_timeout: Duration::from_millis(number("FLASHSALE_DB_TIMEOUT_MS", 3000)?),
            db_lock_wait_secs: number("FLASHSALE_DB_LOCK_WAIT_SECS", 5)?,
            db_idle_transaction_secs: number("FLASHSALE_DB_IDLE_TRANSACTION_SECS", 10)?,
            breaker_failures: number("FLASHSALE_BREAKER_FAILURES", 5)?,
            breaker_cooldown: Duration::from_millis(number("FLASHSALE_BREAKER_COOLDOWN_MS", 2000)?),
            sold_out_ttl: Duration::from_millis(number("FLASHSALE_SOLD_OUT_TTL_MS", 1000)?),
            max_delay_secs: number::<u32>("FLASHSALE_MAX_DELAY_SECS", 900)?.clamp(1, 900),
            outbox_resend_after: Duration::from_secs(number("FLASHSALE_OUTBOX_RESEND_AFTER_SECS", 30)?),
            recovery_drain_bound: Duration::from_secs(number("FLASHSALE_RECOVERY_DRAIN_SECS", 30)?),
            overdue_close_after: Duration::from_secs(number("FLASHSALE_OVERDUE_CLOSE_SECS", 120)?),
            payment_check_after: Duration::from_secs(number("FLASHSALE_PAYMENT_CHECK_AFTER_SECS", 30)?),
            cloudfront_distribution_id: Some(var("FLASHSALE_CLOUDFRONT_DISTRIBUTION_ID", "")).filter(|v| !v.is_empty()),
            api_base: var("FLASHSALE_API_BASE", "/api"),
            payments_api_url: var("FLASHSALE_PAYMENTS_API_URL", "https://api.stripe.com"),
            provider_calls_per_sec: number::<u32>("FLASHSALE_PROVIDER_CALLS_PER_SEC", 20)?.max(1),
            webhook_deadline: Duration::from_millis(number("FLASHSALE_WEBHOOK_DEADLINE_MS", 8000)?),
            stack_name: var("FLASHSALE_STACK_NAME", "flashsale-local"),
            payments_secret: Some(var("FLASHSALE_PAYMENTS_SECRET", "")).filter(|v| !v.is_empty()),
            origin_secret: Some(var("FLASHSALE_ORIGIN_SECRET", "")).filter(|v| !v.is_empty()),
            origin_verify: Vec::new(),
            queue_secret: Some(var("FLASHSALE_QUEUE_SECRET", "")).filter(|v| !v.is_empty()),
            queue_key: None,
            pass_ttl: Duration::from_secs(number::<u64>("FLASHSALE_PASS_TTL_SECS", 60)?.clamp(5, 3600)),
            payment_keys: None,
            payments_publishable_key: var("FLASHSALE_PAYMENTS_PUBLISHABLE_KEY", ""),
            payments_js_url: var("FLASHSALE_PAYMENTS_JS_URL", "https://js.stripe.com/v3/"),
            sign_in_url: var("FLASHSALE_SIGN_IN_URL", "/dev/oauth2/authorize?client_id=flashsale-local"),
        })
    }
}

/// The payment provider's credentials, as its secret holds them.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PaymentKeys {
    pub secret_key: Secret,
    /// Every signing secret a webhook may be signed with (more than one while rotating).
    pub webhook_secrets: Vec<Secret>,
}

/// A variable missing or not of its kind: what to set, and how.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn var(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

/// The variable `name`, else the first of its older names that is set, else `default`.
fn var_or_aliases(name: &str, old_names: &[&str], default: &str) -> String {
    std::iter::once(&name)
        .chain(old_names)
        .map(|n| var(n, ""))
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn flag(name: &str) -> Result<bool, ConfigError> {
    match var(name, "false").as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ConfigError(format!("{name}={other:?} is not true or false"))),
    }
}

/// [`number`] under `name`, or under its former `old_name` while `name` is unset.
fn number_or_alias<T: std::str::FromStr>(name: &str, old_name: &str, default: T) -> Result<T, ConfigError> {
    number(if var(name, "").is_empty() { old_name } else { name }, default)
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| ConfigError(format!("{name}={v:?} is not a valid number"))),
        _ => Ok(default),
    }
}
