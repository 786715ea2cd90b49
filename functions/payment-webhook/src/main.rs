//! Lambda bootstrap of `payment-webhook`: clients and the signing secrets are read once
//! per container.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let webhook = Arc::new(payment_webhook::PaymentWebhook::from_config(&config).await?);
    lambda_http::run(service_fn(move |req: Request| {
        let webhook = webhook.clone();
        async move { Ok::<_, Error>(webhook.handle(req).await) }
    }))
    .await
}
