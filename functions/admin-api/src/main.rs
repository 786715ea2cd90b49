//! Lambda bootstrap of `admin-api`: clients are built once per container.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let api = Arc::new(admin_api::AdminApi::from_config(&config).await?);
    lambda_http::run(service_fn(move |req: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(req).await) }
    }))
    .await
}
