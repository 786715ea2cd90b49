//! Publishing the pages: the state of the sales read from MySQL and Redis, the pages
//! rendered ([`super::render`]), an object written to the S3 bucket CloudFront serves
//! only when its bytes differ from the stored ones, and exactly the changed paths
//! invalidated.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::render::{render_site, Page, PageState, Site};
use crate::config::Config;
use crate::domain::{Sale, SaleId};
use crate::error::Result;
use crate::stores::cloudfront::CloudFront;
use crate::stores::mysql::Mysql;
use crate::stores::redis::Redis;
use crate::stores::s3::{self, Bucket, Object};

pub struct Publisher {
    bucket: Bucket,
    /// Where invalidations go; `None` when no distribution is configured.
    cdn: Option<CloudFront>,
    site: Site,
}

/// What a publication wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Keys whose bytes changed (and were invalidated).
    pub changed: Vec<String>,
    pub unchanged: usize,
}

impl Publisher {
    pub fn new(bucket: Bucket, cdn: Option<CloudFront>, site: Site) -> Self {
        Publisher { bucket, cdn, site }
    }

    pub fn from_config(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let cdn = config.aws.cloudfront_distribution_id.as_ref().map(|id| CloudFront::new(sdk, id.clone()));
        let site = Site::from_config(config);
        Publisher::new(Bucket::new(s3::client(sdk), config.aws.bucket.clone()), cdn, site)
    }

    /// Renders the pages of the sales that have not long ended (or just `only`) and the
    /// index, with each sale's state from Redis, and publishes what changed.
    pub async fn refresh(&self, mysql: &Mysql, redis: &Redis, only: Option<SaleId>) -> Result<Published> {
        let now = Utc::now();
        let mut all = Vec::new();
        for sale in mysql.open_sales().await? {
            let remaining = redis.remaining(sale.id).await?;
            let state = PageState::of(&sale, remaining, now);
            all.push((sale, state));
        }
        let selected: Vec<(Sale, PageState)> =
            all.iter().filter(|(s, _)| only.is_none_or(|id| s.id == id)).cloned().collect();
        self.publish(&selected, &all).await
    }

    /// Renders the given sales' pages and the index over `all` sales, writes what
    /// changed, and invalidates exactly those paths.
    pub async fn publish(&self, sales: &[(Sale, PageState)], all: &[(Sale, PageState)]) -> Result<Published> {
        let mut published = Published::default();
        for Page { key, body, content_type, cache_control } in render_site(&self.site, sales, all)? {
            let sha = format!("{:x}", Sha256::digest(&body));
            if self.bucket.sha256(&key).await?.as_deref() == Some(sha.as_str()) {
                published.unchanged += 1;
                continue;
            }
            let object = Object {
                body,
                content_type: Some(content_type.to_string()),
                cache_control: Some(cache_control.to_string()),
            };
            self.bucket.put_with_sha256(&key, object, &sha).await?;
            published.changed.push(key);
        }
        // Assets are new keys when they change: nothing cached to invalidate.
        let paths: Vec<String> = published
            .changed
            .iter()
            .filter(|k| !k.starts_with("assets/"))
            .map(|k| if k == "index.html" { "/".to_string() } else { format!("/{k}") })
            .collect();
        if let (Some(cdn), false) = (&self.cdn, paths.is_empty()) {
            cdn.invalidate(paths).await?;
        }
        Ok(published)
    }
}
