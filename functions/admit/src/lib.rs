//! `admit`: `POST /api/sales/{id}/purchase`, the hot path of a flash sale.
//!
//! One EVALSHA decides (sale window by Redis's clock, per-user limit before any
//! deduction, stock, outbox entry); then the container's [`HandOff`] records the order
//! in the pending-orders table (DynamoDB) and sends it to SQS, batching orders admitted
//! together. A `202` is given only once the order is durable outside the primary's
//! memory, where a rebuild finds it exactly: acknowledged by
//! `FLASHSALE_REDIS_WAIT_REPLICAS` replicas (`WAIT`, on the admitted path only), else
//! recorded in the table. When it can be recorded nowhere, the admission is undone in
//! Redis and the shopper gets 503. A replicated admission does not wait for the
//! hand-off: it goes on after the answer, and on Lambda the [`settle`] extension keeps
//! the container from freezing until it has ended (within a bound).
//! Requests turned away do no queue, DynamoDB or MySQL work, with one exception: a
//! sale Redis does not know is looked up in MySQL (at most once per memo period per
//! container), and if Redis lost a running sale, it is rebuilt (see
//! [`flashsale::recovery`]) while shoppers get 503 "recovering", never 404.

pub mod settle;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use flashsale::admission::{Admission, Holders, Replication, Undo};
use flashsale::clock::SystemClock;
use flashsale::config::Need;
use flashsale::domain::OrderMessage;
use flashsale::ids::{IdGenerator, WorkerLeases};
use flashsale::lambda::http::{self, json, problem};
use flashsale::memo::SaleMemo;
use flashsale::outbox::{HandOff, PendingOrders};
use flashsale::recovery::{self, Drain, MissingSales};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::stores::sqs::Outbound;
use flashsale::stores::Stores;
use flashsale::waiting_room::RoomKeys;
use flashsale::{Config, Error, OrderStatus, Result, SaleId};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json as j;
use tokio::sync::oneshot;
use tracing::Instrument;

/// A purchase body is a few bytes; anything much larger is not a purchase.
const MAX_BODY: usize = 1024;

/// Up to this many holders, a container copies who holds a sold-out sale's units when it
/// sells out (and again only once who holds what changed) and answers repeat clicks
/// from the copy. Copying costs Redis about what a few hundred per-click lookups do; a
/// container's flood after a sell-out is larger than that, a copy of a huge sale's
/// holders is not.
const MAX_HOLDERS_COPIED: usize = 10_000;

/// How long admissions skip `WAIT` after the replicas were late once.
const REPLICAS_LATE_FOR_MS: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    quantity: u32,
    /// The waiting room's pass, for a sale that has one.
    #[serde(default)]
    pass: Option<String>,
}

/// What a purchase's body asks for: its quantity, within the most any sale allows (one
/// when the body is empty), and the pass it carries. The first thing a stranger's bytes
/// meet: anything else is a 4xx.
fn purchase_of(req: &Request) -> Result<(u32, Option<String>)> {
    let (quantity, pass) = http::body::<Purchase>(req, MAX_BODY)?.map_or((1, None), |p| (p.quantity, p.pass));
    if quantity == 0 || quantity > flashsale::domain::NewSale::MAX_PER_USER {
        return Err(Error::Invalid("quantity must be a positive number within the per-user limit".into()));
    }
    Ok((quantity, pass))
}

/// Whether a failed Redis call may still have run the script (a time-out or a broken
/// connection after sending), as opposed to a breaker that never sent it.
fn may_have_run(e: &Error) -> bool {
    e.is_dependency_failure() && !matches!(e, Error::CircuitOpen { .. })
}

