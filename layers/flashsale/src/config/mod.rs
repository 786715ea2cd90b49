//! Configuration from the environment, one typed section per concern, each read by its
//! own `from_env`: [`RedisConfig`], [`MysqlConfig`], [`AwsConfig`] (queues, tables,
//! bucket, CloudFront), [`BreakerConfig`] ([`services`]); [`AdmissionConfig`],
//! [`OrdersConfig`] (the close and reconcile's timings), [`PaymentsConfig`],
//! [`WaitingRoomConfig`], [`SiteConfig`] (the pages and the edge) ([`flows`]). Every
//! variable has a default that suits the local stack; on AWS the SAM template sets them.
//! README lists them all. The secrets a function reads at init are not configuration:
//! they are [`Secrets`], read by [`crate::stores::aws::load`].

mod flows;
mod secrets;
mod services;

pub use self::flows::{AdmissionConfig, OrdersConfig, PaymentsConfig, SiteConfig, WaitingRoomConfig};
pub use self::secrets::{PaymentKeys, RedisUser, Secrets};
pub use self::services::{AwsConfig, BreakerConfig, MysqlConfig, RedisConfig};

#[derive(Clone, Debug)]
pub struct Config {
    pub redis: RedisConfig,
    pub mysql: MysqlConfig,
    pub aws: AwsConfig,
    pub breaker: BreakerConfig,
    pub admission: AdmissionConfig,
    pub orders: OrdersConfig,
    pub payments: PaymentsConfig,
    pub waiting_room: WaitingRoomConfig,
    pub site: SiteConfig,
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
                Need::OrdersQueue => ("FLASHSALE_ORDERS_QUEUE_URL", &self.aws.orders_queue_url),
                Need::TimeoutsQueue => ("FLASHSALE_TIMEOUTS_QUEUE_URL", &self.aws.timeouts_queue_url),
            };
            if value.is_empty() {
                return Err(ConfigError(format!("{name} must be set")));
            }
        }
        Ok(())
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            redis: RedisConfig::from_env()?,
            mysql: MysqlConfig::from_env()?,
            aws: AwsConfig::from_env()?,
            breaker: BreakerConfig::from_env()?,
            admission: AdmissionConfig::from_env()?,
            orders: OrdersConfig::from_env()?,
            payments: PaymentsConfig::from_env()?,
            waiting_room: WaitingRoomConfig::from_env()?,
            site: SiteConfig::from_env(),
        })
    }
}

/// A variable missing or not of its kind: what to set, and how.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn var(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

/// The variable, `None` when unset or empty: the name of a secret, an optional id.
fn optional(name: &str) -> Option<String> {
    Some(var(name, "")).filter(|v| !v.is_empty())
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

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| ConfigError(format!("{name}={v:?} is not a valid number"))),
        _ => Ok(default),
    }
}

fn millis(name: &str, default: u64) -> Result<std::time::Duration, ConfigError> {
    Ok(std::time::Duration::from_millis(number(name, default)?))
}

/// [`millis`] under `name`, or under its former `old_name` while `name` is unset.
fn millis_or_alias(name: &str, old_name: &str, default: u64) -> Result<std::time::Duration, ConfigError> {
    millis(if var(name, "").is_empty() { old_name } else { name }, default)
}

fn secs(name: &str, default: u64) -> Result<std::time::Duration, ConfigError> {
    Ok(std::time::Duration::from_secs(number(name, default)?))
}
