//! `flashsale-local`: run the whole system on this machine, load it, audit it.
//!
//! `flashsale-local --help` and `flashsale-local <command> --help` describe every
//! command and flag. Exit codes: 0 done, 1 failed (an error, or an audit that found a
//! broken invariant), 2 bad usage.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use flashsale::domain::{NewSale, SaleDraft};
use flashsale_local::ops::audit;
use flashsale_local::ops::load::{LoadOptions, Room, Tokens};
use flashsale_local::{sign_in, Options};

// The local stack hosts every function in one process, serving a crowd on many
// connections at once: under the stampede glibc's malloc took over a quarter of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flashsale-local",
    version,
    about = "The flash-sale system on this machine: the local stack, dev tokens, load and audit"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the local stack on FLASHSALE_LOCAL_ADDR (127.0.0.1:3000); the default command
    Serve {
        /// Create and publish a demo sale, and print a shopper token and a curl line
        #[arg(long)]
        demo: bool,
    },
    /// Print a dev token (HS256 with FLASHSALE_DEV_JWT_SECRET; local use only)
    Token {
        /// The shopper (`sub`)
        #[arg(long)]
        user: String,
        /// In the `admin` group
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds
        #[arg(long, default_value_t = 24 * 3600)]
        ttl_secs: u64,
        /// Print this many tokens instead, one per line, for shoppers `<user>-0`,
        /// `<user>-1`, … (a crowd for a load tool such as wrk)
        #[arg(long)]
        count: Option<u32>,
    },
    /// Apply migrations/ to FLASHSALE_DATABASE_URL
    Migrate,
    /// Move dead letters back to their queue
    Redrive { dlq_url: String, queue_url: String },
    /// A stampede against a base URL, then the audit of the sale
    Load(LoadArgs),
    /// Check a sale's invariants in MySQL and Redis; exits 1 when one fails
    Audit {
        #[arg(long)]
        sale: u64,
    },
    /// The staging smoke test through a deployed stack's site: a sale created, bought by
    /// two shoppers, one paid, the other closed. Tokens come from the environment:
    /// FLASHSALE_SMOKE_ADMIN_TOKEN (an admin's) and FLASHSALE_SMOKE_SHOPPER_TOKENS (two
    /// shoppers', comma separated). Exits 1 at the first step that fails
    Smoke(SmokeArgs),
    /// Milliseconds from start until each bootstrap asks for work
    InitTime {
        #[arg(required = true)]
        bootstraps: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct LoadArgs {
    /// Where the API is
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    base_url: String,
    /// Buy in this sale; else one is created and published
    #[arg(long)]
    sale: Option<u64>,
    /// Stock of the created sale
    #[arg(long, default_value_t = 1000)]
    stock: u32,
    /// Per-user limit of the created sale
    #[arg(long, default_value_t = 1)]
    limit: u32,
    #[arg(long, default_value_t = 20_000)]
    shoppers: usize,
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Spread the start of the requests over this many seconds
    #[arg(long, default_value_t = 0.0)]
    ramp_secs: f64,
    /// Retry requests the gateway throttled (429)
    #[arg(long)]
    retry_429: bool,
    /// One token per line, for a deployment; else dev tokens are signed
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Admin token to create the sale with (dev token by default)
    #[arg(long)]
    admin_token: Option<String>,
    /// Write the report (load and audit) to this file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip the audit
    #[arg(long)]
    no_audit: bool,
    /// How long to wait for every admitted order to reach MySQL before the audit
    #[arg(long, default_value_t = 300)]
    settle_secs: u64,
    /// Each request is a shopper's way through the sale's waiting room: the challenge
    /// solved, the join, the pass once served, the purchase with it
    #[arg(long)]
    waiting_room: bool,
    /// The created sale's room: shoppers let through a second
    #[arg(long, default_value_t = 100_000)]
    room_rate: u32,
    /// The created sale's room: the proof of work's difficulty
    #[arg(long, default_value_t = 1_000)]
    room_difficulty: u32,
}

#[derive(Args)]
struct SmokeArgs {
    /// The site (the stack's SiteUrl output)
    #[arg(long)]
    site_url: String,
    /// The payment provider's API, to pay with its test card (with --publishable-key)
    #[arg(long, default_value = "https://api.stripe.com")]
    payments_api: String,
    /// The provider's publishable test key; without it the payment step is skipped
    #[arg(long)]
    publishable_key: Option<String>,
    /// The smoke sale's payment window: the close step waits this long
    #[arg(long, default_value_t = 30)]
    window_secs: u32,
    /// How long each other step may take to show its effect
    #[arg(long, default_value_t = 120)]
    within_secs: u64,
}

type Outcome = Result<(), Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Outcome {
    match Cli::parse().command.unwrap_or(Command::Serve { demo: false }) {
        Command::Serve { demo } => serve(demo).await,
        Command::Token { user, admin, ttl_secs, count } => {
            let users: Vec<String> = match count {
                None => vec![user],
                Some(count) => (0..count).map(|i| format!("{user}-{i}")).collect(),
            };
            let secret = dev_secret();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for user in &users {
                writeln!(out, "{}", sign_in::token(&secret, user, admin, ttl_secs))?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Migrate => {
            let config = flashsale::Config::from_env()?;
            flashsale::stores::mysql::Mysql::connect(&config)?.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Redrive { dlq_url, queue_url } => {
            let config = flashsale::Config::from_env()?;
            let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&config).await);
            let moved = flashsale_local::ops::redrive::redrive(&sqs, &dlq_url, &queue_url).await?;
            println!("moved {moved} message(s) back to {queue_url}");
            Ok(())
        }
        Command::Load(args) => load(args).await,
        Command::Audit { sale } => {
            let checks = audit_sale(sale, None).await?;
            exit_on_failure(&checks);
            Ok(())
        }
        Command::Smoke(args) => smoke(args).await,
        Command::InitTime { bootstraps } => {
            for binary in &bootstraps {
                let ms = flashsale_local::ops::init_time::measure(binary).await?;
                println!("{}\t{ms:.1} ms", binary.display());
            }
            Ok(())
        }
    }
}

async fn smoke(args: SmokeArgs) -> Outcome {
    let variable = |name: &str| std::env::var(name).map_err(|_| format!("{name} must be set (see --help)"));
    let shoppers: Vec<String> =
        variable("FLASHSALE_SMOKE_SHOPPER_TOKENS")?.split(',').map(|t| t.trim().to_string()).collect();
    let [first, second] = <[String; 2]>::try_from(shoppers)
        .map_err(|_| "FLASHSALE_SMOKE_SHOPPER_TOKENS must hold two tokens, comma separated")?;
    let smoke = flashsale_local::ops::smoke::Smoke {
        base: args.site_url,
        admin_token: variable("FLASHSALE_SMOKE_ADMIN_TOKEN")?,
        shopper_tokens: [first, second],
        payments: args.publishable_key.map(|key| (args.payments_api, key)),
        window_secs: args.window_secs,
        within: std::time::Duration::from_secs(args.within_secs),
    };
    match flashsale_local::ops::smoke::run(&smoke).await {
        Ok(report) => {
            report.iter().for_each(|line| println!("smoke: ok  {line}"));
            Ok(())
        }
        Err(failed) => {
            eprintln!("smoke: FAILED  {failed}");
            std::process::exit(1);
        }
    }
}

fn dev_secret() -> String {
    std::env::var("FLASHSALE_DEV_JWT_SECRET").unwrap_or_else(|_| sign_in::DEFAULT_DEV_SECRET.into())
}

async fn audit_sale(
    sale: u64,
    admitted: Option<&[flashsale::OrderId]>,
) -> Result<Vec<audit::Check>, Box<dyn std::error::Error>> {
    let config = flashsale::Config::from_env()?;
    let (db, cache) =
        (flashsale::stores::mysql::Mysql::connect(&config)?, flashsale::stores::redis::Redis::connect(&config, None)?);
    let checks = audit::audit(&db, &cache, flashsale::SaleId(sale), admitted).await?;
    audit::print(&checks);
    Ok(checks)
}

fn exit_on_failure(checks: &[audit::Check]) {
    if checks.iter().any(|c| !c.passed) {
        std::process::exit(1);
    }
}

async fn load(args: LoadArgs) -> Outcome {
    let secret = dev_secret();
    let tokens = match &args.token_file {
        Some(file) => Tokens::Listed(
            std::fs::read_to_string(file)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        ),
        None => Tokens::Signed { secret: secret.clone() },
    };
    let admin_token = args
        .admin_token
        .clone()
        .or_else(|| matches!(tokens, Tokens::Signed { .. }).then(|| sign_in::token(&secret, "load-admin", true, 3600)));
    let options = LoadOptions {
        base_url: args.base_url,
        sale: args.sale,
        stock: args.stock,
        per_user_limit: args.limit,
        shoppers: args.shoppers,
        requests: args.requests,
        concurrency: args.concurrency,
        ramp: std::time::Duration::from_secs_f64(args.ramp_secs.max(0.0)),
        retry_429: args.retry_429,
        tokens,
        admin_token,
        progress: true,
        settle_timeout: std::time::Duration::from_secs(args.settle_secs),
    };
    let room = args.waiting_room.then_some(Room { rate: args.room_rate, difficulty: args.room_difficulty });
    let report = flashsale_local::ops::load::run_through_room(&options, room).await?;
    flashsale_local::ops::load::print(&report);
    let checks =
        if args.no_audit { Vec::new() } else { audit_sale(report.sale_id, Some(&report.admitted_ids)).await? };
    if let Some(file) = args.json {
        std::fs::write(file, serde_json::to_vec_pretty(&serde_json::json!({"load": report, "audit": checks}))?)?;
    }
    exit_on_failure(&checks);
    Ok(())
}

async fn serve(demo: bool) -> Result<(), Box<dyn std::error::Error>> {
    flashsale::lambda::telemetry::init();
    let stack = flashsale_local::start(Options::from_env()?).await?;
    println!("flashsale local stack on {}", stack.url(""));
    if demo {
        let now = chrono::Utc::now();
        let new = NewSale::try_from(SaleDraft {
            name: "Demo phone".into(),
            description: "A demo flash sale: 100 units, one per shopper.".into(),
            price_cents: 19_900,
            currency: Default::default(),
            stock: 100,
            per_user_limit: 1,
            starts_at: now,
            ends_at: now + chrono::Duration::hours(2),
            payment_window_secs: 300,
            waiting_room: None,
        })?;
        let sale = stack.functions.admin.create_sale(&new).await?;
        stack.functions.admin.publish(sale.id).await?;
        let token = stack.token("shopper-1", false);
        println!("demo sale {} is open: {}", sale.id, stack.url(&format!("/api/sales/{}", sale.id)));
        println!("shopper token (shopper-1): {token}");
        println!("admin token: {}", stack.token("admin", true));
        println!(
            "buy:  curl -s -X POST -H 'Authorization: Bearer {token}' {}",
            stack.url(&format!("/api/sales/{}/purchase", sale.id))
        );
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
