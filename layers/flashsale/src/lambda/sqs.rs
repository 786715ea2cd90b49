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
    respond(outcomes)
}

/// As [`each_record`], for a handler that takes the batch's messages together (to
/// write them in one transaction, say) and answers one outcome per message, in order.
/// A record that does not parse fails alone and never reaches the handler.
pub async fn whole_batch<T, F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    T: DeserializeOwned,
    F: FnOnce(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<Result<()>>>,
{
    let mut outcomes = Vec::with_capacity(event.records.len());
    let mut parsed = Vec::with_capacity(event.records.len());
    for record in event.records {
        match parse::<T>(&record) {
            Ok(message) => parsed.push((record, message)),
            Err(e) => outcomes.push((record, Err(e))),
        }
    }
    let (records, messages): (Vec<SqsMessage>, Vec<T>) = parsed.into_iter().unzip();
    let count = records.len();
    let mut handled = handle(messages).instrument(tracing::info_span!("batch", messages = count)).await.into_iter();
    for record in records {
        let outcome = handled.next().unwrap_or_else(|| Err(Error::Internal("the handler gave no outcome".into())));
        outcomes.push((record, outcome));
    }
    respond(outcomes)
}

/// Reports the failed records back, so SQS redelivers just those.
fn respond(outcomes: Vec<(SqsMessage, Result<()>)>) -> SqsBatchResponse {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Job {
        ok: bool,
    }

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.to_string());
        record.body = Some(body.to_string());
        record
    }

    #[tokio::test]
    async fn only_the_records_that_failed_or_did_not_parse_are_redelivered() {
        let mut event = SqsEvent::default();
        event.records = vec![
            record("good", r#"{"ok": true}"#),
            record("refused", r#"{"ok": false}"#),
            record("garbled", "{not json"),
            record("wrong-shape", r#"{"ok": "yes"}"#),
            record("good-too", r#"{"ok": true}"#),
        ];
        let handled = Mutex::new(0);
        let response = each_record(event, |job: Job| {
            *handled.lock().unwrap() += 1;
            async move {
                match job.ok {
                    true => Ok(()),
                    false => Err(Error::Internal("refused".into())),
                }
            }
        })
        .await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["refused", "garbled", "wrong-shape"]);
        // A body that does not parse never reaches the handler.
        assert_eq!(*handled.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn a_whole_batch_handler_sees_the_parsed_messages_and_fails_only_its_own_refusals() {
        let mut event = SqsEvent::default();
        event.records = vec![
            record("good", r#"{"ok": true}"#),
            record("garbled", "{not json"),
            record("refused", r#"{"ok": false}"#),
            record("good-too", r#"{"ok": true}"#),
        ];
        let response = whole_batch(event, |jobs: Vec<Job>| async move {
            assert_eq!(jobs.len(), 3, "the garbled record never reaches the handler");
            jobs.iter().map(|job| if job.ok { Ok(()) } else { Err(Error::Internal("refused".into())) }).collect()
        })
        .await;
        let mut failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        failed.sort();
        assert_eq!(failed, ["garbled", "refused"]);
    }

    #[tokio::test]
    async fn an_empty_batch_reports_no_failure() {
        let response = each_record(SqsEvent::default(), |_: Job| async { Ok(()) }).await;
        assert!(response.batch_item_failures.is_empty());
    }
}
