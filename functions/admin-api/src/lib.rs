//! `admin-api`: the shop's side (admin group only).
//!
//! - `POST /api/admin/sales`: create a sale.
//! - `POST /api/admin/sales/{id}/publish`: load it into Redis (cache warming) and render
//!   its page and the index to the bucket; idempotent.
//! - `POST /api/admin/sales/{id}/resync`: set the sale's Redis state (stock, buyers,
//!   their orders) from MySQL, the truth, keeping the orders still in the outbox.
//! - `GET /api/admin/sales`: every sale, newest first, with its state and its orders
//!   per status; paged (`?limit=`, `?before=` the previous page's `next`).
//! - `GET /api/admin/sales/{id}`: the sale as MySQL has it.
//! - `GET /api/admin/sales/{id}/report`: orders per status and the Redis/MySQL drift.
//! - `GET /api/admin/sales/{id}/orders`: its orders, newest first, with their shoppers;
//!   `?status=`, `?user=`, paged as above.
//! - `GET /api/admin/sales/{id}/queue`: its waiting room: settings, joiners, the number
//!   served; `PATCH` it with `{"rate", "paused", "difficulty"}` (any of them).
//! - `GET /api/admin/orders/{id}`: one order, its shopper and its history (admitted,
//!   persisted, paid or closed); `PENDING` while only the outbox has it.
//! - `GET /api/admin/audit`: the audit trail, newest first: every change above (create,
//!   publish, resync, a waiting room's change) with who asked, when, what, and how it
//!   ended; `?sale=` one sale's, paged as above.
//!
//! Every change is entered in the audit trail before it is made (`flashsale::staff_audit`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flashsale::domain::{NewSale, SaleDraft, SaleState, WaitingRoom};
use flashsale::ids::snowflake::minted_at_ms;
use flashsale::lambda::http::{self, json, problem};
use flashsale::orders::{find_order, OrderFilter};
use flashsale::outbox::{PendingOrders, PendingOrdersTable};
use flashsale::pages::Publisher;
use flashsale::recovery::drift::{sale_report, StatusCount};
use flashsale::recovery::{self, Drain, Recovery};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::ms_to_time;
use flashsale::stores::redis::Redis;
use flashsale::{Config, Error, Order, OrderId, OrderStatus, Result, Sale, SaleId, UserId};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::json as j;
use tracing::Instrument;

const MAX_BODY: usize = 64 * 1024;

/// Staff's change to a waiting room: what is left out stays.
#[derive(serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct QueueChange {
    rate: Option<u32>,
    paused: Option<bool>,
    difficulty: Option<u32>,
}

pub struct AdminApi {
    mysql: Mysql,
    redis: Redis,
    /// The pending-orders table: counted when a sale's state is rebuilt.
    pending_orders: PendingOrdersTable,
    pages: Publisher,
    /// What publishing again waits for when Redis lost the sale.
    drain: Drain,
    edge: http::EdgeOnly,
}

impl AdminApi {
    pub fn new(mysql: Mysql, redis: Redis, pending_orders: PendingOrdersTable, pages: Publisher, drain: Drain) -> Self {
        AdminApi { mysql, redis, pending_orders, pages, drain, edge: http::EdgeOnly::default() }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        let (sdk, secrets) = &flashsale::stores::aws::load(config).await?;
        Ok(AdminApi {
            edge: http::EdgeOnly::from_secrets(secrets),
            ..AdminApi::new(
                Mysql::from_config(config, sdk)?,
                Redis::connect(config, secrets.redis_user.as_ref())?,
                PendingOrdersTable::new(sdk, config),
                Publisher::from_config(sdk, config),
                Drain::from_config(config),
            )
        })
    }

