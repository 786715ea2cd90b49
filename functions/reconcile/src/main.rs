//! Lambda bootstrap of `reconcile`, run by an EventBridge schedule.

// The reconcile future is deep enough to need more than the default type-query depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let reconcile = Arc::new(reconcile::Reconcile::from_config(&config).await?);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let reconcile = reconcile.clone();
        async move { Ok::<_, Error>(serde_json::to_value(reconcile.run().await?)?) }
    }))
    .await
}
