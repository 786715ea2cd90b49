//! The waiting room against the local stack on real Redis, through the local edge: one
//! place per shopper, a shuffled room's draw, passes that buy once each and only for
//! their shopper and sale, "sold out" reaching every waiter through the edge's cache,
//! and staff pausing and resuming the room.

use std::time::{Duration, Instant};

use flashsale::waiting_room::{solve, RoomKeys};
use flashsale::{SaleId, UserId};
use futures::{stream, StreamExt};
use serde_json::{json, Value};

use crate::helpers::*;

async fn rejoin(api: &Api, sale: u64, user: &str) -> (u16, Value) {
    api.call("POST", &format!("/api/sales/{sale}/queue"), Some(&api.token(user)), None).await
}

async fn room_status(api: &Api, sale: u64) -> Value {
    let (status, body) = api.call("GET", &format!("/api/sales/{sale}/queue/status"), None, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn until_open(api: &Api, sale: u64) {
    let time = |v: &Value| v.as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()).unwrap();
    eventually("the opening", Duration::from_secs(180), || async {
        let status = room_status(api, sale).await;
        (time(&status["server_time"]) >= time(&status["opens_at"])).then_some(())
    })
    .await;
}

/// A pass with one hex digit of its signature changed.
fn forged(pass: &str) -> String {
    let (head, last) = pass.split_at(pass.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// Spearman's rank correlation of two rankings of the same items (each a permutation).
fn spearman(a: &[u64], b: &[u64]) -> f64 {
    let n = a.len() as f64;
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_joiners_get_one_place_each_drawn_at_the_opening_and_later_ones_queue_in_order() {
    let _heavy = one_heavy_test_at_a_time().await;
    const EARLY: usize = 20_000;
    let stack = stack_with(|o| o.queue_rate = (1e6, 1_000_000)).await;
    let api = Api::new(&stack);
    // The opening leaves time for every early join (a few thousand a second here).
    let sale = api.sale(room_spec("shuffled", 5, 1, 100, 90)).await;
    let started = Instant::now();
    let early: Vec<String> = (0..EARLY).map(|i| format!("early-{i}")).collect();
    // Arrival order is the order of `early`; every tenth shopper presses again, with a
    // new proof and without one: the same place, nothing more.
    let answers: Vec<(u16, Value)> =
        stream::iter(&early).map(|user| join(&api, sale, user)).buffered(48).collect().await;
    for (user, (status, body)) in early.iter().zip(&answers) {
        assert_eq!(*status, 201, "{user}: {body}");
        assert_eq!(body["position"], Value::Null, "{user}: places are drawn at the opening: {body}");
    }
    let again: Vec<(u16, Value)> = stream::iter(early.iter().step_by(10))
        .map(|user| async { (join(&api, sale, user).await, rejoin(&api, sale, user).await) })
        .buffered(48)
        .flat_map(|(a, b)| stream::iter([a, b]))
        .collect()
        .await;
    assert!(again.iter().all(|(status, body)| *status == 200 && body["position"].is_null()), "{again:?}");
    let waiting = room_status(&api, sale).await;
    assert_eq!(waiting["length"], EARLY, "{waiting}");
    assert_eq!(waiting["serving"], 0, "{waiting}");
    let joined_in = started.elapsed();
    let (_, before) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!(before["state"], "upcoming", "the early joins took {joined_in:?}, past the opening");

    until_open(&api, sale).await;
    // Later joiners, one after another: in order of arrival, after every early joiner.
    let mut later = Vec::new();
    for i in 0..200 {
        let (status, body) = join(&api, sale, &format!("later-{i}")).await;
        assert_eq!(status, 201, "{body}");
        later.push(body["position"].as_u64().unwrap());
    }
    assert_eq!(later, ((EARLY as u64 + 1)..=(EARLY as u64 + 200)).collect::<Vec<_>>());

    // The drawn places: a permutation of 1..=EARLY, not related to the arrival order.
    let places: Vec<u64> = stream::iter(&early)
        .map(|user| async {
            let (status, body) = rejoin(&api, sale, user).await;
            assert_eq!(status, 200, "{body}");
            body["position"].as_u64().expect("a place once the sale opened")
        })
        .buffered(48)
        .collect()
        .await;
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=EARLY as u64).collect::<Vec<_>>(), "one place each, none twice");
    let arrival: Vec<u64> = (1..=EARLY as u64).collect();
    let rho = spearman(&arrival, &places);
    assert!(rho.abs() < 0.05, "the draw follows the arrival order: Spearman's rho = {rho}");
    println!("{EARLY} early joins in {joined_in:?}; Spearman's rho of place and arrival {rho:.4}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_buys_once_and_only_for_its_shopper_and_sale() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let queue_keys = RoomKeys::new(stack.secrets.room_key.as_ref().expect("the stack's own key"));
    // 40 shoppers, 2 each at most, 70 units: every first pass finds stock, the second
    // passes sell the rest out. Five places a second: the last is served 8 s in.
    let sale = api.sale(room_spec("fifo", 70, 2, 5, 5)).await;
    let other = api.sale(room_spec("fifo", 70, 2, 5, 5)).await;
    let shoppers: Vec<String> = (0..40).map(|i| format!("shopper-{i}")).collect();
    for (i, user) in shoppers.iter().enumerate() {
        let (status, body) = join(&api, sale, user).await;
        assert_eq!((status, body["position"].as_u64()), (201, Some(i as u64 + 1)), "fifo: in order of arrival");
        assert_eq!(join(&api, other, user).await.0, 201);
    }
    // A proof is one shopper's, for one sale.
    let token = api.token("thief");
    let (_, challenge) = api.call("GET", &format!("/api/sales/{sale}/queue/challenge"), Some(&token), None).await;
    let proof = solve(&serde_json::from_value(challenge).unwrap()).unwrap();
    let body = json!({ "proof": proof });
    let (status, problem) =
        api.call("POST", &format!("/api/sales/{sale}/queue"), Some(&api.token("shopper-x")), Some(body.clone())).await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("/problems/proof-refused")), "{problem}");
    let (status, _) = api.call("POST", &format!("/api/sales/{other}/queue"), Some(&token), Some(body)).await;
    assert_eq!(status, 403);
    let (status, problem) = rejoin(&api, sale, "never-solved").await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("/problems/proof-refused")), "{problem}");

    until_open(&api, sale).await;
    let (status, problem) = api.buy(sale, "shopper-0", Some(1)).await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("/problems/pass-refused")), "no pass: {problem}");
    // The last place is not served in the opening's first seconds.
    let (status, problem) = pass(&api, sale, "shopper-39").await;
    assert_eq!((status, problem["type"].as_str()), (409, Some("/problems/not-your-turn")), "{problem}");
    assert_eq!(problem["position"], 40);
    assert_eq!(pass(&api, sale, "nobody").await.0, 404, "a shopper who never joined has no place");

    // Everyone served: two passes each (the limit is 2), the second for later.
    eventually("every place served", Duration::from_secs(30), || async {
        let served = room_status(&api, sale).await["serving"].as_u64().unwrap();
        (served >= 40).then_some(())
    })
    .await;
    let mut first = Vec::new();
    let mut second = Vec::new();
    for user in &shoppers {
        for kept in [&mut first, &mut second] {
            let (status, body) = pass(&api, sale, user).await;
            assert_eq!(status, 200, "{body}");
            kept.push((user.clone(), body["pass"].as_str().unwrap().to_string()));
        }
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let user0 = UserId::new("shopper-0").unwrap();
    let (_, other_pass) = pass(&api, other, "shopper-0").await;
    let refused = [
        ("forged", forged(&first[0].1)),
        (
            "a stranger's key",
            RoomKeys::new(&"s".repeat(40).into())
                .issue_pass(SaleId(sale), &user0, now_ms, Duration::from_secs(60))
                .token,
        ),
        ("expired", queue_keys.issue_pass(SaleId(sale), &user0, now_ms - 120_000, Duration::from_secs(60)).token),
        ("another sale's", other_pass["pass"].as_str().unwrap().to_string()),
        ("another shopper's", first[1].1.clone()),
        ("not a pass", "hello".to_string()),
    ];
    for (what, token) in &refused {
        let (status, problem) = buy_with(&api, sale, "shopper-0", token).await;
        assert_eq!((status, problem["type"].as_str()), (403, Some("/problems/pass-refused")), "{what}: {problem}");
    }

    // Every first pass pressed five times at once: it buys once, and then never again.
    let presses: Vec<(String, u16)> = stream::iter(first.iter().flat_map(|p| std::iter::repeat_n(p, 5)))
        .map(|(user, token)| {
            let api = &api;
            async move { (user.clone(), buy_with(api, sale, user, token).await.0) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for (user, _) in &first {
        let statuses: Vec<u16> = presses.iter().filter(|(u, _)| u == user).map(|(_, s)| *s).collect();
        let bought = statuses.iter().filter(|s| **s == 202).count();
        let refused = statuses.iter().filter(|s| **s == 403).count();
        assert_eq!((bought, refused), (1, 4), "{user}'s pass: {statuses:?}");
    }
    for (user, token) in &first {
        let (status, problem) = buy_with(&api, sale, user, token).await;
        assert_eq!((status, problem["type"].as_str()), (403, Some("/problems/pass-refused")), "replayed: {problem}");
    }
    // The second passes sell the other 30 units out; nobody above the limit.
    let mut answers = Vec::new();
    for (user, token) in &second {
        answers.push(buy_with(&api, sale, user, token).await.0);
    }
    assert_eq!(answers.iter().filter(|s| **s == 202).count(), 30, "{answers:?}");
    assert!(answers.iter().all(|s| matches!(s, 202 | 409)), "{answers:?}");
    let mut redis = redis(&stack).await;
    assert_eq!(redis_stock(&mut redis, sale).await, 0, "sold out");
    let db = mysql(&stack).await;
    let (stock, sold) = eventually("every order in MySQL", Duration::from_secs(30), || async {
        let (stock, sold) = mysql_sale(&db, sale).await;
        (sold == 70).then_some((stock, sold))
    })
    .await;
    assert_eq!((stock, sold), (70, 70), "exactly the stock sold");
    let per_user: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
         WHERE sale_id = ? AND {} GROUP BY user_id",
        flashsale::domain::HOLDS_UNITS_SQL
    ))
    .bind(sale)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(per_user.iter().all(|(_, units)| *units <= 2), "{per_user:?}");
    let spent: u64 = redis::AsyncCommands::hlen(&mut redis, keys(sale).passes).await.unwrap();
    let orders: u64 = per_user.iter().map(|(_, units)| *units as u64).sum();
    assert_eq!(spent, orders, "one spent pass per order");

    // The waiting room's routes refuse a request that did not come through the edge.
    let direct = Api::new(&stack).at(format!("http://{}", stack.api_addr));
    assert_eq!(direct.call("GET", &format!("/api/sales/{sale}/queue/status"), None, None).await.0, 403);
    assert_eq!(pass(&direct, sale, "shopper-1").await.0, 403);
    assert_eq!(rejoin(&direct, sale, "shopper-1").await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_sees_sold_out_through_the_edge_within_a_second_of_the_last_unit() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(room_spec("fifo", 3, 1, 1000, 2)).await;
    for i in 0..3 {
        assert_eq!(join(&api, sale, &format!("buyer-{i}")).await.0, 201);
    }
    for i in 0..50 {
        assert_eq!(join(&api, sale, &format!("waiter-{i}")).await.0, 201);
    }
    until_open(&api, sale).await;
    // The status is the edge's for a second: reads within it are one answer (Redis's
    // clock in milliseconds tells), keyed by the path alone, so a made-up Authorization
    // does not reach the API either. Tried a few times: three reads may straddle an expiry.
    let mut cached = false;
    for _ in 0..5 {
        let a = room_status(&api, sale).await;
        let b = room_status(&api, sale).await;
        let (_, c) = api.call("GET", &format!("/api/sales/{sale}/queue/status"), Some("made-up"), None).await;
        if a["server_time"] == b["server_time"] && b["server_time"] == c["server_time"] {
            cached = true;
            break;
        }
    }
    assert!(cached, "the edge did not keep the status for its second");
    // Fifty waiters poll every 100 ms while the three buyers buy.
    let pollers = (0..50).map(|_| {
        let api = Api::new(&stack);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if room_status(&api, sale).await["sold_out"] == true {
                    return Instant::now();
                }
                assert!(Instant::now() < deadline, "never saw sold out");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let pollers: Vec<_> = pollers.collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        let user = format!("buyer-{i}");
        let (_, body) = pass(&api, sale, &user).await;
        let (status, body) = buy_with(&api, sale, &user, body["pass"].as_str().expect("a pass")).await;
        assert_eq!(status, 202, "{body}");
    }
    let last_unit = Instant::now();
    for poller in pollers {
        let saw = poller.await.unwrap();
        let late = saw.saturating_duration_since(last_unit);
        assert!(late <= Duration::from_secs(2), "a waiter saw sold out {late:?} after the last unit (TTL 1 s + 1 s)");
    }
    let (status, problem) = pass(&api, sale, "waiter-0").await;
    assert_eq!((status, problem["type"].as_str()), (409, Some("/problems/sold-out")), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_pause_resume_and_pace_the_room_and_the_served_number_never_moves_back() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(room_spec("fifo", 10, 1, 5, -1)).await;
    for i in 0..3 {
        assert_eq!(join(&api, sale, &format!("s-{i}")).await.0, 201);
    }
    let path = format!("/api/admin/sales/{sale}/queue");
    let console = |body: Option<Value>| {
        let method = if body.is_some() { "PATCH" } else { "GET" };
        api.call(method, &path, Some(&api.admin), body)
    };
    let (status, room) = console(None).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(
        (room["mode"].as_str(), room["rate"].as_u64(), room["length"].as_u64()),
        (Some("fifo"), Some(5), Some(3))
    );
    let (_, paused) = console(Some(json!({ "paused": true }))).await;
    assert_eq!(paused["paused"], true, "{paused}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, still) = console(None).await;
    assert_eq!(still["serving"], paused["serving"], "paused: the number stands still");
    let (_, resumed) = console(Some(json!({ "paused": false, "rate": 100 }))).await;
    assert!(resumed["serving"].as_u64() >= paused["serving"].as_u64(), "never back: {paused} {resumed}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, moving) = console(None).await;
    assert!(moving["serving"].as_u64().unwrap() >= resumed["serving"].as_u64().unwrap() + 100, "{resumed} {moving}");
    // A re-sync from MySQL keeps the room: its places, their count, its number served.
    let (status, body) = api.call("POST", &format!("/api/admin/sales/{sale}/resync"), Some(&api.admin), None).await;
    assert_eq!(status, 200, "{body}");
    let (_, after) = console(None).await;
    assert!(after["serving"].as_u64() >= moving["serving"].as_u64(), "never back: {moving} {after}");
    assert_eq!((after["rate"].as_u64(), after["length"].as_u64()), (Some(100), Some(3)), "{after}");
    // Nobody joined for a while: the next joiner is numbered after the others and within
    // the room's burst (one second of its rate) of the number served, not far behind it.
    let (status, joined) = join(&api, sale, "s-3").await;
    let position = joined["position"].as_u64().unwrap();
    assert!(status == 201 && position > 3, "numbered after the others: {joined}");
    let (_, now) = console(None).await;
    assert!(position + 100 >= now["serving"].as_u64().unwrap(), "within the burst: {joined} {now}");
    let (status, problem) = console(Some(json!({ "rate": 0 }))).await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = console(Some(json!({ "speed": 3 }))).await;
    assert_eq!(status, 400, "{problem}");
    // A sale without a room has none to show.
    let plain = api.sale(sale_spec(1, 1, 60, -1, 60)).await;
    let (status, problem) = api.call("GET", &format!("/api/admin/sales/{plain}/queue"), Some(&api.admin), None).await;
    assert_eq!((status, problem["type"].as_str()), (409, Some("/problems/no-waiting-room")), "{problem}");
    let (status, _) = rejoin(&api, plain, "s-0").await;
    assert_eq!(status, 409);
}
