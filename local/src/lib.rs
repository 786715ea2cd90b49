//! `flashsale-local`: the Docker-free stand-in for the AWS pieces around the functions.
//!
//! One process that plays API Gateway ([`aws::gateway`]: routes, throttling, the JWT
//! authorizer), the SQS event source mappings ([`aws::event_source`]), CloudFront
//! ([`aws::edge`]: pages from the bucket) and the EventBridge schedule, and provisions
//! the queues, the lease table, the bucket and the payment provider's keys on the local
//! stand-ins, and registers the payment webhook with the local provider. [`sign_in`] is the
//! development identity provider; [`ops`] what an operator runs against a sale. The function code it
//! runs is the same code each Lambda bootstrap runs.

pub mod aws;
pub mod ops;
pub mod sign_in;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::aws::provision::{provision, Names, Resources};
use flashsale::config::{PaymentKeys, Secrets};
use flashsale::stores::mysql::Mysql;
use flashsale::{Config, Result, Secret};
use tokio::task::JoinHandle;

use crate::aws::event_source::{self, Mapping};
use crate::aws::gateway::Gateway;
use crate::aws::throttle::TokenBucket;
use crate::aws::{edge, gateway};

pub struct Functions {
    pub admit: admit::Admit,
    pub shop: shop_api::ShopApi,
    pub admin: admin_api::AdminApi,
    pub persist: persist_orders::PersistOrders,
    pub close: close_expired::CloseExpired,
    pub reconcile: reconcile::Reconcile,
    pub payments: payment_webhook::PaymentWebhook,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// `FLASHSALE_LOCAL_ADDR` (127.0.0.1:3000): the edge (pages, and `/api/*` forwarded
    /// with the origin header); port 0 picks a free one.
    pub addr: SocketAddr,
    /// `FLASHSALE_LOCAL_API_ADDR` (127.0.0.1, a free port, logged at start): the API
    /// Gateway endpoint itself, which the functions refuse to serve (a request there
    /// skipped the edge).
    pub api_addr: SocketAddr,
    pub config: Config,
    /// `FLASHSALE_LOCAL_QUEUE_PREFIX`: queue names are `<prefix>orders`, `<prefix>order-timeouts`.
    pub queue_prefix: String,
    /// `FLASHSALE_DEV_JWT_SECRET`
    pub jwt_secret: String,
    /// `FLASHSALE_DEV_TOKEN_TTL_SECS` (3600, Cognito's default): the lifetime of the ID and
    /// access tokens of the dev sign-in; the pages renew them with the refresh token.
    pub dev_token_ttl_secs: u64,
    /// `FLASHSALE_LOCAL_RATE` / `FLASHSALE_LOCAL_BURST`: stage throttling.
    pub stage_rate: (f64, u32),
    /// `FLASHSALE_LOCAL_PURCHASE_RATE` / `FLASHSALE_LOCAL_PURCHASE_BURST`: purchase route throttling.
    pub purchase_rate: (f64, u32),
    /// `FLASHSALE_LOCAL_QUEUE_RATE` / `FLASHSALE_LOCAL_QUEUE_BURST`: the waiting rooms' join route.
    pub queue_rate: (f64, u32),
    /// `FLASHSALE_LOCAL_PASS_RATE` / `FLASHSALE_LOCAL_PASS_BURST`: the waiting rooms' pass route.
    pub pass_rate: (f64, u32),
    /// `FLASHSALE_LOCAL_VISIBILITY_SECS`: before a failed message is redelivered.
    pub visibility_timeout_secs: u32,
    /// `FLASHSALE_LOCAL_MAX_RECEIVES`: receives before a message goes to its DLQ.
    pub max_receives: u32,
    /// `FLASHSALE_LOCAL_CONSUMERS`: concurrent batches per queue; 0 runs no consumers.
    pub consumers: usize,
    /// `FLASHSALE_LOCAL_RECONCILE_SECS`: the EventBridge schedule of reconcile; 0 never.
    pub reconcile_every_secs: u64,
    /// `FLASHSALE_LOCAL_PAYMENTS_URL`: the local payment provider (localstripe, started
    /// by scripts/services.sh). Its API, its Stripe.js and the webhook's registration.
    pub payments_url: String,
    /// `FLASHSALE_LOCAL_WEBHOOK_SECRETS`: the webhook's signing secrets, comma separated;
    /// the provider signs with the first, the others are still accepted (a rotation).
    /// Unset, one made up at start.
    pub webhook_secrets: Vec<String>,
    /// Apply `migrations/` on start, as the deploy's `migrate` function does on AWS.
    /// Off for a database user with only the functions' rights.
    pub migrate: bool,
    /// Each function's own MySQL and Redis users, by function name (as on AWS; see
    /// `flashsale::stores::access`); a function not named here uses `config`'s.
    pub function_users: BTreeMap<String, FunctionUser>,
}

