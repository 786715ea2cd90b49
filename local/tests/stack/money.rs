//! Sale money against the real local provider: a price is a count of its currency's
//! minor unit, charged as it is (fils of a dinar, yen) and shown with the currency's
//! decimals; a currency or a price the provider would refuse is refused when the sale
//! is created, so no checkout of an accepted sale fails at the provider.

use serde_json::{json, Value};

use crate::helpers::*;

/// A sale spec priced `price` in `currency`'s minor unit.
fn priced(price: u64, currency: &str) -> Value {
    let mut spec = sale_spec(5, 2, 600, -1, 3600);
    spec["price_cents"] = json!(price);
    spec["currency"] = json!(currency);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dinar_sale_is_charged_in_fils_a_yen_sale_in_yen_and_each_page_shows_what_is_charged() {
    let stack = stack_with(|o| o.config.aws.bucket = format!("pages-{:08x}", rand::random::<u32>())).await;
    let api = Api::new(&stack);
    let http = reqwest::Client::new();
    // 12.340 KWD (12,340 fils) and 5,000 JPY; two units each.
    for (currency, price, shown) in [("kwd", 12_340u64, "12.340 KWD"), ("jpy", 5_000, "5,000 JPY")] {
        let sale = api.sale(priced(price, currency)).await;
        let (status, polled) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
        assert_eq!((status, polled["currency"].as_str()), (200, Some(currency)), "{polled}");

        let user = format!("buyer-{currency}");
        let (status, body) = api.buy(sale, &user, Some(2)).await;
        assert_eq!(status, 202, "{body}");
        let order = body["order_id"].as_str().unwrap().to_string();
        api.await_status(&user, &order, "UNPAID").await;
        let (status, payment) = api.payment(&user, &order).await;
        assert_eq!(status, 200, "{payment}");
        assert_eq!(
            (payment["amount_cents"].as_u64(), payment["currency"].as_str()),
            (Some(2 * price), Some(currency)),
            "{payment}"
        );
        let intent = api.intent(&stack, payment["payment_intent"].as_str().unwrap()).await;
        assert_eq!(
            (intent["amount"].as_u64(), intent["currency"].as_str()),
            (Some(2 * price), Some(currency)),
            "the provider holds the amount in the currency's minor unit: {intent}"
        );

        // The page prints the price the provider charges, with the currency's decimals.
        let page = http.get(stack.url(&format!("/sales/{sale}"))).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains(shown) && !html.contains('$'), "{currency}: {html}");
        let index = http.get(stack.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(index.contains(shown), "{index}");

        // "My orders" is told each order's currency.
        let (status, mine) = api.call("GET", "/api/orders", Some(&api.token(&user)), None).await;
        assert_eq!(status, 200, "{mine}");
        assert_eq!(mine["currencies"][sale.to_string()], currency, "{mine}");

        // Paid with the provider's test card: the money is the order's, so it is PAID.
        let (status, paid) = api.confirm_card(payment["client_secret"].as_str().unwrap(), CARD_OK).await;
        assert_eq!((status, paid["status"].as_str()), (200, Some("succeeded")), "{paid}");
        api.await_status(&user, &order, "PAID").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_currency_or_price_the_provider_would_refuse_is_a_400_naming_the_field_at_creation() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let mut over_the_limit = priced(60_000_000, "usd");
    over_the_limit["per_user_limit"] = json!(2);
    let cases = [
        ("three letters that are no currency", priced(1_000, "abc"), "currency"),
        ("a currency the provider reads in other units", priced(1_000, "isk"), "currency"),
        ("a price of 0", priced(0, "usd"), "price_cents"),
        ("below the provider's minimum", priced(49, "usd"), "price_cents"),
        ("above the provider's maximum", priced(100_000_000, "usd"), "price_cents"),
        ("an order of the limit above the maximum", over_the_limit, "price_cents"),
        ("a fils the provider cannot charge", priced(12_345, "kwd"), "price_cents"),
        ("a price far out of range", priced(u64::MAX, "usd"), "price_cents"),
    ];
    let name = format!("refused-{:08x}", rand::random::<u32>());
    for (what, mut spec, field) in cases {
        spec["name"] = json!(name);
        let (status, problem) = api.call("POST", "/api/admin/sales", Some(&api.admin), Some(spec)).await;
        assert_eq!(status, 400, "{what}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(field), "{what} names {field}: {problem}");
        assert!(problem["type"].is_string() && problem["title"].is_string(), "{what}: problem+json {problem}");
    }
    let created: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales WHERE name = ?")
        .bind(&name)
        .fetch_one(&mysql(&stack).await)
        .await
        .unwrap();
    assert_eq!(created, 0, "no refused sale was stored");
}

/// A sale loaded into Redis by the release before currencies were kept there (its meta
/// has no `currency`) is polled in its own currency, read from MySQL once and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_warmed_without_its_currency_is_polled_in_the_currency_mysql_holds() {
    use redis::AsyncCommands;
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(priced(1_000, "eur")).await;
    let meta = keys(sale).meta;
    let mut conn = redis(&stack).await;
    let _: () = conn.hdel(&meta, "currency").await.unwrap();
    let (status, polled) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!((status, polled["currency"].as_str()), (200, Some("eur")), "{polled}");
    assert_eq!(polled["price_cents"], 1_000, "{polled}");
    let kept: Option<String> = conn.hget(&meta, "currency").await.unwrap();
    assert_eq!(kept.as_deref(), Some("eur"), "kept in Redis for the next poll");
}
