//! `render-pages`: renders every current sale's page and the index to the bucket and
//! invalidates what changed. Publishing a sale (admin-api) and reconcile render the
//! same way; this function re-renders everything on demand, for example after a
//! template change is deployed.

use flashsale::pages::{Published, Publisher};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::{Config, Result, SaleId};
use serde::Deserialize;

/// `{}` renders all current sales; `{"sale_id": 7}` just that one (and the index).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    pub sale_id: Option<SaleId>,
}

pub struct RenderPages {
    mysql: Mysql,
    redis: Redis,
    pages: Publisher,
}

impl RenderPages {
    pub async fn from_config(config: &Config) -> Result<Self> {
        let (sdk, secrets) = &flashsale::stores::aws::load(config).await?;
        Ok(RenderPages {
            mysql: Mysql::from_config(config, sdk)?,
            redis: Redis::connect(config, secrets.redis_user.as_ref())?,
            pages: Publisher::from_config(sdk, config),
        })
    }

    pub async fn handle(&self, request: RenderRequest) -> Result<Published> {
        let published = self.pages.refresh(&self.mysql, &self.redis, request.sale_id).await?;
        tracing::info!(changed = ?published.changed, unchanged = published.unchanged, "pages rendered");
        Ok(published)
    }
}
