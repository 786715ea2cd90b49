//! What every function shares as a Lambda: HTTP plumbing and the one mapping of errors to
//! problem+json ([`http`]), the shapes of an SQS-triggered function ([`sqs`]), and
//! structured logs ([`telemetry`]).

pub mod http;
pub mod sqs;
pub mod telemetry;
