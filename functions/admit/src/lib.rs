//! `admit`: `POST /api/sales/{id}/purchase`, the hot path of a flash sale.
//!
//! One EVALSHA decides (sale window by Redis's clock, per-user limit before any
//! deduction, stock, outbox entry); then the order message goes to SQS. When that
//! send fails, the order is kept in the durable fallback (DynamoDB) before the shopper
//! hears `202`; reconcile sends it on. When that write fails too, the admission is
//! undone in Redis and the shopper gets 503. The send goes through the container's
//! [`HandOff`], which batches orders admitted together. An admitted shopper never
//! waits long on a slow queue: past `FLASHSALE_ADMIT_SEND_BOUND_MS` the shopper hears
//! `202` while the order, safe in the outbox, goes on to SQS (or the fallback) in the
//! background; should that fail too, reconcile re-sends it from the outbox. On Lambda
//! the [`settle`] extension keeps the container from freezing until that background
//! send has ended.
//! Requests turned away do no queue, DynamoDB or MySQL work, with one exception: a
//! sale Redis does not know is looked up in MySQL (at most once per memo period per
//! container), and if Redis lost a running sale, it is rebuilt (see
//! [`flashsale::recovery`]) while shoppers get 503 "recovering", never 404.

pub mod settle;

use std::sync::Arc;
use std::time::Duration;

use flashsale::admission::{Admission, Holders};
use flashsale::clock::SystemClock;
use flashsale::config::Need;
use flashsale::domain::OrderMessage;
use flashsale::ids::{IdGenerator, WorkerLeases};
use flashsale::lambda::http::{self, json, problem};
use flashsale::memo::SaleMemo;
use flashsale::outbox::{HandOff, KeptOrders};
use flashsale::recovery::{self, MissingSales};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::stores::sqs::Outbound;
use flashsale::stores::Stores;
use flashsale::{Config, Error, OrderStatus, Result, SaleId};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json as j;
use tracing::Instrument;

/// A purchase body is a few bytes; anything much larger is not a purchase.
const MAX_BODY: usize = 1024;

/// Up to this many holders, a container copies who holds a sold-out sale's units once per
/// memo period and answers repeat clicks from the copy. Copying costs Redis about what a
/// few hundred per-click lookups do; a container's flood after a sell-out is larger than
/// that, a copy of a huge sale's holders every memo period is not.
const MAX_HOLDERS_COPIED: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    quantity: u32,
}

/// Whether a failed Redis call may still have run the script (a time-out or a broken
/// connection after sending), as opposed to a breaker that never sent it.
fn may_have_run(e: &Error) -> bool {
    e.is_dependency_failure() && !matches!(e, Error::CircuitOpen { .. })
}

pub struct Admit {
    mysql: Mysql,
    redis: Redis,
    queue: Arc<dyn Outbound>,
    fallback: Arc<dyn KeptOrders>,
    hand_off: HandOff,
    /// How long a shopper waits for the order message to be somewhere durable.
    send_bound: Duration,
    ids: Arc<IdGenerator>,
    /// Sales Redis said were sold out a moment ago, with who held their units then (when
    /// few enough to copy): the flood after the last unit stops here. Set only when Redis
    /// itself reported zero left, so released stock reopens the sale within the TTL.
    sold_out: SaleMemo<Option<Arc<Holders>>>,
    missing: MissingSales,
}

impl Admit {
    /// With the sold-out memo, recovery and send timings of `config`.
    pub fn new(stores: Stores, ids: Arc<IdGenerator>, config: &Config) -> Self {
        let Stores { mysql, redis, queue, fallback } = stores;
        let (queue, fallback): (Arc<dyn Outbound>, Arc<dyn KeptOrders>) = (queue.into(), fallback.into());
        Admit {
            mysql,
            redis,
            hand_off: HandOff::start(queue.clone(), fallback.clone()),
            queue,
            fallback,
            send_bound: config.admit_send_bound,
            ids,
            sold_out: SaleMemo::new(config.sold_out_ttl),
            missing: MissingSales::new(config.sold_out_ttl, config.recovery_drain_bound),
        }
    }

