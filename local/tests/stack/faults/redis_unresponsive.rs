//! Redis that does not answer in time: partitioned (503 within the time-out, the breaker
//! opens, recovery after the cool-down), or answering after the caller gave up although
//! the script ran (the shopper gets the 202 of the one admission).

use std::time::{Duration, Instant};

use crate::helpers::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_with_503_then_recovers() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(100, 1, 60, -1, 3600)).await;

    let address = stack.config.redis.url.expose().trim_start_matches("redis://");
    let (upstream, database) = address.split_once('/').unwrap_or((address, ""));
    let proxy = FaultProxy::start(upstream.parse().expect("Redis's address")).await;
    let mut config = stack.config.clone();
    config.redis.url = (format!("redis://{}/{database}", proxy.addr)).into();
    config.redis.timeout = Duration::from_millis(200);
    config.breaker.failures = 3;
    config.breaker.cooldown = Duration::from_secs(1);
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let admit = admit_with(&config, &sdk, &sdk).await;
    let buy = |user: String| {
        let admit = &admit;
        async move {
            let started = Instant::now();
            let r = admit.handle(purchase_request(sale, &user)).await;
            (r.status().as_u16(), r.headers().get("retry-after").is_some(), started.elapsed())
        }
    };
    assert_eq!(buy("before".into()).await.0, 202);

    proxy.black_hole();
    for i in 0..6 {
        let (status, retry_after, took) = buy(format!("during-{i}")).await;
        assert_eq!(status, 503, "request {i} during the outage");
        assert!(retry_after, "503 carries Retry-After");
        assert!(took < Duration::from_secs(2), "request {i} hung for {took:?}");
    }
    // Redis is back, but the breaker is open: still failing fast during the cool-down.
    proxy.restore();
    assert_eq!(buy("cooling".into()).await.0, 503);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    eventually("recovery", Duration::from_secs(5), || async {
        let (status, _, _) = buy("after".into()).await;
        (status == 202).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_whose_answer_timed_out_after_the_script_ran_is_a_202() {
    let own = OwnRedis::start().await;
    let proxy =
        FaultProxy::lagging(format!("127.0.0.1:{}", own.port).parse().unwrap(), Duration::from_millis(450)).await;
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.redis.url = (own.url()).into();
        o.config.redis.wait_replicas = 0; // a single node
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 3, 600, -1, 3600)).await;

    // admit's own Redis goes through the proxy, with a 300 ms budget per call.
    let mut config = stack.config.clone();
    config.redis.url = (format!("redis://{}", proxy.addr)).into();
    config.redis.timeout = Duration::from_millis(300);
    config.breaker.failures = 1000;
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let admit = admit_with(&config, &sdk, &sdk).await;
    // The script is loaded once, without lag.
    assert_eq!(admit.handle(purchase_request(sale, "warm-up")).await.status(), 202);

    proxy.lag_next_answers(1);
    let response = admit.handle(purchase_request(sale, "patient")).await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(response.status(), 202, "the script ran, so the shopper was admitted: {body}");
    let mut redis = redis(&stack).await;
    let outbox = outbox(&mut redis, sale).await;
    let theirs: Vec<Value> = outbox
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap())
        .filter(|m| m["user_id"] == "patient")
        .collect();
    assert_eq!(theirs.len(), 1, "one admission, not two");
    assert_eq!(theirs[0]["order_id"], body["order_id"], "the id the shopper holds is the one admitted");
    assert_eq!(redis_stock(&mut redis, sale).await, 8);
}
