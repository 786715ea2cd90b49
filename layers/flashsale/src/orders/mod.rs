//! An order's life in MySQL: persisted from its admission exactly once ([`persist`]),
//! paid on the provider's word ([`crate::payments`]) or closed when its window passed
//! ([`close`]), with exactly one winner between the two; read by id or by page through
//! one path ([`read`]); tallied per status as they change ([`crate::tallies`]), and
//! counted for the audit ([`counts`]).

pub mod close;
pub mod counts;
pub mod persist;
pub mod read;

pub use close::Closing;
pub use persist::Persisted;
pub use read::{find_order, OrderFilter};