/// A function's own sign-ins.
#[derive(Clone, Debug)]
pub struct FunctionUser {
    pub database_url: flashsale::Secret,
    /// Its Redis ACL user and password.
    pub redis: Option<(String, flashsale::Secret)>,
}

/// `name` parsed, `default` when unset or empty; a value that does not parse is refused
/// rather than silently replaced by the default.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => {
            v.parse().map_err(|_| flashsale::Error::Config(format!("{name}={v:?} is not a valid value")))
        }
        _ => Ok(default),
    }
}

impl Options {
    pub fn from_env() -> Result<Self> {
        Ok(Options {
            addr: env_or("FLASHSALE_LOCAL_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?,
            api_addr: env_or("FLASHSALE_LOCAL_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 0)))?,
            config: {
                let mut config = Config::from_env()?;
                // The local provider has no rate limit, and the tests' stacks pay hundreds
                // of orders at once: unless set, the account's budget does not bind here
                // (a test that proves it sets a small one).
                if std::env::var("FLASHSALE_PROVIDER_CALLS_PER_SEC").is_err() {
                    config.payments.calls_per_sec = 1_000;
                }
                config
            },
            queue_prefix: env_or("FLASHSALE_LOCAL_QUEUE_PREFIX", "flashsale-".to_string())?,
            jwt_secret: env_or("FLASHSALE_DEV_JWT_SECRET", sign_in::DEFAULT_DEV_SECRET.to_string())?,
            dev_token_ttl_secs: match env_or("FLASHSALE_DEV_TOKEN_TTL_SECS", 3600)? {
                0 => return Err(flashsale::Error::Config("FLASHSALE_DEV_TOKEN_TTL_SECS must be at least 1".into())),
                secs => secs,
            },
            stage_rate: (env_or("FLASHSALE_LOCAL_RATE", 10_000.0)?, env_or("FLASHSALE_LOCAL_BURST", 5_000)?),
            purchase_rate: (
                env_or("FLASHSALE_LOCAL_PURCHASE_RATE", 5_000.0)?,
                env_or("FLASHSALE_LOCAL_PURCHASE_BURST", 2_000)?,
            ),
            queue_rate: (env_or("FLASHSALE_LOCAL_QUEUE_RATE", 5_000.0)?, env_or("FLASHSALE_LOCAL_QUEUE_BURST", 5_000)?),
            pass_rate: (env_or("FLASHSALE_LOCAL_PASS_RATE", 2_000.0)?, env_or("FLASHSALE_LOCAL_PASS_BURST", 1_000)?),
            visibility_timeout_secs: env_or("FLASHSALE_LOCAL_VISIBILITY_SECS", 5)?,
            max_receives: env_or("FLASHSALE_LOCAL_MAX_RECEIVES", 5)?,
            consumers: env_or("FLASHSALE_LOCAL_CONSUMERS", 2)?,
            reconcile_every_secs: env_or("FLASHSALE_LOCAL_RECONCILE_SECS", 30)?,
            payments_url: env_or("FLASHSALE_LOCAL_PAYMENTS_URL", "http://127.0.0.1:8420".to_string())?,
            webhook_secrets: env_or("FLASHSALE_LOCAL_WEBHOOK_SECRETS", String::new())?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            migrate: true,
            function_users: BTreeMap::new(),
        })
    }
}

/// A running local stack. Dropping it stops its server and consumers.
pub struct Stack {
    pub addr: SocketAddr,
    /// The API Gateway endpoint, beside the edge: refused.
    pub api_addr: SocketAddr,
    /// The configuration the functions run with (queue URLs filled in, the secrets below
    /// named).
    pub config: Config,
    /// The secrets the stack made, which its functions read at init: the provider's keys
    /// (for the tests that sign deliveries themselves), the origin value its edge sends,
    /// the waiting rooms' key.
    pub secrets: Secrets,
    pub resources: Resources,
    pub functions: Arc<Functions>,
    /// The requests that reached a function through the gateway, by path.
    pub reached: Arc<gateway::Reached>,
    pub jwt_secret: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Stack {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token(&self, user: &str, admin: bool) -> String {
        sign_in::token(&self.jwt_secret, user, admin, 24 * 3600)
    }
}

/// Provisions the resources, runs the migrations, builds every function once and
/// starts serving.
pub async fn start(options: Options) -> Result<Stack> {
    let mut config = options.config.clone();
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let names = Names {
        prefix: options.queue_prefix.clone(),
        lease_table: config.aws.lease_table.clone(),
        pending_orders_table: config.aws.pending_orders_table.clone(),
        bucket: config.aws.bucket.clone(),
        max_receives: options.max_receives,
        visibility_timeout_secs: options.visibility_timeout_secs,
    };
    let resources = provision(&sdk, &names).await?;
    config.aws.orders_queue_url = resources.orders_queue_url.clone();
    config.aws.timeouts_queue_url = resources.timeouts_queue_url.clone();
    let payments = local_payments(&sdk, &options, &mut config).await?;
    let secrets = local_secrets(&sdk, &options, &mut config, payments).await?;
    let origin = secrets.origin_values[0]
        .expose()
        .parse()
        .map_err(|_| flashsale::Error::Config("the origin value is not a header value".into()))?;
    if options.migrate {
        Mysql::connect(&config)?.migrate().await?;
    }

    let config_of = async |function: &str| function_config(&sdk, &options, &config, function).await;
    let functions = Arc::new(Functions {
        admit: admit::Admit::from_config(&config_of("admit").await?).await?,
        shop: shop_api::ShopApi::from_config(&config_of("shop-api").await?).await?,
        admin: admin_api::AdminApi::from_config(&config_of("admin-api").await?).await?,
        persist: persist_orders::PersistOrders::from_config(&config_of("persist-orders").await?).await?,
        close: close_expired::CloseExpired::from_config(&config_of("close-expired").await?).await?,
        reconcile: reconcile::Reconcile::from_config(&config_of("reconcile").await?).await?,
        payments: payment_webhook::PaymentWebhook::from_config(&config_of("payment-webhook").await?).await?,
    });

    let mut tasks = Vec::new();
    if options.consumers > 0 {
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let f = functions.clone();
        tasks.extend(event_source::spawn(
            sqs.clone(),
            Mapping { queue_url: resources.orders_queue_url.clone(), batch_size: 10, concurrency: options.consumers },
            move |event| {
                let f = f.clone();
                async move { f.persist.handle(event).await }
            },
        ));
        let f = functions.clone();
        tasks.extend(event_source::spawn(
            sqs,
            Mapping { queue_url: resources.timeouts_queue_url.clone(), batch_size: 10, concurrency: options.consumers },
            move |event| {
                let f = f.clone();
                async move { f.close.handle(event).await }
            },
        ));
    }

    if options.reconcile_every_secs > 0 {
        let f = functions.clone();
        let period = std::time::Duration::from_secs(options.reconcile_every_secs);
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = f.reconcile.run().await {
                    tracing::warn!(error = %e, "reconcile run failed");
                }
            }
        }));
    }

    let reached = Arc::new(gateway::Reached::default());
    let gateway = Arc::new(Gateway {
        functions: functions.clone(),
        tokens: sign_in::Verifier::new(options.jwt_secret.clone()),
        stage_bucket: TokenBucket::new(options.stage_rate.0, options.stage_rate.1),
        route_buckets: [
            ("POST /api/sales/{id}/purchase", options.purchase_rate),
            ("POST /api/sales/{id}/queue", options.queue_rate),
            ("POST /api/sales/{id}/pass", options.pass_rate),
        ]
        .into_iter()
        .map(|(route, (rate, burst))| (route, TokenBucket::new(rate, burst)))
        .collect(),
        edge_cache: Default::default(),
        reached: reached.clone(),
        origin,
    });
    let edge = Arc::new(edge::Edge {
        bucket: flashsale::stores::s3::Bucket::new(flashsale::stores::s3::client(&sdk), config.aws.bucket.clone()),
        jwt_secret: options.jwt_secret.clone(),
        token_ttl_secs: options.dev_token_ttl_secs,
        codes: Default::default(),
    });
    let direct = axum::Router::new()
        .route("/api", axum::routing::any(gateway::api))
        .route("/api/{*rest}", axum::routing::any(gateway::api))
        .with_state(gateway.clone());
    let app = axum::Router::new()
        .route("/api", axum::routing::any(gateway::via_edge))
        .route("/api/{*rest}", axum::routing::any(gateway::via_edge))
        .with_state(gateway)
        .merge(
            axum::Router::new()
                .route("/dev/oauth2/authorize", axum::routing::get(edge::authorize_page))
                .route("/dev/oauth2/code", axum::routing::post(edge::issue_code))
                .route("/dev/oauth2/token", axum::routing::post(edge::token))
                .fallback(edge::static_file)
                .with_state(edge),
        );
    let (addr, edge_task) = serve(options.addr, app, "the local edge").await?;
    let (api_addr, api_task) = serve(options.api_addr, direct, "the local API endpoint").await?;
    tasks.extend([edge_task, api_task]);
    let own = format!("http://{addr}/api/payments/webhook");
    let payments = secrets.payment_keys.as_ref().expect("the stack's own keys");
    register_webhook(&options.payments_url, payments, payments.secret_key.expose(), &own).await?;
    tracing::info!(%addr, %api_addr, "local stack serving: the edge, and the API endpoint it forwards to");
    Ok(Stack { addr, api_addr, config, secrets, resources, functions, reached, jwt_secret: options.jwt_secret, tasks })
}

