//! `reconcile` (EventBridge schedule): the outbox check-back and the drift check.
//!
//! - Outbox entries older than `FLASHSALE_OUTBOX_RESEND_AFTER_SECS` mean the order
//!   message was never sent, or its consumer never finished. They are sent again (also
//!   while MySQL is out of reach: the sales whose keys live in Redis are looked at then):
//!   `persist-orders` inserts the order if MySQL lacks it, or, for one it already has,
//!   finishes what was left (close scheduling, release) and clears the entry. Either
//!   way nothing is done twice.
//! - A running sale whose Redis state is missing (a failover, a restart, a flush) is
//!   counted in the `SalesMissingInRedis` metric and rebuilt from MySQL and the
//!   pending-orders table (see [`recovery::recover`]).
//! - Orders recorded in the pending-orders table that MySQL has (or whose admission was
//!   undone) are forgotten there: a rebuild would hold their units. Recorded orders in
//!   neither MySQL nor the outbox (Redis lost them, the sale ended) are sent on.
//! - Unpaid orders past their deadline by `FLASHSALE_OVERDUE_CLOSE_SECS` are closed
//!   here, the same idempotent close as `close-expired`'s: a close message lost to the
//!   DLQ holds no unit for long.
//! - Closed orders whose units Redis still holds (the close committed, its release did
//!   not run and nothing redelivered it) give them back, once per order.
//! - Unpaid orders whose payment started `FLASHSALE_PAYMENT_CHECK_AFTER_SECS` ago are
//!   checked with the payment provider: money
//!   it has that the order does not know of (a webhook dropped or not yet delivered) is
//!   applied through the webhook's own path, counted in the `PaymentsRepaired` metric.
//! - Per open sale, the units in Redis, the outbox and MySQL are added up against the
//!   stock; the drift is logged as a CloudWatch metric (embedded metric format).
//! - The keys of ended sales get an expiry once their outbox is empty.
//! - The pages of sales that sold out or ended are re-rendered to say so.
//!
//! Each sale gets a slice of a run, not the run: at most [`Slices::payments`] provider
//! reads (a few in flight at once) and [`Slices::closes`] closes. Once the run has spent
//! [`Slices::run_budget`], no provider read or close starts (those in flight finish), and
//! the sales not reached yet keep theirs for the next run, which begins with them
//! ([`rotation`]); when every sale had its slice, the next run begins one sale later, so
//! no sale is always last. Where the next run begins is kept as each sale is taken, not
//! once the run is over: a run Lambda stops at its timeout still moves the next one on
//! past the sale it was on. A step that fails (a provider read, a close, SQS refusing a
//! re-send) is logged and counted and the sale's other steps still run: a payment the
//! provider cannot tell of does not keep overdue orders held.

use std::time::{Duration, Instant};

use chrono::Utc;
use flashsale::domain::OrderMessage;
use flashsale::orders::Closing;
use flashsale::outbox::handoff::record_and_send;
use flashsale::outbox::pending_orders::settle_records;
use flashsale::pages::Publisher;
use flashsale::payments::{received, Provider, Received};
use flashsale::recovery::drift::{sale_report, SaleReport};
use flashsale::recovery::rotation::rotated;
use flashsale::recovery::{self, Drain, Recovery};
use flashsale::stores::Stores;
use flashsale::{Config, Error, OrderId, Result, Sale, SaleId};
use futures::future;
use futures::stream::{self, StreamExt};
use serde::Serialize;

/// Outbox entries re-sent per sale and run; the next run takes the rest.
const RESEND_BATCH: usize = 1000;
/// Provider calls in flight at once for one sale (the account's budget paces them).
const PROVIDER_CONCURRENCY: usize = 8;

/// What one run gives each sale: the rest waits for the next run.
#[derive(Clone, Copy, Debug)]
pub struct Slices {
    /// Payments checked with the provider per sale and run.
    pub payments: u32,
    /// Overdue orders closed per sale and run (each may cancel its payment first).
    pub closes: u32,
    /// The part of the run's minute (Lambda's timeout is 60 s) after which no provider
    /// read or close starts (those in flight finish) and the sales not reached yet keep
    /// theirs for the next run.
    pub run_budget: Duration,
}

