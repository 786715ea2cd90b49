//! An internal Lambda extension that keeps the container thawed after each answer until
//! the orders it admitted have been handed off.
//!
//! Lambda freezes a container once its runtime has posted the answer and every extension
//! has asked for its next event. `admit` answers 202 without waiting out a slow send (the
//! order is safe in the outbox), so without the extension a container left idle after
//! the stampede would hold its last orders in the outbox until reconcile re-sends them,
//! tens of seconds later. The shopper's answer does not wait for this: the time is spent
//! after it, before the container takes its next request.
//!
//! The hold is bounded (`FLASHSALE_ADMIT_SETTLE_BOUND_MS`): a container busy until a slow
//! SQS answered would be busy for that long per request, and Lambda would start that many
//! times the containers. Past the bound the container may freeze with a send on its way;
//! the order is durable already, the send goes on at the next thaw, or the check-back
//! re-sends it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_extension::{Extension, LambdaEvent, NextEvent};
use lambda_http::{Body, Request, RequestExt, Response};
use tokio::sync::watch;

use crate::Admit;

/// Marks its invocation answered when dropped.
struct Answered<'a>(&'a watch::Sender<String>, String);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.send_replace(std::mem::take(&mut self.1));
    }
}

/// What is left of an invocation's time when the extension stops waiting: the rest of
/// the hand-off then goes on in the next invocation, or the outbox keeps the order.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// `admit` with the extension that settles its hand-off after each answer.
pub struct Settling {
    admit: Arc<Admit>,
    /// The request id of the invocation last answered.
    answered: watch::Sender<String>,
}

impl Settling {
    /// Registers the extension; this must happen during init, before the runtime asks
    /// for its first event. Returns the handler and the extension's run loop, which runs
    /// beside the runtime's.
    pub async fn register(
        admit: Arc<Admit>,
    ) -> Result<(Arc<Self>, impl Future<Output = Result<(), lambda_extension::Error>>), lambda_extension::Error> {
        let settling = Arc::new(Settling { admit, answered: watch::Sender::new(String::new()) });
        let events = settling.clone();
        let registered = Extension::new()
            .with_extension_name("admit-hand-off")
            .with_events(&["INVOKE"])
            .with_events_processor(lambda_extension::service_fn(move |event: LambdaEvent| {
                let settling = events.clone();
                async move {
                    if let NextEvent::Invoke(invoke) = event.next {
                        settling.settle(&invoke.request_id, invoke.deadline_ms).await;
                    }
                    Ok::<(), lambda_extension::Error>(())
                }
            }))
            .register()
            .await?;
        Ok((settling, registered.run()))
    }

    /// Answers the invocation's request and tells the extension it has been answered
    /// (a panic in the handler included: the runtime answers with an error then).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let _answered = req.lambda_context_ref().map(|context| Answered(&self.answered, context.request_id.clone()));
        self.admit.handle(req).await
    }

    /// Waits until invocation `request_id` has been answered and every order handed to
    /// the hand-off so far is sent or kept, for at most the settle bound after the answer,
    /// and never past just before the invocation's deadline.
    async fn settle(&self, request_id: &str, deadline_ms: u64) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(DEADLINE_MARGIN);
        let settled = async {
            // The INVOKE event can arrive before the handler has even seen the request.
            let _ = self.answered.subscribe().wait_for(|answered| answered == request_id).await;
            tokio::time::timeout(self.admit.settle_bound, self.admit.settled()).await.is_ok()
        };
        if !tokio::time::timeout(left, settled).await.unwrap_or(false) {
            tracing::warn!(request_id, "hand-off not settled within its bound; the outbox holds what is left");
        }
    }
}
