//! Class 5: one shopper, or a crowd, spends the payment account's rate limit. The
//! provider limits the account as a whole (the shop's other business shares it), so the
//! payment route answers a second request for an order from what it kept, every provider
//! call takes a token from the account's budget in Redis first, and the provider's own
//! 429 is a 503 with `Retry-After` that opens no breaker. The stack reaches the local
//! provider through a proxy of the test's own, which counts the calls made with the
//! account's secret key and can answer 429 to them.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::*;

/// `(status, Retry-After, body)` of `user`'s payment request for `order`.
async fn payment(api: &Api, user: &str, order: &str) -> (u16, Option<u64>, Value) {
    let response = api
        .http
        .post(format!("{}/api/orders/{order}/payment", api.base))
        .bearer_auth(api.token(user))
        .send()
        .await
        .expect("the stack answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(kind, "application/problem+json", "{status}: {body}");
    }
    (status, retry_after, body)
}

/// The shoppers' orders in a new sale, each UNPAID in MySQL: `(shopper, order)`.
async fn unpaid_orders(api: &Api, shoppers: &[String]) -> Vec<(String, String)> {
    let sale = api.sale(sale_spec(shoppers.len() as u32, 1, 600, -1, 3600)).await;
    join_all(shoppers.iter().map(|user| async move { (user.clone(), api.unpaid_order(sale, user).await) })).await
}

/// One shopper presses "Pay" 200 times at once, then 200 more: one provider call in all
/// (the payment's creation), the same client secret every time, and only the order's
/// owner gets it. Once the order is paid the route says so, kept answer or not. On the
/// vulnerable route every request read the intent from the provider: 400 calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shopper_hammering_the_payment_route_makes_one_provider_call_and_gets_one_secret() {
    let provider = ProviderProxy::start().await;
    let stack = stack_with(|o| o.payments_url = provider.url.clone()).await;
    let api = Api::new(&stack);
    let (user, order) = unpaid_orders(&api, &["hammer".to_string()]).await.remove(0);

    let before = provider.calls();
    let mut secrets = std::collections::BTreeSet::new();
    for round in 0..2 {
        let answers = join_all((0..200).map(|_| payment(&api, &user, &order))).await;
        for (status, _, body) in answers {
            assert_eq!(status, 200, "round {round}: {body}");
            secrets.insert((body["payment_intent"].to_string(), body["client_secret"].to_string()));
        }
    }
    let calls = provider.calls() - before;
    assert_eq!(secrets.len(), 1, "one payment and one client secret for every request: {}", secrets.len());
    assert_eq!(calls, 1, "400 payment requests of one order made {calls} provider calls");

    let (status, _, _) = payment(&api, "someone-else", &order).await;
    assert_eq!(status, 404, "only the order's owner gets its payment");

    // Paid: MySQL is read first, so the kept answer is not given any more.
    let (_, client_secret) = secrets.pop_first().unwrap();
    let (status, body) = api.confirm_card(client_secret.trim_matches('"'), CARD_OK).await;
    assert_eq!(status, 200, "{body}");
    api.await_status(&user, &order, "PAID").await;
    let (status, _, body) = payment(&api, &user, &order).await;
    assert_eq!((status, body["order_status"].as_str()), (409, Some("PAID")), "{body}");
}

