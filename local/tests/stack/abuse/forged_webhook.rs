//! A forged webhook that burns CPU. The payment webhook has no JWT: anyone reaches it
//! through the edge, and its signature check is all that stands in front of it. A
//! `Stripe-Signature` with thousands of `v1` entries once cost one HMAC over the whole
//! body per entry (2,400 empty entries took 358 ms to refuse, one took 2 ms); refusing
//! it must cost about what refusing a one-entry forgery costs, and neither may record
//! an event or move the order.

use std::time::{Duration, Instant};

use flashsale::payments::signature::sign;
use flashsale::Secret;
use serde_json::{json, Value};

use crate::helpers::*;

/// `v1` entries in the amplifying forgery: the 9.6 KB header of the report.
const ENTRIES: usize = 2_400;

/// Interleaved pairs of deliveries timed.
const ROUNDS: usize = 31;

/// How much dearer the many-entry forgery may be to refuse than the one-entry one, as a
/// ratio of medians measured side by side (never an absolute time: the machine may be
/// busy). The vulnerable check made it about 20 times dearer with this body.
const MAX_RATIO: f64 = 3.0;

/// Posts `body` with `signature` to the webhook through the edge, as the provider does:
/// its status, problem type and how long the answer took.
async fn deliver(api: &Api, body: &str, signature: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = api.post_delivery(body, signature).await;
    let status = response.status().as_u16();
    let answer = response.json().await.unwrap_or(Value::Null);
    (status, answer, started.elapsed())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgery_with_thousands_of_v1_entries_is_refused_for_about_the_cost_of_one() {
    // Timings side by side: nothing else heavy runs meanwhile.
    let _alone = one_heavy_test_at_a_time().await;
    let (new, old) = ("whsec_new_forged_0123456789".to_string(), "whsec_old_forged_0123456789".to_string());
    // Two secrets, as during a rotation: the check's cost is one MAC per secret.
    let stack = stack_with(|o| o.webhook_secrets = vec![new.clone(), old.clone()]).await;
    let api = Api::new(&stack);
    // The provider's own deliveries go nowhere: only the test's reach the stack.
    api.webhook_to(&stack, Some("http://127.0.0.1:9/")).await;
    let sale = api.sale(sale_spec(1, 1, 600, -1, 3600)).await;
    let (status, bought) = api.buy(sale, "forged-webhook", None).await;
    assert_eq!(status, 202, "{bought}");
    let order = bought["order_id"].as_str().unwrap().to_string();
    api.await_status("forged-webhook", &order, "UNPAID").await;
    let (status, paid) = api.pay("forged-webhook", &order, CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
    let intent = paid["id"].as_str().unwrap().to_string();

    // The event a forger would want taken, about as large as a real one (the provider
    // sends the whole intent).
    let event_id = format!("evt_forged_{:016x}", rand::random::<u64>());
    let event = json!({
        "id": event_id,
        "type": "payment_intent.succeeded",
        "created": chrono::Utc::now().timestamp(),
        "data": {"object": {
            "id": intent,
            "object": "payment_intent",
            "status": "succeeded",
            "description": "x".repeat(3_000),
        }},
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let one_entry = sign(&Secret::from("whsec_someone_else"), now, event.as_bytes());
    let many_entries = format!("t={now}{}", ",v1=".repeat(ENTRIES));
    assert!(many_entries.len() > 9_600);

    for _ in 0..3 {
        deliver(&api, &event, &one_entry).await;
    }
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Which goes first alternates, so neither always meets a warmer cache.
        let pair = [(&one_entry, false), (&many_entries, true)];
        let order = if round % 2 == 0 { [pair[0], pair[1]] } else { [pair[1], pair[0]] };
        for (signature, is_many) in order {
            let (status, problem, took) = deliver(&api, &event, signature).await;
            assert_eq!((status, problem["type"].as_str()), (400, Some("/problems/bad-signature")), "{problem}");
            if is_many { &mut many } else { &mut one }.push(took);
        }
    }
    let (one, many) = (median(one), median(many));
    let ratio = many.as_secs_f64() / one.as_secs_f64();
    eprintln!("refused: one entry {one:?}, {ENTRIES} entries {many:?} (medians of {ROUNDS}), ratio {ratio:.2}");
    assert!(ratio < MAX_RATIO, "{ENTRIES} entries cost {ratio:.1}x one entry to refuse ({many:?} against {one:?})");

    // The forgeries changed nothing: no event recorded, the order still unpaid.
    let db = mysql(&stack).await;
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payment_events WHERE id = ? OR payment_intent = ?")
        .bind(&event_id)
        .bind(&intent)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(recorded, 0, "no forged event is recorded");
    assert_eq!(api.order("forged-webhook", &order).await.1["status"], "UNPAID");

    // The same event signed with the secret being rotated out is the provider's: the
    // route refused the forgeries for their signatures, and still takes real events.
    let (status, answer, _) = deliver(&api, &event, &sign(&Secret::from(old.as_str()), now, event.as_bytes())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(api.order("forged-webhook", &order).await.1["status"], "PAID");
}
