//! Lambda bootstrap of `migrate`, the CloudFormation custom resource that applies the
//! schema on every deploy before the other functions serve.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let migrate = Arc::new(migrate::Migrate::from_env(&config).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<CloudFormationCustomResourceRequest>| {
        let migrate = migrate.clone();
        // The invocation's deadline (ms since the epoch) as an instant of this clock.
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let deadline = Instant::now() + Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
        async move { migrate.handle(event.payload, deadline).await.map_err(Error::from) }
    }))
    .await
}
