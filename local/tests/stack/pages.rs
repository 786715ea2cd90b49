//! The static pages on S3 (moto) with CloudFront invalidations (moto), and the local
//! CloudFront stand-in serving them.

use crate::helpers::*;
use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
};
use chrono::{Duration, Utc};
use flashsale::pages::render::{PageState, Site, ASSET_CACHE, HTML_CACHE};
use flashsale::pages::{Published, Publisher};
use flashsale::stores::cloudfront::CloudFront;
use flashsale::stores::s3::Bucket;
use flashsale::{Sale, SaleId};

async fn distribution(sdk: &aws_config::SdkConfig) -> (aws_sdk_cloudfront::Client, String) {
    let client = aws_sdk_cloudfront::Client::new(sdk);
    let origin = Origin::builder()
        .id("pages")
        .domain_name("pages.s3.amazonaws.com")
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(format!("test-{:08x}", rand::random::<u32>()))
        .origins(Origins::builder().quantity(1).items(origin).build().unwrap())
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("pages")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .build()
                .unwrap(),
        )
        .comment("test")
        .enabled(true)
        .build()
        .unwrap();
    let created = client.create_distribution().distribution_config(config).send().await.unwrap();
    let id = created.distribution().unwrap().id().to_string();
    (client, id)
}

/// Every invalidation of the distribution, as sorted path lists.
async fn invalidations(client: &aws_sdk_cloudfront::Client, id: &str) -> Vec<Vec<String>> {
    let list = client.list_invalidations().distribution_id(id).send().await.unwrap();
    let mut all = Vec::new();
    for summary in list.invalidation_list().map(|l| l.items()).unwrap_or_default() {
        let got = client.get_invalidation().distribution_id(id).id(summary.id()).send().await.unwrap();
        let mut paths: Vec<String> =
            got.invalidation().unwrap().invalidation_batch().unwrap().paths().unwrap().items().to_vec();
        paths.sort();
        all.push(paths);
    }
    all.sort();
    all
}