impl Default for Slices {
    fn default() -> Self {
        Slices { payments: 25, closes: 100, run_budget: Duration::from_secs(40) }
    }
}

/// How long a run's claim holds unless renewed: a run that died (its container gone, its
/// time up), or a claim a failover brought back after its run gave it up, lets the next
/// run in by then. A live run renews it every third of this.
const RUN_CLAIM: Duration = Duration::from_secs(10);

/// Until when a sale's provider reads and closes may start: none once `at` has passed
/// (those in flight finish), but always the first `at_least` of each step, so the sale a
/// run begins with gets a round of each however little of the budget is left.
#[derive(Clone, Copy, Debug)]
struct Until {
    at: Instant,
    at_least: usize,
}

impl Until {
    /// Whether the step's `n`th call (from 0) may start now.
    fn may_start(&self, n: usize) -> bool {
        n < self.at_least || Instant::now() < self.at
    }
}

pub struct Reconcile {
    stores: Stores,
    provider: Provider,
    pages: Publisher,
    resend_after: chrono::Duration,
    drain: Drain,
    overdue_after: Duration,
    /// Held by the run under way.
    run_claim_key: String,
    /// The sale the next run begins at ([`rotation`]).
    rotation_key: String,
    payment_check_after: Duration,
    slices: Slices,
}

#[derive(Debug, Serialize)]
pub struct SaleCheck {
    #[serde(flatten)]
    pub report: SaleReport,
    pub resent: usize,
    /// Overdue unpaid orders this run closed.
    pub closed: usize,
    /// Closed orders whose units this run put back on sale in Redis: their close's own
    /// release had not run.
    pub released: usize,
    /// Orders whose money the provider had and the order did not know of, now paid or
    /// refunded.
    pub payments_repaired: usize,
    /// Payments the provider could not be asked about (or whose answer could not be
    /// applied) this run: the next run asks again.
    pub payment_checks_failed: usize,
    /// Overdue orders whose close failed this run: the next run tries again.
    pub closes_failed: usize,
    /// Provider reads and closes of this sale's slice not started because the run's
    /// budget was spent meanwhile: a later run does them.
    pub postponed: usize,
    /// The run's budget was spent before this sale: its provider reads and closes wait
    /// for the next run, which begins with it.
    pub deferred: bool,
    /// What the run did about a running sale's missing Redis state.
    #[serde(skip)]
    pub recovery: Option<Recovery>,
}

impl Reconcile {
    /// Takes the outbox, recovery and overdue-close timings from `config`.
    pub fn new(stores: Stores, provider: Provider, pages: Publisher, config: &Config) -> Self {
        let resend_after =
            chrono::Duration::from_std(config.orders.outbox_resend_after).unwrap_or(chrono::Duration::MAX);
        Reconcile {
            stores,
            provider,
            pages,
            resend_after,
            drain: Drain::from_config(config),
            overdue_after: config.orders.overdue_close_after,
            payment_check_after: config.orders.payment_check_after,
            // Its stack's own: stacks that share a Redis (the tests') run side by side.
            run_claim_key: format!("flashsale:reconcile-running:{}", config.aws.orders_queue_url),
            rotation_key: format!("flashsale:reconcile-next:{}", config.aws.orders_queue_url),
            slices: Slices::default(),
        }
    }

    /// Gives each sale `slices` of a run instead of the default.
    pub fn with_slices(mut self, slices: Slices) -> Self {
        self.slices = slices;
        self
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        config.require(&[flashsale::config::Need::OrdersQueue])?;
        let (sdk, secrets) = &flashsale::stores::aws::load(config).await?;
        let stores = Stores::new(sdk, config, secrets)?;
        // Its reads and cancels within the account's budget, shared through Redis.
        let provider = Provider::from_config(config, secrets)?.with_budget(&stores.redis);
        Ok(Reconcile::new(stores, provider, Publisher::from_config(sdk, config), config))
    }

