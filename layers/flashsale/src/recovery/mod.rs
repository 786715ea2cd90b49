//! Redis is rebuildable, MySQL is the truth. When a sale's Redis state is gone (a
//! failover, a restart, a flush), the sale answers "recovering" (503) while the orders
//! in flight land ([`detect`]), then its state is rebuilt from MySQL ([`rebuild`]). When
//! MySQL refuses an order, Redis is corrected down to what MySQL and the outbox account
//! for instead of putting a unit back on sale that never existed ([`refused`]). The
//! [`drift`] report adds up where every unit is; [`rotation`] is where reconcile's next
//! run over the sales begins.

pub mod detect;
pub mod drift;
pub mod rebuild;
pub mod refused;
pub mod rotation;

pub use detect::{recover, recovering, Drain, MissingSales, Recovery};
pub use rebuild::rebuild;
