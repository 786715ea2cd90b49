//! Shared code of the flash-sale functions. The name mirrors a Lambda layer: every
//! function's bootstrap links this crate. It is organised by capability: one module per
//! promise the system keeps, each holding the operations that keep it, on the handles
//! of [`stores`].
//!
//! - [`domain`]: ids, sales, orders and their states, the messages; no I/O.
//! - [`stores`]: one connection handle per service (MySQL, Redis, SQS, S3, CloudFront),
//!   the AWS SDK's setup, the circuit breaker, [`stores::Stores`], the bundle most
//!   functions build once per container, and [`stores::access`], each function's own
//!   users and rights.
//! - [`catalog`]: sales created, read, listed and published; their live state in Redis.
//! - [`admission`]: the admission script, its undo, and the per-user limit.
//! - [`outbox`]: every admitted order is kept somewhere durable until MySQL has it: the
//!   outbox in Redis, its record in the pending-orders table, then SQS.
//! - [`orders`]: persistence, the close, and the one read path.
//! - [`payments`]: the money, through the payment provider: a payment started for an
//!   order, the provider's word (webhook) applied, the refund of money that came late.
//! - [`recovery`]: a sale Redis lost, found and rebuilt; a refused order corrected; the
//!   drift between the stores.
//! - [`pages`]: the static pages, rendered and published to the bucket.
//! - [`audit`]: the staff's audit trail, every admin change with who, when and how it ended.
//! - [`ids`]: Snowflake order ids, minted under DynamoDB worker-id leases.
//! - [`lambda`]: HTTP plumbing and problem+json, the SQS consumer shapes, telemetry.
//! - [`config`]: configuration from the environment; [`error`]: the one error type;
//!   [`clock`]: the one clock; [`memo`]: per-container memory of a store's answer.

pub mod admission;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod ids;
pub mod lambda;
pub mod memo;
pub mod orders;
pub mod outbox;
pub mod pages;
pub mod payments;
pub mod queue;
pub mod recovery;
pub mod stores;

pub use config::Config;
pub use domain::{Order, OrderId, OrderStatus, Sale, SaleId, SaleState, UserId};
pub use error::{Error, Result};
