//! `admin-api`: the shop's side (admin group only).
//!
//! - `POST /api/admin/sales`: create a sale.
//! - `POST /api/admin/sales/{id}/publish`: load it into Redis (cache warming) and render
//!   its page and the index to the bucket; idempotent.
//! - `POST /api/admin/sales/{id}/resync`: set the sale's Redis state (stock, buyers,
//!   their orders) from MySQL, the truth, keeping the orders still in the outbox.
//! - `GET /api/admin/sales/{id}`: the sale as MySQL has it.
//! - `GET /api/admin/sales/{id}/report`: orders per status and the Redis/MySQL drift.

use flashsale::cache::Cache;
use flashsale::db::Db;
use flashsale::domain::{NewSale, SaleDraft};
use flashsale::fallback::{Fallback, PendingOrders};
use flashsale::http::{self, json, problem};
use flashsale::publish::Publisher;
use flashsale::recovery;
use flashsale::report::sale_report;
use flashsale::{Config, Error, Result, Sale, SaleId};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

const MAX_BODY: usize = 64 * 1024;

pub struct AdminApi {
    db: Db,
    cache: Cache,
    /// Admitted orders kept outside Redis, counted when a sale's state is rebuilt.
    fallback: Fallback,
    pages: Publisher,
}

impl AdminApi {
    pub fn new(db: Db, cache: Cache, fallback: Fallback, pages: Publisher) -> Self {
        AdminApi { db, cache, fallback, pages }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        let (sdk, config) = &flashsale::aws::load(config).await?;
        Ok(AdminApi::new(
            Db::from_config(config, sdk)?,
            Cache::connect(config)?,
            Fallback::new(sdk, config),
            Publisher::from_config(sdk, config),
        ))
    }

    /// Sets the sale's Redis state from MySQL: with `force` always, else only if missing.
    async fn rebuild(&self, id: SaleId, force: bool) -> Result<Option<i64>> {
        let kept = self.fallback.of_sale(id).await?;
        recovery::rebuild(&self.db, &self.cache, id, &kept, force).await
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = http::request_span("admin-api", &req);
        self.route(req).instrument(span).await.unwrap_or_else(|e| problem(&e))
    }

    async fn route(&self, req: Request) -> Result<Response<Body>> {
        http::admin(&req)?;
        let (method, segments) = http::route(&req);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (segments.as_slice(), method) {
            (["admin", "sales"], Method::POST) => {
                let draft: SaleDraft = http::body(&req, MAX_BODY)?.ok_or(Error::Invalid("a sale is required".into()))?;
                Ok(json(StatusCode::CREATED, &self.create_sale(&NewSale::try_from(draft)?).await?))
            }
            (["admin", "sales", id, "publish"], Method::POST) => Ok(json(StatusCode::OK, &self.publish(http::path_id(id)?).await?)),
            (["admin", "sales", id, "resync"], Method::POST) => {
                let id: SaleId = http::path_id(id)?;
                let sale = self.db.sale(id).await?.ok_or(Error::NotFound("sale"))?;
                if !sale.published {
                    return Err(Error::NotOpen("the sale is not published"));
                }
                let remaining = self.rebuild(id, true).await?;
                tracing::warn!(sale_id = %id, ?remaining, "sale re-synced from MySQL by an admin");
                let sale = self.db.sale(id).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale_report(&self.db, &self.cache, &sale).await?))
            }
            (["admin", "sales", id, "report"], Method::GET) => {
                let sale = self.db.sale(http::path_id(id)?).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale_report(&self.db, &self.cache, &sale).await?))
            }
            (["admin", "sales", id], Method::GET) => {
                let sale = self.db.sale(http::path_id(id)?).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale))
            }
            (["admin", "sales"] | ["admin", "sales", _] | ["admin", "sales", _, "publish" | "resync" | "report"], _) => {
                Err(Error::MethodNotAllowed)
            }
            _ => Err(Error::NotFound("route")),
        }
    }

    pub async fn create_sale(&self, new: &NewSale) -> Result<Sale> {
        let sale = self.db.create_sale(new).await?;
        tracing::info!(sale_id = %sale.id, "sale created");
        Ok(sale)
    }

    /// Loads the sale into Redis, marks it published, then renders its page and the
    /// index. A crash in between leaves work that publishing again finishes: every step
    /// is idempotent. Publishing a published sale again never resets its stock: a
    /// state Redis lost is rebuilt from MySQL's orders instead.
    pub async fn publish(&self, id: SaleId) -> Result<Sale> {
        let sale = self.db.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        if sale.published {
            self.rebuild(id, false).await?;
        } else {
            self.cache.warm(&sale).await?;
        }
        self.db.mark_published(id).await?;
        let pages = self.pages.refresh(&self.db, &self.cache, Some(id)).await?;
        tracing::info!(sale_id = %id, pages_changed = pages.changed.len(), "sale published");
        self.db.sale(id).await?.ok_or(Error::NotFound("sale"))
    }
}
