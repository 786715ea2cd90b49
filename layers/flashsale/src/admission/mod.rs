//! Admission: never oversell, at most the per-user limit to each shopper. One atomic
//! Redis script decides and deducts ([`admit`]); an admission whose order could be kept
//! nowhere durable is undone. The per-user limit is kept in three places ([`limit`]).

pub mod admit;
pub mod limit;

pub use admit::{Admission, Replication, Undo};
pub use limit::Holders;
