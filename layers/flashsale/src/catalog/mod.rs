//! The catalog: sales as the shop defines them (MySQL, [`sales`]) and a published sale's
//! live state in Redis ([`live`]): warmed at publication, polled by shoppers, listed
//! among the live sales, and given an expiry once it ended.

pub mod live;
pub mod sales;

pub use crate::tallies::StatusCounts;
pub use live::{LiveSale, KEYS_GRACE};
