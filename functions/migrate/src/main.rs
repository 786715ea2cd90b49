//! Lambda bootstrap of `migrate`, the CloudFormation custom resource that applies the
//! schema on every deploy before the other functions serve.

use std::sync::Arc;

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let migrate = Arc::new(migrate::Migrate::from_env(&config).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<CloudFormationCustomResourceRequest>| {
        let migrate = migrate.clone();
        async move { migrate.handle(event.payload).await.map_err(Error::from) }
    }))
    .await
}
