//! The functions run by hand, outside the stack: the events Lambda hands them, and an
//! `admit` of the test's own whose AWS endpoints the test picks.

use std::time::Duration;

use serde_json::{json, Value};

/// An SQS event as Lambda delivers it, one record per body.
pub fn sqs_event(bodies: &[String]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m{i}-{:08x}", rand::random::<u32>()),
                "receiptHandle": "r",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:test",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// AWS clients pointed at a port where nothing listens: SQS (or any service) down.
pub async fn unreachable_aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url("http://127.0.0.1:9").load().await
}

/// The Lambda request API Gateway makes of `user` pressing "Buy" in `sale`.
pub fn purchase_request(sale: u64, user: &str) -> lambda_http::Request {
    let claims = Some([("sub".to_string(), user.to_string())].into());
    flashsale_local::aws::gateway::lambda_request("POST", &format!("/api/sales/{sale}/purchase"), claims, b"")
}

/// An `admit` of the test's own, whose SQS is reached through `sqs` and whose DynamoDB
/// pending_orders through `pending_orders`: pass [`unreachable_aws`] to take either down. Its worker
/// id is leased from the lease table every stack uses, as a container's is: a fixed one
/// could be the one a stack running beside it leased, and two generators of one worker
/// id mint the same order id in the same millisecond.
pub async fn admit_with(
    config: &flashsale::Config,
    sqs: &aws_config::SdkConfig,
    pending_orders: &aws_config::SdkConfig,
) -> admit::Admit {
    let live = flashsale::stores::aws::sdk_config(config).await;
    let ids = flashsale::ids::IdGenerator::leased(
        flashsale::ids::leases::WorkerLeases::from_config(&live, config),
        std::sync::Arc::new(flashsale::clock::SystemClock),
    )
    .await;
    assert!(ids.worker().is_some(), "a worker id leased");
    let stores = flashsale::stores::Stores::new(pending_orders, config, &Default::default()).unwrap();
    let stores =
        flashsale::stores::Stores { queue: Box::new(flashsale::stores::sqs::Queue::new(sqs, config)), ..stores };
    let mut no_memo = config.clone();
    no_memo.admission.sold_out_ttl = Duration::ZERO;
    admit::Admit::new(stores, ids, &no_memo)
}

/// An `admit` of its own whose SQS is unreachable, and whose DynamoDB (the pending-orders table)
/// is reachable or not.
pub async fn admit_without_sqs(config: &flashsale::Config, pending_orders_up: bool) -> admit::Admit {
    let (live, dead) = (flashsale::stores::aws::sdk_config(config).await, unreachable_aws().await);
    admit_with(config, &dead, if pending_orders_up { &live } else { &dead }).await
}
