//! A bot farm joins a waiting room with many accounts, each join paying one proof of
//! work. A fixed difficulty costs a native solver milliseconds whatever the crowd; here
//! the challenge grows with the wait the queue already holds, so the longer the queue a
//! farm builds, the more each of its next accounts pays (`RoomState::join_difficulty`),
//! and a challenge fetched while the queue was short does not join once it is long.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

async fn challenge(api: &Api, sale: u64, user: &str) -> Value {
    let path = format!("/api/sales/{sale}/queue/challenge");
    let (status, challenge) = api.call("GET", &path, Some(&api.token(user)), None).await;
    assert_eq!(status, 200, "{challenge}");
    challenge
}

/// A solved challenge of `user`'s, to join with later.
async fn solved(api: &Api, sale: u64, user: &str) -> Value {
    let challenge = serde_json::from_value(challenge(api, sale, user).await).unwrap();
    serde_json::to_value(flashsale::waiting_room::solve(&challenge).unwrap()).unwrap()
}

async fn join_with(api: &Api, sale: u64, user: &str, proof: Value) -> (u16, Value) {
    let path = format!("/api/sales/{sale}/queue");
    api.call("POST", &path, Some(&api.token(user)), Some(json!({ "proof": proof }))).await
}

/// 150 accounts join at once.
async fn farm_joins(api: &Api, sale: u64, farm: &str) {
    let accounts: Vec<String> = (0..150).map(|i| format!("{farm}-{i}")).collect();
    let joined = join_all(accounts.iter().map(|s| join(api, sale, s))).await;
    assert!(joined.iter().all(|(status, _)| *status == 201), "{joined:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joins_proof_of_work_grows_with_the_queue_a_crowd_builds() {
    let stack = stack().await;
    let api = Api::new(&stack);
    // Opens in an hour at one shopper a second: every joiner waits.
    let sale = api.sale(room_spec("fifo", 10, 1, 1, 3600)).await;
    assert_eq!(challenge(&api, sale, "first").await["maxnumber"], 1000, "staff's difficulty while nobody waits");
    let prefetched = solved(&api, sale, "prefetched").await;

    farm_joins(&api, sale, "farm").await;
    // Past the time a page takes to solve and join.
    tokio::time::sleep(flashsale::waiting_room::FRESH + std::time::Duration::from_secs(1)).await;

    // 150 places ahead at one a second: two and a half minutes of waiting, so 3.5 times.
    assert_eq!(challenge(&api, sale, "late").await["maxnumber"], 3500, "the next account's challenge");
    // A challenge solved while the queue was short does not join now; a fresh one does.
    let (status, problem) = join_with(&api, sale, "prefetched", prefetched).await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("/problems/proof-refused")), "{problem}");
    let (status, place) = join(&api, sale, "prefetched").await;
    assert_eq!((status, place["position"].as_u64()), (201, Some(151)), "{place}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lull_the_proof_of_work_still_counts_the_queue_behind_the_number_served() {
    let stack = stack().await;
    let api = Api::new(&stack);
    // Open for ten minutes at one shopper a second, nobody came: the number served is
    // about 600, and the farm's places start there (the lull's places are skipped).
    let sale = api.sale(room_spec("fifo", 10, 1, 1, -600)).await;
    assert_eq!(challenge(&api, sale, "first").await["maxnumber"], 1000);
    farm_joins(&api, sale, "farm").await;
    let grown = challenge(&api, sale, "late").await["maxnumber"].as_u64().unwrap();
    assert!(grown >= 3000, "about 150 places wait behind the number served: {grown}");
}