fn sale(id: u64, name: &str) -> Sale {
    let t = Utc::now() + Duration::hours(1);
    Sale {
        id: SaleId(id),
        name: name.into(),
        description: "A fine thing".into(),
        price_cents: 4_999,
        currency: Default::default(),
        stock: 10,
        sold: 0,
        per_user_limit: 1,
        starts_at: t,
        ends_at: t + Duration::hours(1),
        payment_window_secs: 300,
        waiting_room: None,
        published: true,
        created_at: t,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_written_once_and_only_changes_are_invalidated() {
    let bucket_name = format!("pages-{:08x}", rand::random::<u32>());
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.aws.bucket = bucket_name.clone();
    })
    .await;
    let sdk = flashsale::stores::aws::sdk_config(&stack.config).await;
    let (cloudfront, distribution_id) = distribution(&sdk).await;
    let s3 = flashsale::stores::s3::client(&sdk);
    let publisher = Publisher::new(
        Bucket::new(s3.clone(), bucket_name.clone()),
        Some(CloudFront::new(&sdk, distribution_id.clone())),
        Site {
            api: "/api".into(),
            sign_in_url: "/dev/sign-in".into(),
            payments_js_url: "http://127.0.0.1:8420/js.stripe.com/v3/".into(),
            payments_key: "pk_test_x".into(),
        },
    );
    let (a, b) = (sale(900_001, "Alpha"), sale(900_002, "Beta"));
    let inputs = vec![(a.clone(), PageState::Scheduled), (b.clone(), PageState::Scheduled)];

    let first = publisher.publish(&inputs, &inputs).await.unwrap();
    assert_eq!(first.changed.len(), 11, "six assets, the index, My orders, the console and two sale pages: {first:?}");
    let bucket = Bucket::new(s3.clone(), bucket_name.clone());
    let page = bucket.get("sales/900001").await.unwrap().unwrap();
    assert_eq!(page.content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(page.cache_control.as_deref(), Some(HTML_CACHE));
    let js_key = first.changed.iter().find(|k| k.ends_with(".js")).unwrap();
    let js = bucket.get(js_key).await.unwrap().unwrap();
    assert_eq!(js.cache_control.as_deref(), Some(ASSET_CACHE));
    assert_eq!(js.content_type.as_deref(), Some("text/javascript; charset=utf-8"));
    assert!(String::from_utf8(page.body).unwrap().contains(&format!("/{js_key}")));
    assert_eq!(
        invalidations(&cloudfront, &distribution_id).await,
        vec![vec!["/".to_string(), "/admin/".into(), "/orders".into(), "/sales/900001".into(), "/sales/900002".into()]]
    );

    // The same inputs again: nothing written, nothing invalidated.
    let again = publisher.publish(&inputs, &inputs).await.unwrap();
    assert_eq!(again, Published { changed: vec![], unchanged: 11 });
    assert_eq!(invalidations(&cloudfront, &distribution_id).await.len(), 1);

    // Beta sells out: its page and the index change, nothing else.
    let changed = vec![(a.clone(), PageState::Scheduled), (b.clone(), PageState::SoldOut)];
    let third = publisher.publish(&changed, &changed).await.unwrap();
    assert_eq!(third.changed, vec!["index.html".to_string(), "sales/900002".into()]);
    assert!(invalidations(&cloudfront, &distribution_id)
        .await
        .contains(&vec!["/".to_string(), "/sales/900002".into()]));
}

/// The headers of the distribution's response headers policy, as the local edge sends them.
fn assert_security_headers(response: &reqwest::Response) {
    for (name, value) in flashsale_local::aws::edge::PAGE_HEADERS {
        assert_eq!(response.headers()[name], value, "{name} on {}", response.url());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_sale_puts_its_page_behind_the_local_edge() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.aws.bucket = format!("pages-{:08x}", rand::random::<u32>());
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 60, 3600, 3600)).await;
    let http = reqwest::Client::new();

    let index = http.get(stack.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert_security_headers(&index);
    assert!(index.text().await.unwrap().contains(&format!("/sales/{sale}")));

    let page = http.get(stack.url(&format!("/sales/{sale}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], HTML_CACHE);
    assert_security_headers(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains("&#60;b&#62;escaped&#60;/b&#62;") || html.contains("&lt;b&gt;escaped"), "sale text escaped");
    // The page's own script (the payment provider's comes from the provider).
    let script = html
        .split("<script src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|src| src.starts_with("/assets/"))
        .expect("the page's script");
    let asset = http.get(stack.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["cache-control"], ASSET_CACHE);
    assert_security_headers(&asset);

    let polled = http.get(stack.url(&format!("/api/sales/{sale}"))).send().await.unwrap();
    assert_eq!(polled.status(), 200);
    assert_eq!(polled.headers()["cache-control"], "public, max-age=1", "the edge absorbs polling");
    assert_eq!(http.get(stack.url("/no/such/page")).send().await.unwrap().status(), 404);
    let sign_in = http.get(stack.url("/dev/oauth2/authorize")).send().await.unwrap().text().await.unwrap();
    assert!(sign_in.contains("Local development only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_that_sells_out_gets_its_page_rerendered_to_say_so() {
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.aws.bucket = format!("pages-{:08x}", rand::random::<u32>());
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(1, 1, 60, -1, 3600)).await;
    let http = reqwest::Client::new();
    let page = || async { http.get(stack.url(&format!("/sales/{sale}"))).send().await.unwrap().text().await.unwrap() };
    assert!(page().await.contains("data-state=\"upcoming\""));
    let (_, body) = api.call("GET", &format!("/api/sales/{sale}"), None, None).await;
    assert_eq!(body["state"], "open");

    assert_eq!(api.buy(sale, "the-one", None).await.0, 202);
    // What reconcile runs every minute (and render-pages on demand).
    let sdk = flashsale::stores::aws::sdk_config(&stack.config).await;
    let publisher = Publisher::from_config(&sdk, &stack.config);
    let db = flashsale::stores::mysql::Mysql::connect(&stack.config).unwrap();
    let cache = flashsale::stores::redis::Redis::connect(&stack.config, None).unwrap();
    let published = publisher.refresh(&db, &cache, Some(SaleId(sale))).await.unwrap();
    assert!(published.changed.contains(&format!("sales/{sale}")), "{published:?}");
    let html = page().await;
    assert!(html.contains("data-state=\"sold_out\"") && html.contains("Sold out"));
    // Nothing changed since: the next run writes nothing for this sale.
    let again = publisher.refresh(&db, &cache, Some(SaleId(sale))).await.unwrap();
    assert!(!again.changed.contains(&format!("sales/{sale}")));
}
