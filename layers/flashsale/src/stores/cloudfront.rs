//! The CloudFront handle: invalidates the paths of pages that changed.

use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_sdk_cloudfront::Client;

use crate::error::{Error, Result};

pub struct CloudFront {
    client: Client,
    distribution_id: String,
}

impl CloudFront {
    pub fn new(sdk: &aws_config::SdkConfig, distribution_id: impl Into<String>) -> Self {
        CloudFront { client: Client::new(sdk), distribution_id: distribution_id.into() }
    }

    pub async fn invalidate(&self, paths: Vec<String>) -> Result<()> {
        {
            let items = Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths))
                .build()
                .map_err(|e| Error::aws("cloudfront", e))?;
            let batch = InvalidationBatch::builder()
                .paths(items)
                .caller_reference(format!("flashsale-{:016x}", rand::random::<u64>()))
                .build()
                .map_err(|e| Error::aws("cloudfront", e))?;
            self.client
                .create_invalidation()
                .distribution_id(&self.distribution_id)
                .invalidation_batch(batch)
                .send()
                .await
                .map_err(|e| Error::aws("cloudfront", e))?;
            Ok(())
        }
    }
}
