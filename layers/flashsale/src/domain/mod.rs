//! The flash-sale domain: identifiers, sales, orders and their states, and the
//! messages between the functions. No I/O and no HTTP here; each check answers with a
//! small error of its own, which the caller turns into what it means there.

mod ids;
mod messages;
mod money;
mod order;
mod queue;
mod sale;

pub use ids::{BadId, BadUserId, OrderId, SaleId, UserId};
pub use messages::{OrderMessage, TimeoutMessage};
pub use money::{Currency, CurrencyUnit, CURRENCIES, MAX_CHARGE};
pub use order::{Order, OrderStatus, Refund, UnknownStatus, HOLDS_UNITS_SQL};
pub use queue::{place, QueueMode, ServingClock, WaitingRoom};
pub use sale::{InvalidSale, NewSale, Sale, SaleDraft, SaleState};
