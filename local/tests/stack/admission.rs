//! Admission under load and at its edges: exactly the stock, per-user limits, the sale
//! window, bad input, the sold-out memo (a holder clicking again still gets their order
//! back), sale dates past 2038, and no lost order when SQS is down.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::helpers::*;
use futures::stream::{self, StreamExt};
use redis::AsyncCommands;
use serde_json::{json, Value};

/// Sends `attempts` purchases from `shoppers` distinct users, 64 in flight.
async fn stampede(
    api: &Api,
    sale: u64,
    attempts: usize,
    shoppers: usize,
    quantity: impl Fn(usize) -> Option<u32>,
) -> Vec<(String, Option<u32>, u16, Value)> {
    stream::iter(0..attempts)
        .map(|i| {
            let user = format!("s{}-{}", sale, i % shoppers);
            let q = quantity(i);
            async move {
                let (status, body) = api.buy(sale, &user, q).await;
                (user, q, status, body)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

async fn outbox_len(conn: &mut redis::aio::MultiplexedConnection, sale: u64) -> (u64, u64) {
    let hlen: u64 = conn.hlen(keys(sale).outbox).await.unwrap();
    let zcard: u64 = conn.zcard(keys(sale).outbox_at).await.unwrap();
    (hlen, zcard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_attempts_sell_exactly_the_stock_once_per_shopper() {
    // No consumers: the outbox must hold every admitted order. No memo: repeat
    // clicks must reach the script and get their order ids back.
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.admission.sold_out_ttl = Duration::ZERO;
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(100, 1, 60, -1, 3600)).await;

    let results = stampede(&api, sale, 1000, 300, |_| None).await;
    let admitted: Vec<(&String, &str)> =
        results.iter().filter(|r| r.2 == 202).map(|(u, _, _, b)| (u, b["order_id"].as_str().unwrap())).collect();
    assert_eq!(admitted.len(), 100);
    assert_eq!(admitted.iter().map(|(u, _)| u).collect::<HashSet<_>>().len(), 100, "100 distinct buyers");
    assert_eq!(admitted.iter().map(|(_, o)| o).collect::<HashSet<_>>().len(), 100, "no duplicate order ids");
    for (_, _, status, body) in &results {
        assert!(matches!(*status, 202 | 409), "{status} {body}");
    }
    let remaining: HashSet<u64> =
        results.iter().filter(|r| r.2 == 202).map(|r| r.3["remaining"].as_u64().expect("remaining")).collect();
    assert_eq!(remaining, (0..100).collect(), "each admission tells the units left right after it, once each");

    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 0);
    assert_eq!(outbox_len(&mut redis, sale).await, (100, 100));

    // Repeat clicks by the admitted shoppers: their order id back, nothing deducted.
    let buyers: HashMap<&String, &str> = admitted.iter().copied().collect();
    for (user, order) in &buyers {
        let (status, body) = api.buy(sale, user, None).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["type"], "/problems/limit-reached");
        assert_eq!(body["order_ids"], json!([order]));
    }
    assert_eq!(redis_stock(&mut redis, sale).await, 0);
    assert_eq!(outbox_len(&mut redis, sale).await, (100, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_three_with_mixed_quantities_never_exceeds_limit_or_stock() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(100, 3, 60, -1, 3600)).await;

    let results = stampede(&api, sale, 1000, 300, |i| Some((i % 3) as u32 + 1)).await;
    let mut per_shopper: HashMap<&str, u32> = HashMap::new();
    let mut units = 0;
    for (user, q, status, body) in &results {
        match status {
            202 => {
                *per_shopper.entry(user).or_default() += q.unwrap();
                units += q.unwrap();
            }
            409 => assert!(["/problems/sold-out", "/problems/limit-reached"].contains(&body["type"].as_str().unwrap())),
            _ => panic!("{status} {body}"),
        }
    }
    assert!(per_shopper.values().all(|u| *u <= 3), "a shopper exceeded the limit");
    let mut redis = redis(&stack).await;
    let remaining = redis_stock(&mut redis, sale).await;
    assert!(remaining >= 0);
    assert_eq!(i64::from(units), 100 - remaining, "admitted units match the deduction");
    let bought: HashMap<String, u32> = redis.hgetall(keys(sale).bought).await.unwrap();
    assert_eq!(bought.len(), per_shopper.len());
    for (user, held) in &bought {
        assert_eq!(per_shopper[user.as_str()], *held);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_admitted_outside_the_sale_window() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let upcoming = api.sale(sale_spec(10, 1, 60, 3600, 3600)).await;
    let ended = api.sale(sale_spec(10, 1, 60, -7200, 3600)).await;
    let mut redis = redis(&stack).await;
    for sale in [upcoming, ended] {
        for i in 0..20 {
            let (status, body) = api.buy(sale, &format!("w{i}"), None).await;
            assert_eq!(status, 409, "{body}");
            assert_eq!(body["type"], "/problems/not-open");
        }
        assert_eq!(redis_stock(&mut redis, sale).await, 10);
        assert_eq!(outbox_len(&mut redis, sale).await, (0, 0));
    }
    let (_, body) = api.call("GET", &format!("/api/sales/{upcoming}"), None, None).await;
    assert_eq!(body["state"], "upcoming");
    let (_, body) = api.call("GET", &format!("/api/sales/{ended}"), None, None).await;
    assert_eq!(body["state"], "ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_deducts_nothing() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 2, 60, -1, 3600)).await;
    let token = api.token("mallory");
    let path = format!("/api/sales/{sale}/purchase");
    let raw = |body: &'static str| {
        let request = api
            .http
            .post(format!("{}{path}", api.base))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = request.send().await.unwrap();
            let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
            (r.status().as_u16(), content_type, r.json::<Value>().await.unwrap())
        }
    };
    let big = Box::leak(format!("{{\"quantity\":1,\"pad\":\"{}\"}}", "x".repeat(4096)).into_boxed_str());
    let cases: Vec<(&str, u16)> = vec![
        ("{", 400),
        ("[]", 400),
        ("{\"quantity\":\"two\"}", 400),
        ("{\"quantity\":-1}", 400),
        ("{\"quantity\":0}", 400),
        ("{\"quantity\":3}", 400),
        ("{\"quantity\":1.5}", 400),
        ("{\"quantity\":99999999999}", 400),
        ("{\"quantity\":1,\"price\":0}", 400),
        (big, 413),
    ];
    for (body, expected) in cases {
        let (status, content_type, problem) = raw(body).await;
        assert_eq!(status, expected, "{body:.40}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert!(problem["type"].as_str().unwrap().starts_with("/problems/"));
        assert_eq!(problem["status"], expected);
    }
    let (status, _) = api.call("POST", &path, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = api.call("POST", &path, Some("forged.token.here"), None).await;
    assert_eq!(status, 401);
    let (status, body) = api.call("POST", "/api/sales/999999999/purchase", Some(&token), None).await;
    assert_eq!((status, body["type"].as_str()), (404, Some("/problems/not-found")));
    let (status, _) = api.call("POST", "/api/sales/abc/purchase", Some(&token), None).await;
    assert_eq!(status, 404);
    let (status, _) = api.call("POST", "/api/admin/sales", Some(&token), Some(sale_spec(1, 1, 1, 0, 10))).await;
    assert_eq!(status, 403, "shoppers cannot create sales");

    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 10);
    assert_eq!(outbox_len(&mut redis, sale).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_is_answered_from_memory_for_a_short_ttl() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.admission.sold_out_ttl = Duration::from_millis(800);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(1, 1, 60, -1, 3600)).await;
    assert_eq!(api.buy(sale, "first", None).await.0, 202);

    // Take the sale out of Redis: from now on only memory can say "sold out".
    let mut redis = redis(&stack).await;
    let _: () = redis.del(keys(sale).meta).await.unwrap();
    let (status, body) = api.buy(sale, "second", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")));
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (status, body) = api.buy(sale, "third", None).await;
    // Redis no longer knows this running sale: it is recovering (its order is still in
    // the queue), not gone.
    assert_eq!(
        (status, body["type"].as_str()),
        (503, Some("/problems/unavailable")),
        "after the TTL the request reaches Redis again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_sell_out_holders_get_their_orders_back_from_the_containers_copy() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.admission.sold_out_ttl = Duration::from_millis(800);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(2, 2, 60, -1, 3600)).await;
    let (status, first) = api.buy(sale, "holder", Some(2)).await;
    assert_eq!(status, 202, "{first}");
    let (status, body) = api.buy(sale, "partial", Some(1)).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")), "{body}");

    // Empty the shoppers' holdings in Redis: from now on only the copy the container
    // took when Redis said "none left" knows who holds what.
    let mut redis = redis(&stack).await;
    let _: () = redis.del(&[keys(sale).bought, keys(sale).orders]).await.unwrap();
    let (status, body) = api.buy(sale, "holder", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/limit-reached")), "{body}");
    assert_eq!(body["order_ids"], json!([first["order_id"]]));
    assert_eq!(body["limit"], 2);
    for shopper in ["partial", "newcomer"] {
        let (status, body) = api.buy(sale, shopper, None).await;
        assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")), "{shopper}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_copy_of_the_holders_is_taken_again_only_once_they_changed() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.admission.sold_out_ttl = Duration::from_millis(300);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(2, 1, 60, -1, 3600)).await;
    for shopper in ["first", "second"] {
        assert_eq!(api.buy(sale, shopper, None).await.0, 202);
    }
    let sold_out = |(status, body): (u16, Value)| (status, body["type"].as_str().map(str::to_string));
    let sold_out_answer = (409, Some("/problems/sold-out".to_string()));
    assert_eq!(sold_out(api.buy(sale, "late", None).await), sold_out_answer);

    // A holding Redis gained without counting it as a change (no script does that): a
    // copy taken again would know of it.
    let mut redis = redis(&stack).await;
    let _: () = redis.hset(keys(sale).bought, "unseen", 1).await.unwrap();
    let _: () = redis.hset(keys(sale).orders, "unseen", "12345").await.unwrap();
    for period in 0..3 {
        // A new memo period, begun by a click Redis answers; the next is the memo's.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(sold_out(api.buy(sale, "late", None).await), sold_out_answer);
        assert_eq!(sold_out(api.buy(sale, "unseen", None).await), sold_out_answer, "memo period {period}");
    }

    // A real change: the first holder's order closes, and a newcomer buys the unit.
    let first: flashsale::domain::OrderMessage = outbox(&mut redis, sale)
        .await
        .iter()
        .map(|m| serde_json::from_str::<flashsale::domain::OrderMessage>(m).unwrap())
        .find(|m| m.user_id.as_str() == "first")
        .unwrap();
    let stores = flashsale::stores::Stores::from_config(&stack.config).await.unwrap();
    assert!(stores.redis.release_closed(&first).await.unwrap());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(api.buy(sale, "newcomer", None).await.0, 202);
    for period in 0..2 {
        let (status, body) = api.buy(sale, "unseen", None).await;
        assert_eq!((status, body["order_ids"].clone()), (409, json!(["12345"])), "the new copy, period {period}");
        assert_eq!(sold_out(api.buy(sale, "first", None).await), sold_out_answer, "first no longer holds");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(sold_out(api.buy(sale, "late", None).await), sold_out_answer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_admitted_before_with_another_order_is_refused_not_answered_admitted() {
    use flashsale::admission::Admission;
    use flashsale::domain::OrderMessage;
    use flashsale::{OrderId, SaleId, UserId};
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 2, 600, -1, 3600)).await;
    let redis = flashsale::stores::redis::Redis::connect(&stack.config, None).unwrap();
    let order = OrderMessage {
        order_id: OrderId(4242),
        sale_id: SaleId(sale),
        user_id: UserId::new("first").unwrap(),
        quantity: 1,
    };
    assert!(matches!(redis.admit(&order).await.unwrap(), Admission::Admitted { remaining: 9, .. }));
    // The same call retried after a time-out gets the same answer, and deducts nothing.
    assert!(matches!(redis.admit(&order).await.unwrap(), Admission::Admitted { remaining: 9, .. }));
    // Another order under the same id is a fault of the id generator, never admitted.
    let other = OrderMessage { user_id: UserId::new("second").unwrap(), ..order.clone() };
    assert!(redis.admit(&other).await.is_err());
    let mut conn = crate::helpers::redis(&stack).await;
    assert_eq!(redis_stock(&mut conn, sale).await, 9);
    let holders: std::collections::HashMap<String, String> = conn.hgetall(keys(sale).bought).await.unwrap();
    assert_eq!(holders.keys().collect::<Vec<_>>(), ["first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_clicking_again_after_sell_out_gets_their_order_back() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.admission.sold_out_ttl = Duration::from_secs(5);
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(1, 1, 600, -1, 3600)).await;
    let (_, body) = api.buy(sale, "holder", None).await;
    let order = body["order_id"].clone();
    let (status, body) = api.buy(sale, "latecomer", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/sold-out")));
    // The sold-out memo answers now, yet the holder is told what they hold.
    let (status, body) = api.buy(sale, "holder", None).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/limit-reached")), "{body}");
    assert_eq!(body["order_ids"], serde_json::json!([order]));

    // Past 2038, where a TIMESTAMP would end, and up to 9998, a sale's dates are stored.
    for ends in ["2040-01-01T00:00:00Z", "9998-12-30T00:00:00Z"] {
        let mut spec = sale_spec(1, 1, 60, 0, 10);
        spec["ends_at"] = Value::String(ends.into());
        let (status, body) = api.call("POST", "/api/admin/sales", Some(&api.admin), Some(spec)).await;
        assert_eq!(status, 201, "{body}");
        let stored: chrono::DateTime<chrono::Utc> = body["ends_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(stored, ends.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    }
    // A date MySQL cannot store is bad input, not an outage.
    let mut spec = sale_spec(1, 1, 60, 0, 10);
    spec["ends_at"] = Value::String("+10000-01-01T00:00:00Z".into());
    let (status, body) = api.call("POST", "/api/admin/sales", Some(&api.admin), Some(spec)).await;
    assert_eq!((status, body["type"].as_str()), (400, Some("/problems/invalid-request")), "{body}");
}