    /// Everything built once per container: Redis manager and scripts, a lazy MySQL
    /// pool (used only for sales Redis does not know), the SQS client, and the id
    /// generator with its worker-id lease.
    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[Need::OrdersQueue])?;
        let (sdk, config) = &flashsale::stores::aws::load(config).await?;
        let ids = IdGenerator::leased(WorkerLeases::from_config(sdk, config), Arc::new(SystemClock)).await;
        Ok(Admit::new(Stores::new(sdk, config)?, ids, config))
    }

    /// Resolves once every order admitted so far has been through the hand-off: in SQS
    /// or the fallback table, or, when neither took it, left to the outbox.
    pub async fn settled(&self) {
        self.hand_off.settled().await;
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = http::request_span("admit", &req);
        self.purchase(req).instrument(span).await.unwrap_or_else(|e| problem(&e))
    }

    async fn purchase(&self, req: Request) -> Result<Response<Body>> {
        let (method, segments) = http::route(&req);
        let sale_id: SaleId = match segments.as_slice() {
            [sales, id, purchase] if sales == "sales" && purchase == "purchase" => http::path_id(id)?,
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
        if let Some(holders) = self.sold_out.get(sale_id) {
            // A repeat click of a shopper who holds orders still gets them back.
            let held = match holders {
                Some(holders) => holders.at_limit(&caller.user, quantity),
                None => self.redis.held_at_limit(sale_id, &caller.user, quantity).await?,
            };
            if let Some((limit, order_ids)) = held {
                return Err(Error::LimitReached { limit, order_ids });
            }
            return Err(Error::SoldOut { remaining: 0 });
        }
        if let Some(answer) = self.missing.known(sale_id) {
            return Err(answer);
        }
        let order = OrderMessage { order_id: self.ids.next_id().await?, sale_id, user_id: caller.user, quantity };
        let admission = match self.redis.admit(&order).await {
            Ok(Admission::UnknownSale) => {
                // A lost sale rebuilt by this call: this request goes on.
                self.missing.recover(&self.mysql, &self.redis, &*self.queue, &*self.fallback, sale_id).await?;
                self.redis.admit(&order).await?
            }
            Ok(admission) => admission,
            // The script may have run before the call failed: its outbox entry says.
            Err(e) if may_have_run(&e) => match self.redis.in_outbox(sale_id, order.order_id).await {
                Ok(true) => {
                    tracing::warn!(error = %e, "admission call failed after the script ran; the order stands");
                    return self.admitted(&order, None).await;
                }
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        match admission {
            Admission::Admitted { remaining, .. } => {
                let response = self.admitted(&order, Some(remaining)).await;
                // An admission taken back (nowhere durable to keep it) put its units back.
                if remaining == 0 && response.is_ok() {
                    self.mark_sold_out(sale_id).await;
                }
                response
            }
            Admission::LimitReached { limit, order_ids } => Err(Error::LimitReached { limit, order_ids }),
            Admission::SoldOut { remaining } => {
                if remaining == 0 {
                    self.mark_sold_out(sale_id).await;
                }
                Err(Error::SoldOut { remaining })
            }
            Admission::NotStarted => Err(Error::NotOpen("the sale has not started yet")),
            Admission::Ended => Err(Error::NotOpen("the sale has ended")),
            Admission::UnknownSale => Err(recovery::recovering()),
            Admission::BadQuantity { limit } => Err(Error::Invalid(format!("quantity must be between 1 and {limit}"))),
        }
    }

    /// Remembers that Redis had no units left, and who held them, unless another request
    /// of this container already did.
    async fn mark_sold_out(&self, sale: SaleId) {
        if self.sold_out.get(sale).is_some() {
            return;
        }
        // Repeat clicks ask Redis until the copy is here, or when it cannot be had.
        self.sold_out.mark(sale, None);
        match self.redis.holders(sale, MAX_HOLDERS_COPIED).await {
            Ok(Some(holders)) => self.sold_out.mark(sale, Some(Arc::new(holders))),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not copy who holds the sold-out sale's units"),
        }
    }

    /// The order is in the outbox: send it on and tell the shopper, once it is somewhere
    /// durable (SQS, or the fallback table) or the send bound has passed, with the units
    /// left right after it when known, so the page shows the new stock at once.
    async fn admitted(&self, order: &OrderMessage, remaining: Option<u64>) -> Result<Response<Body>> {
        tracing::Span::current().record("order_id", order.order_id.0);
        let Some(handed) = self.hand_off.submit(order.clone()) else {
            tracing::warn!("too many orders wait for the queue; the outbox holds this one until reconcile re-sends it");
            return Ok(accepted(order, remaining));
        };
        match tokio::time::timeout(self.send_bound, handed).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(kept))) => {
                // Nowhere durable: take the admission back rather than answer with a
                // 202 that Redis alone remembers.
                if self.redis.undo_admission(order).await? {
                    return Err(kept);
                }
                tracing::warn!("the order reached MySQL meanwhile; it stands");
            }
            Ok(Err(_)) => return Err(Error::Internal("the hand-off task stopped".into())),
            // The hand-off goes on; on Lambda the `settle` extension keeps the container
            // from freezing before it ends.
            Err(_) => tracing::warn!("order message still on its way; the outbox holds it meanwhile"),
        }
        Ok(accepted(order, remaining))
    }
}

/// The 202 of an admitted order, with the units left right after it when known.
fn accepted(order: &OrderMessage, remaining: Option<u64>) -> Response<Body> {
    tracing::info!(quantity = order.quantity, "admitted");
    let mut body = j!({"order_id": order.order_id, "sale_id": order.sale_id, "status": OrderStatus::Pending, "quantity": order.quantity});
    if let Some(remaining) = remaining {
        body["remaining"] = j!(remaining);
    }
    json(StatusCode::ACCEPTED, &body)
}

