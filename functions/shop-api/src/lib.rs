//! `shop-api`: what shoppers read and the payment.
//!
//! - `GET /api/sales/{id}`: stock left, state and the server's clock, from Redis alone
//!   (a running sale Redis lost is rebuilt from MySQL, see [`flashsale::recovery`]).
//! - `GET /api/orders`: the caller's orders in MySQL, newest first; paged (`?limit=`,
//!   `?before=` the previous page's `next`). One admitted a moment ago may still be on
//!   its way there (`GET /api/orders/{id}` finds it).
//! - `GET /api/orders/{id}`: the caller's order; `PENDING` while only the outbox knows it.
//! - `POST /api/orders/{id}/payment`: the order's payment at the provider (started once,
//!   the same one when asked again) and the client secret the page pays with. The order
//!   becomes `PAID` only on the provider's word (`payment-webhook`), never here.

use flashsale::lambda::http::{self, json, problem, Caller};
use flashsale::orders::{find_order, OrderFilter};
use flashsale::outbox::KeptOrders;
use flashsale::payments::{checkout::checkout, Provider};
use flashsale::recovery::{Drain, MissingSales};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::stores::Stores;
use flashsale::{Config, Error, Order, OrderId, Result, SaleId};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json as j;
use tracing::Instrument;

pub struct ShopApi {
    mysql: Mysql,
    redis: Redis,
    /// Only to rebuild a sale Redis lost: the orders recorded and not yet in MySQL.
    fallback: Box<dyn KeptOrders>,
    missing: MissingSales,
    provider: Provider,
    edge: http::EdgeOnly,
}

impl ShopApi {
    pub fn new(stores: Stores, missing: MissingSales, provider: Provider) -> Self {
        let Stores { mysql, redis, fallback, .. } = stores;
        ShopApi { mysql, redis, fallback, missing, provider, edge: http::EdgeOnly::default() }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[flashsale::config::Need::OrdersQueue])?;
        let (sdk, config) = flashsale::stores::aws::load(config).await?;
        Ok(ShopApi {
            edge: http::EdgeOnly::from_config(&config),
            ..ShopApi::new(
                Stores::new(&sdk, &config)?,
                MissingSales::new(config.sold_out_ttl, Drain::from_config(&config)),
                Provider::from_config(&config)?,
            )
        })
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        if let Some(refused) = self.edge.refuses(&req) {
            return refused;
        }
        let span = http::request_span("shop-api", &req);
        self.route(req).instrument(span).await.unwrap_or_else(|e| problem(&e))
    }

    async fn route(&self, req: Request) -> Result<Response<Body>> {
        let (method, segments) = http::route(&req);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (segments.as_slice(), method) {
            (["sales", id], Method::GET) => self.sale(http::path_id(id)?).await,
            (["orders"], Method::GET) => self.my_orders(&req).await,
            (["orders", id], Method::GET) => self.order(&http::caller(&req)?, http::path_id(id)?).await,
            (["orders", id, "payment"], Method::POST) => self.payment(&http::caller(&req)?, http::path_id(id)?).await,
            (["sales", _] | ["orders"] | ["orders", _] | ["orders", _, "payment"], _) => Err(Error::MethodNotAllowed),
            _ => Err(Error::NotFound("route")),
        }
    }

    async fn sale(&self, id: SaleId) -> Result<Response<Body>> {
        let sale = match self.redis.live_sale(id).await? {
            Some(sale) => sale,
            None => {
                // Redis lost a running sale: it is rebuilt (503 meanwhile), not gone.
                self.missing.recover(&self.mysql, &self.redis, &*self.fallback, id).await?;
                self.redis.live_sale(id).await?.ok_or_else(flashsale::recovery::recovering)?
            }
        };
        let mut response = json(
            StatusCode::OK,
            &j!({
                "id": sale.id,
                "name": sale.name,
                "price_cents": sale.price_cents,
                "stock": sale.stock,
                "per_user_limit": sale.per_user_limit,
                "remaining": sale.remaining,
                "state": sale.state(),
                "starts_at": sale.starts_at,
                "ends_at": sale.ends_at,
                "server_time": sale.server_time,
            }),
        );
        // A second at the edge absorbs the polling crowd; stock is a hint, admission decides.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
        Ok(response)
    }

    /// The caller's order: MySQL's word once it has it, the outbox's (`PENDING`) before.
    /// Other people's orders do not exist as far as the caller can tell.
    async fn find_order(&self, caller: &Caller, id: OrderId) -> Result<Order> {
        find_order(&self.mysql, &self.redis, id)
            .await?
            .filter(|order| order.user_id == caller.user)
            .ok_or(Error::NotFound("order"))
    }

    async fn my_orders(&self, req: &Request) -> Result<Response<Body>> {
        let caller = http::caller(req)?;
        let limit = http::page_limit(req, 20, 100)?;
        let filter = OrderFilter { user: Some(&caller.user), ..Default::default() };
        let orders = self.mysql.orders_page(filter, http::cursor(req)?, limit).await?;
        let next = (orders.len() == limit as usize).then(|| orders.last().map(|o| o.order_id.to_string())).flatten();
        Ok(json(StatusCode::OK, &j!({ "orders": orders, "next": next })))
    }

    async fn order(&self, caller: &Caller, id: OrderId) -> Result<Response<Body>> {
        Ok(json(StatusCode::OK, &self.find_order(caller, id).await?))
    }

    async fn payment(&self, caller: &Caller, id: OrderId) -> Result<Response<Body>> {
        match checkout(&self.mysql, &self.provider, &caller.user, id).await {
            Ok(checkout) => {
                let mut response = json(StatusCode::OK, &checkout);
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(response)
            }
            Err(Error::NotFound(_)) => {
                // Not in MySQL yet: the caller's own order still in the outbox, or none.
                let order = self.find_order(caller, id).await?;
                Err(Error::NotPayable {
                    status: order.status,
                    reason: "the order is not confirmed yet, retry in a moment",
                })
            }
            Err(e) => Err(e),
        }
    }
}
