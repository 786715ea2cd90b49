//! `flashsale-local`: run the whole system on this machine, or print a dev token.
//!
//! ```text
//! flashsale-local serve [--demo]        serve on FLASHSALE_LOCAL_ADDR (127.0.0.1:3000)
//! flashsale-local token --user U [--admin] [--ttl-secs N]
//! flashsale-local migrate                  apply migrations/ to FLASHSALE_DATABASE_URL
//! flashsale-local redrive DLQ_URL QUEUE_URL  move dead letters back to their queue
//! flashsale-local load [options]            a stampede against a base URL, then the audit
//! flashsale-local audit --sale ID           check a sale's invariants in MySQL and Redis
//! flashsale-local init-time BOOTSTRAP...    ms from start until each bootstrap asks for work
//! ```
//!
//! `load` options: `--base-url URL` (http://127.0.0.1:3000), `--sale ID` (else one is
//! created), `--stock N` (1000), `--limit N` (1), `--shoppers N` (20000), `--requests N`
//! (100000), `--concurrency N` (100), `--ramp-secs S` (0), `--retry-429`,
//! `--token-file FILE` (one token per line; else dev tokens), `--admin-token T`,
//! `--json FILE`, `--no-audit`, `--settle-secs S` (300: how long to wait for every admitted
//! order to reach MySQL before the audit).

use flashsale::domain::NewSale;
use flashsale_local::load::{LoadOptions, Tokens};
use flashsale_local::{audit, auth, Options};

fn usage() -> ! {
    eprintln!(
        "usage: flashsale-local serve [--demo] | token --user USER [--admin] [--ttl-secs N] | migrate \
         | redrive DLQ_URL QUEUE_URL | load [options] | audit --sale ID"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str).unwrap_or("serve") {
        "token" => {
            let user = value("--user").unwrap_or_else(|| usage());
            let ttl = value("--ttl-secs").and_then(|t| t.parse().ok()).unwrap_or(24 * 3600);
            let secret = std::env::var("FLASHSALE_DEV_JWT_SECRET").unwrap_or_else(|_| auth::DEFAULT_DEV_SECRET.into());
            println!("{}", auth::token(&secret, &user, flag("--admin"), ttl));
            Ok(())
        }
        "serve" => serve(flag("--demo")).await,
        "init-time" => {
            for binary in &args[1..] {
                let ms = flashsale_local::init_time::measure(std::path::Path::new(binary)).await?;
                println!("{binary}\t{ms:.1} ms");
            }
            Ok(())
        }
        "load" => load(&flag, &value).await,
        "audit" => {
            let sale = value("--sale").and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            let config = flashsale::Config::from_env()?;
            let (db, cache) = (flashsale::db::Db::connect(&config)?, flashsale::cache::Cache::connect(&config)?);
            let checks = audit::audit(&db, &cache, flashsale::SaleId(sale), None).await?;
            audit::print(&checks);
            if checks.iter().any(|c| !c.passed) {
                std::process::exit(1);
            }
            Ok(())
        }
        "migrate" => {
            let config = flashsale::Config::from_env()?;
            flashsale::db::Db::connect(&config)?.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        "redrive" => {
            let (Some(dlq), Some(queue)) = (args.get(1), args.get(2)) else { usage() };
            let config = flashsale::Config::from_env()?;
            let sqs = aws_sdk_sqs::Client::new(&flashsale::queue::aws_config(&config).await);
            let moved = flashsale_local::redrive::redrive(&sqs, dlq, queue).await?;
            println!("moved {moved} message(s) back to {queue}");
            Ok(())
        }
        _ => usage(),
    }
}

async fn load(
    flag: &dyn Fn(&str) -> bool,
    value: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let number = |name: &str, default: usize| value(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let secret = std::env::var("FLASHSALE_DEV_JWT_SECRET").unwrap_or_else(|_| auth::DEFAULT_DEV_SECRET.into());
    let tokens = match value("--token-file") {
        Some(file) => Tokens::Listed(
            std::fs::read_to_string(file)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        ),
        None => Tokens::Signed { secret: secret.clone() },
    };
    let admin_token = value("--admin-token").or_else(|| {
        matches!(tokens, Tokens::Signed { .. }).then(|| auth::token(&secret, "load-admin", true, 3600))
    });
    let options = LoadOptions {
        base_url: value("--base-url").unwrap_or_else(|| "http://127.0.0.1:3000".into()),
        sale: value("--sale").and_then(|s| s.parse().ok()),
        stock: number("--stock", 1000) as u32,
        per_user_limit: number("--limit", 1) as u32,
        shoppers: number("--shoppers", 20_000),
        requests: number("--requests", 100_000),
        concurrency: number("--concurrency", 100),
        ramp: std::time::Duration::from_secs_f64(value("--ramp-secs").and_then(|v| v.parse().ok()).unwrap_or(0.0)),
        retry_429: flag("--retry-429"),
        tokens,
        admin_token,
        progress: true,
        settle_timeout: std::time::Duration::from_secs(number("--settle-secs", 300) as u64),
    };
    let report = flashsale_local::load::run(&options).await?;
    flashsale_local::load::print(&report);
    let checks = if flag("--no-audit") {
        Vec::new()
    } else {
        let config = flashsale::Config::from_env()?;
        let (db, cache) = (flashsale::db::Db::connect(&config)?, flashsale::cache::Cache::connect(&config)?);
        let checks = audit::audit(&db, &cache, flashsale::SaleId(report.sale_id), Some(&report.admitted_ids)).await?;
        audit::print(&checks);
        checks
    };
    if let Some(file) = value("--json") {
        std::fs::write(file, serde_json::to_vec_pretty(&serde_json::json!({"load": report, "audit": checks}))?)?;
    }
    if checks.iter().any(|c| !c.passed) {
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(demo: bool) -> Result<(), Box<dyn std::error::Error>> {
    flashsale::telemetry::init();
    let stack = flashsale_local::start(Options::from_env()?).await?;
    println!("flashsale local stack on {}", stack.url(""));
    if demo {
        let now = chrono::Utc::now();
        let new = NewSale {
            name: "Demo phone".into(),
            description: "A demo flash sale: 100 units, one per shopper.".into(),
            price_cents: 19_900,
            stock: 100,
            per_user_limit: 1,
            starts_at: now,
            ends_at: now + chrono::Duration::hours(2),
            payment_window_secs: 300,
        };
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
