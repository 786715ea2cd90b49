//! One connection handle per service, each with its own circuit breaker, built once
//! per container: [`mysql::Mysql`], [`redis::Redis`], [`sqs::Queue`] (behind the
//! [`sqs::Outbound`] seam), the pending-orders table [`dynamodb::PendingOrdersTable`] (behind the
//! [`dynamodb::PendingOrders`] seam), [`s3::Bucket`], [`cloudfront::CloudFront`]; the AWS
//! SDK's setup and the secrets read at init ([`aws`]); the [`breaker`]. The worker-id
//! lease table is used by the id generator alone and lives with it (`ids::leases`).

pub mod access;
pub mod aws;
pub mod breaker;
pub mod cloudfront;
pub mod dynamodb;
pub mod mysql;
pub mod redis;
pub mod s3;
pub mod sqs;

use self::dynamodb::{PendingOrders, PendingOrdersTable};
use self::mysql::Mysql;
use self::redis::Redis;
use self::sqs::{Outbound, Queue};
use crate::config::{Config, Secrets};
use crate::error::Result;

/// The stores the order lifecycle works on.
pub struct Stores {
    pub mysql: Mysql,
    pub redis: Redis,
    pub queue: Box<dyn Outbound>,
    pub pending_orders: Box<dyn PendingOrders>,
}

impl Stores {
    pub async fn from_config(config: &Config) -> Result<Self> {
        let (sdk, secrets) = aws::load(config).await?;
        Stores::new(&sdk, config, &secrets)
    }

    /// With AWS clients from `sdk` (tests point it at an unreachable endpoint).
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config, secrets: &Secrets) -> Result<Self> {
        Ok(Stores {
            mysql: Mysql::from_config(config, sdk)?,
            redis: Redis::connect(config, secrets.redis_user.as_ref())?,
            queue: Box::new(Queue::new(sdk, config)),
            pending_orders: Box::new(PendingOrdersTable::new(sdk, config)),
        })
    }
}
