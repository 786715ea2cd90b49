//! The faults a real sale meets, each injected into a real process this test owns (a
//! Redis server it restarts empty, a TCP proxy it cuts between the stack and MySQL, a
//! consumer whose Redis dies between its two steps, a runtime that sleeps past its
//! lease), then the promises checked on what is left: units sold in MySQL within
//! stock, nobody above the limit, every `202` exactly one MySQL order, every unit
//! accounted for across Redis, the outbox and MySQL, no 5xx but 503 + Retry-After.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::Stores;
use flashsale::{OrderId, SaleId};
use futures::stream::{self, StreamExt};
use redis::AsyncCommands;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy the test owns between the stack and a server; `cut` drops every
/// connection and refuses new ones until `restore`.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (up2, generation2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused at once
                }
                let mut cut = generation2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, up, generation }
    }

    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// What one purchase attempt got.
#[derive(Default)]
pub(crate) struct Outcomes {
    /// `(user, order id)` of every `202`.
    pub(crate) told: Vec<(String, String)>,
    pub(crate) statuses: HashMap<u16, u64>,
}

impl Outcomes {
    fn record(&mut self, user: &str, status: u16, body: &Value) {
        *self.statuses.entry(status).or_default() += 1;
        assert!(status < 500 || status == 503, "{status} {body}");
        if status == 503 {
            assert_eq!(body["type"], "/problems/unavailable", "{body}");
        }
        if status == 202 {
            self.told.push((user.to_string(), body["order_id"].as_str().unwrap().to_string()));
        }
    }
}

/// Buys as each of `users` at once, recording what each got.
pub(crate) async fn stampede(api: &Api, sale: u64, users: impl IntoIterator<Item = String>, outcomes: &mut Outcomes) {
    let results: Vec<(String, u16, Value, bool)> = stream::iter(users)
        .map(|user| async move {
            let response = api
                .http
                .post(format!("{}/api/sales/{sale}/purchase", api.base))
                .bearer_auth(api.token(&user))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (user, status, body, retry_after)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for (user, status, body, retry_after) in results {
        if status == 503 {
            assert!(retry_after, "a 503 says when to retry: {body}");
        }
        outcomes.record(&user, status, &body);
    }
}

/// Waits until every told order is in MySQL and the outbox is empty, then checks every
/// promise of the sale.
pub(crate) async fn settled_and_sound(stack: &flashsale_local::Stack, sale: u64, told: &[(String, String)]) {
    settled_and_sound_besides(stack, sale, told, &HashSet::new()).await;
}

/// As [`settled_and_sound`], where `unanswered` shoppers heard nothing (their connection
/// died with the stack): an order of theirs may exist that nobody was told of.
pub(crate) async fn settled_and_sound_besides(
    stack: &flashsale_local::Stack,
    sale: u64,
    told: &[(String, String)],
    unanswered: &HashSet<String>,
) {
    let db = mysql(stack).await;
    let mut redis = redis(stack).await;
    let told_ids: HashSet<u64> = told.iter().map(|(_, id)| id.parse().unwrap()).collect();
    assert_eq!(told_ids.len(), told.len(), "no order id was handed out twice");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stored: HashSet<u64> = mysql_orders(&db, sale).await.into_iter().map(|(id, _, _)| id).collect();
        let missing: Vec<&u64> = told_ids.difference(&stored).collect();
        let waiting = outbox(&mut redis.clone(), sale).await;
        if missing.is_empty() && waiting.is_empty() {
            break;
        }
        // What is still out, to tell a lost order from a slow one.
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for every 202 in MySQL and the outbox empty: 202s not in MySQL {missing:?}, \
             outbox {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stock, sold) = mysql_sale(&db, sale).await;
    let orders = mysql_orders(&db, sale).await;
    let limit: u32 =
        sqlx::query_scalar("SELECT per_user_limit FROM sales WHERE id = ?").bind(sale).fetch_one(&db).await.unwrap();
    // Every order that holds units counts (disputed and provider-refunded ones too).
    let held: HashMap<String, u32> = sqlx::query_as::<_, (String, i64)>(&format!(
        "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
         WHERE sale_id = ? AND {} GROUP BY user_id",
        flashsale::domain::HOLDS_UNITS_SQL
    ))
    .bind(sale)
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|(user, units)| (user, units as u32))
    .collect();
    let live_units: u32 = held.values().sum();
    assert!(live_units <= stock, "never oversold: {live_units} live units, stock {stock}");
    assert_eq!(live_units, sold, "sales.sold counts the units held");
    let over: Vec<_> = held.iter().filter(|(_, units)| **units > limit).collect();
    assert!(over.is_empty(), "nobody above the limit {limit}: {over:?}");
    let stored: HashSet<u64> = orders.iter().map(|(id, _, _)| *id).collect();
    let untold: Vec<_> =
        orders.iter().filter(|(id, user, _)| !told_ids.contains(id) && !unanswered.contains(user)).collect();
    assert!(
        told_ids.is_subset(&stored) && untold.is_empty(),
        "every 202 is exactly one MySQL order, and no order is one nobody was told of: {untold:?}"
    );
    let broken: Vec<_> = orders.iter().filter(|(_, _, status)| status == "REJECTED").collect();
    assert!(broken.is_empty(), "broken promises, 202s that MySQL refused: {broken:?}");
    let remaining = redis_stock(&mut redis, sale).await;
    assert_eq!(remaining + i64::from(sold), i64::from(stock), "every unit accounted for (the outbox is empty)");
    let per_status = |sql: &'static str| {
        let db = db.clone();
        async move {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(sql).bind(sale).fetch_all(&db).await.unwrap();
            rows.into_iter().map(|(status, orders, units)| (status, (orders, units))).collect::<HashMap<_, _>>()
        }
    };
    let tallied = per_status("SELECT status, orders, units FROM order_tallies WHERE sale_id = ? AND orders <> 0").await;
    let counted = per_status(
        "SELECT status, COUNT(*), CAST(SUM(quantity) AS SIGNED) FROM orders WHERE sale_id = ? GROUP BY status",
    )
    .await;
    assert_eq!(tallied, counted, "the tallies agree with the orders");
    let outbox_units: Option<i64> = redis.hget(keys(sale).meta, "outbox_units").await.unwrap();
    assert_eq!(outbox_units.unwrap_or(0), 0, "the outbox's tally went back to 0 with it");
}

