//! The stores the order lifecycle works on, built once per container.

use crate::cache::Cache;
use crate::config::Config;
use crate::db::Db;
use crate::error::Result;
use crate::queue::{self, Queue};

pub struct Stores {
    pub db: Db,
    pub cache: Cache,
    pub queue: Queue,
}

impl Stores {
    pub async fn from_config(config: &Config) -> Result<Self> {
        let sdk = queue::aws_config(config).await;
        Ok(Stores { db: Db::connect(config)?, cache: Cache::connect(config)?, queue: Queue::new(&sdk, config) })
    }
}