    /// One run over every open sale. Its schedule invokes it asynchronously, so runs
    /// can overlap (a slow one, a retry); a run that finds another under way stops at
    /// once, with no checks.
    pub async fn run(&self) -> Result<Vec<SaleCheck>> {
        let Some(claim) = self.stores.redis.claim(&self.run_claim_key, RUN_CLAIM).await? else {
            tracing::info!("another reconcile run is under way; this one stops");
            return Ok(Vec::new());
        };
        let checks = tokio::select! {
            checks = self.run_claimed() => checks,
            lost = self.keep(&claim) => return Err(lost),
        };
        match self.stores.redis.give_up(claim).await {
            Ok(true) => {}
            // It outlasted its claim: the run that took it over keeps it.
            Ok(false) => tracing::warn!("this reconcile run outlasted its claim; the next run's stays"),
            Err(e) => tracing::warn!(error = %e, "reconcile's claim stays until it lapses"),
        }
        checks
    }

    /// Renews the run's claim while the run goes on; returns only once the claim is
    /// lost to another run (it lapsed while Redis was out of reach), which stops this one.
    async fn keep(&self, claim: &flashsale::stores::redis::Claim) -> Error {
        loop {
            tokio::time::sleep(RUN_CLAIM / 3).await;
            match self.stores.redis.renew(claim, RUN_CLAIM).await {
                Ok(true) => {}
                Ok(false) => return Error::Internal("reconcile's claim lapsed and another run took it over".into()),
                Err(e) => tracing::warn!(error = %e, "reconcile's claim not renewed; trying again"),
            }
        }
    }

    /// What the run under way holds.
    pub fn run_claim_key(&self) -> &str {
        &self.run_claim_key
    }

    /// Where the id of the sale the next run begins at is kept.
    pub fn rotation_key(&self) -> &str {
        &self.rotation_key
    }

    async fn run_claimed(&self) -> Result<Vec<SaleCheck>> {
        let started = Instant::now();
        let sales = match self.stores.mysql.open_sales().await {
            Ok(sales) => sales,
            Err(e) => {
                // The check-back needs no MySQL: what only Redis holds goes on to SQS now,
                // not once MySQL is back (a flush meanwhile would lose it).
                self.check_back_live().await;
                return Err(e);
            }
        };
        let checks = self.visit_from(sales, started).await;
        let worst = checks.iter().filter_map(|c| c.report.drift).map(i64::abs).max().unwrap_or(0);
        emit_metric(&[], "DriftAbsMax", worst);
        // Redis state missing is not drift 0: a metric of its own, for an alarm.
        let missing = checks.iter().filter(|c| matches!(c.recovery, Some(Recovery::Waiting { .. }))).count();
        emit_metric(&[], "SalesMissingInRedis", missing as i64);
        // A lost sale still not rebuilt long after the loss (the pending-orders table
        // cannot be read, or the rebuild fails): someone must look.
        let stuck = checks.iter().filter(|c| matches!(c.recovery, Some(Recovery::Waiting { stuck: true, .. }))).count();
        emit_metric(&[], "RecoveryStuck", stuck as i64);
        let repaired: usize = checks.iter().map(|c| c.payments_repaired).sum();
        emit_metric(&[], "PaymentsRepaired", repaired as i64);
        let failed: usize = checks.iter().map(|c| c.payment_checks_failed + c.closes_failed).sum();
        emit_metric(&[], "ReconcileStepsFailed", failed as i64);
        // Pages of sales that sold out or ended since the last run now say so; the
        // others are unchanged and cost one HEAD each.
        let pages = self.pages.refresh(&self.stores.mysql, &self.stores.redis, None).await?;
        if !pages.changed.is_empty() {
            tracing::info!(changed = ?pages.changed, "pages re-rendered");
        }
        Ok(checks)
    }

    /// Checks `sales`, beginning where the last run left off: each its cheap checks, and
    /// its slice of provider reads and closes while the run's budget lasts (a round of
    /// each for the first sale always). As each sale's slice is taken, keeps where the
    /// next run begins: the sale after it, or, once every sale was taken, the one after
    /// this run's first. A run stopped part way (Lambda's timeout) has thus moved the next
    /// one past the sale it was on; one that spent its budget, to the first sale it
    /// deferred.
    pub async fn visit(&self, sales: Vec<Sale>) -> Vec<SaleCheck> {
        self.visit_from(sales, Instant::now()).await
    }

