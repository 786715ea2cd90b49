//! Moves messages from a dead-letter queue back to its source queue, once their cause
//! is fixed. On AWS, `aws sqs start-message-move-task --source-arn <dlq-arn>` does the
//! same; this works against any SQS endpoint, the local one included.

use aws_sdk_sqs::Client;
use flashsale::{Error, Result};

/// Returns how many messages were moved. Each is sent to the source before it is
/// deleted from the DLQ, so a crash can duplicate a message but never lose one
/// (the consumers are idempotent).
pub async fn redrive(sqs: &Client, dlq_url: &str, source_url: &str) -> Result<usize> {
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| Error::aws("sqs", e))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(moved);
        }
        for message in messages {
            sqs.send_message()
                .queue_url(source_url)
                .message_body(message.body().unwrap_or_default())
                .send()
                .await
                .map_err(|e| Error::aws("sqs", e))?;
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| Error::aws("sqs", e))?;
            moved += 1;
        }
    }
}
