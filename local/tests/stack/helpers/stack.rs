//! Stacks: the whole system in the test's process, on queues of its own, and the presets
//! the tests start from.

use std::time::Duration;

use flashsale_local::{Options, Stack};

use super::*;

pub async fn stack_with(customize: impl FnOnce(&mut Options)) -> Stack {
    if std::env::var("RUST_LOG").is_ok() {
        flashsale::lambda::telemetry::init();
    }
    let mut options = Options::from_env().expect("options from the environment");
    options.addr = "127.0.0.1:0".parse().unwrap();
    options.queue_prefix = format!("test-{:08x}-", rand::random::<u32>());
    options.visibility_timeout_secs = 1;
    // Reconcile runs only where a test calls it: it looks at every open sale.
    options.reconcile_every_secs = 0;
    let shared_table = options.config.aws.pending_orders_table.clone();
    customize(&mut options);
    // a pending-orders table of its queues' own (stacks on one prefix share it): reconcile, in
    // any test, sends on and forgets every kept order of each sale it looks at, and the
    // tests share one MySQL.
    if options.config.aws.pending_orders_table == shared_table {
        options.config.aws.pending_orders_table = format!("{}pending-orders", options.queue_prefix);
    }
    flashsale_local::start(options).await.expect("the local stack starts (are the services up? scripts/services.sh up)")
}

/// A stack on a MySQL database of its own, for a test whose sales another test's
/// reconcile must not touch: a run over every open sale (which several tests make)
/// would otherwise close this test's overdue orders under it.
pub async fn stack_with_own_database(name: &str, customize: impl FnOnce(&mut Options)) -> Stack {
    let config = flashsale::Config::from_env().unwrap();
    let server = config.mysql.url.expose().rsplit_once('/').unwrap().0.to_string();
    let database = format!("flashsale_{name}_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await.unwrap();
    let stack = stack_with(|o| {
        customize(o);
        o.config.mysql.url = format!("{server}/{database}").into();
    })
    .await;
    // Its sales share the tests' Redis database: their ids start far from everyone else's.
    let first_id = 1_000_000_000 + u64::from(rand::random::<u32>() % 1_000_000_000);
    sqlx::query(&format!("ALTER TABLE sales AUTO_INCREMENT = {first_id}")).execute(&mysql(&stack).await).await.unwrap();
    stack
}

pub async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// Quick to notice a sale sold out or a dependency back: the faults' tests see
/// recovery within their bounds.
pub(crate) fn faulty_stack_options(o: &mut flashsale_local::Options) {
    o.config.admission.sold_out_ttl = Duration::from_millis(200);
    o.config.breaker.cooldown = Duration::from_millis(300);
}

/// A stack that consumes nothing, a sale (limit 1, the given stock and payment window)
/// and `shoppers` admitted shoppers whose order messages wait in its outbox.
pub struct Waiting {
    pub stack: Stack,
    pub sale: u64,
    pub outcomes: Outcomes,
    pub messages: Vec<String>,
    pub redis: redis::aio::MultiplexedConnection,
}

pub async fn waiting_orders(stock: u32, window_secs: u32, shoppers: usize) -> Waiting {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(stock, 1, window_secs, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..shoppers).map(|i| format!("waiting-{i}")), &mut outcomes).await;
    let mut redis = redis(&stack).await;
    let messages = outbox(&mut redis, sale).await;
    assert_eq!(messages.len(), shoppers);
    Waiting { stack, sale, outcomes, messages, redis }
}