    /// Sets the sale's Redis state from MySQL and the pending-orders table, present or not.
    async fn resync(&self, id: SaleId) -> Result<Option<i64>> {
        let recorded = self.pending_orders.of_sale(id).await?;
        recovery::rebuild(&self.mysql, &self.redis, id, &recorded, true).await
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        if let Some(refused) = self.edge.refuses(&req) {
            return refused;
        }
        let span = http::request_span("admin-api", &req);
        self.route(req).instrument(span).await.unwrap_or_else(|e| problem(&e))
    }

    async fn route(&self, req: Request) -> Result<Response<Body>> {
        let caller = http::admin(&req)?;
        let (method, segments) = http::route(&req);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (segments.as_slice(), method) {
            (["admin", "sales"], Method::POST) => {
                let draft: SaleDraft =
                    http::body(&req, MAX_BODY)?.ok_or(Error::Invalid("a sale is required".into()))?;
                let detail = serde_json::to_value(&draft).unwrap_or_default();
                let new = NewSale::try_from(draft)?;
                let sale = self
                    .audited(&caller, "create", None, detail, |sale: &Sale| Some(sale.id), self.create_sale(&new))
                    .await?;
                Ok(json(StatusCode::CREATED, &sale))
            }
            (["admin", "sales", id, "publish"], Method::POST) => {
                let id = http::path_id(id)?;
                let sale = self.audited(&caller, "publish", Some(id), j!({}), |_| None, self.publish(id)).await?;
                Ok(json(StatusCode::OK, &sale))
            }
            (["admin", "sales", id, "resync"], Method::POST) => {
                let id: SaleId = http::path_id(id)?;
                let report = self.audited(&caller, "resync", Some(id), j!({}), |_| None, self.resync_sale(id)).await?;
                Ok(json(StatusCode::OK, &report))
            }
            (["admin", "audit"], Method::GET) => {
                let sale = http::query(&req, "sale")
                    .map(|s| s.parse::<SaleId>().map_err(|_| Error::Invalid("sale must be a sale's id".into())))
                    .transpose()?;
                let limit = http::page_limit(&req, 50, 100)?;
                let before = http::query(&req, "before")
                    .map(|b| b.parse::<u64>().map_err(|_| Error::Invalid("before must be an entry's id".into())))
                    .transpose()?;
                let trail = self.mysql.audit_trail(sale, before, limit).await?;
                let next = (trail.len() == limit as usize).then(|| trail.last().map(|a| a.id.to_string())).flatten();
                Ok(json(StatusCode::OK, &j!({ "actions": trail, "next": next })))
            }
            (["admin", "sales", id, "report"], Method::GET) => {
                let sale = self.mysql.sale(http::path_id(id)?).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale_report(&self.mysql, &self.redis, &sale).await?))
            }
            (["admin", "sales", id], Method::GET) => {
                let sale = self.mysql.sale(http::path_id(id)?).await?.ok_or(Error::NotFound("sale"))?;
                Ok(json(StatusCode::OK, &sale))
            }
            (["admin", "sales"], Method::GET) => self.sales(&req).await,
            (["admin", "sales", id, "queue"], Method::GET) => self.queue(http::path_id(id)?).await,
            (["admin", "sales", id, "queue"], Method::PATCH) => {
                let change: QueueChange =
                    http::body(&req, MAX_BODY)?.ok_or(Error::Invalid("a change is required".into()))?;
                let id = http::path_id(id)?;
                let detail = serde_json::to_value(&change).unwrap_or_default();
                self.audited(&caller, "waiting_room", Some(id), detail, |_| None, self.change_queue(id, change)).await
            }
            (["admin", "sales", id, "orders"], Method::GET) => self.orders(&req, http::path_id(id)?).await,
            (["admin", "orders", id], Method::GET) => self.order(http::path_id(id)?).await,
            (
                ["admin", "sales"]
                | ["admin", "sales", _]
                | ["admin", "sales", _, "publish" | "resync" | "report" | "orders" | "queue"]
                | ["admin", "orders", _]
                | ["admin", "audit"],
                _,
            ) => Err(Error::MethodNotAllowed),
            _ => Err(Error::NotFound("route")),
        }
    }

    /// Enters `action` in the audit trail as `caller`'s, makes the change (`work`), and
    /// enters how it ended, with the sale a creation made. If the trail cannot take the
    /// entry, the change is not made.
    async fn audited<T>(
        &self,
        caller: &http::Caller,
        action: &str,
        sale: Option<SaleId>,
        detail: serde_json::Value,
        made: impl Fn(&T) -> Option<SaleId>,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let entry = self.mysql.audit_begin(&caller.user, action, sale, &detail).await?;
        let done = work.await;
        let (outcome, made) = match &done {
            Ok(value) => ("done".to_string(), made(value)),
            Err(e) => (format!("failed: {e}"), None),
        };
        if let Err(e) = self.mysql.audit_end(entry, &outcome, made).await {
            tracing::error!(error = %e, action, "the audit trail could not record how a change ended");
        }
        done
    }

    /// Sets a published sale's Redis state from MySQL; its report after.
    async fn resync_sale(&self, id: SaleId) -> Result<serde_json::Value> {
        let sale = self.mysql.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        if !sale.published {
            return Err(Error::NotOpen("the sale is not published"));
        }
        let remaining = self.resync(id).await?;
        tracing::warn!(sale_id = %id, ?remaining, "sale re-synced from MySQL by an admin");
        let sale = self.mysql.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        Ok(serde_json::to_value(sale_report(&self.mysql, &self.redis, &sale).await?).unwrap_or_default())
    }

    /// A sale's waiting room as staff watch it: Redis's while the sale is live there,
    /// else as MySQL keeps its settings.
    async fn queue(&self, id: SaleId) -> Result<Response<Body>> {
        let sale = self.mysql.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        self.room_view(id, sale.waiting_room.ok_or(Error::NoWaitingRoom)?).await
    }

    /// The room's answer, with `settings` as MySQL keeps them for a room not in Redis.
    async fn room_view(&self, id: SaleId, settings: WaitingRoom) -> Result<Response<Body>> {
        let live = self.redis.room(id, None).await?;
        let (settings, length, serving, now) = match &live {
            Some(room) => (room.settings(), room.length, room.serving(), ms_to_time(room.now_ms)),
            None => (settings, 0, 0, Utc::now()),
        };
        Ok(json(
            StatusCode::OK,
            &j!({
                "mode": settings.mode,
                "rate": settings.rate,
                "paused": settings.paused,
                "difficulty": settings.difficulty,
                "length": length,
                "serving": serving,
                "server_time": now,
            }),
        ))
    }

    /// Changes a waiting room's rate, pause or difficulty: applied to the running room
    /// (whose number served is rebased, never moved back), then kept in MySQL.
    async fn change_queue(&self, id: SaleId, change: QueueChange) -> Result<Response<Body>> {
        let sale = self.mysql.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        let current = sale.waiting_room.ok_or(Error::NoWaitingRoom)?;
        let room = WaitingRoom {
            rate: change.rate.unwrap_or(current.rate),
            paused: change.paused.unwrap_or(current.paused),
            difficulty: change.difficulty.unwrap_or(current.difficulty),
            ..current
        };
        room.check()?;
        // The running room first: a rebuild keeps its settings with the number they
        // served, so MySQL's copy, written next, matters only to a room built anew.
        if sale.published {
            self.redis.control_room(id, &room).await?;
        }
        self.mysql.set_waiting_room(id, &room).await?;
        tracing::warn!(sale_id = %id, rate = room.rate, paused = room.paused, difficulty = room.difficulty,
            "waiting room changed by an admin");
        self.room_view(id, room).await
    }

    async fn sales(&self, req: &Request) -> Result<Response<Body>> {
        let limit = http::page_limit(req, 50, 100)?;
        let page = self.mysql.sales_page(http::cursor(req)?, limit).await?;
        let now = Utc::now();
        let next = (page.len() == limit as usize).then(|| page.last().map(|(sale, _)| sale.id.to_string())).flatten();
        let sales: Vec<SaleSummary> = page
            .into_iter()
            .map(|(sale, counts)| SaleSummary {
                state: sale_state(&sale, now),
                orders: counts
                    .into_iter()
                    .map(|(status, (orders, units))| (status, StatusCount { orders, units }))
                    .collect(),
                sale,
            })
            .collect();
        Ok(json(StatusCode::OK, &j!({ "sales": sales, "next": next })))
    }

    async fn orders(&self, req: &Request, sale: SaleId) -> Result<Response<Body>> {
        self.mysql.sale(sale).await?.ok_or(Error::NotFound("sale"))?;
        let status = http::query(req, "status")
            .map(|s| {
                s.parse::<OrderStatus>()
                    .map_err(|_| Error::Invalid("status must be UNPAID, PAID, CLOSED or REJECTED".into()))
            })
            .transpose()?;
        let user = http::query(req, "user")
            .map(|u| UserId::new(u).map_err(|_| Error::Invalid("user must be 1 to 128 printable characters".into())))
            .transpose()?;
        let limit = http::page_limit(req, 50, 100)?;
        let filter = OrderFilter { sale: Some(sale), user: user.as_ref(), status };
        let page = self.mysql.orders_page(filter, http::cursor(req)?, limit).await?;
        let next = (page.len() == limit as usize).then(|| page.last().map(|o| o.order_id.to_string())).flatten();
        let orders: Vec<OrderView> = page.iter().map(|order| OrderView { order, user_id: &order.user_id }).collect();
        Ok(json(StatusCode::OK, &j!({ "orders": orders, "next": next })))
    }

    async fn order(&self, id: OrderId) -> Result<Response<Body>> {
        let order = find_order(&self.mysql, &self.redis, id).await?.ok_or(Error::NotFound("order"))?;
        Ok(json(
            StatusCode::OK,
            &j!({ "order": OrderView { order: &order, user_id: &order.user_id }, "history": history(&order) }),
        ))
    }

    pub async fn create_sale(&self, new: &NewSale) -> Result<Sale> {
        let sale = self.mysql.create_sale(new).await?;
        tracing::info!(sale_id = %sale.id, "sale created");
        Ok(sale)
    }

    /// Loads the sale into Redis, marks it published, then renders its page and the
    /// index. A crash in between leaves work that publishing again finishes: every step
    /// is idempotent. Publishing a published sale again never resets its stock: a
    /// state Redis lost is rebuilt from MySQL's orders instead.
    pub async fn publish(&self, id: SaleId) -> Result<Sale> {
        let sale = self.mysql.sale(id).await?.ok_or(Error::NotFound("sale"))?;
        if sale.published {
            // A state Redis lost is rebuilt only once the records in flight are written,
            // as a shopper's request would.
            if let Recovery::Waiting { .. } =
                recovery::recover(&self.mysql, &self.redis, &self.pending_orders, &sale, self.drain).await?
            {
                return Err(recovery::recovering());
            }
        } else {
            self.redis.warm(&sale).await?;
        }
        self.mysql.mark_published(id).await?;
        let pages = self.pages.refresh(&self.mysql, &self.redis, Some(id)).await?;
        tracing::info!(sale_id = %id, pages_changed = pages.changed.len(), "sale published");
        self.mysql.sale(id).await?.ok_or(Error::NotFound("sale"))
    }
}