pub struct Admit {
    mysql: Mysql,
    redis: Redis,
    pending_orders: Arc<dyn PendingOrders>,
    hand_off: HandOff,
    /// The replicas that must acknowledge an admission, when there are any.
    replication: Option<Replication>,
    /// Until when (ms) the replicas are taken to be lagging: admissions then skip `WAIT`,
    /// which would hold their connection for its whole timeout, and keep the order in
    /// the pending-orders table at once.
    replicas_late_until_ms: AtomicI64,
    ids: Arc<IdGenerator>,
    /// Sales Redis said were sold out a moment ago, with who held their units then (when
    /// few enough to copy): the flood after the last unit stops here. Set only when Redis
    /// itself reported zero left, so released stock reopens the sale within the TTL.
    sold_out: SaleMemo<Option<Arc<Holders>>>,
    /// The last copy of each sold-out sale's holders: taken again only once Redis reports
    /// that who holds what changed, not every memo period (a large sale's copy is
    /// hundreds of kilobytes per container).
    holder_copies: Mutex<HashMap<SaleId, Arc<Holders>>>,
    missing: MissingSales,
    /// How long a container stays thawed after its answer for the sends still on their way.
    settle_bound: std::time::Duration,
    /// How long an unreplicated order may wait for its record to begin.
    record_within: std::time::Duration,
    /// Checks the waiting rooms' passes (the script spends them).
    room_keys: Option<RoomKeys>,
    edge: http::EdgeOnly,
}

impl Admit {
    /// With the sold-out memo, recovery and send timings of `config`.
    pub fn new(stores: Stores, ids: Arc<IdGenerator>, config: &Config) -> Self {
        let Stores { mysql, redis, queue, pending_orders } = stores;
        let (queue, pending_orders): (Arc<dyn Outbound>, Arc<dyn PendingOrders>) =
            (queue.into(), pending_orders.into());
        Admit {
            mysql,
            redis,
            hand_off: HandOff::start(queue, pending_orders.clone()),
            pending_orders,
            replication: (config.redis.wait_replicas > 0).then_some(Replication {
                replicas: config.redis.wait_replicas,
                timeout: config.admission.durable_bound,
            }),
            replicas_late_until_ms: AtomicI64::new(0),
            ids,
            sold_out: SaleMemo::new(config.admission.sold_out_ttl),
            holder_copies: Mutex::default(),
            missing: MissingSales::new(config.admission.sold_out_ttl, Drain::from_config(config)),
            settle_bound: config.admission.settle_bound,
            record_within: config.aws.timeout,
            room_keys: None,
            edge: http::EdgeOnly::default(),
        }
    }

