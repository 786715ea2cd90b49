//! `admin-api`: the shop's side (admin group only).
//!
//! - `POST /api/admin/sales`: create a sale.
//! - `POST /api/admin/sales/{id}/publish`: load it into Redis (cache warming) and render
//!   its page and the index to the bucket; idempotent.
//! - `GET /api/admin/sales/{id}`: the sale as MySQL has it.
//! - `GET /api/admin/sales/{id}/report`: orders per status and the Redis/MySQL drift.

use flashsale::cache::Cache;
use flashsale::db::Db;
use flashsale::domain::NewSale;
use flashsale::http::{self, json, problem};
use flashsale::pages::Publisher;
use flashsale::report::sale_report;
use flashsale::{Config, Error, Result, Sale, SaleId};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

const MAX_BODY: usize = 64 * 1024;

pub struct AdminApi {
    db: Db,
    cache: Cache,
    pages: Publisher,
}

impl AdminApi {
    pub fn new(db: Db, cache: Cache, pages: Publisher) -> Self {
        AdminApi { db, cache, pages }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        let sdk = flashsale::queue::aws_config(config).await;
        Ok(AdminApi::new(Db::connect(config)?, Cache::connect(config)?, Publisher::from_config(&sdk, config)))
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
                let new: NewSale = http::body(&req, MAX_BODY)?.ok_or(Error::Invalid("a sale is required".into()))?;
                Ok(json(StatusCode::CREATED, &self.create_sale(&new).await?))
            }
            (["admin", "sales", id, "publish"], Method::POST) => Ok(json(StatusCode::OK, &self.publish(id.parse()?).await?)),
            (["admin", "sales", id, "report"], Method::GET) => {
                let sale = self.db.sale(id.parse()?).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale_report(&self.db, &self.cache, &sale).await?))
            }
            (["admin", "sales", id], Method::GET) => {
                let sale = self.db.sale(id.parse()?).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale))
            }
            (["admin", "sales"] | ["admin", "sales", _] | ["admin", "sales", _, "publish"], _) => {
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
    /// is idempotent.
    pub async fn publish(&self, id: SaleId) -> Result<Sale> {
        let sale = self.db.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        self.cache.warm(&sale).await?;
        self.db.mark_published(id).await?;
        let pages = self.pages.refresh(&self.db, &self.cache, Some(id)).await?;
        tracing::info!(sale_id = %id, pages_changed = pages.changed.len(), "sale published");
        self.db.sale(id).await?.ok_or(Error::NotFound("sale"))
    }
}