/// A sale in the staff's list: its state now and its orders per status.
#[derive(Serialize)]
struct SaleSummary {
    #[serde(flatten)]
    sale: Sale,
    state: &'static str,
    orders: BTreeMap<OrderStatus, StatusCount>,
}

/// `draft` until published; then what a shopper would see now, by MySQL's count of
/// what is left (Redis may know of admissions still on their way).
fn sale_state(sale: &Sale, now: DateTime<Utc>) -> &'static str {
    if !sale.published {
        return "draft";
    }
    match SaleState::at(now, sale.starts_at, sale.ends_at, u64::from(sale.stock.saturating_sub(sale.sold))) {
        SaleState::Upcoming => "upcoming",
        SaleState::Open => "open",
        SaleState::SoldOut => "sold_out",
        SaleState::Ended => "ended",
    }
}

/// An order as the staff see it: with its shopper.
#[derive(Serialize)]
struct OrderView<'a> {
    #[serde(flatten)]
    order: &'a Order,
    user_id: &'a UserId,
}

#[derive(Debug, PartialEq, Serialize)]
struct Event {
    at: DateTime<Utc>,
    what: &'static str,
}

/// What happened to an order, oldest first: admitted (when its id was minted), then
/// persisted or refused, then paid or closed.
fn history(order: &Order) -> Vec<Event> {
    let admitted = DateTime::from_timestamp_millis(minted_at_ms(order.order_id) as i64).unwrap_or(order.created_at);
    let mut events = vec![Event { at: admitted, what: "admitted" }];
    match order.status {
        OrderStatus::Pending => return events,
        OrderStatus::Rejected => events.push(Event { at: order.created_at, what: "refused by the database guard" }),
        _ => events.push(Event { at: order.created_at, what: "persisted, awaiting payment" }),
    }
    if let Some(at) = order.paid_at {
        events.push(Event { at, what: "paid" });
    }
    if let Some(at) = order.closed_at {
        events.push(Event { at, what: "closed unpaid, units back on sale" });
    }
    if let Some(refund) = &order.refund {
        let what = match order.paid_at {
            Some(_) => "payment refunded at the provider",
            None => "payment refunded: it arrived after the order had closed",
        };
        events.push(Event { at: refund.at, what });
    }
    if order.status == OrderStatus::Disputed {
        // No time of its own is stored: the dispute came after the payment.
        events.push(Event { at: order.paid_at.unwrap_or(order.created_at), what: "payment disputed at the provider" });
    }
    events
}

