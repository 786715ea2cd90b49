//! `payment-webhook`: `POST /api/payments/webhook`, the payment provider's events. No
//! JWT: the provider proves itself with `Stripe-Signature` over the raw body
//! ([`flashsale::payments::signature`]).
//!
//! An event is taken once: its id is recorded when its effect is done, and a redelivery
//! answers 200 and changes nothing. The event's copy of the intent is not trusted to be
//! current (deliveries come late and out of order): the intent is read from the provider
//! and its state applied ([`flashsale::payments::received`]). A failure answers 5xx, so
//! the provider delivers again.
//!
//! One delivery's handling is bounded by a deadline below the function's timeout
//! ([`PaymentWebhook::bound`]): its chain of calls (the intent read, MySQL, the refunds
//! read, a refund that may wait seconds for the account's budget) could otherwise
//! outlast the invocation, which Lambda would end without an answer. Past the deadline
//! the webhook answers 503 with `Retry-After` and the provider delivers again.
//!
//! The events it needs from the provider: `payment_intent.succeeded` and
//! `payment_intent.payment_failed` (the money), `charge.refunded` and
//! `charge.dispute.created` (a refund or dispute made at the provider, which moves a
//! paid order). A charge's or a dispute's event names its intent, which is read and
//! applied the same way. The account serves others too: an event about an intent this
//! stack did not create answers 200 and changes nothing. An intent's event whose own
//! copy carries another stack's tag is dropped without a read of the provider; one
//! whose copy carries no tag at all is read only if an order holds that intent (one
//! indexed MySQL read): the intents made before intents were tagged, by the previous
//! release or by it beside this one during a canary deploy, carry none, and the
//! provider will not send their success again.

use std::time::{Duration, SystemTime};

use flashsale::lambda::http::{self, json, problem};
use flashsale::payments::maker::{Maker, STACK_TAG};
use flashsale::payments::{received, Provider, Received};
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::Secret;
use flashsale::{Config, Error, Result};
use lambda_http::http::{Method, StatusCode};
use lambda_http::RequestExt;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json as j;
use tracing::Instrument;

pub struct PaymentWebhook {
    mysql: Mysql,
    provider: Provider,
    /// Every secret a delivery may be signed with (two while one is rotated).
    signing_secrets: Vec<Secret>,
    edge: http::EdgeOnly,
    /// The longest one delivery is worked on (`FLASHSALE_WEBHOOK_DEADLINE_MS`).
    deadline: Duration,
}

/// The part of an event the webhook reads.
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: EventObject,
}

#[derive(Deserialize)]
struct EventObject {
    id: String,
    object: String,
    /// A charge's or a dispute's intent.
    #[serde(default)]
    payment_intent: Option<String>,
    /// An intent's metadata, as the event copied it (tags are set at creation, never
    /// changed, so a copy without ours is not ours; the intent read is checked again).
    #[serde(default)]
    metadata: Option<std::collections::HashMap<String, serde_json::Value>>,
}

/// What an event's copy says of the intent it is about, before the provider is asked.
#[derive(Debug, PartialEq, Eq)]
enum About<'a> {
    /// An intent that may be ours: read it from the provider and apply it.
    Intent(&'a str),
    /// An untagged intent: ours only if an order holds it (made before intents were
    /// tagged), so read only then.
    IfHeld(&'a str),
    /// Nothing of ours: an object without an intent, or an intent another stack tagged.
    Nothing,
}

impl EventObject {
    /// The intent the event is about, as far as the copy tells for `stack`.
    fn about(&self, stack: &str) -> About<'_> {
        match self.object.as_str() {
            // The provider always copies the metadata; an event without any copy is read.
            "payment_intent" => match &self.metadata {
                Some(metadata) => {
                    let maker = match metadata.get(STACK_TAG) {
                        None => Maker::Untagged,
                        Some(tag) => Maker::by_tag(Some(tag.as_str().unwrap_or_default()), stack),
                    };
                    match maker {
                        Maker::This => About::Intent(&self.id),
                        Maker::Untagged => About::IfHeld(&self.id),
                        Maker::Another => About::Nothing,
                    }
                }
                None => About::Intent(&self.id),
            },
            "charge" | "dispute" => self.payment_intent.as_deref().map_or(About::Nothing, About::Intent),
            _ => About::Nothing,
        }
    }
}

/// What is left of a Lambda invocation when the webhook stops working on a delivery:
/// time to answer 503 and log it before Lambda ends the invocation.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// When to deliver again after the deadline ran out.
const RETRY_AFTER_SECS: u64 = 1;

/// Provider events are small; anything this size is not one.
const MAX_BODY: usize = 256 * 1024;

