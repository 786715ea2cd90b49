//! SQS event source mappings, played locally: long-poll a queue, hand batches to the
//! consumer as the `SqsEvent` Lambda would deliver, and delete only the messages the
//! consumer did not report as failed. Failed ones reappear after the visibility
//! timeout; the queue's redrive policy moves them to the DLQ after `maxReceiveCount`.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use serde_json::json;

pub struct Mapping {
    pub queue_url: String,
    pub batch_size: i32,
    /// Concurrent pollers, like Lambda's concurrent batches (and `MaximumConcurrency`).
    pub concurrency: usize,
}

pub fn spawn<F, Fut>(client: Client, mapping: Mapping, handler: F) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send,
{
    let handler = Arc::new(handler);
    let mapping = Arc::new(mapping);
    (0..mapping.concurrency.max(1))
        .map(|_| {
            let (client, mapping, handler) = (client.clone(), mapping.clone(), handler.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = poll_once(&client, &mapping, handler.as_ref()).await {
                        tracing::warn!(queue = %mapping.queue_url, error = %e, "event source poll failed");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            })
        })
        .collect()
}

async fn poll_once<F, Fut>(client: &Client, mapping: &Mapping, handler: &F) -> flashsale::Result<()>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let received = client
        .receive_message()
        .queue_url(&mapping.queue_url)
        .max_number_of_messages(mapping.batch_size.clamp(1, 10))
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| flashsale::Error::aws("sqs", e))?;
    let messages = received.messages();
    if messages.is_empty() {
        return Ok(());
    }
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect())
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "md5OfBody": m.md5_of_body(),
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_url,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))
        .map_err(|e| flashsale::Error::Internal(format!("building SqsEvent: {e}")))?;
    let response = handler(event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(m.receipt_handle()?).build().ok()
        })
        .collect();
    if !entries.is_empty() {
        client
            .delete_message_batch()
            .queue_url(&mapping.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| flashsale::Error::aws("sqs", e))?;
    }
    Ok(())
}
