//! The flash-sale domain: identifiers, sales, orders and their states, and the
//! messages between the functions. No I/O and no HTTP here; each check answers with a
//! small error of its own, which the caller turns into what it means there.

mod ids;
mod messages;
mod money;
mod order;
mod refusals;
mod sale;
mod waiting_room;

pub use ids::{BadId, BadUserId, OrderId, SaleId, UserId};
pub use messages::{OrderMessage, TimeoutMessage};
pub use money::{format_price, Currency, CurrencyUnit, SaleMoney, CURRENCIES, MAX_CHARGE};
pub use order::{Order, OrderStatus, Refund, UnknownStatus, HOLDS_UNITS_SQL};
pub use refusals::{BadSignature, PassRefused, ProofRefused, MAX_HEADER_LEN, MAX_SIGNATURES, TOLERANCE_SECS};
pub use sale::{InvalidSale, NewSale, Sale, SaleDraft, SaleState};
pub use waiting_room::{place, QueueMode, ServingClock, WaitingRoom};
