//! Snowflake worker ids: a container frozen past its lease, and containers racing for
//! leases, never mint an id under a worker id another holds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::*;
use flashsale::clock::SystemClock;
use flashsale::ids::leases::WorkerLeases;
use flashsale::ids::IdGenerator;
use flashsale::stores::Stores;
use flashsale::OrderId;
use serde_json::Value;

/// A Lambda container between invocations is frozen, its background lease renewal
/// included. A current-thread runtime runs only inside `block_on`: between calls it is
/// exactly such a container.
#[test]
fn an_admit_container_idle_past_its_lease_admits_its_next_request() {
    let outside = tokio::runtime::Runtime::new().unwrap();
    let container = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stack = outside.block_on(stack_with(|o| o.consumers = 0));
    let api = Api::new(&stack);
    let sale = outside.block_on(api.sale(sale_spec(10, 1, 600, -1, 3600)));
    let mut config = stack.config.clone();
    config.aws.lease_duration = Duration::from_secs(2);

    let (admit, ids) = container.block_on(async {
        let sdk = flashsale::stores::aws::sdk_config(&config).await;
        let ids = flashsale::ids::IdGenerator::leased(
            flashsale::ids::leases::WorkerLeases::from_config(&sdk, &config),
            Arc::new(flashsale::clock::SystemClock),
        )
        .await;
        let mut no_memo = config.clone();
        no_memo.admission.sold_out_ttl = Duration::ZERO;
        let admit = admit::Admit::new(Stores::new(&sdk, &config, &Default::default()).unwrap(), ids.clone(), &no_memo);
        (admit, ids)
    });
    let worker = ids.worker().expect("a worker id is leased at start");
    assert_eq!(container.block_on(admit.handle(purchase_request(sale, "before"))).status(), 202);

    // Frozen through the countdown, past the lease; another container takes the worker id.
    std::thread::sleep(Duration::from_secs(3));
    outside.block_on(async {
        let sdk = flashsale::stores::aws::sdk_config(&config).await;
        let expires = chrono::Utc::now().timestamp_millis() + 60_000;
        aws_sdk_dynamodb::Client::new(&sdk)
            .put_item()
            .table_name(&config.aws.lease_table)
            .item("worker_id", aws_sdk_dynamodb::types::AttributeValue::N(worker.to_string()))
            .item("owner", aws_sdk_dynamodb::types::AttributeValue::S("another-container".into()))
            .item("expires_at_ms", aws_sdk_dynamodb::types::AttributeValue::N(expires.to_string()))
            .send()
            .await
            .unwrap();
    });

    // The first request after the thaw is admitted, under a worker id of its own.
    let response = container.block_on(admit.handle(purchase_request(sale, "after")));
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let order: OrderId = body["order_id"].as_str().unwrap().parse().unwrap();
    assert_ne!(flashsale::ids::snowflake::worker_of(order), worker, "never the worker id another container holds");
    drop(admit);
    container.shutdown_background();
    drop(stack);
    outside.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_containers_never_share_a_worker_id() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let mut config = stack.config.clone();
    config.aws.lease_table = format!("leases-{:08x}", rand::random::<u32>());
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    flashsale_local::aws::provision::provision(
        &sdk,
        &flashsale_local::aws::provision::Names {
            prefix: format!("lease-test-{:08x}-", rand::random::<u32>()),
            lease_table: config.aws.lease_table.clone(),
            pending_orders_table: config.aws.pending_orders_table.clone(),
            bucket: config.aws.bucket.clone(),
            max_receives: 5,
            visibility_timeout_secs: 1,
        },
    )
    .await
    .unwrap();
    let a = WorkerLeases::from_config(&sdk, &config);
    let b = WorkerLeases::from_config(&sdk, &config);
    async fn take(leases: &WorkerLeases) -> Vec<u16> {
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(leases.acquire().await.unwrap());
        }
        ids
    }
    let (ids_a, ids_b) = tokio::join!(take(&a), take(&b));
    let all: HashSet<u16> = ids_a.iter().chain(&ids_b).copied().collect();
    assert_eq!(all.len(), 80, "every lease is a distinct worker id");
    // Only the holder can renew.
    assert!(a.renew(ids_a[0]).await.unwrap());
    assert!(!b.renew(ids_a[0]).await.unwrap());

    // Two generators started together lease different ids and mint disjoint ids.
    let (g1, g2) = tokio::join!(
        IdGenerator::leased(WorkerLeases::from_config(&sdk, &config), Arc::new(SystemClock)),
        IdGenerator::leased(WorkerLeases::from_config(&sdk, &config), Arc::new(SystemClock)),
    );
    assert_ne!(g1.worker().unwrap(), g2.worker().unwrap());
    async fn mint(g: &IdGenerator) -> Vec<u64> {
        let mut ids = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            ids.push(g.next_id().await.unwrap().0);
        }
        ids
    }
    let (m1, m2) = tokio::join!(mint(&g1), mint(&g2));
    let minted: HashSet<u64> = m1.iter().chain(&m2).copied().collect();
    assert_eq!(minted.len(), 40_000, "no id minted twice");
}