/// With an account budget of 3 calls a second, 30 shoppers' first payments at once: the
/// calls made stay within the budget, the rest are 503 with `Retry-After` and no call,
/// and no breaker opens (its cool-down is a minute here, yet a payment works as soon as
/// the budget refills). Every refused shopper who comes back after `Retry-After` gets
/// their payment: nothing is lost, and no order has two. On the vulnerable route all
/// 30 calls went out at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_past_the_accounts_budget_gets_503_with_retry_after_and_nothing_is_lost() {
    const BUDGET: u32 = 3;
    let provider = ProviderProxy::start().await;
    let stack = stack_with(|o| {
        o.payments_url = provider.url.clone();
        o.config.payments.calls_per_sec = BUDGET;
        o.config.breaker.cooldown = Duration::from_secs(60);
    })
    .await;
    let api = Api::new(&stack);
    let shoppers: Vec<String> = (0..30).map(|i| format!("crowd-{i}")).collect();
    let orders = unpaid_orders(&api, &shoppers).await;
    // A full bucket: the budget refilled since the stack registered its webhook.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let before = provider.calls();
    let started = Instant::now();
    let answers = join_all(orders.iter().map(|(user, order)| payment(&api, user, order))).await;
    let elapsed = started.elapsed().as_secs_f64();
    let calls = provider.calls() - before;
    let paid: Vec<&(String, String)> =
        orders.iter().zip(&answers).filter(|(_, (status, _, _))| *status == 200).map(|(o, _)| o).collect();
    let mut refused = Vec::new();
    for ((user, order), (status, retry_after, body)) in orders.iter().zip(&answers) {
        match status {
            200 => {}
            503 => {
                assert!(retry_after.is_some_and(|s| s >= 1), "a refusal says when to come back: {body}");
                assert!(body["type"].as_str().unwrap_or_default().ends_with("rate-limited"), "{body}");
                refused.push((user.clone(), order.clone()));
            }
            other => panic!("{user}: {other} {body}"),
        }
    }
    let allowed = BUDGET as usize + (BUDGET as f64 * elapsed).ceil() as usize;
    assert!(calls <= allowed, "{calls} provider calls in {elapsed:.2}s on a budget of {BUDGET}/s");
    assert_eq!(calls, paid.len(), "a refused payment made no call; an answered one made one");
    assert!(!refused.is_empty(), "30 payments at once on a budget of {BUDGET}/s: none refused");

    // The breaker did not open: once the budget refills, a payment is answered at once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (user, order) = refused.remove(0);
    let (status, _, body) = payment(&api, &user, &order).await;
    assert_eq!(status, 200, "the budget refilled and no breaker is open: {body}");

    // Every refused shopper comes back as told and pays.
    for (user, order) in refused {
        loop {
            match payment(&api, &user, &order).await {
                (200, _, _) => break,
                (503, Some(secs), _) => tokio::time::sleep(Duration::from_secs(secs)).await,
                (status, _, body) => panic!("{user}: {status} {body}"),
            }
        }
    }
    let db = mysql(&stack).await;
    let ids: Vec<u64> = orders.iter().map(|(_, o)| o.parse().unwrap()).collect();
    let attached: Vec<(u64, Option<String>, String)> = sqlx::query_as(&format!(
        "SELECT id, payment_intent, status FROM orders WHERE id IN ({})",
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    ))
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(attached.len(), orders.len());
    for (id, intent, status) in &attached {
        assert!(intent.is_some() && status == "UNPAID", "order {id}: {intent:?} {status}");
    }
    let intents: std::collections::BTreeSet<_> = attached.iter().map(|(_, i, _)| i.clone()).collect();
    assert_eq!(intents.len(), orders.len(), "one payment per order");
}

/// A provider that answers 429 ("slower") to every call: each payment is a 503 with
/// `Retry-After`, never a 500, and the breaker stays closed: past its threshold of
/// failures (5) the next payment, once the provider takes calls again, is answered at
/// once although an open breaker would refuse for a minute. On the vulnerable route the
/// 429s counted as failures and opened the breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_429_gets_503_with_retry_after_and_opens_no_breaker() {
    let provider = ProviderProxy::start().await;
    let stack = stack_with(|o| {
        o.payments_url = provider.url.clone();
        o.config.breaker.cooldown = Duration::from_secs(60);
    })
    .await;
    let api = Api::new(&stack);
    let shoppers: Vec<String> = (0..8).map(|i| format!("slowed-{i}")).collect();
    let orders = unpaid_orders(&api, &shoppers).await;

    provider.refuse(true);
    for (user, order) in &orders[..7] {
        let (status, retry_after, body) = payment(&api, user, order).await;
        assert_eq!(status, 503, "{body}");
        assert!(retry_after.is_some_and(|s| s >= 1), "{body}");
        assert!(body["type"].as_str().unwrap_or_default().ends_with("rate-limited"), "{body}");
    }
    provider.refuse(false);
    let (user, order) = &orders[7];
    let (status, _, body) = payment(&api, user, order).await;
    assert_eq!(status, 200, "429s are not failures: no breaker opened: {body}");
    let (user, order) = &orders[0];
    let (status, _, body) = payment(&api, user, order).await;
    assert_eq!(status, 200, "a payment refused with 429 starts once the provider takes calls: {body}");
}
