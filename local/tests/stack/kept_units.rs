//! A paid order refunded at the provider (its dashboard) or disputed by the card
//! holder's bank keeps its unit sold: `sales.sold` keeps it, and so must every count of
//! the units orders hold. A Redis rebuilt from MySQL, MySQL's per-shopper limit and the
//! audit all count them (`OrderStatus::holds_units`, `HOLDS_UNITS_SQL`).

use std::time::Duration;

use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::SaleId;
use redis::AsyncCommands;
use serde_json::Value;

use crate::helpers::*;

/// Stripe's test card whose payment is disputed once it succeeded.
const CARD_DISPUTED: &str = "4000000000000259";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disputed_and_provider_refunded_orders_keep_their_units_and_allowance_through_a_rebuild() {
    let mut own = OwnRedis::start().await;
    let stack = stack_with(|o| {
        faulty_stack_options(o);
        o.config.redis.url = own.url().into();
        o.config.redis.wait_replicas = 0; // a single node
    })
    .await;
    let api = Api::new(&stack);
    let stock = 5;
    let sale = api.sale(sale_spec(stock, 1, 600, -1, 3600)).await;

    // One payment refunded by the shop's staff in the provider's dashboard, one disputed
    // by the card holder's bank: both through the provider and the webhook.
    let refunded = api.unpaid_order(sale, "refunded").await;
    let (status, paid) = api.pay("refunded", &refunded, CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
    api.await_status("refunded", &refunded, "PAID").await;
    let key = stack.secrets.payment_keys.as_ref().unwrap().secret_key.expose().to_string();
    let refund = api
        .http
        .post(format!("{}/v1/refunds", api.payments))
        .bearer_auth(key)
        .form(&[("payment_intent", paid["id"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert!(refund.status().is_success(), "the dashboard's refund: {}", refund.status());
    let now = api.await_status("refunded", &refunded, "REFUNDED").await;
    assert_eq!(now["refund"]["reason"], "refunded at the provider", "{now}");
    let disputed = api.unpaid_order(sale, "disputed").await;
    let (status, paid) = api.pay("disputed", &disputed, CARD_DISPUTED).await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
    api.await_status("disputed", &disputed, "DISPUTED").await;
    let db = mysql(&stack).await;
    assert_eq!(mysql_sale(&db, sale).await, (stock, 2), "both units stay sold");

    // Redis loses everything and the sale is rebuilt from MySQL.
    own.restart_empty().await;
    let live: Value = eventually("the sale rebuilt", Duration::from_secs(60), || async {
        let (status, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(live["remaining"], 3, "{live}");
    let mut direct = redis::Client::open(own.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys = keys(sale);
    for user in ["refunded", "disputed"] {
        let held: Option<u32> = direct.hget(&keys.bought, user).await.unwrap();
        assert_eq!(held, Some(1), "{user}'s unit is still held in Redis");
    }

    // The rebuilt holdings keep the limit: the shopper gets their order back, not another.
    // Admit's connection predates the restart: its first uses may fail, as a purchase may.
    let (status, body) = eventually("admit answers again", Duration::from_secs(20), || async {
        let (status, body) = api.buy(sale, "refunded", None).await;
        (status != 503).then_some((status, body))
    })
    .await;
    assert_eq!((status, body["type"].as_str()), (409, Some("/problems/limit-reached")), "{body}");
    assert_eq!(body["order_ids"], serde_json::json!([refunded]), "{body}");

    // Redis forgets what the disputed shopper holds: MySQL's limit still counts it.
    let _: () = direct.hdel(&keys.bought, "disputed").await.unwrap();
    let _: () = direct.hdel(&keys.orders, "disputed").await.unwrap();
    let (status, body) = api.buy(sale, "disputed", None).await;
    assert_eq!(status, 202, "{body}");
    let again = body["order_id"].as_str().unwrap().to_string();
    api.await_status("disputed", &again, "REJECTED").await;

    // The rest sell out exactly at the stock.
    tokio::time::sleep(Duration::from_millis(300)).await; // the sold-out memo's TTL
    let mut outcomes = Outcomes::default();
    stampede(&api, sale, (0..8).map(|i| format!("after-{i}")), &mut outcomes).await;
    assert_eq!(outcomes.told.len(), 3, "the three units left: {:?}", outcomes.statuses);
    let mut redis = redis::Client::open(own.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    eventually("every order in MySQL", Duration::from_secs(30), || async {
        let settled = mysql_orders(&db, sale).await.len() == 6 && outbox(&mut redis.clone(), sale).await.is_empty();
        settled.then_some(())
    })
    .await;
    assert_eq!(mysql_sale(&db, sale).await, (stock, stock), "sold out, never oversold");
    assert_eq!(redis_stock(&mut redis, sale).await, 0);

    // The audit agrees: sold equals the units held, nobody above the limit.
    let checks = flashsale_local::ops::audit::audit(
        &Mysql::connect(&stack.config).unwrap(),
        &Redis::connect(&stack.config, None).unwrap(),
        SaleId(sale),
        None,
    )
    .await
    .unwrap();
    flashsale_local::ops::audit::print(&checks);
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
    assert!(failed.is_empty(), "{failed:?}");
}
