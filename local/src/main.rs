//! `flashsale-local`: run the whole system on this machine, or print a dev token.
//!
//! ```text
//! flashsale-local serve [--demo]        serve on FLASHSALE_LOCAL_ADDR (127.0.0.1:3000)
//! flashsale-local token --user U [--admin] [--ttl-secs N]
//! flashsale-local migrate                  apply migrations/ to FLASHSALE_DATABASE_URL
//! flashsale-local redrive DLQ_URL QUEUE_URL  move dead letters back to their queue
//! ```

use flashsale::domain::NewSale;
use flashsale_local::{auth, Options};

fn usage() -> ! {
    eprintln!(
        "usage: flashsale-local serve [--demo] | token --user USER [--admin] [--ttl-secs N] | migrate | redrive DLQ_URL QUEUE_URL"
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
