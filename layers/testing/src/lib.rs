//! Stand-ins for SQS and the pending-orders table in unit tests of handler logic: they keep
//! what they are handed and fail when told to. A dev-dependency only: no Lambda links
//! it, and integration tests use the real services.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use flashsale::config::Config;
use flashsale::domain::{OrderMessage, SaleId, TimeoutMessage};
use flashsale::error::{Error, Result};
use flashsale::outbox::PendingOrders;
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::stores::sqs::{delay_secs, Outbound};
use flashsale::stores::Stores;

fn unavailable(service: &'static str) -> Error {
    Error::aws(service, std::io::Error::other("failing on purpose"))
}

/// An SQS that records each send; clones share what they recorded.
#[derive(Clone, Default)]
pub struct RecordingQueue {
    failing: Arc<AtomicBool>,
    /// How long each order send takes.
    slowness: Arc<Mutex<Duration>>,
    orders: Arc<Mutex<Vec<OrderMessage>>>,
    /// The size of each `send_orders` call.
    batches: Arc<Mutex<Vec<usize>>>,
    closes: Arc<Mutex<Vec<(TimeoutMessage, u32)>>>,
}

impl RecordingQueue {
    /// From now on every send fails (`true`) or succeeds.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on every order send takes `by` before it lands.
    pub fn slow(&self, by: Duration) {
        *self.slowness.lock().unwrap() = by;
    }

    pub fn orders(&self) -> Vec<OrderMessage> {
        self.orders.lock().unwrap().clone()
    }

    /// How many orders each batched send carried, in the order they were sent.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    /// The close checks scheduled, each with the delay SQS would hold it for.
    pub fn closes(&self) -> Vec<(TimeoutMessage, u32)> {
        self.closes.lock().unwrap().clone()
    }

    fn sent<T>(&self, log: &Mutex<Vec<T>>, item: T) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(unavailable("sqs"));
        }
        log.lock().unwrap().push(item);
        Ok(())
    }
}

impl Outbound for RecordingQueue {
    fn send_order<'a>(&'a self, msg: &'a OrderMessage) -> BoxFuture<'a, Result<()>> {
        let slowness = *self.slowness.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(slowness).await;
            self.sent(&self.orders, msg.clone())
        })
    }

    fn send_orders<'a>(&'a self, msgs: &'a [OrderMessage]) -> BoxFuture<'a, Vec<Result<()>>> {
        let slowness = *self.slowness.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(slowness).await;
            self.batches.lock().unwrap().push(msgs.len());
            msgs.iter().map(|m| self.sent(&self.orders, m.clone())).collect()
        })
    }

    fn schedule_close<'a>(
        &'a self,
        msg: &'a TimeoutMessage,
        now_ms: i64,
        max_delay_secs: u32,
    ) -> BoxFuture<'a, Result<()>> {
        let delay = delay_secs(msg.deadline_ms, now_ms, max_delay_secs);
        Box::pin(async move { self.sent(&self.closes, (msg.clone(), delay)) })
    }
}

/// A pending-orders table that keeps orders in memory; clones share them.
#[derive(Clone, Default)]
pub struct RecordingPendingOrders {
    failing: Arc<AtomicBool>,
    slowness: Arc<Mutex<Duration>>,
    kept: Arc<Mutex<Vec<OrderMessage>>>,
}

impl RecordingPendingOrders {
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Each keep takes this long from now on.
    pub fn slow(&self, by: Duration) {
        *self.slowness.lock().unwrap() = by;
    }

    pub fn kept(&self) -> Vec<OrderMessage> {
        self.kept.lock().unwrap().clone()
    }

    fn usable(&self) -> Result<()> {
        match self.failing.load(Ordering::SeqCst) {
            true => Err(unavailable("dynamodb")),
            false => Ok(()),
        }
    }
}

impl PendingOrders for RecordingPendingOrders {
    fn keep<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>> {
        let slowness = *self.slowness.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(slowness).await;
            self.usable()?;
            let mut kept = self.kept.lock().unwrap();
            if !kept.contains(order) {
                kept.push(order.clone());
            }
            Ok(())
        })
    }

    fn of_sale(&self, sale: SaleId) -> BoxFuture<'_, Result<Vec<OrderMessage>>> {
        Box::pin(async move {
            self.usable()?;
            Ok(self.kept().into_iter().filter(|o| o.sale_id == sale).collect())
        })
    }

    fn forget<'a>(&'a self, order: &'a OrderMessage) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.usable()?;
            self.kept.lock().unwrap().retain(|o| o != order);
            Ok(())
        })
    }
}

/// Stores with `queue` and `pending_orders`, whose MySQL and Redis are a closed port: a
/// handler that reaches for either fails within a moment, and the test sees it.
pub fn stores(queue: &RecordingQueue, pending_orders: &RecordingPendingOrders) -> Stores {
    let mut config = Config::from_env().expect("configuration");
    config.redis.url = "redis://127.0.0.1:1".into();
    config.mysql.url = "mysql://nobody@127.0.0.1:1/none".into();
    config.mysql.iam_auth = false;
    config.redis.timeout = Duration::from_millis(100);
    config.mysql.timeout = Duration::from_millis(100);
    Stores {
        mysql: Mysql::connect(&config).expect("a lazy pool"),
        redis: Redis::connect(&config, None).expect("a lazy connection"),
        queue: Box::new(queue.clone()),
        pending_orders: Box::new(pending_orders.clone()),
    }
}

/// A payment provider on a closed port: a handler that reaches for it fails its call.
pub fn unreachable_provider() -> flashsale::payments::Provider {
    let mut config = Config::from_env().expect("configuration");
    config.payments.api_url = "http://127.0.0.1:1".into();
    config.aws.timeout = Duration::from_millis(100);
    flashsale::payments::Provider::new(&config, "sk_test_unreachable".into()).expect("a provider client")
}
