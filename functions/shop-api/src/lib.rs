//! `shop-api`: what shoppers read and the payment.
//!
//! - `GET /api/sales/{id}`: stock left, state and the server's clock, from Redis alone
//!   (a running sale Redis lost is rebuilt from MySQL, see [`flashsale::recovery`]).
//! - `GET /api/orders`: the caller's orders in MySQL, newest first; paged (`?limit=`,
//!   `?before=` the previous page's `next`). One admitted a moment ago may still be on
//!   its way there (`GET /api/orders/{id}` finds it).
//! - `GET /api/orders/{id}`: the caller's order; `PENDING` while only the outbox knows it.
//! - The waiting room of a sale that has one (see [`flashsale::waiting_room`]):
//!   `GET /api/sales/{id}/queue/challenge` a proof-of-work challenge;
//!   `POST /api/sales/{id}/queue` join with it solved (again: the same place);
//!   `GET /api/sales/{id}/queue/status` the number served, public and cached a second
//!   at the edge; `POST /api/sales/{id}/pass` a short-lived pass once the caller's
//!   place is served, which `admit` takes.
//! - The public reads (a sale, its waiting room's status) answer a sale that does not
//!   exist, or an id not written as a sale's id is (`07`, `+7`), with a 404 the edge
//!   keeps for a moment; a path written otherwise than its route (`.../purchase/`) is a
//!   404 before any store is asked.
//! - `POST /api/orders/{id}/payment`: the order's payment at the provider (started once,
//!   the same one when asked again) and the client secret the page pays with. The order
//!   becomes `PAID` only on the provider's word (`payment-webhook`), never here.

use chrono::Utc;
use flashsale::domain::ProofRefused;
use flashsale::lambda::http::{self, json, problem, Caller};
use flashsale::orders::{find_order, OrderFilter};
use flashsale::outbox::PendingOrders;
use flashsale::payments::{checkout::checkout, Provider};
use flashsale::recovery::{Drain, MissingSales};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::ms_to_time;
use flashsale::stores::redis::Redis;
use flashsale::stores::Stores;
use flashsale::waiting_room::{Proof, RoomKeys, RoomState};
use flashsale::{Config, Error, Order, OrderId, Result, SaleId, UserId};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json as j;
use std::time::Duration;
use tracing::Instrument;

pub struct ShopApi {
    mysql: Mysql,
    redis: Redis,
    /// Only to rebuild a sale Redis lost: the orders recorded and not yet in MySQL.
    pending_orders: Box<dyn PendingOrders>,
    missing: MissingSales,
    provider: Provider,
    room_keys: Option<RoomKeys>,
    pass_ttl: Duration,
    edge: http::EdgeOnly,
}

/// A join: the solved challenge, which a shopper already in the queue need not send.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Join {
    #[serde(default)]
    proof: Option<Proof>,
}

const MAX_BODY: usize = 4096;

