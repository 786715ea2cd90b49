//! `admit`: `POST /api/sales/{id}/purchase`, the hot path of a flash sale.
//!
//! One EVALSHA decides (sale window by Redis's clock, per-user limit before any
//! deduction, stock, outbox entry); then the order message goes to SQS. When that
//! send fails the shopper is still admitted: the outbox entry is re-sent by reconcile.
//! Requests turned away do no queue, DynamoDB or MySQL work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashsale::cache::{Admission, Cache};
use flashsale::http::{self, json, problem};
use flashsale::leases::WorkerLeases;
use flashsale::messages::OrderMessage;
use flashsale::queue::{self, Queue};
use flashsale::snowflake::{IdGenerator, SystemClock};
use flashsale::{Config, Error, OrderStatus, Result, SaleId};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json as j;
use tracing::Instrument;

/// A purchase body is a few bytes; anything much larger is not a purchase.
const MAX_BODY: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    quantity: u32,
}

/// Per-container memory of sold-out sales, so the flood after the last unit stops at
/// the container instead of reaching Redis. Entries expire after a short TTL, so
/// released stock reopens the sale within it; nothing here is shared or global.
pub struct SoldOutMemo {
    ttl: Duration,
    until: Mutex<HashMap<SaleId, Instant>>,
}

impl SoldOutMemo {
    pub fn new(ttl: Duration) -> Self {
        SoldOutMemo { ttl, until: Mutex::new(HashMap::new()) }
    }

    pub fn is_sold_out(&self, sale: SaleId) -> bool {
        let mut until = self.until.lock().unwrap();
        match until.get(&sale) {
            Some(t) if *t > Instant::now() => true,
            Some(_) => {
                until.remove(&sale);
                false
            }
            None => false,
        }
    }

    pub fn mark(&self, sale: SaleId) {
        if !self.ttl.is_zero() {
            self.until.lock().unwrap().insert(sale, Instant::now() + self.ttl);
        }
    }
}

pub struct Admit {
    cache: Cache,
    queue: Queue,
    ids: Arc<IdGenerator>,
    sold_out: SoldOutMemo,
}

impl Admit {
    pub fn new(cache: Cache, queue: Queue, ids: Arc<IdGenerator>, sold_out_ttl: Duration) -> Self {
        Admit { cache, queue, ids, sold_out: SoldOutMemo::new(sold_out_ttl) }
    }

    /// Everything built once per container: Redis manager and script, SQS client, and
    /// the id generator with its worker-id lease.
    pub async fn from_config(config: &Config) -> Result<Self> {
        let sdk = queue::aws_config(config).await;
        let ids = IdGenerator::leased(WorkerLeases::from_config(&sdk, config), Arc::new(SystemClock)).await;
        Ok(Admit::new(Cache::connect(config)?, Queue::new(&sdk, config), ids, config.sold_out_ttl))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = http::request_span("admit", &req);
        self.purchase(req).instrument(span).await.unwrap_or_else(|e| problem(&e))
    }

    async fn purchase(&self, req: Request) -> Result<Response<Body>> {
        let (method, segments) = http::route(&req);
        let sale_id: SaleId = match segments.as_slice() {
            [sales, id, purchase] if sales == "sales" && purchase == "purchase" => id.parse()?,
            _ => return Err(Error::NotFound("route")),
        };
        tracing::Span::current().record("sale_id", sale_id.0);
        if method != Method::POST {
            return Err(Error::MethodNotAllowed);
        }
        let caller = http::caller(&req)?;
        let quantity = http::body::<Purchase>(&req, MAX_BODY)?.map_or(1, |p| p.quantity);
        if quantity == 0 || quantity > flashsale::domain::NewSale::MAX_PER_USER {
            return Err(Error::Invalid("quantity must be a positive number within the per-user limit".into()));
        }
        if self.sold_out.is_sold_out(sale_id) {
            return Err(Error::SoldOut { remaining: 0 });
        }
        let order = OrderMessage { order_id: self.ids.next_id().await?, sale_id, user_id: caller.user, quantity };
        match self.cache.admit(&order).await? {
            Admission::Admitted { order_id, remaining } => {
                tracing::Span::current().record("order_id", order_id.0);
                if remaining == 0 {
                    self.sold_out.mark(sale_id);
                }
                if let Err(e) = self.queue.send_order(&order).await {
                    // Safe in the outbox: reconcile re-sends it.
                    tracing::warn!(error = %e, "order message not sent; left in the outbox");
                }
                tracing::info!(quantity, "admitted");
                Ok(json(
                    StatusCode::ACCEPTED,
                    &j!({"order_id": order_id, "sale_id": sale_id, "status": OrderStatus::Pending, "quantity": quantity}),
                ))
            }
            Admission::LimitReached { limit, order_ids } => Err(Error::LimitReached { limit, order_ids }),
            Admission::SoldOut { remaining } => {
                if remaining == 0 {
                    self.sold_out.mark(sale_id);
                }
                Err(Error::SoldOut { remaining })
            }
            Admission::NotStarted => Err(Error::NotOpen("the sale has not started yet")),
            Admission::Ended => Err(Error::NotOpen("the sale has ended")),
            Admission::UnknownSale => Err(Error::NotFound("sale")),
            Admission::BadQuantity { limit } => Err(Error::Invalid(format!("quantity must be between 1 and {limit}"))),
        }
    }
}
