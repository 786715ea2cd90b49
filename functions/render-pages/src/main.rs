//! Lambda bootstrap of `render-pages`.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use render_pages::{RenderPages, RenderRequest};

#[tokio::main]
async fn main() -> Result<(), Error> {
    flashsale::lambda::telemetry::init();
    let config = flashsale::Config::from_env()?;
    let render = Arc::new(RenderPages::from_config(&config).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Option<RenderRequest>>| {
        let render = render.clone();
        async move {
            let published = render.handle(event.payload.unwrap_or_default()).await?;
            Ok::<_, Error>(serde_json::json!({"changed": published.changed, "unchanged": published.unchanged}))
        }
    }))
    .await
}