impl ShopApi {
    pub fn new(stores: Stores, missing: MissingSales, provider: Provider, config: &Config) -> Self {
        let Stores { mysql, redis, pending_orders, .. } = stores;
        ShopApi {
            mysql,
            redis,
            pending_orders,
            missing,
            provider,
            room_keys: None,
            pass_ttl: config.waiting_room.pass_ttl,
            edge: http::EdgeOnly::default(),
        }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[flashsale::config::Need::OrdersQueue])?;
        let (sdk, secrets) = flashsale::stores::aws::load(config).await?;
        let stores = Stores::new(&sdk, config, &secrets)?;
        // Its calls within the account's budget, shared through Redis.
        let provider = Provider::from_config(config, &secrets)?.with_budget(&stores.redis);
        Ok(ShopApi {
            edge: http::EdgeOnly::from_secrets(&secrets),
            room_keys: RoomKeys::from_secrets(&secrets),
            ..ShopApi::new(
                stores,
                MissingSales::new(config.admission.sold_out_ttl, Drain::from_config(config)),
                provider,
                config,
            )
        })
    }

    /// What this container knows of the sales Redis does not: how often it asked MySQL.
    pub fn missing_sales(&self) -> &MissingSales {
        &self.missing
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
            (["sales", id], Method::GET) => public(async { self.sale(http::path_id(id)?).await }.await),
            (["sales", id, "queue", "challenge"], Method::GET) => {
                self.challenge(&http::caller(&req)?, http::path_id(id)?).await
            }
            (["sales", id, "queue"], Method::POST) => self.join(&req, http::path_id(id)?).await,
            (["sales", id, "queue", "status"], Method::GET) => {
                public(async { self.queue_status(http::path_id(id)?).await }.await)
            }
            (["sales", id, "pass"], Method::POST) => self.pass(&http::caller(&req)?, http::path_id(id)?).await,
            (["orders"], Method::GET) => self.my_orders(&req).await,
            (["orders", id], Method::GET) => self.order(&http::caller(&req)?, http::path_id(id)?).await,
            (["orders", id, "payment"], Method::POST) => self.payment(&http::caller(&req)?, http::path_id(id)?).await,
            (
                ["sales", _]
                | ["sales", _, "queue"]
                | ["sales", _, "queue", "challenge" | "status"]
                | ["sales", _, "pass"]
                | ["orders"]
                | ["orders", _]
                | ["orders", _, "payment"],
                _,
            ) => Err(Error::MethodNotAllowed),
            _ => Err(Error::NotFound("route")),
        }
    }

    async fn sale(&self, id: SaleId) -> Result<Response<Body>> {
        let sale = match self.redis.live_sale(&self.mysql, id).await? {
            Some(sale) => sale,
            None => {
                // Redis lost a running sale: it is rebuilt (503 meanwhile), not gone.
                self.missing.recover(&self.mysql, &self.redis, &*self.pending_orders, id).await?;
                self.redis.live_sale(&self.mysql, id).await?.ok_or_else(flashsale::recovery::recovering)?
            }
        };
        let mut response = json(
            StatusCode::OK,
            &j!({
                "id": sale.id,
                "name": sale.name,
                "price_cents": sale.price_cents,
                "currency": sale.currency,
                "stock": sale.stock,
                "per_user_limit": sale.per_user_limit,
                "remaining": sale.remaining,
                "state": sale.state(),
                "starts_at": sale.starts_at,
                "ends_at": sale.ends_at,
                "server_time": sale.server_time,
                "waiting_room": sale.waiting_room.map(|mode| j!({ "mode": mode })),
            }),
        );
        // A second at the edge absorbs the polling crowd; stock is a hint, admission decides.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
        Ok(response)
    }

    /// The sale's waiting room now, with `user`'s place when given. A running sale Redis
    /// lost is rebuilt first (503 meanwhile).
    async fn room(&self, id: SaleId, user: Option<&UserId>) -> Result<RoomState> {
        if let Some(room) = self.redis.room(id, user).await? {
            return Ok(room);
        }
        self.missing.recover(&self.mysql, &self.redis, &*self.pending_orders, id).await?;
        self.redis.room(id, user).await?.ok_or_else(flashsale::recovery::recovering)
    }

    async fn challenge(&self, caller: &Caller, id: SaleId) -> Result<Response<Body>> {
        let room = self.room(id, None).await?;
        let challenge =
            RoomKeys::required(&self.room_keys)?.challenge(id, &caller.user, room.join_difficulty(), room.now_ms);
        Ok(no_store(json(StatusCode::OK, &challenge)))
    }

    async fn join(&self, req: &Request, id: SaleId) -> Result<Response<Body>> {
        let caller = http::caller(req)?;
        let proof = http::body::<Join>(req, MAX_BODY)?.and_then(|join| join.proof);
        // Two hashes, before Redis is asked anything; the script spends the proof.
        let now_ms = Utc::now().timestamp_millis();
        let spent = match proof {
            Some(proof) => Some(RoomKeys::required(&self.room_keys)?.check_proof(&proof, id, &caller.user, now_ms)?),
            None => None,
        };
        if let Some(spent) = &spent {
            // A challenge's size is fixed when it is given and the room's grows with its
            // queue: a proof too small for the queue now does not join (a shopper who holds
            // a place keeps it, whatever they send).
            let room = self.room(id, Some(&caller.user)).await?;
            if room.place.is_none() && !spent.is_enough_for(room.join_difficulty(), now_ms) {
                return Err(Error::ProofRefused(ProofRefused::TooEasy));
            }
        }
        let joined = match self.redis.join_queue(id, &caller.user, spent.as_ref()).await? {
            Some(joined) => joined,
            None => {
                self.missing.recover(&self.mysql, &self.redis, &*self.pending_orders, id).await?;
                let joined = self.redis.join_queue(id, &caller.user, spent.as_ref()).await?;
                joined.ok_or_else(flashsale::recovery::recovering)?
            }
        };
        let status = if joined.new { StatusCode::CREATED } else { StatusCode::OK };
        let body = j!({ "position": joined.position, "mode": joined.mode, "length": joined.length });
        Ok(no_store(json(status, &body)))
    }

    async fn queue_status(&self, id: SaleId) -> Result<Response<Body>> {
        let room = self.room(id, None).await?;
        let mut response = json(
            StatusCode::OK,
            &j!({
                "serving": room.serving(),
                "rate": room.clock.rate,
                "paused": room.clock.paused,
                "sold_out": room.sold_out(),
                "ended": room.ended(),
                "length": room.length,
                "opens_at": ms_to_time(room.opens_ms),
                "server_time": ms_to_time(room.now_ms),
                "message": room.message(),
            }),
        );
        // Public and the same for everyone: one read per edge location per second,
        // whatever the crowd, and "sold out" reaches every waiter within that second.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
        Ok(response)
    }

    async fn pass(&self, caller: &Caller, id: SaleId) -> Result<Response<Body>> {
        let room = self.room(id, Some(&caller.user)).await?;
        let place = room.place.ok_or(Error::NotFound("queue place"))?;
        if room.ended() {
            return Err(Error::NotOpen("the sale has ended"));
        }
        if room.sold_out() {
            return Err(Error::SoldOut { remaining: 0 });
        }
        let serving = room.serving();
        let position = match place {
            Some(position) if position <= serving => position,
            position => return Err(Error::NotYourTurn { position, serving }),
        };
        let pass = RoomKeys::required(&self.room_keys)?.issue_pass(id, &caller.user, room.now_ms, self.pass_ttl);
        let body = j!({ "pass": pass.token, "expires_at": ms_to_time(pass.expires_ms), "position": position });
        Ok(no_store(json(StatusCode::OK, &body)))
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
        // The amounts are in their sales' currencies' minor units: the page prints them so.
        let mut sales: Vec<SaleId> = orders.iter().map(|o| o.sale_id).collect();
        sales.sort_unstable();
        sales.dedup();
        let currencies: serde_json::Map<String, serde_json::Value> = self
            .mysql
            .currencies(&sales)
            .await?
            .into_iter()
            .map(|(id, currency)| (id.to_string(), j!(currency)))
            .collect();
        Ok(json(StatusCode::OK, &j!({ "orders": orders, "next": next, "currencies": currencies })))
    }

    async fn order(&self, caller: &Caller, id: OrderId) -> Result<Response<Body>> {
        Ok(json(StatusCode::OK, &self.find_order(caller, id).await?))
    }

    async fn payment(&self, caller: &Caller, id: OrderId) -> Result<Response<Body>> {
        match checkout(&self.mysql, &self.redis, &self.provider, &caller.user, id).await {
            Ok(checkout) => Ok(no_store(json(StatusCode::OK, &checkout))),
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

/// How long the edge keeps the 404 of a public read (seconds): no such sale, or an id
/// written otherwise than as the sale's id is. Short, as a sale published a moment later
/// is then found; long enough that a crowd (or a bot cycling ids) asking for it costs
/// the origin one answer per edge location in that time.
const NOT_FOUND_MAX_AGE_SECS: u32 = 2;

/// A public read's answer: its 404 (the same for everyone, as the read is) is kept
/// at the edge briefly, as CloudFront keeps a 404 for its `max-age` (template.yaml's
/// `CustomErrorResponses`); any other error is the caller's to map, uncached.
fn public(answer: Result<Response<Body>>) -> Result<Response<Body>> {
    match answer {
        Err(e @ Error::NotFound(_)) => {
            let mut response = problem(&e);
            let max_age = format!("public, max-age={NOT_FOUND_MAX_AGE_SECS}");
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_str(&max_age).expect("ascii"));
            Ok(response)
        }
        answer => answer,
    }
}

fn no_store(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
