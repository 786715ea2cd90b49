//! A waiting room that nobody waited in for a while must not let the next crowd through
//! at once: the number served grows with time, so after a lull it is far past the
//! queue's end, and every arrival would find its place already served. The room meters
//! them at its rate, as it meters a queue at the opening (`lua/join.lua`).

use std::time::Duration;

use futures::future::join_all;

use crate::helpers::*;

/// Passes given now to those of `shoppers` who ask.
async fn passes_given(api: &Api, sale: u64, shoppers: &[String]) -> Vec<String> {
    let answers = join_all(shoppers.iter().map(|s| pass(api, sale, s))).await;
    answers
        .into_iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body["pass"].as_str().unwrap().into())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lull_a_crowd_is_metered_at_the_rooms_rate_not_let_through_at_once() {
    let stack = stack().await;
    let api = Api::new(&stack);
    // One shopper a second, opened 20 s ago, nobody in the queue: the clock says 20 served.
    let sale = api.sale(room_spec("fifo", 50, 1, 1, -20)).await;
    let crowd: Vec<String> = (0..12).map(|i| format!("lull-{i}")).collect();
    let joined = join_all(crowd.iter().map(|s| join(&api, sale, s))).await;
    assert!(joined.iter().all(|(status, _)| *status == 201), "{joined:?}");
    let mut positions: Vec<u64> = joined.iter().map(|(_, body)| body["position"].as_u64().unwrap()).collect();
    positions.sort_unstable();
    assert!(positions.windows(2).all(|w| w[1] == w[0] + 1), "one place each, in a row: {positions:?}");

    // The burst (one second of the rate) at once, and a second's worth more at most while
    // the passes are asked for; never the twelve the lull saved up.
    let at_once = passes_given(&api, sale, &crowd).await;
    assert!((1..=2).contains(&at_once.len()), "{} of 12 passes at once after the lull", at_once.len());

    // Then one a second: after about three more seconds, a handful, still not everyone.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let later = passes_given(&api, sale, &crowd).await;
    assert!(later.len() <= at_once.len() + 4, "{} passes 3 s later: faster than the rate", later.len());
    assert!(later.len() > at_once.len(), "the room keeps moving: {} then {}", at_once.len(), later.len());

    // The number served is where the queue is, not where the lull took the clock.
    let (status, room) = api.call("GET", &format!("/api/sales/{sale}/queue/status"), None, None).await;
    assert_eq!(status, 200, "{room}");
    assert!(room["serving"].as_u64().unwrap() < positions[11], "{room} vs the last place {}", positions[11]);

    // Those served buy, one unit each, as the room let them through.
    for shopper in &crowd {
        let (status, body) = pass(&api, sale, shopper).await;
        if status == 200 {
            let (bought, order) = buy_with(&api, sale, shopper, body["pass"].as_str().unwrap()).await;
            assert_eq!(bought, 202, "{order}");
        }
    }
}