pub(crate) fn faulty_stack_options(o: &mut flashsale_local::Options) {
    o.config.sold_out_ttl = Duration::from_millis(200);
    o.config.breaker_cooldown = Duration::from_millis(300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_mid_sale_is_rebuilt_with_its_orders_still_queued_and_sells_out_exactly() {
    let mut own = OwnRedis::start().await;
    let prefix = format!("test-{:08x}-", rand::random::<u32>());
    // The orders stay in the queue: nobody consumes them until the second stack starts.
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.consumers = 0;
        o.queue_prefix = prefix.clone();
        o.config.redis_url = (own.url()).into();
        o.config.redis_wait_replicas = 0; // a single node
        o.config.recovery_drain_bound = Duration::from_secs(120);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(30, 2, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..20).map(|i| format!("early-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 20);

    own.restart_empty().await;
    // Recovering while hand-offs begun before the loss may still be recording orders:
    // 503 with Retry-After, never 404.
    let (status, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!((status, body["type"].as_str()), (503, Some("/problems/unavailable")), "{body}");
    stampede(&api, sale, (0..10).map(|i| format!("during-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 20, "nothing admitted while the sale recovers");
    assert_eq!(outcomes.statuses[&503], 10);

    // Rebuilt from MySQL (no order yet) and the pending-orders table (the 20), with all
    // 20 messages still in the queue: no queue count is waited for.
    let live = eventually("the sale reopens on its own", Duration::from_secs(30), || async {
        let (status, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(live["remaining"], 10, "30 - 20 recorded in flight: {live}");
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    assert_eq!(queue_depth(&sqs, &stack.config.orders_queue_url).await, 20, "the orders still queued");
    tokio::time::sleep(stack.config.sold_out_ttl * 2).await;

    // Everyone at once, twice over: the early shoppers may take one more each (limit 2).
    for _ in 0..2 {
        let users = (0..20).map(|i| format!("early-{i}")).chain((0..40).map(|i| format!("late-{i}")));
        stampede(&api, sale, users, &mut outcomes).await;
    }
    assert_eq!(outcomes.told.len(), 30, "sold out exactly: {:?}", outcomes.statuses);
    // The console's report, with all 30 waiting in the outbox (20 put back by the
    // rebuild, 10 admitted after it): the outbox's tally, read without reading the outbox.
    let report = || async {
        let (status, body) = api.call("GET", &format!("/api/admin/sales/{sale}/report"), Some(&api.admin), None).await;
        (status == 200).then_some(body)
    };
    // Admin-api's connection predates the restart: its first use fails, as a poll may.
    eventually("the report answers", Duration::from_secs(10), report).await;
    let mut direct = redis::Client::open(own.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut direct).await.unwrap();
    let report = report().await.expect("the report");
    assert_eq!((report["pending_orders"].as_u64(), report["pending_units"].as_u64()), (Some(30), Some(30)), "{report}");
    assert_eq!(report["drift"], 0, "{report}");
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut direct).await.unwrap();
    assert!(!stats.contains("cmdstat_hvals"), "the report read the whole outbox: {stats}");
    // The queue drains only now: each of the 20 lands on a unit the rebuild held for it.
    let consumers = stack_with(|o| {
        faulty_stack_options(o);
        o.queue_prefix = prefix.clone();
        o.config.redis_url = (own.url()).into();
        o.config.redis_wait_replicas = 0; // a single node
    })
    .await;
    settled_and_sound(&consumers, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_puts_no_phantom_unit_on_sale() {
    let stack = stack_with(faulty_stack_options).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 2, 600, -1, 3600)).await;
    let mut redis = redis(&stack).await;
    // Redis forgot decrements (a failover to a lagging replica): it believes in 3 units
    // that do not exist.
    let _: () = redis.set(keys(sale).stock, 8).await.unwrap();
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..8).map(|i| format!("buyer-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 8);
    let db = mysql(&stack).await;
    let statuses = eventually("all 8 settled in MySQL", Duration::from_secs(30), || async {
        let orders = mysql_orders(&db, sale).await;
        let settled = orders.len() == 8 && outbox(&mut redis.clone(), sale).await.is_empty();
        settled.then(|| orders.into_iter().map(|(_, _, s)| s).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(statuses.iter().filter(|s| *s == "REJECTED").count(), 3, "{statuses:?}");
    assert_eq!(redis_stock(&mut redis, sale).await, 0, "Redis corrected down to MySQL");
    // The next buyer is told "sold out" at once, not admitted and refused later.
    let (status, body) = api.buy(sale, "next", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")), "{body}");
    // A refused shopper learns it from their order.
    for (user, id) in &outcomes.told {
        let (status, body) = api.order(user, id).await;
        assert_eq!(status, 200);
        assert!(body["status"] == "UNPAID" || body["status"] == "REJECTED", "{body}");
    }

    // Two units come back on sale the normal way: two unpaid orders close.
    let unpaid: Vec<(u64, String, String)> =
        mysql_orders(&db, sale).await.into_iter().filter(|(_, _, s)| s == "UNPAID").collect();
    let stores = Stores::from_config(&stack.config).await.unwrap();
    for (id, _, _) in &unpaid[1..3] {
        sqlx::query("UPDATE orders SET expires_at = UTC_TIMESTAMP(3) WHERE id = ?")
            .bind(id)
            .execute(&db)
            .await
            .unwrap();
        stores.close_order(&provider(&stack), OrderId(*id)).await.unwrap();
    }
    assert_eq!(redis_stock(&mut redis, sale).await, 2);
    // Redis forgot what one holder bought: it admits them two more, above the limit of
    // 2. MySQL refuses the order, and these units did exist, so they are on sale again.
    let holder = unpaid[0].1.clone();
    let keys = keys(sale);
    tokio::time::sleep(Duration::from_millis(300)).await; // the sold-out memo's TTL
    let _: () = redis.hdel(&keys.bought, &holder).await.unwrap();
    let _: () = redis.hdel(&keys.orders, &holder).await.unwrap();
    let (status, body) = api.buy(sale, &holder, Some(2)).await;
    assert_eq!(status, 202, "{body}");
    let extra = body["order_id"].as_str().unwrap().to_string();
    eventually("the over-limit order refused", Duration::from_secs(30), || async {
        let refused = mysql_status(&db, &extra).await.as_deref() == Some("REJECTED");
        (refused && outbox(&mut redis.clone(), sale).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(redis_stock(&mut redis, sale).await, 2, "units refused for the limit are back on sale");
    assert_eq!(mysql_sale(&db, sale).await, (5, 3));
}

async fn mysql_status(db: &sqlx::MySqlPool, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
        .bind(id.parse::<u64>().unwrap())
        .fetch_optional(db)
        .await
        .unwrap()
}

/// A stack that consumes nothing, a sale (limit 1, the given stock and payment window)
/// and `shoppers` admitted shoppers whose order messages wait in its outbox.
struct Waiting {
    stack: flashsale_local::Stack,
    sale: u64,
    outcomes: Outcomes,
    messages: Vec<String>,
    redis: redis::aio::MultiplexedConnection,
}

async fn waiting_orders(stock: u32, window_secs: u32, shoppers: usize) -> Waiting {
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

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    attributes.attributes().and_then(|a| a.values().next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_cut_during_persistence_then_back_loses_and_doubles_nothing() {
    let proxy = Proxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.max_receives = 2;
        o.config.database_url =
            o.config.database_url.expose().replace("127.0.0.1:3306", &proxy.addr.to_string()).into();
        o.config.db_timeout = Duration::from_millis(500);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(20, 1, 600, -1, 3600)).await;

    proxy.cut();
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..12).map(|i| format!("cut-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 12, "admission needs no MySQL");
    // Reading an order needs MySQL: 503 with Retry-After, not 500.
    let (user, id) = &outcomes.told[0];
    let response =
        api.http.get(format!("{}/api/orders/{id}", api.base)).bearer_auth(api.token(user)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // Every message is retried until its receive limit, then parked in the DLQ.
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    let dlq = stack.resources.orders_dlq_url.clone();
    eventually("all 12 order messages in the DLQ", Duration::from_secs(60), || {
        let (sqs, dlq) = (sqs.clone(), dlq.clone());
        async move { (queue_depth(&sqs, &dlq).await == 12).then_some(()) }
    })
    .await;

    proxy.restore();
    let moved = flashsale_local::ops::redrive::redrive(&sqs, &dlq, &stack.resources.orders_queue_url).await.unwrap();
    assert_eq!(moved, 12);
    settled_and_sound(&stack, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dying_between_its_steps_and_triple_delivery_change_nothing() {
    let Waiting { stack, sale, outcomes, messages, mut redis } = waiting_orders(10, 2, 4).await;

    // This consumer commits to MySQL, then dies before it schedules the close and
    // clears the outbox: its SQS is gone.
    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    let dead_sqs = unreachable_aws().await;
    let dying = persist_orders::PersistOrders::new(Stores::new(&dead_sqs, &config).unwrap(), config.max_delay_secs);
    let response = dying.handle(sqs_event(&messages)).await;
    assert_eq!(response.batch_item_failures.len(), 4, "every message fails and will be redelivered");
    let db = mysql(&stack).await;
    assert_eq!(mysql_sale(&db, sale).await, (10, 4));

    // SQS delivers every message three times more, at once.
    let sdk = flashsale::stores::aws::sdk_config(&stack.config).await;
    let healthy =
        persist_orders::PersistOrders::new(Stores::from_config(&stack.config).await.unwrap(), config.max_delay_secs);
    let tripled: Vec<String> = messages.iter().flat_map(|m| [m.clone(), m.clone(), m.clone()]).collect();
    let response = healthy.handle(sqs_event(&tripled)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(mysql_sale(&db, sale).await, (10, 4), "each order counted once");
    assert!(outbox(&mut redis, sale).await.is_empty());

    // The close messages, each delivered three times once due.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut closes = Vec::new();
    while closes.len() < 4 {
        let received = sqs
            .receive_message()
            .queue_url(&stack.resources.timeouts_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        closes.extend(received.messages().iter().filter_map(|m| m.body().map(String::from)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let close = close_expired::CloseExpired::new(
        Stores::from_config(&stack.config).await.unwrap(),
        provider(&stack),
        config.max_delay_secs,
    );
    let tripled: Vec<String> = closes.iter().flat_map(|m| [m.clone(), m.clone(), m.clone()]).collect();
    let response = close.handle(sqs_event(&tripled)).await;
    assert!(response.batch_item_failures.is_empty());
    let statuses: Vec<String> = mysql_orders(&db, sale).await.into_iter().map(|(_, _, s)| s).collect();
    assert!(statuses.iter().all(|s| s == "CLOSED"), "{statuses:?}");
    assert_eq!(redis_stock(&mut redis, sale).await, 10, "each unit released once");
    settled_and_sound(&stack, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_messages_lost_to_the_dlq_are_closed_by_reconcile() {
    let Waiting { stack, sale, messages, mut redis, .. } = waiting_orders(5, 1, 5).await;
    let api = Api::new(&stack);

    // Every close message ends in the DLQ: nothing will ever deliver it.
    let mut config = stack.config.clone();
    config.timeouts_queue_url = stack.resources.timeouts_dlq_url.clone();
    config.overdue_close_after = Duration::ZERO;
    let persist =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.max_delay_secs);
    assert!(persist.handle(sqs_event(&messages)).await.batch_item_failures.is_empty());
    let db = mysql(&stack).await;
    assert_eq!(mysql_sale(&db, sale).await, (5, 5));
    let (status, body) = api.buy(sale, "waiting", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    let check = reconcile.check(&sale_row).await.unwrap();
    assert_eq!(check.closed, 5);
    assert_eq!(mysql_sale(&db, sale).await, (5, 0));
    assert_eq!(redis_stock(&mut redis, sale).await, 5, "the units are back on sale");
    // A second run finds nothing to do: the close is idempotent.
    assert_eq!(reconcile.check(&sale_row).await.unwrap().closed, 0);
    assert_eq!(redis_stock(&mut redis, sale).await, 5);
    let (status, body) = api.buy(sale, "waiting", None).await;
    assert_eq!(status, 202, "{body}");
}

/// A Lambda container between invocations is frozen, its background lease renewal
/// included. A current-thread runtime runs only inside `block_on`: between calls it is
/// exactly such a container.
#[test]
fn an_admit_container_idle_past_its_lease_admits_its_next_request() {
    let outside = tokio::runtime::Runtime::new().unwrap();
    let container = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stack = outside.block_on(stack_with(|o| o.consumers = 0));
    let api = Api::new(&stack);
    let sale = outside.block_on(api.sale(sale_spec(10, 1, 600, -1, 3600)));
    let mut config = stack.config.clone();
    config.lease_duration = Duration::from_secs(2);

    let (admit, ids) = container.block_on(async {
        let sdk = flashsale::stores::aws::sdk_config(&config).await;
        let ids = flashsale::ids::IdGenerator::leased(
            flashsale::ids::leases::WorkerLeases::from_config(&sdk, &config),
            Arc::new(flashsale::clock::SystemClock),
        )
        .await;
        let no_memo = flashsale::Config { sold_out_ttl: Duration::ZERO, ..config.clone() };
        let admit = admit::Admit::new(Stores::new(&sdk, &config).unwrap(), ids.clone(), &no_memo);
        (admit, ids)
    });
    let worker = ids.worker().expect("a worker id is leased at start");
    assert_eq!(container.block_on(admit.handle(purchase_request(sale, "before"))).status(), 202);

    // Frozen through the countdown, past the lease; another container takes the worker id.
    std::thread::sleep(Duration::from_secs(3));
    outside.block_on(async {
        let sdk = flashsale::stores::aws::sdk_config(&config).await;
        let expires = chrono::Utc::now().timestamp_millis() + 60_000;
        aws_sdk_dynamodb::Client::new(&sdk)
            .put_item()
            .table_name(&config.lease_table)
            .item("worker_id", aws_sdk_dynamodb::types::AttributeValue::N(worker.to_string()))
            .item("owner", aws_sdk_dynamodb::types::AttributeValue::S("another-container".into()))
            .item("expires_at_ms", aws_sdk_dynamodb::types::AttributeValue::N(expires.to_string()))
            .send()
            .await
            .unwrap();
    });

    // The first request after the thaw is admitted, under a worker id of its own.
    let response = container.block_on(admit.handle(purchase_request(sale, "after")));
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let order: OrderId = body["order_id"].as_str().unwrap().parse().unwrap();
    assert_ne!(flashsale::ids::snowflake::worker_of(order), worker, "never the worker id another container holds");
    drop(admit);
    container.shutdown_background();
    drop(stack);
    outside.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intruders_read_and_pay_nothing_of_others_and_shoppers_get_no_admin_route() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 1, 600, -1, 3600)).await;
    let (status, body) = api.buy(sale, "alice", None).await;
    assert_eq!(status, 202);
    let order = body["order_id"].as_str().unwrap().to_string();
    let bob = api.token("bob");
    let peek = |token: String| {
        let api = &api;
        let order = order.clone();
        async move {
            let (read, _) = api.call("GET", &format!("/api/orders/{order}"), Some(&token), None).await;
            let (pay, _) = api.call("POST", &format!("/api/orders/{order}/payment"), Some(&token), None).await;
            (read, pay)
        }
    };
    assert_eq!(api.order("alice", &order).await.1["status"], "PENDING");
    assert_eq!(peek(bob.clone()).await, (404, 404), "a PENDING order of someone else does not exist");

    let mut redis = redis(&stack).await;
    let persist = persist_orders::PersistOrders::new(Stores::from_config(&stack.config).await.unwrap(), 900);
    persist.handle(sqs_event(&outbox(&mut redis, sale).await)).await;
    assert_eq!(api.order("alice", &order).await.1["status"], "UNPAID");
    assert_eq!(peek(bob.clone()).await, (404, 404), "nor an UNPAID one");
    assert_eq!(peek(api.token("Alice")).await, (404, 404), "user ids compare exactly");
    let (status, body) = api.pay("alice", &order, CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    api.await_status("alice", &order, "PAID").await;

    let admin_routes = [
        ("GET", "/api/admin/sales".to_string()),
        ("POST", "/api/admin/sales".to_string()),
        ("GET", format!("/api/admin/sales/{sale}")),
        ("POST", format!("/api/admin/sales/{sale}/publish")),
        ("POST", format!("/api/admin/sales/{sale}/resync")),
        ("GET", format!("/api/admin/sales/{sale}/report")),
        ("GET", "/api/admin/anything".to_string()),
    ];
    for (method, path) in admin_routes {
        let (status, body) = api.call(method, &path, Some(&bob), Some(sale_spec(1, 1, 60, 0, 10))).await;
        assert_eq!((status, body["type"].as_str()), (403, Some("/problems/forbidden")), "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_clicking_again_after_sell_out_gets_their_order_back() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.sold_out_ttl = Duration::from_secs(5);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(1, 1, 600, -1, 3600)).await;
    let (_, body) = api.buy(sale, "holder", None).await;
    let order = body["order_id"].clone();
    let (status, body) = api.buy(sale, "latecomer", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")));
    // The sold-out memo answers now, yet the holder is told what they hold.
    let (status, body) = api.buy(sale, "holder", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/limit-reached")), "{body}");
    assert_eq!(body["order_ids"], serde_json::json!([order]));

    // Past 2038, where a TIMESTAMP would end, and up to 9998, a sale's dates are stored.
    for ends in ["2040-01-01T00:00:00Z", "9998-12-30T00:00:00Z"] {
        let mut spec = sale_spec(1, 1, 60, 0, 10);
        spec["ends_at"] = Value::String(ends.into());
        let (status, body) = api.call("POST", "/api/admin/sales", Some(&api.admin), Some(spec)).await;
        assert_eq!(status, 201, "{body}");
        let stored: chrono::DateTime<chrono::Utc> = body["ends_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(stored, ends.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    }
    // A date MySQL cannot store is bad input, not an outage.
    let mut spec = sale_spec(1, 1, 60, 0, 10);
    spec["ends_at"] = Value::String("+10000-01-01T00:00:00Z".into());
    let (status, body) = api.call("POST", "/api/admin/sales", Some(&api.admin), Some(spec)).await;
    assert_eq!((status, body["type"].as_str()), (400, Some("/problems/invalid-request")), "{body}");
}

/// An `admit` of its own whose SQS is unreachable, and whose DynamoDB (the pending_orders)
/// is reachable or not.
async fn admit_without_sqs(config: &flashsale::Config, pending_orders_up: bool) -> admit::Admit {
    let (live, dead) = (flashsale::stores::aws::sdk_config(config).await, unreachable_aws().await);
    admit_with(config, &dead, if pending_orders_up { &live } else { &dead }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_down_then_redis_flushed_loses_no_order_that_got_a_202() {
    let own = OwnRedis::start().await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.config.redis_url = (own.url()).into();
        o.config.redis_wait_replicas = 0; // a single node
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(40, 1, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..5).map(|i| format!("steady-{i}")), &mut outcomes).await;

    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    let stranded = admit_without_sqs(&config, true).await;
    for i in 0..12 {
        let user = format!("stranded-{i}");
        let response = stranded.handle(purchase_request(sale, &user)).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        outcomes.record(&user, response.status().as_u16(), &body);
    }
    assert_eq!(outcomes.told.len(), 17);
    // Each 202 waited for its record in the pending-orders table; SQS failed them after.
    let stores = Stores::from_config(&config).await.unwrap();
    let recorded: HashSet<String> =
        stores.pending_orders.of_sale(SaleId(sale)).await.unwrap().iter().map(|o| o.user_id.to_string()).collect();
    assert!((0..12).all(|i| recorded.contains(&format!("stranded-{i}"))), "{recorded:?}");

    // Redis forgets everything, the outbox of the stranded orders included.
    let mut flush = redis::Client::open(own.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut flush).await.unwrap();

    // SQS is back; reconcile rebuilds the sale counting the recorded orders and sends
    // them on.
    config.outbox_resend_after = Duration::ZERO;
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    let sale_row = sale_row(&stack, sale).await;
    // Not before every hand-off begun before the loss could have ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut resent = 0;
    loop {
        let check = reconcile.check(&sale_row).await.unwrap();
        resent += check.resent;
        match check.recovery {
            Some(flashsale::recovery::Recovery::Rebuilt { .. }) => break,
            Some(flashsale::recovery::Recovery::Waiting { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            other => panic!("reconcile rebuilds the sale: {other:?}"),
        }
    }
    assert!(resent >= 12, "the recorded orders were sent on ({resent})");
    settled_and_sound(&stack, sale, &outcomes.told).await;
    // Once MySQL has them, reconcile forgets them there: a rebuild would hold their units.
    reconcile.check(&sale_row).await.unwrap();
    assert!(stores.pending_orders.of_sale(SaleId(sale)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_can_be_kept_nowhere_is_undone_and_answered_503() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    // No replica to hold it either (one would make the order durable).
    config.redis_wait_replicas = 0;
    let stranded = admit_without_sqs(&config, false).await;
    let response = stranded.handle(purchase_request(sale, "unlucky")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 10, "the unit is back on sale");
    assert!(outbox(&mut redis, sale).await.is_empty(), "no order waits anywhere");
    // The shopper may simply try again.
    let (status, body) = api.buy(sale, "unlucky", None).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_that_finds_the_order_gone_from_the_outbox_takes_nothing_back_and_says_so() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    let stores = Stores::from_config(&stack.config).await.unwrap();
    let mut redis = redis(&stack).await;
    let mut orders = Vec::new();
    for user in ["kept", "lost", "claimed"] {
        let (status, body) = api.buy(sale, user, None).await;
        assert_eq!(status, 202, "{body}");
        orders.push(flashsale::domain::OrderMessage {
            order_id: OrderId(body["order_id"].as_str().unwrap().parse().unwrap()),
            sale_id: SaleId(sale),
            user_id: flashsale::UserId::new(user).unwrap(),
            quantity: 1,
        });
    }
    // A failover to a replica that missed it takes the second's outbox entry; a consumer
    // claimed the third.
    let _: () = redis.hdel(keys(sale).outbox, orders[1].order_id.to_string()).await.unwrap();
    stores.redis.claim_for_persisting(SaleId(sale), &[orders[2].order_id]).await.unwrap();
    use flashsale::admission::Undo;
    assert_eq!(stores.redis.undo_admission(&orders[1]).await.unwrap(), Undo::Gone, "not taken for undone");
    assert_eq!(stores.redis.undo_admission(&orders[2]).await.unwrap(), Undo::Claimed);
    assert_eq!(redis_stock(&mut redis, sale).await, 7, "nothing given back for either");
    assert_eq!(stores.redis.undo_admission(&orders[0]).await.unwrap(), Undo::Undone);
    assert_eq!(redis_stock(&mut redis, sale).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_whose_answer_timed_out_after_the_script_ran_is_a_202() {
    let own = OwnRedis::start().await;
    let proxy =
        LaggingProxy::start(format!("127.0.0.1:{}", own.port).parse().unwrap(), Duration::from_millis(450)).await;
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.redis_url = (own.url()).into();
        o.config.redis_wait_replicas = 0; // a single node
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 3, 600, -1, 3600)).await;

    // admit's own Redis goes through the proxy, with a 300 ms budget per call.
    let mut config = stack.config.clone();
    config.redis_url = (format!("redis://{}", proxy.addr)).into();
    config.redis_timeout = Duration::from_millis(300);
    config.breaker_failures = 1000;
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let admit = admit_with(&config, &sdk, &sdk).await;
    // The script is loaded once, without lag.
    assert_eq!(admit.handle(purchase_request(sale, "warm-up")).await.status(), 202);

    proxy.lag_next_answers(1);
    let response = admit.handle(purchase_request(sale, "patient")).await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(response.status(), 202, "the script ran, so the shopper was admitted: {body}");
    let mut redis = redis(&stack).await;
    let outbox = outbox(&mut redis, sale).await;
    let theirs: Vec<Value> = outbox
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap())
        .filter(|m| m["user_id"] == "patient")
        .collect();
    assert_eq!(theirs.len(), 1, "one admission, not two");
    assert_eq!(theirs[0]["order_id"], body["order_id"], "the id the shopper holds is the one admitted");
    assert_eq!(redis_stock(&mut redis, sale).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_batch_whose_outbox_clear_failed_is_not_failed_for_it() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    for i in 0..3 {
        assert_eq!(api.buy(sale, &format!("cleared-{i}"), None).await.0, 202);
    }
    let mut redis = redis(&stack).await;
    let messages: Vec<flashsale::domain::OrderMessage> =
        outbox(&mut redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    // A consumer whose Redis is gone once MySQL has committed.
    let mut config = stack.config.clone();
    config.redis_url = "redis://127.0.0.1:1".to_string().into();
    let persist =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.max_delay_secs);
    let outcomes = persist.persist(messages).await;
    assert!(outcomes.iter().all(Result::is_ok), "committed orders are not sent round again: {outcomes:?}");
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.len(), 3);
    assert_eq!(outbox(&mut redis, sale).await.len(), 3, "the entries stay for the check-back, which clears them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_only_redis_holds_are_sent_on_while_mysql_is_out_of_reach() {
    // A Redis of the test's own: reconcile, unable to list the sales in MySQL, looks at
    // every sale whose keys live in Redis, and here those are this test's alone.
    let own = OwnRedis::start().await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.config.redis_url = own.url().into();
        o.config.redis_wait_replicas = 0;
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(20, 1, 300, -1, 3600)).await;
    // Admissions whose SQS send failed: the outbox and the pending-orders table hold them.
    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    let live = flashsale::stores::aws::sdk_config(&config).await;
    let stranded = admit_with(&config, &unreachable_aws().await, &live).await;
    for i in 0..8 {
        assert_eq!(stranded.handle(purchase_request(sale, &format!("stranded-{i}"))).await.status(), 202);
    }
    let mut redis = redis(&stack).await;
    assert_eq!(outbox(&mut redis, sale).await.len(), 8);

    // Reconcile whose MySQL is out of reach: it cannot list the open sales, and still
    // sends on what only Redis holds (recorded first); the consumers persist it.
    config.outbox_resend_after = Duration::ZERO;
    config.database_url = "mysql://flashsale:flashsale@127.0.0.1:1/flashsale".to_string().into();
    let reconcile = reconcile::Reconcile::from_config(&config).await.unwrap();
    assert!(reconcile.run().await.is_err(), "the run itself fails: MySQL is out of reach");
    let db = mysql(&stack).await;
    eventually("the 8 orders in MySQL and the outbox empty", Duration::from_secs(30), || async {
        let n = mysql_orders(&db, sale).await.len();
        (n == 8 && outbox(&mut redis.clone(), sale).await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sale_holds_the_units_of_its_orders_in_the_dlq_and_sells_only_the_rest() {
    let mut own = OwnRedis::start().await;
    let prefix = format!("test-{:08x}-", rand::random::<u32>());
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.consumers = 0;
        o.queue_prefix = prefix.clone();
        o.config.redis_url = own.url().into();
        o.config.redis_wait_replicas = 0; // a single node
        o.config.recovery_drain_bound = Duration::from_secs(120);
    })
    .await;
    let api = Api::new(&stack);
    let stock = 8;
    let sale = api.sale(sale_spec(stock, 1, 600, -1, 3600)).await;
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..5).map(|i| format!("dead-lettered-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 5);
    // Their messages failed until SQS moved them to the DLQ (a consumer deployed broken,
    // say); then Redis loses the sale, outbox and all.
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    let (queue, dlq) = (&stack.resources.orders_queue_url, &stack.resources.orders_dlq_url);
    assert_eq!(flashsale_local::ops::redrive::redrive(&sqs, queue, dlq).await.unwrap(), 5);
    own.restart_empty().await;
    let (status, _) = api.buy(sale, "first-finder", None).await;
    assert_eq!(status, 503, "found lost: recovering");

    // Rebuilt once every hand-off begun before the loss has ended, with the orders still
    // in the DLQ: the pending-orders table holds their units, so only the rest is sold.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut next = 0;
    while outcomes.statuses.get(&409).copied().unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "sold out while they wait: {:?}", outcomes.statuses);
        stampede(&api, sale, (next..next + 4).map(|i| format!("after-{i}")), &mut outcomes).await;
        next += 4;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(queue_depth(&sqs, dlq).await, 5, "still in the DLQ");

    // Redriven and persisted, each lands on the unit held for it.
    assert_eq!(flashsale_local::ops::redrive::redrive(&sqs, dlq, queue).await.unwrap(), 5);
    let _consumers = stack_with(|o| {
        faulty_stack_options(o);
        o.queue_prefix = prefix.clone();
        o.config.redis_url = own.url().into();
        o.config.redis_wait_replicas = 0;
    })
    .await;
    assert_eq!(outcomes.told.len() as u32, stock, "each unit sold once: {:?}", outcomes.statuses);
    settled_and_sound(&stack, sale, &outcomes.told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_undone_after_an_ambiguous_record_is_never_sent_counted_or_persisted() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    // admit's pending-orders table answers late (the record is written, the answer times
    // out), and no replica holds the order: it is durable nowhere admit knows of.
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let upstream = endpoint.trim_start_matches("http://").parse().unwrap();
    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    config.redis_wait_replicas = 0;
    let proxy = LaggingProxy::start(upstream, config.aws_timeout * 3).await;
    proxy.lag_next_answers(u64::MAX);
    let late_table = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", proxy.addr))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(config.aws_timeout).build(),
        )
        .load()
        .await;
    let live = flashsale::stores::aws::sdk_config(&stack.config).await;
    let stranded = admit_with(&config, &live, &late_table).await;
    let response = stranded.handle(purchase_request(sale, "ghost")).await;
    assert_eq!(response.status(), 503, "told the order was not taken");
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 10, "the admission undone");
    stranded.settled().await;

    // Never sent: the record did not answer.
    let sqs = aws_sdk_sqs::Client::new(&live);
    let received =
        sqs.receive_message().queue_url(&stack.config.orders_queue_url).wait_time_seconds(1).send().await.unwrap();
    assert!(received.messages().is_empty(), "an unrecorded order was sent");

    // The record may still be written after the undo forgot it (say the write was
    // delayed): reconcile forgets it, since Redis says its admission was undone.
    let released: Vec<u64> = redis.smembers(keys(sale).released).await.unwrap();
    assert_eq!(released.len(), 1, "the undone admission");
    let ghost = flashsale::domain::OrderMessage {
        order_id: OrderId(released[0]),
        sale_id: SaleId(sale),
        user_id: flashsale::UserId::new("ghost").unwrap(),
        quantity: 1,
    };
    let stores = Stores::from_config(&stack.config).await.unwrap();
    stores.pending_orders.keep(&ghost).await.unwrap();
    // A re-sync meanwhile (a rebuild counting the table's records) holds no unit for it.
    let recorded = stores.pending_orders.of_sale(SaleId(sale)).await.unwrap();
    assert_eq!(recorded, std::slice::from_ref(&ghost));
    let remaining =
        flashsale::recovery::rebuild(&stores.mysql, &stores.redis, SaleId(sale), &recorded, true).await.unwrap();
    assert_eq!(remaining, Some(10));
    assert!(outbox(&mut redis, sale).await.is_empty(), "not put back in the outbox");
    // Reconcile forgets it rather than send it.
    let records = flashsale::outbox::pending_orders::settle_records(
        &stores.mysql,
        &stores.redis,
        &*stores.pending_orders,
        SaleId(sale),
    )
    .await
    .unwrap();
    assert_eq!((records.forgotten, records.stranded.len()), (1, 0), "forgotten, not sent");
    assert!(stores.pending_orders.of_sale(SaleId(sale)).await.unwrap().is_empty());
    let db = mysql(&stack).await;
    assert!(mysql_orders(&db, sale).await.is_empty(), "no order nobody was told of");
    // The shopper tries again and is admitted.
    assert_eq!(api.buy(sale, "ghost", None).await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_claimed_by_a_consumer_is_not_undone() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    assert_eq!(api.buy(sale, "claimed", None).await.0, 202);
    let mut redis = redis(&stack).await;
    let message: flashsale::domain::OrderMessage = serde_json::from_str(&outbox(&mut redis, sale).await[0]).unwrap();
    // A consumer claims it, then its MySQL is out of reach: SQS will redeliver it.
    let mut config = stack.config.clone();
    config.database_url = "mysql://flashsale:flashsale@127.0.0.1:1/flashsale".to_string().into();
    let cut = persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.max_delay_secs);
    assert!(cut.persist(vec![message.clone()]).await[0].is_err());
    // An admit whose send failed meanwhile may not take it back now.
    let stores = Stores::from_config(&stack.config).await.unwrap();
    assert_eq!(
        stores.redis.undo_admission(&message).await.unwrap(),
        flashsale::admission::Undo::Claimed,
        "a claimed order stands"
    );
    let persist = persist_orders::PersistOrders::new(stores, config.max_delay_secs);
    assert!(persist.persist(vec![message.clone()]).await[0].is_ok());
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.iter().map(|o| o.0).collect::<Vec<_>>(), [message.order_id.0]);
    assert_eq!(redis_stock(&mut redis, sale).await, 9, "its unit is sold once, not back on sale");
    assert!(outbox(&mut redis, sale).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_mysql_refuses_fails_alone_and_the_rest_of_its_batch_is_persisted() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    for user in ["before", "after"] {
        assert_eq!(api.buy(sale, user, None).await.0, 202);
    }
    let mut redis = redis(&stack).await;
    let mut batch: Vec<flashsale::domain::OrderMessage> =
        outbox(&mut redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    // A message no admission wrote: a quantity the orders table's check refuses.
    let bad = flashsale::domain::OrderMessage {
        order_id: OrderId(batch[0].order_id.0 ^ 1),
        user_id: flashsale::UserId::new("mangled").unwrap(),
        quantity: 0,
        ..batch[0].clone()
    };
    batch.insert(1, bad);
    let persist = persist_orders::PersistOrders::new(
        Stores::from_config(&stack.config).await.unwrap(),
        stack.config.max_delay_secs,
    );
    let outcomes = persist.persist(batch.clone()).await;
    assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok(), "{outcomes:?}");
    let db = mysql(&stack).await;
    let mut persisted: Vec<u64> = mysql_orders(&db, sale).await.iter().map(|o| o.0).collect();
    persisted.sort();
    let mut good = vec![batch[0].order_id.0, batch[2].order_id.0];
    good.sort();
    assert_eq!(persisted, good);
    assert_eq!(mysql_sale(&db, sale).await, (10, 2));
    assert!(outbox(&mut redis, sale).await.is_empty());
}

/// A TCP proxy in front of MySQL that goes silent both ways, for good, on a connection
/// whose client sends `pattern`: to the server, a client cut off mid-transaction (no
/// FIN, no RST; its socket stays open after the client gave up).
async fn silencing_proxy(upstream: SocketAddr, pattern: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let silent = Arc::new(AtomicBool::new(false));
            let going_silent = silent.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = client_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    if buffer[..n].windows(pattern.len()).any(|w| w == pattern) {
                        going_silent.store(true, Ordering::SeqCst);
                    }
                    if !going_silent.load(Ordering::SeqCst) && server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                if going_silent.load(Ordering::SeqCst) {
                    // The server's side stays open: it never hears that the client left.
                    std::future::pending::<()>().await;
                }
                drop(server_write);
            });
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 || (!silent.load(Ordering::SeqCst) && client_write.write_all(&buffer[..n]).await.is_err())
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_cut_off_inside_its_transaction_holds_the_sale_for_seconds_not_hours() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    for user in ["cut-off", "next"] {
        assert_eq!(api.buy(sale, user, None).await.0, 202);
    }
    let mut redis = redis(&stack).await;
    let messages: Vec<flashsale::domain::OrderMessage> =
        outbox(&mut redis, sale).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();

    // A consumer whose network goes silent once it has locked the sale's row and sent
    // its insert: its client gives up at its timeout, the server hears nothing more.
    let proxy = silencing_proxy("127.0.0.1:3306".parse().unwrap(), b"INSERT INTO orders").await;
    let mut config = stack.config.clone();
    config.database_url = config.database_url.expose().replace("127.0.0.1:3306", &proxy.to_string()).into();
    let cut = persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.max_delay_secs);
    assert!(cut.persist(vec![messages[0].clone()]).await[0].is_err(), "its client gave up");

    // Another consumer persists the sale's next order once the server lets go of the row
    // (its idle-transaction timeout), not when TCP would have given up, hours later.
    let mut config = stack.config.clone();
    config.breaker_failures = 1000;
    let persist =
        persist_orders::PersistOrders::new(Stores::from_config(&config).await.unwrap(), config.max_delay_secs);
    eventually("the next order persisted", Duration::from_secs(40), || async {
        persist.persist(vec![messages[1].clone()]).await[0].is_ok().then_some(())
    })
    .await;
    // The cut-off consumer's order, redelivered, goes in once too.
    assert!(persist.persist(vec![messages[0].clone()]).await[0].is_ok());
    let db = mysql(&stack).await;
    assert_eq!(mysql_orders(&db, sale).await.len(), 2);
    assert_eq!(mysql_sale(&db, sale).await, (10, 2));
}
