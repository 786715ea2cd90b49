//! The one error type of the shared layer. [`crate::lambda::http::problem`] maps it to
//! an HTTP status and an RFC 9457 problem body in one place.

use crate::config::ConfigError;
use crate::domain::{InvalidSale, OrderId, OrderStatus, UnknownStatus};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("sold out ({remaining} left)")]
    SoldOut { remaining: u64 },
    #[error("per-user limit of {limit} reached")]
    LimitReached { limit: u32, order_ids: Vec<OrderId> },
    #[error("sale is not open: {0}")]
    NotOpen(&'static str),
    #[error("the sale has no waiting room")]
    NoWaitingRoom,
    #[error("not your turn yet")]
    NotYourTurn { position: Option<u64>, serving: u64 },
    #[error("pass refused: {0}")]
    PassRefused(#[from] crate::domain::PassRefused),
    #[error("proof of work refused: {0}")]
    ProofRefused(#[from] crate::domain::ProofRefused),
    #[error("order is {status} and cannot be paid: {reason}")]
    NotPayable { status: OrderStatus, reason: &'static str },
    #[error("{service} unavailable, retry in {retry_after_secs}s")]
    Unavailable { service: &'static str, retry_after_secs: u64 },
    /// A rate-limited dependency's budget is spent (the call was not made), or it
    /// answered "slower" (the provider's 429): not a failure of it, so no breaker counts
    /// it; the caller retries after `retry_after_secs`.
    #[error("{service} rate limit reached, retry in {retry_after_secs}s")]
    Throttled { service: &'static str, retry_after_secs: u64 },
    /// A circuit breaker turned the call away: the dependency was not even asked.
    #[error("{service} unavailable (circuit open), retry in {retry_after_secs}s")]
    CircuitOpen { service: &'static str, retry_after_secs: u64 },
    /// `operation` names what the store was asked to do ("persist orders"); empty until
    /// the store's handle names it.
    #[error("redis ({operation}): {source}")]
    Redis { operation: &'static str, source: redis::RedisError },
    #[error("database ({operation}): {source}")]
    Db { operation: &'static str, source: sqlx::Error },
    /// JSON that does not (de)serialise where the code, not the caller, wrote it.
    #[error("{what}: {source}")]
    Serde { what: &'static str, source: serde_json::Error },
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `message` spells out the whole chain of causes, which the SDK's `Display`
    /// hides; `source` keeps the error itself.
    #[error("{service}: {message}")]
    Aws {
        service: &'static str,
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The payment provider failed or refused a call; `status` is its HTTP answer, if any.
    #[error("payment provider ({operation}): {message}")]
    Provider { operation: &'static str, status: Option<u16>, message: String },
    /// A webhook delivery that is not the provider's.
    #[error("webhook signature: {0}")]
    BadSignature(#[from] crate::domain::BadSignature),
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<redis::RedisError> for Error {
    fn from(source: redis::RedisError) -> Self {
        Error::Redis { operation: "", source }
    }
}

impl From<sqlx::Error> for Error {
    fn from(source: sqlx::Error) -> Self {
        Error::Db { operation: "", source }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e.0)
    }
}

impl From<InvalidSale> for Error {
    fn from(e: InvalidSale) -> Self {
        Error::Invalid(e.0.to_string())
    }
}

/// A status MySQL holds that the code does not know is a fault of ours.
impl From<UnknownStatus> for Error {
    fn from(e: UnknownStatus) -> Self {
        Error::Internal(e.to_string())
    }
}

impl Error {
    pub fn serde(what: &'static str, source: serde_json::Error) -> Self {
        Error::Serde { what, source }
    }

    /// Names the store operation a store error came from, unless it is named already.
    pub fn during(self, operation: &'static str) -> Self {
        match self {
            Error::Redis { operation: "", source } => Error::Redis { operation, source },
            Error::Db { operation: "", source } => Error::Db { operation, source },
            other => other,
        }
    }

    /// Wraps any AWS SDK error.
    pub fn aws(service: &'static str, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Aws { service, message: causes(&err), source: Box::new(err) }
    }

    /// MySQL refused a statement for the values it was given (SQLSTATE class 22, a data
    /// exception, or 23, a constraint): running the same statement again fails again,
    /// unlike a lock wait, a deadlock or a lost connection.
    pub fn is_refused_statement(&self) -> bool {
        matches!(self, Error::Db { source: sqlx::Error::Database(e), .. }
            if e.code().is_some_and(|state| state.starts_with("22") || state.starts_with("23")))
    }

    /// Failures of a dependency (as opposed to bad input or a rule of the sale).
    pub fn is_dependency_failure(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::CircuitOpen { .. }
                | Error::Redis { .. }
                | Error::Db { .. }
                | Error::Aws { .. }
        ) || matches!(self, Error::Provider { status, .. } if status.is_none_or(|s| s >= 500))
    }
}

/// An error and every cause under it, `: `-separated: the SDK's and reqwest's `Display`
/// leave the causes out, and they are where the reason is.
pub(crate) fn causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
