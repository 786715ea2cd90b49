//! Unique order ids: Snowflake ids ([`snowflake`], pure arithmetic) minted by a
//! generator ([`generator`]) that holds a worker id leased from DynamoDB ([`leases`]).

pub mod generator;
pub mod leases;
pub mod snowflake;

pub use generator::IdGenerator;
pub use leases::WorkerLeases;
