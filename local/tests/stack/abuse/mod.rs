//! The abuse suite: one file per class of attack a drop meets (a scalper, a bot farm,
//! a merchant whose payment account serves the rest of its business), each against the
//! real local stack and the local payment provider, each failing on the vulnerable
//! behaviour. docs/threats.md lists every class, what stops it, and its test here.

mod canonical_paths;
mod edge_cache;
mod foreign_money;
mod forged_webhook;
mod proof_of_work;
mod provider_budget;
mod waiting_room_lull;