    /// Everything built once per container: Redis manager and scripts, a lazy MySQL
    /// pool (used only for sales Redis does not know), the SQS client, and the id
    /// generator with its worker-id lease.
    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[Need::OrdersQueue])?;
        let (sdk, secrets) = &flashsale::stores::aws::load(config).await?;
        let ids = IdGenerator::leased(WorkerLeases::from_config(sdk, config), Arc::new(SystemClock)).await;
        Ok(Admit {
            edge: http::EdgeOnly::from_secrets(secrets),
            room_keys: RoomKeys::from_secrets(secrets),
            ..Admit::new(Stores::new(sdk, config, secrets)?, ids, config)
        })
    }

    /// The container is shutting down (SIGTERM): hand-offs under way end, then the
    /// worker id goes back to the lease table for the next container.
    pub async fn shut_down(&self) {
        self.settled().await;
        self.ids.release().await;
    }

    /// Resolves once every order admitted so far has been through the hand-off: recorded
    /// and sent, or, where either failed, left to the outbox.
    pub async fn settled(&self) {
        self.hand_off.settled().await;
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        if let Some(refused) = self.edge.refuses(&req) {
            return refused;
        }
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
        let (quantity, pass) = purchase_of(&req)?;
        // A pass is checked here (signature, shopper, sale, expiry); the script spends it.
        let pass = match pass {
            Some(token) => {
                let keys = RoomKeys::required(&self.room_keys)?;
                Some(keys.check_pass(&token, sale_id, &caller.user, chrono::Utc::now().timestamp_millis())?)
            }
            None => None,
        };
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
        let pass = pass.as_deref();
        let (admission, replicated) = match self.admit_replicated(&order, pass).await {
            Ok((Admission::UnknownSale, _)) => {
                // A lost sale rebuilt by this call: this request goes on.
                self.missing.recover(&self.mysql, &self.redis, &*self.pending_orders, sale_id).await?;
                self.admit_replicated(&order, pass).await?
            }
            Ok(admitted) => admitted,
            // The script may have run before the call failed: its outbox entry says.
            Err(e) if may_have_run(&e) => match self.redis.in_outbox(sale_id, order.order_id).await {
                Ok(true) => {
                    tracing::warn!(error = %e, "admission call failed after the script ran; the order stands");
                    return self.admitted(&order, None, false).await;
                }
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        match admission {
            Admission::Admitted { remaining, .. } => {
                let response = self.admitted(&order, Some(remaining), replicated).await;
                // An admission taken back (nowhere durable to keep it) put its units back.
                if remaining == 0 && response.is_ok() {
                    self.mark_sold_out(sale_id, None).await;
                }
                response
            }
            Admission::LimitReached { limit, order_ids } => Err(Error::LimitReached { limit, order_ids }),
            Admission::SoldOut { remaining, holders_version } => {
                if remaining == 0 {
                    self.mark_sold_out(sale_id, Some(holders_version)).await;
                }
                Err(Error::SoldOut { remaining })
            }
            Admission::NotStarted => Err(Error::NotOpen("the sale has not started yet")),
            Admission::Ended => Err(Error::NotOpen("the sale has ended")),
            Admission::UnknownSale => Err(recovery::recovering()),
            Admission::BadQuantity { limit } => Err(Error::Invalid(format!("quantity must be between 1 and {limit}"))),
            Admission::PassRefused(refused) => Err(refused.into()),
        }
    }

    /// The admission, and whether the replicas acknowledged it. After a `WAIT` that timed
    /// out, the next second's admissions do not ask.
    async fn admit_replicated(&self, order: &OrderMessage, pass: Option<&str>) -> Result<(Admission, bool)> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let replication = self.replication.filter(|_| now_ms >= self.replicas_late_until_ms.load(Ordering::Relaxed));
        let (admission, replicated) = self.redis.admit_replicated(order, pass, replication).await?;
        if replication.is_some() && matches!(admission, Admission::Admitted { .. }) && !replicated {
            tracing::warn!("the replicas did not acknowledge the admission in time");
            self.replicas_late_until_ms.store(now_ms + REPLICAS_LATE_FOR_MS, Ordering::Relaxed);
        }
        Ok((admission, replicated))
    }

    /// Remembers that Redis had no units left, and who held them, unless another request
    /// of this container already did. With the memo off there is nothing to remember, and
    /// copying the holders (O(holders) from Redis) on every sold-out click would be waste.
    /// The last copy is reused while `holders_version` says nobody's holdings changed.
    async fn mark_sold_out(&self, sale: SaleId, holders_version: Option<u64>) {
        if !self.sold_out.remembers() || self.sold_out.get(sale).is_some() {
            return;
        }
        let copies = || self.holder_copies.lock().unwrap_or_else(|e| e.into_inner());
        let current = copies().get(&sale).filter(|copy| Some(copy.version) == holders_version).cloned();
        if let Some(copy) = current {
            self.sold_out.mark(sale, Some(copy));
            return;
        }
        // Repeat clicks ask Redis until the copy is here, or when it cannot be had.
        self.sold_out.mark(sale, None);
        match self.redis.holders(sale, MAX_HOLDERS_COPIED).await {
            Ok(Some(holders)) => {
                let holders = Arc::new(holders);
                copies().insert(sale, holders.clone());
                self.sold_out.mark(sale, Some(holders));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not copy who holds the sold-out sale's units"),
        }
    }

    /// The order is in the outbox: tell the shopper 202 once it is durable outside the
    /// primary's memory, with the units left right after it when known (the page shows
    /// the new stock at once); or take the admission back and answer 503. The hand-off
    /// records the order and sends it to SQS in every case, the quick way into MySQL.
    async fn admitted(&self, order: &OrderMessage, remaining: Option<u64>, replicated: bool) -> Result<Response<Body>> {
        tracing::Span::current().record("order_id", order.order_id.0);
        // A shopper still waiting is answered from a record begun within the bound a
        // rebuild waits out after a loss (`Drain::hand_off`), or is told 503.
        let record_by = (!replicated).then(|| std::time::Instant::now() + self.record_within);
        let handed = self.hand_off.submit(order.clone(), record_by);
        let Err(not_kept) = self.durable(order, replicated, handed).await else {
            return Ok(accepted(order, remaining));
        };
        // Nowhere durable: take the admission back rather than answer with a 202 that the
        // primary alone remembers.
        let stands = match self.redis.undo_admission(order).await? {
            Undo::Undone => false,
            Undo::Claimed => true,
            // Persisted (its entry cleared after the commit), or lost with the sale's
            // state: then it is nowhere, and a 202 would promise nothing.
            Undo::Gone => self.mysql.existing(&[order.order_id]).await.is_ok_and(|found| !found.is_empty()),
        };
        if stands {
            tracing::warn!("the order reached a consumer meanwhile; it stands");
            return Ok(accepted(order, remaining));
        }
        // A record that failed ambiguously may have been written: a rebuild would count it.
        if let Err(e) = self.pending_orders.forget(order).await {
            tracing::warn!(error = %e, "undone order not forgotten in the pending-orders table; reconcile does");
        }
        Err(not_kept)
    }

    /// `Ok` once the order is somewhere a failover or a loss of Redis leaves it, and
    /// where a rebuild finds it exactly: on the replicas that acknowledged it (the
    /// promoted replica's outbox), or recorded in the pending-orders table.
    async fn durable(
        &self,
        order: &OrderMessage,
        replicated: bool,
        handed: Option<oneshot::Receiver<Result<()>>>,
    ) -> Result<()> {
        // The hand-off goes on; on Lambda the `settle` extension keeps the container from
        // freezing before it ends.
        if replicated {
            return Ok(());
        }
        match handed {
            Some(handed) => handed.await.unwrap_or_else(|_| Err(Error::Internal("the hand-off task stopped".into()))),
            // Too many orders wait for the hand-off: recorded at once, sent by the check-back.
            None => self.pending_orders.keep(order).await,
        }
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
    use std::time::Duration;

    use flashsale::{OrderId, UserId};
    use flashsale_testing::{stores, RecordingPendingOrders, RecordingQueue};

    use super::*;

    /// An `admit` whose Redis and MySQL are a closed port: only the queue and the
    /// pending-orders table answer.
    fn admit(queue: &RecordingQueue, pending_orders: &RecordingPendingOrders) -> Admit {
        admit_with_replicas(queue, pending_orders, 0)
    }

    fn admit_with_replicas(queue: &RecordingQueue, pending_orders: &RecordingPendingOrders, replicas: u32) -> Admit {
        let ids = Arc::new(IdGenerator::with_worker(1, Duration::from_secs(60), Arc::new(SystemClock)));
        let mut config = Config::from_env().unwrap();
        config.redis.wait_replicas = replicas;
        Admit::new(stores(queue, pending_orders), ids, &config)
    }

    fn order() -> OrderMessage {
        OrderMessage { order_id: OrderId(42), sale_id: SaleId(3), user_id: UserId::new("alice").unwrap(), quantity: 2 }
    }

    fn body(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn an_admitted_order_is_recorded_then_sent_and_the_shopper_hears_202() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        let admit = admit(&queue, &pending_orders);
        let response = admit.admitted(&order(), Some(8), false).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            body(&response),
            j!({"order_id": "42", "sale_id": 3, "status": OrderStatus::Pending, "quantity": 2, "remaining": 8})
        );
        assert_eq!(pending_orders.kept(), [order()], "where a rebuild counts it until MySQL has it");
        admit.settled().await;
        assert_eq!(queue.orders(), [order()]);
    }

    #[tokio::test]
    async fn when_sqs_fails_the_recorded_order_still_gets_its_202() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        queue.fail(true);
        let response = admit(&queue, &pending_orders).admitted(&order(), None, false).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(body(&response).get("remaining").is_none(), "no stock figure when none is known");
        assert_eq!(pending_orders.kept(), [order()]);
    }

    #[tokio::test]
    async fn without_replicas_the_shopper_hears_202_only_once_the_order_is_recorded() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        pending_orders.slow(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let response = admit(&queue, &pending_orders).admitted(&order(), Some(8), false).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(started.elapsed() >= Duration::from_millis(300), "answered before the order left the primary");
        assert_eq!(pending_orders.kept(), [order()]);
    }

    #[tokio::test]
    async fn an_order_the_table_cannot_record_is_never_sent_and_gets_no_202() {
        for replicas in [0, 1] {
            let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
            pending_orders.fail(true);
            let admit = admit_with_replicas(&queue, &pending_orders, replicas);
            // Not replicated: the admission is taken back in Redis (unreachable here: an
            // error either way).
            let error = admit.admitted(&order(), Some(8), false).await.unwrap_err();
            assert_eq!(problem(&error).status(), StatusCode::SERVICE_UNAVAILABLE, "{error}");
            admit.settled().await;
            // Sent unrecorded, it could land after a rebuild that did not count its units.
            assert!(queue.orders().is_empty(), "sent without a record ({replicas} replicas)");
        }
    }

    #[tokio::test]
    async fn an_order_whose_record_cannot_begin_in_time_is_neither_recorded_nor_sent() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        let admit = admit(&queue, &pending_orders);
        let too_late = std::time::Instant::now() - Duration::from_millis(1);
        let answer = admit.hand_off.submit(order(), Some(too_late)).unwrap().await.unwrap();
        assert!(answer.is_err(), "a record after a rebuild's wait could go uncounted");
        admit.settled().await;
        assert!(pending_orders.kept().is_empty() && queue.orders().is_empty());
    }

    #[tokio::test]
    async fn a_slow_queue_delays_no_record() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        queue.slow(Duration::from_millis(800));
        let admit = admit(&queue, &pending_orders);
        // Six batches: more than are recorded at once, each sent slowly after its record.
        let orders: Vec<OrderMessage> =
            (0..60).map(|i| OrderMessage { order_id: OrderId(300 + i), ..order() }).collect();
        let started = std::time::Instant::now();
        let answers = futures::future::join_all(orders.iter().map(|o| admit.admitted(o, None, false))).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|r| r.status() == StatusCode::ACCEPTED)));
        assert!(started.elapsed() < Duration::from_millis(700), "records waited for sends: {:?}", started.elapsed());
        admit.settled().await;
        assert_eq!(queue.orders().len(), orders.len());
    }

    #[tokio::test]
    async fn a_replicated_admission_does_not_wait_for_a_slow_queue_and_the_order_still_reaches_it() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        queue.slow(Duration::from_millis(600));
        let started = std::time::Instant::now();
        let response = admit_with_replicas(&queue, &pending_orders, 1).admitted(&order(), Some(8), true).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(started.elapsed() < Duration::from_millis(500), "answered after the bound, not after the send");
        assert!(queue.orders().is_empty(), "still on its way");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(queue.orders(), [order()], "the send went on after the answer");
        assert_eq!(pending_orders.kept(), [order()], "recorded first");
    }

    #[tokio::test]
    async fn settled_waits_for_every_send_still_on_its_way_after_the_answers() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        let admit = admit_with_replicas(&queue, &pending_orders, 1);
        admit.settled().await; // nothing handed off yet
        queue.slow(Duration::from_millis(300));
        let orders: Vec<OrderMessage> =
            (0..12).map(|i| OrderMessage { order_id: OrderId(200 + i), ..order() }).collect();
        for answer in futures::future::join_all(orders.iter().map(|o| admit.admitted(o, None, true))).await {
            assert_eq!(answer.unwrap().status(), StatusCode::ACCEPTED);
        }
        assert!(queue.orders().len() < orders.len(), "answered before every send ended");
        admit.settled().await;
        assert_eq!(queue.orders().len(), orders.len(), "settled once every order is in the queue");
    }

    #[tokio::test]
    async fn orders_admitted_together_go_out_together_ten_to_a_call() {
        let (queue, pending_orders) = (RecordingQueue::default(), RecordingPendingOrders::default());
        queue.slow(Duration::from_millis(20));
        let admit = admit(&queue, &pending_orders);
        let orders: Vec<OrderMessage> =
            (0..25).map(|i| OrderMessage { order_id: OrderId(100 + i), ..order() }).collect();
        let answers = futures::future::join_all(orders.iter().map(|o| admit.admitted(o, None, false))).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|r| r.status() == StatusCode::ACCEPTED)));
        admit.settled().await;
        let mut batches = queue.batches();
        batches.sort();
        assert_eq!(batches, [5, 10, 10], "three calls, not 25");
        let mut sent = queue.orders();
        sent.sort_by_key(|o| o.order_id);
        assert_eq!(sent, orders);
    }
}

