//! The integration tests, in one binary so the AWS SDKs, sqlx and redis are linked once.
//! Every test runs against the real local services (Redis, MariaDB, moto) that
//! `scripts/services.sh up` provides, on a stack with queues and sales of its own, so
//! tests run in parallel.

mod helpers;

mod abuse;
mod admission;
mod api;
mod bootstrap;
mod browser;
mod deploy;
mod docs;
mod failover;
mod fairness;
mod faults;
mod kept_units;
mod layout;
mod lifecycle;
mod load;
mod money;
mod nemesis;
mod pages;
mod payments;
mod purchase_path;
mod smoke;
mod template;
mod waiting_room;