/// Serves `app` on `addr` (port 0: a free one) until the stack stops; where it listens.
async fn serve(addr: SocketAddr, app: axum::Router, what: &'static str) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| flashsale::Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| flashsale::Error::Internal(e.to_string()))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok((bound, task))
}

/// The payment provider's keys, as the stack's functions find them: an account of the
/// local provider of the stack's own (its secret key names it, so stacks side by side
/// see only their own events), in a Secrets Manager secret the config names.
async fn local_payments(sdk: &aws_config::SdkConfig, options: &Options, config: &mut Config) -> Result<PaymentKeys> {
    let mut signing = options.webhook_secrets.clone();
    if signing.is_empty() {
        signing.push(format!("whsec_{:032x}", rand::random::<u128>()));
    }
    let keys = serde_json::json!({
        "secret_key": format!("sk_test_{}", options.queue_prefix.trim_end_matches('-')),
        "webhook_secrets": signing,
    });
    let name = format!("{}payments", options.queue_prefix);
    crate::aws::provision::secret(sdk, &name, &keys.to_string()).await?;
    config.payments.api_url = options.payments_url.clone();
    // Stacks side by side name their payments apart, as two stacks on one account do.
    config.payments.stack_name = options.queue_prefix.trim_end_matches('-').to_string();
    config.payments.js_url = format!("{}/js.stripe.com/v3/", options.payments_url.trim_end_matches('/'));
    config.payments.publishable_key = "pk_test_flashsale_local".into();
    config.payments.keys_secret = Some(name);
    serde_json::from_value(keys).map_err(|e| flashsale::Error::Internal(e.to_string()))
}

