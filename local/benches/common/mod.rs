//! What the benchmarks share: their settings from the environment, medians, and the
//! sale they run on.

use std::time::Instant;

use flashsale::domain::{NewSale, SaleDraft};
use futures::stream::{self, StreamExt};

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A sale of `stock` units, one per shopper, open from a second ago for an hour.
pub fn open_sale(name: &str, stock: u32) -> NewSale {
    let now = chrono::Utc::now();
    NewSale::try_from(SaleDraft {
        name: name.into(),
        description: String::new(),
        price_cents: 100,
        currency: Default::default(),
        stock,
        per_user_limit: 1,
        starts_at: now - chrono::Duration::seconds(1),
        ends_at: now + chrono::Duration::hours(1),
        payment_window_secs: 600,
        waiting_room: None,
    })
    .unwrap()
}

/// Runs `requests` calls of `call(i)` with `concurrency` in flight; returns calls/s.
#[allow(dead_code)] // not every benchmark drives requests
pub async fn rate<F, Fut>(requests: usize, concurrency: usize, call: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    stream::iter(0..requests).map(&call).buffer_unordered(concurrency).collect::<Vec<()>>().await;
    requests as f64 / started.elapsed().as_secs_f64()
}

/// The raw `lua/admit.lua` call the function makes for `user` buying one unit of `sale`
/// as order `id`, built by the function's own code: the baseline always calls the
/// script as the function does.
#[allow(dead_code)] // not every benchmark calls the script raw
pub fn admit_call<'s>(script: &'s redis::Script, sale: u64, user: &str, id: u64) -> redis::ScriptInvocation<'s> {
    let order = flashsale::domain::OrderMessage {
        order_id: flashsale::OrderId(id),
        sale_id: flashsale::SaleId(sale),
        user_id: flashsale::UserId::new(user).expect("a valid user id"),
        quantity: 1,
    };
    let keys = flashsale::stores::redis::SaleKeys::new(order.sale_id);
    let payload = serde_json::to_string(&order).expect("an order message serializes");
    flashsale::admission::admit::invocation(script, &keys, &order, &payload, None)
}
