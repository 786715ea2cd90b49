//! The AWS pieces around the functions, played locally: API Gateway ([`gateway`], with
//! [`throttle`]), CloudFront ([`edge`]), the SQS event source mappings
//! ([`event_source`]), the Lambda Runtime API ([`runtime_api`]), and the provisioning of
//! the queues, tables and bucket on the local stand-ins ([`provision`]).

pub mod edge;
pub mod event_source;
pub mod gateway;
pub mod provision;
pub mod runtime_api;
pub mod throttle;
