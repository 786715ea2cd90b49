//! The faults a real sale meets, one file per row of the fault matrix
//! (docs/architecture.md), each injected into a real process the test owns (a Redis
//! server it restarts empty, a TCP proxy it cuts between the stack and MySQL, a consumer
//! whose Redis dies between its two steps, a runtime that sleeps past its lease), then
//! the promises checked on what is left (`helpers::invariants`): units sold in MySQL
//! within stock, nobody above the limit, every `202` exactly one MySQL order, every unit
//! accounted for across Redis, the outbox and MySQL, no 5xx but 503 + Retry-After.

mod close_messages_lost;
mod consumer_interrupted;
mod intruders;
mod mysql_unreachable;
mod redis_lost;
mod redis_unresponsive;
mod refused_orders;
mod sqs_down;
mod stacks_start_together;
mod undone_admissions;
mod worker_leases;
