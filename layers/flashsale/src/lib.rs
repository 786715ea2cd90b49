//! Shared code of the flash-sale functions. The name mirrors a Lambda layer:
//! every function's bootstrap links this crate.
//!
//! - [`domain`]: ids, sales, orders and the order state machine (no I/O).
//! - [`snowflake`]: order ids, minted under a DynamoDB worker-id lease.
//! - [`config`]: configuration from the environment; [`aws`]: the SDK's configuration
//!   and the secrets read at init; [`rds_auth`]: IAM tokens for the database.
//! - one adapter per service: [`cache`] (Redis), [`db`] (MySQL), [`queue`] (SQS),
//!   [`leases`] and [`fallback`] (DynamoDB), [`bucket`] (S3), [`cdn`] (CloudFront).
//! - [`recovery`]: rebuilding a sale's Redis state from MySQL, settling refused orders.
//! - [`pages`]: the static pages, rendered and published to the bucket.
//! - [`http`]: identity from the authorizer, JSON bodies, RFC 9457 problems.

pub mod aws;
pub mod breaker;
pub mod bucket;
pub mod cache;
pub mod cdn;
pub mod config;
pub mod consumer;
pub mod db;
pub mod domain;
pub mod error;
pub mod fallback;
pub mod handoff;
pub mod http;
pub mod leases;
pub mod memo;
pub mod messages;
pub mod pages;
pub mod publish;
pub mod queue;
pub mod rds_auth;
pub mod recovery;
pub mod report;
pub mod snowflake;
pub mod stores;
pub mod telemetry;

pub use config::Config;
pub use domain::{Order, OrderId, OrderStatus, Sale, SaleId, SaleState, UserId};
pub use error::{Error, Result};
