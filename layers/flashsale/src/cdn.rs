//! CloudFront adapter: invalidates the paths of pages that changed.

use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_sdk_cloudfront::Client;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::publish::Invalidate;

pub struct CloudFront {
    client: Client,
    distribution_id: String,
}

impl CloudFront {
    pub fn new(sdk: &aws_config::SdkConfig, distribution_id: impl Into<String>) -> Self {
        CloudFront { client: Client::new(sdk), distribution_id: distribution_id.into() }
    }
}

impl Invalidate for CloudFront {
    fn invalidate<'a>(&'a self, paths: Vec<String>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
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
        })
    }
}
