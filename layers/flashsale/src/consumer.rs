//! The shape of an SQS-triggered function: each record of a batch is handled on its
//! own, and only the failed ones are reported back (`ReportBatchItemFailures`), so SQS
//! redelivers just those and, after the queue's receive limit, moves them to the DLQ.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{Error, Result};

pub async fn each_record<T, F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let outcomes = futures::future::join_all(event.records.into_iter().map(|record| {
        let parsed = parse::<T>(&record);
        let span = tracing::info_span!("message", request_id = record.message_id.as_deref().unwrap_or_default());
        let handled = span.in_scope(|| parsed.map(&handle));
        let fut = async move {
            let outcome = match handled {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            };
            (record, outcome)
        };
        fut.instrument(span)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, outcome) in outcomes {
        if let Err(e) = outcome {
            let id = record.message_id.unwrap_or_default();
            tracing::warn!(message_id = %id, error = %e, "message failed; SQS will redeliver it");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

fn parse<T: DeserializeOwned>(record: &SqsMessage) -> Result<T> {
    serde_json::from_str(record.body.as_deref().unwrap_or_default())
        .map_err(|e| Error::Invalid(format!("message body: {e}")))
}
