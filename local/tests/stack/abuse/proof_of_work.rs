//! A bot farm joins a waiting room with many accounts, each join paying one proof of
//! work. A fixed difficulty costs a native solver milliseconds whatever the crowd; here
//! the challenge grows with the wait the queue already holds, so the longer the queue a
//! farm builds, the more each of its next accounts pays (`RoomState::join_difficulty`).

use futures::future::join_all;

use crate::helpers::*;

async fn challenge_size(api: &Api, sale: u64, user: &str) -> u64 {
    let path = format!("/api/sales/{sale}/queue/challenge");
    let (status, challenge) = api.call("GET", &path, Some(&api.token(user)), None).await;
    assert_eq!(status, 200, "{challenge}");
    challenge["maxnumber"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joins_proof_of_work_grows_with_the_queue_a_crowd_builds() {
    let stack = stack().await;
    let api = Api::new(&stack);
    // Opens in an hour at one shopper a second: every joiner waits.
    let sale = api.sale(room_spec("fifo", 10, 1, 1, 3600)).await;
    assert_eq!(challenge_size(&api, sale, "first").await, 1000, "staff's difficulty while nobody waits");

    let farm: Vec<String> = (0..150).map(|i| format!("farm-{i}")).collect();
    let joined = join_all(farm.iter().map(|s| join(&api, sale, s))).await;
    assert!(joined.iter().all(|(status, _)| *status == 201), "{joined:?}");

    // 150 places ahead at one a second: two and a half minutes of waiting, so 3.5 times.
    let grown = challenge_size(&api, sale, "late").await;
    assert_eq!(grown, 3500, "the next account's challenge after 150 joined");
    // The proof of a harder challenge still joins.
    let (status, place) = join(&api, sale, "late").await;
    assert_eq!((status, place["position"].as_u64()), (201, Some(151)), "{place}");
}
