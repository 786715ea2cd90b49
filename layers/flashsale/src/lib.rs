//! Shared code of the flash-sale functions. The name mirrors a Lambda layer: every
//! function's bootstrap links this crate. It is organised by capability: one module per
//! promise the system keeps, each holding the operations that keep it, on the handles
//! of [`stores`]. Imports run one way, down this list's layers (the `imports` test
//! checks that no module reaches itself):
//!
//! 1. Leaves. [`domain`]: ids, sales, orders and their states, money, the waiting room's
//!    clock, the messages, why a stranger's request is refused; no I/O. [`secret`]: a
//!    credential that does not print. [`clock`]: the one clock. [`memo`]: per-container
//!    memory of a store's answer.
//! 2. [`config`]: configuration from the environment, a section per concern, and the
//!    secrets read at init apart from it ([`config::Secrets`]); [`error`]: the one error type.
//! 3. [`stores`]: one connection handle per service (MySQL, Redis, SQS, DynamoDB, S3,
//!    CloudFront), the AWS SDK's setup, the circuit breaker, [`stores::Stores`], the
//!    bundle most functions build once per container, and [`stores::access`], each
//!    function's own users and rights. [`ids`]: Snowflake order ids, minted under
//!    DynamoDB worker-id leases.
//! 4. Capabilities:
//!    - [`catalog`]: sales created, read, listed and published; their live state in Redis.
//!    - [`waiting_room`]: a sale's queue, its proof of work and its passes.
//!    - [`admission`]: the admission script, its undo, and the per-user limit.
//!    - [`outbox`]: every admitted order is kept somewhere durable until MySQL has it:
//!      the outbox in Redis, its record in the pending-orders table, then SQS.
//!    - [`tallies`]: each sale's orders and money per status, moved by the transaction
//!      that changes an order.
//!    - [`payments`]: the money, through the payment provider: a payment started for an
//!      order, the provider's word (webhook) applied, the refund of money that came late.
//!    - [`orders`]: persistence, the close (which asks [`payments`] first: one winner
//!      between the money and the close), and the one read path.
//!    - [`recovery`]: a sale Redis lost, found and rebuilt; a refused order corrected; the
//!      drift between the stores.
//!    - [`pages`]: the static pages, rendered and published to the bucket.
//!    - [`staff_audit`]: the staff's audit trail, every admin change with who, when and
//!      how it ended.
//! 5. [`lambda`]: HTTP plumbing and problem+json, the SQS consumer shapes, telemetry.

pub mod admission;
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
pub mod recovery;
pub mod secret;
pub mod staff_audit;
pub mod stores;
pub mod tallies;
pub mod waiting_room;

#[cfg(test)]
mod imports;

pub use config::Config;
pub use domain::{Order, OrderId, OrderStatus, Sale, SaleId, SaleState, UserId};
pub use error::{Error, Result};
pub use secret::Secret;
