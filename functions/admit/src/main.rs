//! Lambda bootstrap of `admit`: clients are built once per container, and the extension
//! that settles the hand-off after each answer registers before the first event.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let admit = Arc::new(admit::Admit::from_config(&config).await?);
    let (admit, extension) = admit::settle::Settling::register(admit).await?;
    let runtime = lambda_http::run(service_fn(move |req: Request| {
        let admit = admit.clone();
        async move { Ok::<_, Error>(admit.handle(req).await) }
    }));
    tokio::try_join!(extension, runtime)?;
    Ok(())
}
