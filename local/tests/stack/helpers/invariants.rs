//! The promises every fault's test checks once the sale settles, and the crowd that
//! buys meanwhile: units sold in MySQL within stock, nobody above the limit, every `202`
//! exactly one MySQL order, every unit accounted for across Redis, the outbox and MySQL,
//! no 5xx but 503 + Retry-After.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use redis::AsyncCommands;
use serde_json::Value;

use super::*;

/// What one purchase attempt got.
#[derive(Default)]
pub struct Outcomes {
    /// `(user, order id)` of every `202`.
    pub told: Vec<(String, String)>,
    pub statuses: HashMap<u16, u64>,
}

impl Outcomes {
    pub fn record(&mut self, user: &str, status: u16, body: &Value) {
        *self.statuses.entry(status).or_default() += 1;
        assert!(status < 500 || status == 503, "{status} {body}");
        if status == 503 {
            assert_eq!(body["type"], "/problems/unavailable", "{body}");
        }
        if status == 202 {
            self.told.push((user.to_string(), body["order_id"].as_str().unwrap().to_string()));
        }
    }
}

/// Buys as each of `users` at once, recording what each got.
pub async fn stampede(api: &Api, sale: u64, users: impl IntoIterator<Item = String>, outcomes: &mut Outcomes) {
    let results: Vec<(String, u16, Value, bool)> = stream::iter(users)
        .map(|user| async move {
            let response = api
                .http
                .post(format!("{}/api/sales/{sale}/purchase", api.base))
                .bearer_auth(api.token(&user))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (user, status, body, retry_after)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for (user, status, body, retry_after) in results {
        if status == 503 {
            assert!(retry_after, "a 503 says when to retry: {body}");
        }
        outcomes.record(&user, status, &body);
    }
}

/// Waits until every told order is in MySQL and the outbox is empty, then checks every
/// promise of the sale.
pub async fn settled_and_sound(stack: &flashsale_local::Stack, sale: u64, told: &[(String, String)]) {
    settled_and_sound_besides(stack, sale, told, &HashSet::new()).await;
}

/// As [`settled_and_sound`], where `unanswered` shoppers heard nothing (their connection
/// died with the stack): an order of theirs may exist that nobody was told of.
pub async fn settled_and_sound_besides(
    stack: &flashsale_local::Stack,
    sale: u64,
    told: &[(String, String)],
    unanswered: &HashSet<String>,
) {
    let db = mysql(stack).await;
    let mut redis = redis(stack).await;
    let told_ids: HashSet<u64> = told.iter().map(|(_, id)| id.parse().unwrap()).collect();
    assert_eq!(told_ids.len(), told.len(), "no order id was handed out twice");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stored: HashSet<u64> = mysql_orders(&db, sale).await.into_iter().map(|(id, _, _)| id).collect();
        let missing: Vec<&u64> = told_ids.difference(&stored).collect();
        let waiting = outbox(&mut redis.clone(), sale).await;
        if missing.is_empty() && waiting.is_empty() {
            break;
        }
        // What is still out, to tell a lost order from a slow one.
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for every 202 in MySQL and the outbox empty: 202s not in MySQL {missing:?}, \
             outbox {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stock, sold) = mysql_sale(&db, sale).await;
    let orders = mysql_orders(&db, sale).await;
    let limit: u32 =
        sqlx::query_scalar("SELECT per_user_limit FROM sales WHERE id = ?").bind(sale).fetch_one(&db).await.unwrap();
    // Every order that holds units counts (disputed and provider-refunded ones too).
    let held: HashMap<String, u32> = sqlx::query_as::<_, (String, i64)>(&format!(
        "SELECT CAST(user_id AS CHAR), CAST(SUM(quantity) AS SIGNED) FROM orders \
         WHERE sale_id = ? AND {} GROUP BY user_id",
        flashsale::domain::HOLDS_UNITS_SQL
    ))
    .bind(sale)
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|(user, units)| (user, units as u32))
    .collect();
    let live_units: u32 = held.values().sum();
    assert!(live_units <= stock, "never oversold: {live_units} live units, stock {stock}");
    assert_eq!(live_units, sold, "sales.sold counts the units held");
    let over: Vec<_> = held.iter().filter(|(_, units)| **units > limit).collect();
    assert!(over.is_empty(), "nobody above the limit {limit}: {over:?}");
    let stored: HashSet<u64> = orders.iter().map(|(id, _, _)| *id).collect();
    let untold: Vec<_> =
        orders.iter().filter(|(id, user, _)| !told_ids.contains(id) && !unanswered.contains(user)).collect();
    assert!(
        told_ids.is_subset(&stored) && untold.is_empty(),
        "every 202 is exactly one MySQL order, and no order is one nobody was told of: {untold:?}"
    );
    let broken: Vec<_> = orders.iter().filter(|(_, _, status)| status == "REJECTED").collect();
    assert!(broken.is_empty(), "broken promises, 202s that MySQL refused: {broken:?}");
    let remaining = redis_stock(&mut redis, sale).await;
    assert_eq!(remaining + i64::from(sold), i64::from(stock), "every unit accounted for (the outbox is empty)");
    let per_status = |sql: &'static str| {
        let db = db.clone();
        async move {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(sql).bind(sale).fetch_all(&db).await.unwrap();
            rows.into_iter().map(|(status, orders, units)| (status, (orders, units))).collect::<HashMap<_, _>>()
        }
    };
    let tallied = per_status("SELECT status, orders, units FROM order_tallies WHERE sale_id = ? AND orders <> 0").await;
    let counted = per_status(
        "SELECT status, COUNT(*), CAST(SUM(quantity) AS SIGNED) FROM orders WHERE sale_id = ? GROUP BY status",
    )
    .await;
    assert_eq!(tallied, counted, "the tallies agree with the orders");
    let outbox_units: Option<i64> = redis.hget(keys(sale).meta, "outbox_units").await.unwrap();
    assert_eq!(outbox_units.unwrap_or(0), 0, "the outbox's tally went back to 0 with it");
}