#[cfg(test)]
mod tests {
    use flashsale::{OrderId, UserId};
    use flashsale_testing::{stores, RecordingFallback, RecordingQueue};

    use super::*;

    /// An `admit` whose Redis and MySQL are a closed port: only the queue and the
    /// fallback answer.
    fn admit(queue: &RecordingQueue, fallback: &RecordingFallback) -> Admit {
        let ids = Arc::new(IdGenerator::with_worker(1, Duration::from_secs(60), Arc::new(SystemClock)));
        let mut config = Config::from_env().unwrap();
        config.admit_send_bound = Duration::from_millis(100);
        Admit::new(stores(queue, fallback), ids, &config)
    }

    fn order() -> OrderMessage {
        OrderMessage { order_id: OrderId(42), sale_id: SaleId(3), user_id: UserId::new("alice").unwrap(), quantity: 2 }
    }

    fn body(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn an_admitted_order_goes_to_sqs_and_the_shopper_hears_202() {
        let (queue, fallback) = (RecordingQueue::default(), RecordingFallback::default());
        let response = admit(&queue, &fallback).admitted(&order(), Some(8)).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            body(&response),
            j!({"order_id": "42", "sale_id": 3, "status": OrderStatus::Pending, "quantity": 2, "remaining": 8})
        );
        assert_eq!(queue.orders(), [order()]);
        assert!(fallback.kept().is_empty());
    }

    #[tokio::test]
    async fn when_sqs_fails_the_order_is_kept_in_the_fallback_and_the_shopper_still_hears_202() {
        let (queue, fallback) = (RecordingQueue::default(), RecordingFallback::default());
        queue.fail(true);
        let response = admit(&queue, &fallback).admitted(&order(), None).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(body(&response).get("remaining").is_none(), "no stock figure when none is known");
        assert_eq!(fallback.kept(), [order()]);
    }

    #[tokio::test]
    async fn a_slow_queue_does_not_hold_the_shopper_and_the_order_still_reaches_it() {
        let (queue, fallback) = (RecordingQueue::default(), RecordingFallback::default());
        queue.slow(Duration::from_millis(600));
        let started = std::time::Instant::now();
        let response = admit(&queue, &fallback).admitted(&order(), Some(8)).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(started.elapsed() < Duration::from_millis(500), "answered after the bound, not after the send");
        assert!(queue.orders().is_empty(), "still on its way");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(queue.orders(), [order()], "the send went on after the answer");
        assert!(fallback.kept().is_empty());
    }

    #[tokio::test]
    async fn settled_waits_for_every_send_still_on_its_way_after_the_answers() {
        let (queue, fallback) = (RecordingQueue::default(), RecordingFallback::default());
        let admit = admit(&queue, &fallback);
        admit.settled().await; // nothing handed off yet
        queue.slow(Duration::from_millis(300));
        let orders: Vec<OrderMessage> =
            (0..12).map(|i| OrderMessage { order_id: OrderId(200 + i), ..order() }).collect();
        for answer in futures::future::join_all(orders.iter().map(|o| admit.admitted(o, None))).await {
            assert_eq!(answer.unwrap().status(), StatusCode::ACCEPTED);
        }
        assert!(queue.orders().len() < orders.len(), "answered before every send ended");
        admit.settled().await;
        assert_eq!(queue.orders().len(), orders.len(), "settled once every order is in the queue");
    }

    #[tokio::test]
    async fn orders_admitted_together_go_out_together_ten_to_a_call() {
        let (queue, fallback) = (RecordingQueue::default(), RecordingFallback::default());
        queue.slow(Duration::from_millis(20));
        let admit = admit(&queue, &fallback);
        let orders: Vec<OrderMessage> =
            (0..25).map(|i| OrderMessage { order_id: OrderId(100 + i), ..order() }).collect();
        let answers = futures::future::join_all(orders.iter().map(|o| admit.admitted(o, None))).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|r| r.status() == StatusCode::ACCEPTED)));
        let mut batches = queue.batches();
        batches.sort();
        assert_eq!(batches, [5, 10, 10], "three calls, not 25");
        let mut sent = queue.orders();
        sent.sort_by_key(|o| o.order_id);
        assert_eq!(sent, orders);
    }

    #[tokio::test]
    async fn with_sqs_and_the_fallback_both_failing_no_202_is_given() {
        let (queue, fallback) = (RecordingQueue::default(), RecordingFallback::default());
        queue.fail(true);
        fallback.fail(true);
        // The admission is taken back in Redis, unreachable here too: an error either way.
        let error = admit(&queue, &fallback).admitted(&order(), Some(8)).await.unwrap_err();
        assert_eq!(problem(&error).status(), StatusCode::SERVICE_UNAVAILABLE, "{error}");
        assert!(queue.orders().is_empty() && fallback.kept().is_empty());
    }
}