/// Fuzzing the purchase body, the bytes any signed-in stranger sends: a fixed number of
/// cases, in `cargo test`.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn purchase(body: Vec<u8>) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/api/sales/1/purchase")
            .body(Body::from(body))
            .unwrap()
    }

    /// A JSON value of any kind a field might be given.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
            Just(j!([1, 2])),
            Just(j!({"quantity": 1})),
        ]
    }

    /// Bodies shaped like a purchase, with fields of every kind, missing or extra.
    fn purchase_like() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::option::of(prop_oneof![(0u32..20).prop_map(serde_json::Value::from), any_json()]),
            prop::option::of(any_json()),
            prop::option::of(("[a-z_]{1,10}", any_json())),
        )
            .prop_map(|(quantity, pass, extra)| {
                let mut body = serde_json::Map::new();
                quantity.map(|q| body.insert("quantity".into(), q));
                pass.map(|p| body.insert("pass".into(), p));
                extra.map(|(k, v)| body.insert(k, v));
                serde_json::to_vec(&body).unwrap()
            })
    }

    fn ok_or_a_4xx(body: &[u8]) -> std::result::Result<(), TestCaseError> {
        match purchase_of(&purchase(body.to_vec())) {
            Ok((quantity, _)) => prop_assert!((1..=flashsale::domain::NewSale::MAX_PER_USER).contains(&quantity)),
            Err(e) => prop_assert!(problem(&e).status().is_client_error(), "{e}: {}", problem(&e).status()),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_are_a_purchase_or_a_4xx(body in prop::collection::vec(any::<u8>(), 0..1_200)) {
            ok_or_a_4xx(&body)?;
        }

        #[test]
        fn any_purchase_shaped_body_is_a_purchase_or_a_4xx(body in purchase_like()) {
            ok_or_a_4xx(&body)?;
        }
    }

    #[test]
    fn the_bounds_of_a_purchase() {
        let quantity =
            |body: &str| purchase_of(&purchase(body.into())).map(|(q, _)| q).map_err(|e| problem(&e).status());
        assert_eq!(quantity(""), Ok(1));
        assert_eq!(quantity(r#"{"quantity":2,"pass":"p"}"#), Ok(2));
        assert_eq!(quantity(r#"{"quantity":0}"#), Err(StatusCode::BAD_REQUEST));
        assert_eq!(quantity(r#"{"quantity":-1}"#), Err(StatusCode::BAD_REQUEST));
        assert_eq!(quantity(r#"{"quantity":1,"price":0}"#), Err(StatusCode::BAD_REQUEST));
        assert_eq!(quantity(&" ".repeat(MAX_BODY + 1)), Err(StatusCode::PAYLOAD_TOO_LARGE));
    }
}