    /// [`Self::visit`] for a run that began at `started`.
    async fn visit_from(&self, sales: Vec<Sale>, started: Instant) -> Vec<SaleCheck> {
        let deadline = started + self.slices.run_budget;
        let start = self.stores.redis.rotation_start(&self.rotation_key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "where the last run stopped is unknown: beginning at the first sale");
            SaleId(0)
        });
        let sales = rotated(sales, |s| s.id, start);
        let mut deferred = 0;
        let mut checks = Vec::new();
        for (i, sale) in sales.iter().enumerate() {
            let in_budget = i == 0 || Instant::now() < deadline;
            let until = if in_budget {
                // Kept before the sale's slice begins: a run stopped during it still moves on.
                let next = sales.get(i + 1).unwrap_or(&sales[1 % sales.len()]);
                if let Err(e) = self.stores.redis.set_rotation_start(&self.rotation_key, next.id).await {
                    tracing::warn!(error = %e, "where the next run begins is not kept; it begins at the sale kept before");
                }
                Some(Until { at: deadline, at_least: if i == 0 { PROVIDER_CONCURRENCY } else { 0 } })
            } else {
                deferred += 1;
                None
            };
            // One sale's trouble (SQS refusing its re-sends, say) must not stop the others.
            match self.check_sliced(sale, until).await {
                Ok(check) => checks.push(check),
                Err(e) => {
                    tracing::warn!(sale_id = %sale.id, error = %e, "reconcile of this sale failed; next run retries")
                }
            }
        }
        if deferred > 0 {
            tracing::warn!(deferred, "reconcile's budget spent: the next run begins with the sales it did not reach");
        }
        checks
    }

    /// One sale's checks, with its slice of provider reads and closes as far as one run's
    /// budget allows.
    pub async fn check(&self, sale: &Sale) -> Result<SaleCheck> {
        let until = Until { at: Instant::now() + self.slices.run_budget, at_least: PROVIDER_CONCURRENCY };
        self.check_sliced(sale, Some(until)).await
    }

    /// One sale's checks; its provider reads and closes only with an `until`, and only
    /// those that may start by then. A step that fails does not skip the ones after it:
    /// the first failure is the answer once every step ran.
    async fn check_sliced(&self, sale: &Sale, until: Option<Until>) -> Result<SaleCheck> {
        let stores = &self.stores;
        let recovery =
            match recovery::recover(&stores.mysql, &stores.redis, &*stores.pending_orders, sale, self.drain).await? {
                Recovery::Present | Recovery::NotLive => None,
                other => {
                    tracing::warn!(sale_id = %sale.id, recovery = ?other, "sale state missing in Redis");
                    Some(other)
                }
            };
        let mut first_failure: Option<Error> = None;
        let mut failed = |step: &str, e: Error| {
            tracing::warn!(sale_id = %sale.id, step, error = %e, "a reconcile step failed; the others go on");
            first_failure.get_or_insert(e);
        };
        let mut resent = self.check_back(sale.id).await.unwrap_or_else(|e| {
            failed("check-back", e);
            0
        });
        match self.send_on_stranded(sale.id).await {
            Ok(sent) => resent += sent,
            Err(e) => failed("pending-orders table", e),
        }
        let (mut payments_repaired, mut payment_checks_failed, mut closed, mut closes_failed) = (0, 0, 0, 0);
        let mut postponed = 0;
        if let Some(until) = until {
            match self.check_payments(sale, until).await {
                Ok((repaired, failures, later)) => {
                    (payments_repaired, payment_checks_failed) = (repaired, failures);
                    postponed += later;
                }
                Err(e) => failed("payments", e),
            }
            match self.close_overdue(sale, until).await {
                Ok((done, failures, later)) => {
                    (closed, closes_failed) = (done, failures);
                    postponed += later;
                }
                Err(e) => failed("overdue closes", e),
            }
            if postponed > 0 {
                tracing::warn!(sale_id = %sale.id, postponed, "reconcile's budget spent during this sale's slice: the rest waits for a later run");
            }
        }
        if let Some(e) = first_failure {
            return Err(e);
        }
        // While the sale's state is missing or another primary's, the rebuild counts them.
        let released = match recovery {
            None => self.stores.release_unreleased(sale.id).await?,
            Some(_) => 0,
        };
        if sale.ends_at <= Utc::now() && self.stores.redis.expire_ended(sale).await? {
            tracing::debug!(sale_id = %sale.id, "ended sale's keys expire after the grace period");
        }
        let report = sale_report(&self.stores.mysql, &self.stores.redis, sale).await?;
        let sale_dimension = [("SaleId", sale.id.to_string())];
        if let Some(drift) = report.drift {
            emit_metric(&sale_dimension, "Drift", drift);
        }
        emit_metric(&sale_dimension, "PendingOrders", report.pending_orders as i64);
        Ok(SaleCheck {
            report,
            resent,
            closed,
            released,
            payments_repaired,
            payment_checks_failed,
            closes_failed,
            postponed,
            deferred: until.is_none(),
            recovery,
        })
    }

    /// Forgets in the pending-orders table what landed or was undone, and sends on the
    /// recorded orders in neither MySQL nor the outbox. Returns how many were sent.
    async fn send_on_stranded(&self, sale: SaleId) -> Result<usize> {
        let stores = &self.stores;
        let records = settle_records(&stores.mysql, &stores.redis, &*stores.pending_orders, sale).await?;
        if records.forgotten > 0 {
            tracing::debug!(sale_id = %sale, forgotten = records.forgotten, "landed or undone orders forgotten in the pending-orders table");
        }
        if records.stranded.is_empty() {
            return Ok(0);
        }
        // Recorded already: sending them twice is a no-op for persistence.
        let (sent, failed) = delivered(&records.stranded, stores.queue.send_orders(&records.stranded).await);
        tracing::warn!(sale_id = %sale, sent = sent.len(), "recorded orders in neither MySQL nor the outbox sent on");
        match failed {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }

    /// Sends on to SQS, recorded first, the outbox entries older than the re-send age:
    /// their message was never sent, or their consumer never finished. Needs no MySQL.
    /// Returns how many were sent.
    async fn check_back(&self, sale: SaleId) -> Result<usize> {
        let stores = &self.stores;
        let stale = stores.redis.outbox_before(sale, Utc::now() - self.resend_after, RESEND_BATCH).await?;
        let (sent, failed) = delivered(&stale, record_and_send(&*stores.queue, &*stores.pending_orders, &stale).await);
        let sent: Vec<_> = sent.iter().map(|m| m.order_id).collect();
        stores.redis.touch_outbox(sale, &sent).await?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !stale.is_empty() {
            tracing::warn!(sale_id = %sale, resent = stale.len(), "stale outbox entries sent again");
        }
        Ok(stale.len())
    }

    /// The check-back of every sale whose keys live in Redis, for a run that cannot list
    /// the open sales in MySQL.
    async fn check_back_live(&self) {
        let sales = match self.stores.redis.live_sales().await {
            Ok(sales) => sales,
            Err(e) => return tracing::warn!(error = %e, "no check-back: the live sales cannot be read either"),
        };
        for sale in sales {
            if let Err(e) = self.check_back(sale).await {
                tracing::warn!(sale_id = %sale, error = %e, "check-back of this sale failed; next run retries");
            }
        }
    }

    /// Asks the provider about the sale's slice of unpaid orders with a payment started,
    /// a few at once, those that may start by `until`, and applies what it says: money a
    /// dropped webhook never told of. Returns how many were repaired, how many could not
    /// be checked (logged: the next run asks again) and how many were not started.
    async fn check_payments(&self, sale: &Sale, until: Until) -> Result<(usize, usize, usize)> {
        let awaiting =
            self.stores.mysql.awaiting_payment(sale.id, self.payment_check_after, self.slices.payments).await?;
        let slice = awaiting.len();
        // The deadline is read as each call is about to start (a place in flight is free).
        let outcomes: Vec<Result<bool>> = stream::iter(awaiting.into_iter().enumerate())
            .take_while(|(n, _)| future::ready(until.may_start(*n)))
            .map(|(_, (order, intent))| async move {
                self.check_payment(sale, order, &intent).await.inspect_err(|e| {
                    tracing::warn!(sale_id = %sale.id, order_id = %order, payment_intent = %intent, error = %e,
                        "payment not checked with the provider; next run asks again");
                })
            })
            .buffer_unordered(PROVIDER_CONCURRENCY)
            .collect()
            .await;
        let repaired = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        let failed = outcomes.iter().filter(|o| o.is_err()).count();
        Ok((repaired, failed, slice - outcomes.len()))
    }

    /// One order's payment as the provider has it, applied; `true` when it moved the order.
    async fn check_payment(&self, sale: &Sale, order: OrderId, intent: &str) -> Result<bool> {
        let intent = self.provider.intent(intent).await?;
        let outcome = received::apply(&self.stores.mysql, &self.provider, &intent).await?;
        if let Received::NotOurs(why) = outcome {
            // Only this stack's intents are attached to its orders: someone changed one.
            tracing::error!(sale_id = %sale.id, order_id = %order, not_ours = why, "an order holds a payment that is not ours");
            return Ok(false);
        }
        if let Received::Paid(_) | Received::Refunded { .. } = outcome {
            tracing::warn!(sale_id = %sale.id, order_id = %order, ?outcome, "payment the order did not know of");
            return Ok(true);
        }
        Ok(false)
    }

    /// Closes the sale's slice of unpaid orders well past their deadline, a few at once,
    /// those that may start by `until`: their close message was lost (to the DLQ, say) or
    /// is stuck, and their units must not stay held. Returns how many closed, how many
    /// closes failed (logged) and how many were not started.
    async fn close_overdue(&self, sale: &Sale, until: Until) -> Result<(usize, usize, usize)> {
        let overdue = self.stores.mysql.overdue_unpaid(sale.id, self.overdue_after, self.slices.closes).await?;
        let slice = overdue.len();
        // The deadline is read as each close is about to start (a place in flight is free).
        let outcomes: Vec<Result<Closing>> = stream::iter(overdue.into_iter().enumerate())
            .take_while(|(n, _)| future::ready(until.may_start(*n)))
            .map(|(_, order)| async move {
                self.stores.close_order(&self.provider, order).await.inspect_err(|e| {
                    tracing::warn!(sale_id = %sale.id, order_id = %order, error = %e, "overdue order not closed; next run tries again");
                })
            })
            .buffer_unordered(PROVIDER_CONCURRENCY)
            .collect()
            .await;
        let closed = outcomes.iter().filter(|o| matches!(o, Ok(Closing::Closed(_)))).count();
        let failed = outcomes.iter().filter(|o| o.is_err()).count();
        if closed > 0 {
            tracing::warn!(sale_id = %sale.id, closed, "overdue unpaid orders closed by reconcile");
        }
        Ok((closed, failed, slice - outcomes.len()))
    }
}

/// The messages a batch send delivered, and the first error of those it did not.
fn delivered(messages: &[OrderMessage], outcomes: Vec<Result<()>>) -> (Vec<&OrderMessage>, Option<Error>) {
    let mut first_error = None;
    let sent = messages
        .iter()
        .zip(outcomes)
        .filter_map(|(message, outcome)| match outcome {
            Ok(()) => Some(message),
            Err(e) => {
                first_error.get_or_insert(e);
                None
            }
        })
        .collect();
    (sent, first_error)
}

/// One line in CloudWatch's embedded metric format: the log line is the metric.
/// `dimensions` name fields of `values`; an empty list makes a metric without
/// dimensions (the one the alarm watches).
fn emit_metric(dimensions: &[(&str, String)], name: &str, value: i64) {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "flashsale",
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
    });
    for (k, v) in dimensions {
        line[*k] = serde_json::json!(v);
    }
    line[name] = serde_json::json!(value);
    println!("{line}");
}
