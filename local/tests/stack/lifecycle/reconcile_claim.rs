//! One reconcile run at a time: a run that finds another under way stops at once, and a
//! run that outlasted its claim leaves the next run's claim alone.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_run_that_finds_another_under_way_stops_at_once() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    api.sale(sale_spec(10, 1, 600, -1, 3600)).await;
    // Its schedule invokes it asynchronously: a slow run and the next one, or a retry.
    // Here the run under way is another container's, holding the claim.
    let reconcile = &stack.functions.reconcile;
    let redis = flashsale::stores::redis::Redis::connect(&stack.config, None).unwrap();
    let other = redis.claim(reconcile.run_claim_key(), Duration::from_secs(30)).await.unwrap().expect("claimed");
    let checks = reconcile.run().await.unwrap();
    assert!(checks.is_empty(), "no sale looked at twice at once ({} checks)", checks.len());
    assert!(
        redis.claim(reconcile.run_claim_key(), Duration::from_secs(30)).await.unwrap().is_none(),
        "the claim is the other run's still"
    );
    assert!(redis.give_up(other).await.unwrap());
}

#[tokio::test]
async fn a_run_that_outlasted_its_claim_leaves_the_next_runs_claim_alone() {
    let config = flashsale::Config::from_env().unwrap();
    let redis = flashsale::stores::redis::Redis::connect(&config, None).unwrap();
    let key = format!("test-claim-{:08x}", rand::random::<u32>());
    let slow = redis.claim(&key, Duration::from_millis(100)).await.unwrap().expect("claimed");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let next = redis.claim(&key, Duration::from_secs(30)).await.unwrap().expect("the lapsed claim is free");
    assert!(!redis.renew(&slow, Duration::from_secs(30)).await.unwrap(), "the slow run cannot renew it");
    assert!(!redis.give_up(slow).await.unwrap(), "the slow run no longer holds it");
    assert!(redis.claim(&key, Duration::from_secs(30)).await.unwrap().is_none(), "the next run's claim stands");
    // Renewed, it outlives the time it was first taken for.
    let renewed = redis.claim(&format!("{key}-renewed"), Duration::from_millis(300)).await.unwrap().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(redis.renew(&renewed, Duration::from_millis(300)).await.unwrap(), "still held");
    }
    assert!(redis.claim(&format!("{key}-renewed"), Duration::from_secs(1)).await.unwrap().is_none());
    assert!(redis.give_up(renewed).await.unwrap());
    assert!(redis.give_up(next).await.unwrap());
    assert!(redis.claim(&key, Duration::from_millis(100)).await.unwrap().is_some(), "given up by its holder");
}
