//! The edge cache bypassed: a made-up `Authorization` header, or an id written `0001`,
//! `+1` or ` 1`, must not be a new cache key of the public reads (a sale, its waiting
//! room's status), and a flood of requests for a sale that does not exist must not be a
//! MySQL read each. Counted for real: the requests that reached a function, as the
//! local gateway counts them per path, and the lookups of sales Redis does not know
//! that shop-api made in MySQL.

use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use serde_json::Value;

use crate::helpers::*;

/// A GET through the local edge with a made-up bearer token: status, Cache-Control,
/// Content-Type and body.
async fn read(api: &Api, path: &str, token: &str) -> (u16, String, String, Value) {
    let response = api
        .http
        .get(format!("{}{path}", api.base))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("the stack answers");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (status, cache_control, content_type) =
        (response.status().as_u16(), header("cache-control"), header("content-type"));
    let body = response.json().await.unwrap_or(Value::Null);
    (status, cache_control, content_type, body)
}

/// The edge keeps a public read for its max-age (1 s for a sale and its status, 2 s for
/// a 404): a path is read from the origin at most once per second it is asked for, plus
/// one for a read straddling an expiry.
fn most_reads(elapsed: Duration) -> u64 {
    elapsed.as_secs() + 2
}

/// Shoppers and bots reading a running sale and its waiting room's status, each read
/// with an Authorization of its own and the sale's id written four ways: the canonical
/// paths reach the API at most once per second each, whatever the header; the other
/// spellings are 404 problem+json (never the sale) and each reaches the API at most once
/// per 404's max-age. Fails where the edge keys on Authorization (every read reaches the
/// API) or where `0001` is parsed as the sale (a 200 under a second key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_authorization_and_other_spellings_of_an_id_do_not_miss_the_edge() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(room_spec("fifo", 5, 1, 10, -1)).await;
    let canonical = [format!("/api/sales/{sale}"), format!("/api/sales/{sale}/queue/status")];
    let other_spellings: Vec<String> = ["000", "+", "%20", "0"]
        .iter()
        .flat_map(|prefix| [format!("/api/sales/{prefix}{sale}"), format!("/api/sales/{prefix}{sale}/queue/status")])
        .chain([format!("/api/sales/{sale}%20"), format!("/api/sales/{sale}.0")])
        .collect();

    let started = Instant::now();
    for round in 0..150 {
        for path in &canonical {
            let (status, cache_control, _, body) = read(&api, path, &format!("made-up-{round}")).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(cache_control, "public, max-age=1", "{path}");
        }
        if round % 10 == 0 {
            for path in &other_spellings {
                let (status, cache_control, content_type, body) = read(&api, path, &format!("bot-{round}")).await;
                assert_eq!((status, body["type"].as_str()), (404, Some("/problems/not-found")), "{path}: {body}");
                assert_eq!(content_type, "application/problem+json", "{path}");
                assert!(cache_control.starts_with("public, max-age="), "{path}: {cache_control}");
            }
        }
    }
    let most = most_reads(started.elapsed());
    for path in canonical.iter().chain(&other_spellings) {
        let reached = stack.reached.of(path);
        assert!((1..=most).contains(&reached), "{path} reached the API {reached} times in {:?}", started.elapsed());
    }
}

/// Two hundred unauthenticated reads of a sale that is no published sale, fifty at a
/// time and each with an Authorization of its own, and as many of its waiting room's
/// status: every one a 404 problem+json the edge may keep, and together a handful of
/// MySQL reads, not one per request (the edge keeps the 404, the container remembers the
/// verdict, and requests for a sale already being looked up wait for that lookup). The
/// id is a draft's, below the highest sale id, so only a lookup of the sale itself can
/// tell it is none: the first wave of the flood misses the edge together, and without
/// the lookup lanes or the memo each of its requests is a MySQL read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_reads_of_an_unknown_sale_costs_mysql_a_handful_of_reads() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let (status, draft) =
        api.call("POST", "/api/admin/sales", Some(&api.admin), Some(sale_spec(5, 1, 600, -1, 3600))).await;
    assert_eq!(status, 201, "{draft}");
    let unknown = draft["id"].as_u64().unwrap();
    // A sale made after it: the draft's id is not above the highest.
    let later = api.sale(sale_spec(5, 1, 600, -1, 3600)).await;
    assert!(unknown < later);
    let paths = [format!("/api/sales/{unknown}"), format!("/api/sales/{unknown}/queue/status")];
    let lookups_before = stack.functions.shop.missing_sales().lookups();

    let started = Instant::now();
    let answers: Vec<(u16, String, String, Value)> = stream::iter(0..400)
        .map(|i| {
            let (api, path) = (&api, &paths[i % 2]);
            async move { read(api, path, &format!("made-up-{i}")).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let lookups = stack.functions.shop.missing_sales().lookups() - lookups_before;
    // One per memo period (1 s) at most, plus one for a flood straddling its expiry.
    let handful = elapsed.as_secs() + 2;
    assert!(lookups <= handful, "{lookups} MySQL reads for 400 requests in {elapsed:?}");
    assert!(lookups >= 1, "the sale was looked up");
    for (status, cache_control, content_type, body) in &answers {
        assert_eq!((*status, body["type"].as_str()), (404, Some("/problems/not-found")), "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert!(cache_control.starts_with("public, max-age="), "{cache_control}");
    }
}

/// A bot cycling through two hundred ids no sale was ever given, each once (so neither
/// the edge nor the memo can help): every one a 404, and together a handful of MySQL
/// reads, as an id above the highest sale id cannot be a sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_no_sale_was_ever_given_cost_mysql_a_handful_of_reads() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let first = 8_000_000_000_000 + rand::random::<u32>() as u64;
    let lookups_before = stack.functions.shop.missing_sales().lookups();

    let started = Instant::now();
    let answers: Vec<(u16, String, String, Value)> = stream::iter(0..200)
        .map(|i| {
            let api = &api;
            async move { read(api, &format!("/api/sales/{}", first + i), "made-up").await }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let lookups = stack.functions.shop.missing_sales().lookups() - lookups_before;
    assert!(lookups <= elapsed.as_secs() + 2, "{lookups} MySQL reads for 200 unknown ids in {elapsed:?}");
    for (status, _, content_type, body) in &answers {
        assert_eq!((*status, body["type"].as_str()), (404, Some("/problems/not-found")), "{body}");
        assert_eq!(content_type, "application/problem+json");
    }
}