#[cfg(test)]
mod tests {
    use flashsale::ids::snowflake::compose;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn order(status: OrderStatus) -> Order {
        let minted = 1_795_000_000_000;
        Order {
            order_id: OrderId(compose(minted, 3, 0)),
            sale_id: SaleId(1),
            user_id: UserId::new("alice").unwrap(),
            status,
            quantity: 1,
            amount_cents: 100,
            created_at: at(minted as i64 + 40),
            expires_at: Some(at(minted as i64 + 60_040)),
            payment_intent: None,
            paid_at: None,
            closed_at: None,
            refund: None,
        }
    }

    #[test]
    fn an_orders_history_runs_from_its_admission_to_its_end() {
        let minted = at(1_795_000_000_000);
        let pending = order(OrderStatus::Pending);
        assert_eq!(history(&pending), [Event { at: minted, what: "admitted" }]);
        let paid = Order { paid_at: Some(at(1_795_000_030_000)), ..order(OrderStatus::Paid) };
        let whats: Vec<_> = history(&paid).iter().map(|e| e.what).collect();
        assert_eq!(whats, ["admitted", "persisted, awaiting payment", "paid"]);
        let closed = Order { closed_at: Some(at(1_795_000_061_000)), ..order(OrderStatus::Closed) };
        assert_eq!(history(&closed).last().unwrap().what, "closed unpaid, units back on sale");
        let refunded = Order {
            refund: Some(flashsale::domain::Refund { at: at(1_795_000_062_000), reason: "late".into() }),
            ..closed.clone()
        };
        assert_eq!(history(&refunded).last().unwrap().what, "payment refunded: it arrived after the order had closed");
        assert_eq!(history(&order(OrderStatus::Rejected))[1].what, "refused by the database guard");
    }
}
