//! Lambda bootstrap of `admit`: clients are built once per container, and the extension
//! that settles the hand-off after each answer registers before the first event.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::{service_fn, Error, Request};
use tokio::signal::unix::{signal, SignalKind};

/// Lambda gives a runtime with an internal extension 500 ms between SIGTERM and SIGKILL.
const SHUTDOWN_BOUND: Duration = Duration::from_millis(400);

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let admit = Arc::new(admit::Admit::from_config(&config).await?);
    // With an extension registered, Lambda ends the container with SIGTERM: the worker id
    // goes back at once instead of being held for its lease's minute (docs/architecture.md).
    let mut terminate = signal(SignalKind::terminate())?;
    let leaving = admit.clone();
    tokio::spawn(async move {
        terminate.recv().await;
        if tokio::time::timeout(SHUTDOWN_BOUND, leaving.shut_down()).await.is_err() {
            tracing::warn!("shutdown cut short: the worker id lapses with its lease");
        }
        std::process::exit(0);
    });
    let (admit, extension) = admit::settle::Settling::register(admit).await?;
    let runtime = lambda_http::run(service_fn(move |req: Request| {
        let admit = admit.clone();
        async move { Ok::<_, Error>(admit.handle(req).await) }
    }));
    tokio::try_join!(extension, runtime)?;
    Ok(())
}
