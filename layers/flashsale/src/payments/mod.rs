//! Taking the money, through the payment provider (Stripe's API shape). The promises:
//!
//! - An order becomes `PAID` only on the provider's word: its webhook, or its answer
//!   when asked, never the shopper's page ([`received`]).
//! - One winner between the money and the close: before an unpaid order with a payment
//!   closes, the payment is cancelled at the provider; if the money came first, the
//!   order is paid and its unit stays sold ([`crate::orders::close`]).
//! - Money that still reaches an order already closed (its unit back on sale) is
//!   refunded, exactly once, and the order says so: `REFUNDED`, when and why
//!   ([`received`]).
//!
//! [`checkout`] starts a payment for the shopper, [`provider`] is the provider's API
//! (each call within the account's [`budget`]), [`maker`] tells this stack's intents from
//! others', [`signature`] checks that a webhook delivery is the provider's, [`events`]
//! remembers the deliveries taken.

pub mod budget;
pub mod checkout;
pub mod events;
pub mod maker;
pub mod provider;
pub mod received;
pub mod signature;

pub use checkout::Checkout;
pub use provider::{Intent, IntentStatus, Provider};
pub use received::Received;