/// The edge's origin value and the waiting rooms' key, made for this stack and put in
/// Secrets Manager secrets its functions read at init, as they do on AWS; the values
/// returned beside the provider's keys, for the local edge and the tests.
async fn local_secrets(
    sdk: &aws_config::SdkConfig,
    options: &Options,
    config: &mut Config,
    payment_keys: PaymentKeys,
) -> Result<Secrets> {
    let origin = format!("{:032x}", rand::random::<u128>());
    let origin_secret = format!("{}origin", options.queue_prefix);
    crate::aws::provision::secret(sdk, &origin_secret, &serde_json::json!({ "current": origin }).to_string()).await?;
    config.site.origin_secret = Some(origin_secret);
    // One key for the stack's functions, as the secret is one for every container.
    let room_key = format!("{:064x}", rand::random::<u128>());
    let room_secret = format!("{}waiting-room-key", options.queue_prefix);
    crate::aws::provision::secret(sdk, &room_secret, &room_key).await?;
    config.waiting_room.key_secret = Some(room_secret);
    Ok(Secrets {
        redis_user: None,
        payment_keys: Some(payment_keys),
        origin_values: vec![Secret::new(origin)],
        room_key: Some(Secret::new(room_key)),
    })
}

/// `function`'s configuration: the stack's, signed in as the function's own MySQL and
/// Redis users when it has them (its Redis user in a secret of its own, read at init).
async fn function_config(
    sdk: &aws_config::SdkConfig,
    options: &Options,
    config: &Config,
    function: &str,
) -> Result<Config> {
    let mut own = config.clone();
    if let Some(user) = options.function_users.get(function) {
        own.mysql.url = user.database_url.clone();
        if let Some((name, password)) = &user.redis {
            let secret = format!("{}redis-{function}", options.queue_prefix);
            let value = serde_json::json!({ "username": name, "password": password.expose() });
            crate::aws::provision::secret(sdk, &secret, &value.to_string()).await?;
            own.redis.auth_secret = Some(secret);
        }
    }
    Ok(own)
}

/// Tells the local provider where the account's events go, signed with the first
/// signing secret, as one registers a webhook endpoint in the provider's dashboard.
/// `endpoint` names it among the account's endpoints (the account's own name is the
/// stack's); registering a name again points it at `url`.
pub async fn register_webhook(provider: &str, keys: &PaymentKeys, endpoint: &str, url: &str) -> Result<()> {
    let account = keys.secret_key.expose();
    let register = format!("{}/_config/webhooks/{endpoint}", provider.trim_end_matches('/'));
    let form = [("url", url), ("secret", keys.webhook_secrets[0].expose()), ("api_key", account)];
    let unreachable = |e: String| flashsale::Error::Config(format!("the local payment provider at {provider}: {e}"));
    let answer =
        reqwest::Client::new().post(&register).form(&form).send().await.map_err(|e| unreachable(e.to_string()))?;
    if !answer.status().is_success() {
        return Err(unreachable(format!("webhook registration answered {}", answer.status())));
    }
    Ok(())
}
