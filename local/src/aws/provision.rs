//! Creates, idempotently, the AWS resources the functions expect: what the SAM
//! template creates on AWS, for the local stand-ins (moto) and the tests.

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_sqs::types::QueueAttributeName;

use flashsale::{Error, Result};

#[derive(Clone, Debug)]
pub struct Names {
    /// Prefix of the queue names, so several stacks (or tests) share one moto.
    pub prefix: String,
    pub lease_table: String,
    /// The pending-orders table: every admitted order, recorded before its SQS send.
    pub pending_orders_table: String,
    pub bucket: String,
    /// Receives before a message goes to its dead-letter queue.
    pub max_receives: u32,
    /// How long a received message stays hidden before SQS redelivers it.
    pub visibility_timeout_secs: u32,
}

#[derive(Clone, Debug)]
pub struct Resources {
    pub orders_queue_url: String,
    pub orders_dlq_url: String,
    pub timeouts_queue_url: String,
    pub timeouts_dlq_url: String,
}

pub async fn provision(sdk: &aws_config::SdkConfig, names: &Names) -> Result<Resources> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let (orders_queue_url, orders_dlq_url) = queue_with_dlq(&sqs, &format!("{}orders", names.prefix), names).await?;
    let (timeouts_queue_url, timeouts_dlq_url) =
        queue_with_dlq(&sqs, &format!("{}order-timeouts", names.prefix), names).await?;
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    table(&ddb, &names.lease_table, &[("worker_id", ScalarAttributeType::N, KeyType::Hash)]).await?;
    table(
        &ddb,
        &names.pending_orders_table,
        &[("shard", ScalarAttributeType::S, KeyType::Hash), ("order_id", ScalarAttributeType::S, KeyType::Range)],
    )
    .await?;
    bucket(&flashsale::stores::s3::client(sdk), &names.bucket).await?;
    Ok(Resources { orders_queue_url, orders_dlq_url, timeouts_queue_url, timeouts_dlq_url })
}

async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client, name: &str, names: &Names) -> Result<(String, String)> {
    let dlq_url = create_queue(sqs, &format!("{name}-dlq"), &[]).await?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| Error::aws("sqs", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or(Error::Internal(format!("queue {name}-dlq has no ARN")))?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": names.max_receives});
    let url = create_queue(
        sqs,
        name,
        &[
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (QueueAttributeName::VisibilityTimeout, names.visibility_timeout_secs.to_string()),
        ],
    )
    .await?;
    Ok((url, dlq_url))
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String> {
    let mut create = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        create = create.attributes(k.clone(), v.clone());
    }
    let url = match create.send().await {
        Ok(out) => out.queue_url().map(str::to_string),
        // Exists with other attributes: keep it, but bring the attributes up to date.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_name_exists()) => {
            let url = sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| Error::aws("sqs", e))?
                .queue_url()
                .map(str::to_string);
            if let Some(url) = &url {
                let mut set = sqs.set_queue_attributes().queue_url(url);
                for (k, v) in attributes {
                    set = set.attributes(k.clone(), v.clone());
                }
                set.send().await.map_err(|e| Error::aws("sqs", e))?;
            }
            url
        }
        Err(e) => return Err(Error::aws("sqs", e)),
    };
    url.ok_or(Error::Internal(format!("queue {name} has no URL")))
}

async fn table(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &[(&str, ScalarAttributeType, KeyType)],
) -> Result<()> {
    let mut create = ddb.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    for (name, kind, role) in keys {
        let attribute = AttributeDefinition::builder()
            .attribute_name(*name)
            .attribute_type(kind.clone())
            .build()
            .map_err(|e| Error::aws("dynamodb", e))?;
        let key = KeySchemaElement::builder()
            .attribute_name(*name)
            .key_type(role.clone())
            .build()
            .map_err(|e| Error::aws("dynamodb", e))?;
        create = create.attribute_definitions(attribute).key_schema(key);
    }
    let created = create.send().await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
        Err(e) => Err(Error::aws("dynamodb", e)),
    }
}

async fn bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    match s3.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::aws("s3", e)),
    }
}

/// Stores `value` as the secret `name` (created, or its value replaced), as the
/// template's secrets hold what the functions read at init.
pub async fn secret(sdk: &aws_config::SdkConfig, name: &str, value: &str) -> Result<()> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let created = client.create_secret().name(name).secret_string(value).send().await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_exists_exception()) => client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("secretsmanager", e)),
        Err(e) => Err(Error::aws("secretsmanager", e)),
    }
}
