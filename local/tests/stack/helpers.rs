//! Helpers shared by the integration tests: stacks, sales, shoppers, the stores' state.

use std::future::Future;
use std::time::{Duration, Instant};

use flashsale_local::{Options, Stack};
use serde_json::{json, Value};

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
    let shared_table = options.config.pending_orders_table.clone();
    customize(&mut options);
    // a pending-orders table of its queues' own (stacks on one prefix share it): reconcile, in
    // any test, sends on and forgets every kept order of each sale it looks at, and the
    // tests share one MySQL.
    if options.config.pending_orders_table == shared_table {
        options.config.pending_orders_table = format!("{}pending-orders", options.queue_prefix);
    }
    flashsale_local::start(options).await.expect("the local stack starts (are the services up? scripts/services.sh up)")
}

/// A stack on a MySQL database of its own, for a test whose sales another test's
/// reconcile must not touch: a run over every open sale (which several tests make)
/// would otherwise close this test's overdue orders under it.
pub async fn stack_with_own_database(name: &str, customize: impl FnOnce(&mut Options)) -> Stack {
    let config = flashsale::Config::from_env().unwrap();
    let server = config.database_url.expose().rsplit_once('/').unwrap().0.to_string();
    let database = format!("flashsale_{name}_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await.unwrap();
    let stack = stack_with(|o| {
        customize(o);
        o.config.database_url = format!("{server}/{database}").into();
    })
    .await;
    // Its sales share the tests' Redis database: their ids start far from everyone else's.
    let first_id = 1_000_000_000 + u64::from(rand::random::<u32>() % 1_000_000_000);
    sqlx::query(&format!("ALTER TABLE sales AUTO_INCREMENT = {first_id}")).execute(&mysql(&stack).await).await.unwrap();
    stack
}

/// The Redis keys of a sale, as the functions name them.
pub fn keys(sale: u64) -> flashsale::stores::redis::SaleKeys {
    flashsale::stores::redis::SaleKeys::new(flashsale::SaleId(sale))
}

pub async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// A sale spec: `starts_in` and `lasts` in seconds from now.
pub fn sale_spec(stock: u32, limit: u32, window_secs: u32, starts_in: i64, lasts: i64) -> Value {
    let now = chrono::Utc::now();
    json!({
        "name": "Test phone",
        "description": "<b>escaped</b>",
        "price_cents": 1000,
        "stock": stock,
        "per_user_limit": limit,
        "starts_at": now + chrono::Duration::seconds(starts_in),
        "ends_at": now + chrono::Duration::seconds(starts_in + lasts),
        "payment_window_secs": window_secs,
    })
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub admin: String,
    secret: String,
    /// The local payment provider's API.
    pub payments: String,
}

/// Stripe's test cards: one that pays, one that is declined.
pub const CARD_OK: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";

impl Api {
    pub fn new(stack: &Stack) -> Self {
        flashsale::stores::aws::install_crypto_provider();
        Api {
            http: reqwest::Client::builder().pool_max_idle_per_host(200).build().unwrap(),
            base: stack.url(""),
            admin: stack.token("admin", true),
            secret: stack.jwt_secret.clone(),
            payments: stack.config.payments_api_url.clone(),
        }
    }

    /// The same client and tokens, against the stack at `base`.
    pub fn at(mut self, base: String) -> Self {
        self.base = base;
        self
    }

    pub fn token(&self, user: &str) -> String {
        flashsale_local::sign_in::token(&self.secret, user, false, 3600)
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the stack answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates and publishes a sale, returning its id.
    pub async fn sale(&self, spec: Value) -> u64 {
        let (status, sale) = self.call("POST", "/api/admin/sales", Some(&self.admin), Some(spec)).await;
        assert_eq!(status, 201, "{sale}");
        let id = sale["id"].as_u64().unwrap();
        let (status, body) =
            self.call("POST", &format!("/api/admin/sales/{id}/publish"), Some(&self.admin), None).await;
        assert_eq!(status, 200, "{body}");
        id
    }

    pub async fn buy(&self, sale: u64, user: &str, quantity: Option<u32>) -> (u16, Value) {
        let body = quantity.map(|q| json!({ "quantity": q }));
        self.call("POST", &format!("/api/sales/{sale}/purchase"), Some(&self.token(user)), body).await
    }

    pub async fn order(&self, user: &str, order: &str) -> (u16, Value) {
        self.call("GET", &format!("/api/orders/{order}"), Some(&self.token(user)), None).await
    }

    /// What the page asks for before it pays: the order's payment and client secret.
    pub async fn payment(&self, user: &str, order: &str) -> (u16, Value) {
        self.call("POST", &format!("/api/orders/{order}/payment"), Some(&self.token(user)), None).await
    }

    /// Confirms a payment with a test card at the provider, as the provider's script
    /// does from the page (publishable key and client secret): the provider's answer.
    pub async fn confirm_card(&self, client_secret: &str, card: &str) -> (u16, Value) {
        let intent = client_secret.split("_secret_").next().unwrap();
        let body = json!({
            "key": "pk_test_flashsale_local",
            "client_secret": client_secret,
            "payment_method_data": {"type": "card", "card": {"number": card, "exp_month": "12", "exp_year": "2034", "cvc": "123"}},
        });
        let url = format!("{}/v1/payment_intents/{intent}/confirm", self.payments);
        let response = self.http.post(url).json(&body).send().await.expect("the payment provider answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// A shopper pays `order` with `card` through the provider: the provider's answer
    /// to the confirmation. The order is PAID only once the provider's webhook arrived.
    pub async fn pay(&self, user: &str, order: &str, card: &str) -> (u16, Value) {
        let (status, payment) = self.payment(user, order).await;
        assert_eq!(status, 200, "a payment for {order}: {payment}");
        self.confirm_card(payment["client_secret"].as_str().unwrap(), card).await
    }

    /// An UNPAID order of `user` in `sale`, once MySQL has it.
    pub async fn unpaid_order(&self, sale: u64, user: &str) -> String {
        let (status, body) = self.buy(sale, user, None).await;
        assert_eq!(status, 202, "{body}");
        let order = body["order_id"].as_str().unwrap().to_string();
        self.await_status(user, &order, "UNPAID").await;
        order
    }

    /// Posts a delivery to the stack's webhook through the edge, as the provider does.
    pub async fn post_delivery(&self, body: &str, signature: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/payments/webhook", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .expect("the stack answers")
    }

    /// A delivery's `(status, body)`.
    pub async fn deliver(&self, body: &str, signature: &str) -> (u16, Value) {
        let response = self.post_delivery(body, signature).await;
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Waits for the order to be `status` (through the shop API, as its owner).
    pub async fn await_status(&self, user: &str, order: &str, status: &str) -> Value {
        eventually(&format!("order {order} {status}"), Duration::from_secs(20), || async {
            let (_, body) = self.order(user, order).await;
            (body["status"] == status).then_some(body)
        })
        .await
    }

    /// The payment intent as the provider has it (with the stack's secret key).
    pub async fn intent(&self, stack: &Stack, id: &str) -> Value {
        let key = stack.config.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
        let url = format!("{}/v1/payment_intents/{id}", self.payments);
        self.http.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap()
    }

    /// The amount the provider refunded on an intent.
    pub async fn refunded(&self, stack: &Stack, intent: &str) -> u64 {
        let key = stack.config.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
        let url = format!("{}/v1/refunds?payment_intent={intent}", self.payments);
        let refunds: Value = self.http.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        refunds["data"].as_array().unwrap().iter().map(|r| r["amount"].as_u64().unwrap()).sum()
    }

    /// Points the stack's webhook endpoint at the provider to `url` (the stack's own when
    /// `None`), as one edits an endpoint in the provider's dashboard.
    pub async fn webhook_to(&self, stack: &Stack, url: Option<&str>) {
        let keys = stack.config.payment_keys.as_ref().unwrap();
        let own = stack.url("/api/payments/webhook");
        flashsale_local::register_webhook(&self.payments, keys, keys.secret_key.expose(), url.unwrap_or(&own))
            .await
            .unwrap();
    }
}

/// The tests that load the machine (a crowd of thousands, qemu, a browser) or that check
/// what they see against a schedule of their own (the failover, the nemesis) run one at
/// a time: on two cores, two of them together starve each other past their bounds.
/// Lighter tests still run beside whichever holds this.
pub async fn one_heavy_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// Polls `check` until it yields a value, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn redis(stack: &Stack) -> redis::aio::MultiplexedConnection {
    redis::Client::open(stack.config.redis_url.expose()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

pub async fn mysql(stack: &Stack) -> sqlx::MySqlPool {
    sqlx::MySqlPool::connect(stack.config.database_url.expose()).await.unwrap()
}

/// `(stock, sold)` of a sale in MySQL.
pub async fn mysql_sale(db: &sqlx::MySqlPool, sale: u64) -> (u32, u32) {
    sqlx::query_as("SELECT stock, sold FROM sales WHERE id = ?").bind(sale).fetch_one(db).await.unwrap()
}

pub async fn redis_stock(conn: &mut redis::aio::MultiplexedConnection, sale: u64) -> i64 {
    redis::cmd("GET").arg(keys(sale).stock).query_async(conn).await.unwrap()
}

/// An SQS event as Lambda delivers it, one record per body.
pub fn sqs_event(bodies: &[String]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m{i}-{:08x}", rand::random::<u32>()),
                "receiptHandle": "r",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:test",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// The outbox entries of a sale, as the JSON bodies the admission sent.
pub async fn outbox(conn: &mut redis::aio::MultiplexedConnection, sale: u64) -> Vec<String> {
    redis::cmd("HVALS").arg(keys(sale).outbox).query_async(conn).await.unwrap()
}

/// Orders of a sale in MySQL: `(order id, user, status)`.
pub async fn mysql_orders(db: &sqlx::MySqlPool, sale: u64) -> Vec<(u64, String, String)> {
    sqlx::query_as("SELECT id, CAST(user_id AS CHAR), status FROM orders WHERE sale_id = ? ORDER BY id")
        .bind(sale)
        .fetch_all(db)
        .await
        .unwrap()
}

/// AWS clients pointed at a port where nothing listens: SQS (or any service) down.
pub async fn unreachable_aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url("http://127.0.0.1:9").load().await
}

/// A client of the stack's account at the local payment provider.
pub fn provider(stack: &Stack) -> flashsale::payments::Provider {
    flashsale::payments::Provider::from_config(&stack.config).expect("the stack's payment keys")
}

/// A sale as MySQL has it, for calling reconcile on it.
pub async fn sale_row(stack: &Stack, sale: u64) -> flashsale::Sale {
    flashsale::stores::mysql::Mysql::connect(&stack.config)
        .unwrap()
        .sale(flashsale::SaleId(sale))
        .await
        .unwrap()
        .unwrap()
}

/// The Lambda request API Gateway makes of `user` pressing "Buy" in `sale`.
pub fn purchase_request(sale: u64, user: &str) -> lambda_http::Request {
    let claims = Some([("sub".to_string(), user.to_string())].into());
    flashsale_local::aws::gateway::lambda_request("POST", &format!("/api/sales/{sale}/purchase"), claims, b"")
}

/// An `admit` of the test's own, whose SQS is reached through `sqs` and whose DynamoDB
/// pending_orders through `pending_orders`: pass [`unreachable_aws`] to take either down. Its worker
/// id is leased from the lease table every stack uses, as a container's is: a fixed one
/// could be the one a stack running beside it leased, and two generators of one worker
/// id mint the same order id in the same millisecond.
pub async fn admit_with(
    config: &flashsale::Config,
    sqs: &aws_config::SdkConfig,
    pending_orders: &aws_config::SdkConfig,
) -> admit::Admit {
    let live = flashsale::stores::aws::sdk_config(config).await;
    let ids = flashsale::ids::IdGenerator::leased(
        flashsale::ids::leases::WorkerLeases::from_config(&live, config),
        std::sync::Arc::new(flashsale::clock::SystemClock),
    )
    .await;
    assert!(ids.worker().is_some(), "a worker id leased");
    let stores = flashsale::stores::Stores::new(pending_orders, config).unwrap();
    let stores =
        flashsale::stores::Stores { queue: Box::new(flashsale::stores::sqs::Queue::new(sqs, config)), ..stores };
    admit::Admit::new(stores, ids, &flashsale::Config { sold_out_ttl: Duration::ZERO, ..config.clone() })
}

/// A redis-server of the test's own, on a free port, that it can restart empty.
pub struct OwnRedis {
    pub port: u16,
    child: tokio::process::Child,
    password: Option<String>,
    /// Where its self-signed certificate is, when it speaks only TLS.
    tls: Option<std::path::PathBuf>,
    /// Further arguments of its command line.
    extra: Vec<String>,
}

impl OwnRedis {
    pub async fn start() -> Self {
        OwnRedis::start_with(None, false).await
    }

    /// With `password`, the server refuses every command before `AUTH`; with `tls`, it
    /// speaks only TLS, as ElastiCache does.
    pub async fn start_with(password: Option<&str>, tls: bool) -> Self {
        let port = free_port().await;
        let password = password.map(str::to_string);
        let tls = tls.then(|| {
            let dir = std::env::temp_dir().join(format!("flashsale-redis-tls-{port}"));
            std::fs::create_dir_all(&dir).unwrap();
            let made = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
                .args(["-keyout", "key.pem", "-out", "cert.pem"])
                .current_dir(&dir)
                .output()
                .expect("openssl is installed");
            assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
            dir
        });
        let child = Self::spawn(port, password.as_deref(), tls.as_deref(), &[]).await;
        OwnRedis { port, child, password, tls, extra: vec![] }
    }

    /// A replica of the server at `primary` (or of a proxy in front of it).
    pub async fn replica_of(primary: std::net::SocketAddr) -> Self {
        let port = free_port().await;
        let extra = vec!["--replicaof".to_string(), primary.ip().to_string(), primary.port().to_string()];
        let child = Self::spawn(port, None, None, &extra).await;
        let replica = OwnRedis { port, child, password: None, tls: None, extra };
        eventually("the replica in sync with its primary", Duration::from_secs(20), || async {
            let client = redis::Client::open(replica.url()).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let info: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await.ok()?;
            info.contains("master_link_status:up").then_some(())
        })
        .await;
        replica
    }

    /// SIGKILL: the server is gone at once, with whatever it had not replicated.
    pub fn kill(&mut self) {
        self.child.start_kill().unwrap();
    }

    async fn spawn(
        port: u16,
        password: Option<&str>,
        tls: Option<&std::path::Path>,
        extra: &[String],
    ) -> tokio::process::Child {
        let mut args = match tls {
            None => vec!["--port".to_string(), port.to_string()],
            Some(dir) => {
                let file = |name: &str| dir.join(name).display().to_string();
                let mut args = vec!["--port".to_string(), "0".to_string(), "--tls-port".to_string(), port.to_string()];
                args.extend([
                    "--tls-cert-file".to_string(),
                    file("cert.pem"),
                    "--tls-key-file".to_string(),
                    file("key.pem"),
                ]);
                args.extend([
                    "--tls-ca-cert-file".to_string(),
                    file("cert.pem"),
                    "--tls-auth-clients".to_string(),
                    "no".to_string(),
                ]);
                args
            }
        };
        // A replica's first sync starts at once (Redis waits 5 s by default for others).
        args.extend(
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
                .map(String::from),
        );
        args.extend(extra.iter().cloned());
        // A replica writes the primary's snapshot to its directory while it syncs.
        let dir = std::env::temp_dir().join(format!("flashsale-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        args.extend(["--dir".to_string(), dir.display().to_string()]);
        if let Some(password) = password {
            args.extend(["--requirepass".to_string(), password.to_string()]);
        }
        let child = tokio::process::Command::new("redis-server")
            .args(args)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/services.sh installs it)");
        eventually("own redis-server up", Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
        child
    }

    /// Over TLS the certificate is self-signed: the client checks nothing of it
    /// (`#insecure`), but the connection is TLS all the same.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://127.0.0.1:{}/#insecure", self.port),
        }
    }

    /// A restart that loses everything, as a failover to an empty replica does.
    pub async fn restart_empty(&mut self) {
        self.child.kill().await.unwrap();
        self.child = Self::spawn(self.port, self.password.as_deref(), self.tls.as_deref(), &self.extra).await;
    }
}

/// A port nobody listens on now, for a server the test starts.
pub async fn free_port() -> u16 {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port()
}

/// A TCP proxy the test owns in front of a server, which can hold back the server's next
/// answers for `lag` each: a call that times out although the server did the work, or a
/// dependency slow for a while.
pub struct LaggingProxy {
    pub addr: std::net::SocketAddr,
    /// Answers still to hold back.
    to_lag: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LaggingProxy {
    pub async fn start(upstream: std::net::SocketAddr, lag: Duration) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to_lag = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = to_lag.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let Ok(server) = TcpStream::connect(upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = server_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        if counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                            tokio::time::sleep(lag).await;
                        }
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        LaggingProxy { addr, to_lag }
    }

    /// Holds back the next `answers` answers (`u64::MAX`: from now on).
    pub fn lag_next_answers(&self, answers: u64) {
        self.to_lag.store(answers, std::sync::atomic::Ordering::SeqCst);
    }
}

// The waiting room, as a page goes through it.

/// A sale behind a waiting room.
pub fn room_spec(mode: &str, stock: u32, limit: u32, rate: u32, starts_in: i64) -> Value {
    let mut spec = sale_spec(stock, limit, 600, starts_in, 3600);
    spec["waiting_room"] = json!({ "mode": mode, "rate": rate, "difficulty": 1000 });
    spec
}

/// Joins as a page does: fetches a challenge, solves it, sends the proof.
pub async fn join(api: &Api, sale: u64, user: &str) -> (u16, Value) {
    let token = api.token(user);
    let (status, challenge) = api.call("GET", &format!("/api/sales/{sale}/queue/challenge"), Some(&token), None).await;
    assert_eq!(status, 200, "{challenge}");
    let challenge: flashsale::waiting_room::Challenge = serde_json::from_value(challenge).unwrap();
    let proof = flashsale::waiting_room::solve(&challenge).expect("a challenge is solvable");
    api.call("POST", &format!("/api/sales/{sale}/queue"), Some(&token), Some(json!({ "proof": proof }))).await
}

pub async fn pass(api: &Api, sale: u64, user: &str) -> (u16, Value) {
    api.call("POST", &format!("/api/sales/{sale}/pass"), Some(&api.token(user)), None).await
}

pub async fn buy_with(api: &Api, sale: u64, user: &str, pass: &str) -> (u16, Value) {
    let body = json!({ "quantity": 1, "pass": pass });
    api.call("POST", &format!("/api/sales/{sale}/purchase"), Some(&api.token(user)), Some(body)).await
}