impl PaymentWebhook {
    pub fn new(mysql: Mysql, provider: Provider, signing_secrets: Vec<Secret>) -> Self {
        PaymentWebhook {
            mysql,
            provider,
            signing_secrets,
            edge: http::EdgeOnly::default(),
            // `FLASHSALE_WEBHOOK_DEADLINE_MS`'s default; `from_config` sets the configured one.
            deadline: Duration::from_secs(8),
        }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        let (sdk, secrets) = flashsale::stores::aws::load(config).await?;
        // Redis only for the account's budget of provider calls, shared with the other
        // functions (its own user may touch that key alone).
        let redis = Redis::connect(config, secrets.redis_user.as_ref())?;
        let provider = Provider::from_config(config, &secrets)?.with_budget(&redis);
        let signing = secrets.payment_keys.as_ref().map(|k| k.webhook_secrets.clone()).unwrap_or_default();
        if signing.is_empty() {
            return Err(Error::Config("the payment provider's secret holds no webhook_secrets".into()));
        }
        Ok(PaymentWebhook {
            edge: http::EdgeOnly::from_secrets(&secrets),
            deadline: config.payments.webhook_deadline,
            ..PaymentWebhook::new(Mysql::from_config(config, &sdk)?, provider, signing)
        })
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        if let Some(refused) = self.edge.refuses(&req) {
            return refused;
        }
        let span = http::request_span("payment-webhook", &req);
        let bound = self.bound(&req);
        // Cancelling the handling anywhere is safe, because every step is idempotent and
        // the event is recorded only once its effect is done: a read changes nothing; a
        // dropped sqlx transaction rolls back (and a commit that went out before the drop
        // is found done by the next delivery's conditional updates); a refund the
        // provider made before its answer came is the same refund when the delivery comes
        // again (its idempotency key is the intent's, and what was refunded is read
        // first); a wait for the account's budget made no call at all.
        match tokio::time::timeout(bound, self.route(req).instrument(span.clone())).await {
            Ok(answer) => answer.unwrap_or_else(|e| problem(&e)),
            Err(_) => {
                span.in_scope(|| {
                    tracing::warn!(
                        bound_ms = bound.as_millis() as u64,
                        "delivery not handled in time: 503, delivered again"
                    )
                });
                problem(&Error::Unavailable { service: "payment webhook", retry_after_secs: RETRY_AFTER_SECS })
            }
        }
    }

    /// How long one delivery may be worked on: the configured deadline, and on Lambda
    /// no later than the invocation's own deadline less [`ANSWER_MARGIN`].
    pub fn bound(&self, req: &Request) -> Duration {
        let invocation = req.lambda_context_ref().filter(|context| context.deadline > 0).map(|context| {
            let left = context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
            left.saturating_sub(ANSWER_MARGIN)
        });
        invocation.map_or(self.deadline, |left| left.min(self.deadline))
    }

    async fn route(&self, req: Request) -> Result<Response<Body>> {
        let (method, segments) = http::route(&req);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (segments.as_slice(), method) {
            (["payments", "webhook"], Method::POST) => self.event(&req).await,
            (["payments", "webhook"], _) => Err(Error::MethodNotAllowed),
            _ => Err(Error::NotFound("route")),
        }
    }

    async fn event(&self, req: &Request) -> Result<Response<Body>> {
        let body = req.body().as_ref();
        if body.len() > MAX_BODY {
            return Err(Error::PayloadTooLarge { limit: MAX_BODY });
        }
        let header = req.headers().get("stripe-signature").and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        flashsale::payments::signature::verify(header, body, &self.signing_secrets, now)?;
        let event: Event =
            serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("not a provider event: {e}")))?;
        let object = &event.data.object;
        let intent = match object.about(self.provider.stack()) {
            About::Intent(intent) => Some(intent),
            // Untagged: one indexed read says whether we attached it to an order.
            About::IfHeld(intent) => self.mysql.holds_payment(intent).await?.then_some(intent),
            About::Nothing => None,
        };
        let Some(intent) = intent else {
            // Nothing of ours to read or remember: another business's intent, another
            // stack's, or an object without one.
            if object.object == "payment_intent" {
                received::count_foreign();
            }
            tracing::info!(event_id = %event.id, kind = %event.kind, object = %object.object, id = %object.id,
                not_ours = "no payment of this stack", "event ignored");
            return Ok(json(StatusCode::OK, &j!({ "received": true })));
        };
        if self.mysql.event_taken(&event.id).await? {
            tracing::info!(event_id = %event.id, kind = %event.kind, "event delivered again; nothing to do");
            return Ok(json(StatusCode::OK, &j!({ "received": true, "duplicate": true })));
        }
        let intent = self.provider.intent(intent).await?;
        let outcome = received::apply(&self.mysql, &self.provider, &intent).await?;
        tracing::info!(event_id = %event.id, kind = %event.kind, payment_intent = %intent.id, ?outcome, "event taken");
        // Another's charge or dispute changed nothing here: nothing to remember either.
        if !matches!(outcome, Received::NotOurs(_)) {
            self.mysql.take_event(&event.id, &event.kind, Some(&intent.id)).await?;
        }
        Ok(json(StatusCode::OK, &j!({ "received": true })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: serde_json::Value) -> EventObject {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_untagged_copy_is_read_only_if_held_and_another_stacks_never() {
        let intent = |metadata: serde_json::Value| {
            object(j!({ "id": "pi_1", "object": "payment_intent", "metadata": metadata }))
        };
        let ours = intent(j!({ "order_id": "7", "sale_id": "1", "flashsale_stack": "shop" }));
        assert_eq!(ours.about("shop"), About::Intent("pi_1"));
        // Made before intents were tagged: only order_id and sale_id.
        let untagged = intent(j!({ "order_id": "7", "sale_id": "1" }));
        assert_eq!(untagged.about("shop"), About::IfHeld("pi_1"));
        assert_eq!(intent(j!({})).about("shop"), About::IfHeld("pi_1"));
        assert_eq!(intent(j!({ "flashsale_stack": "other" })).about("shop"), About::Nothing);
        assert_eq!(intent(j!({ "flashsale_stack": 1 })).about("shop"), About::Nothing);
        assert_eq!(object(j!({ "id": "pi_1", "object": "payment_intent" })).about("shop"), About::Intent("pi_1"));
        let charge = object(j!({ "id": "ch_1", "object": "charge", "payment_intent": "pi_1" }));
        assert_eq!(charge.about("shop"), About::Intent("pi_1"));
        assert_eq!(object(j!({ "id": "in_1", "object": "invoice" })).about("shop"), About::Nothing);
    }
}
