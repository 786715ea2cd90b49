//! The deploy's smoke test (`flashsale-local smoke`, run by the workflow against staging
//! through CloudFront), run here against the local stack and its local payment provider.

use std::time::Duration;

use flashsale_local::ops::smoke::{run, Smoke};

use crate::helpers::*;

fn smoke_of(stack: &flashsale_local::Stack, admin_token: String) -> Smoke {
    Smoke {
        base: stack.url(""),
        admin_token,
        shopper_tokens: [stack.token("smoke-a", false), stack.token("smoke-b", false)],
        payments: Some((stack.config.payments.api_url.clone(), "pk_test_flashsale_local".into())),
        window_secs: 3,
        within: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_test_creates_buys_pays_and_closes_a_sale_through_the_site() {
    let stack = stack().await;
    let report = run(&smoke_of(&stack, stack.token("smoke-admin", true))).await.expect("the smoke test passes");
    assert_eq!(report.len(), 6, "{report:#?}");
    assert!(report.iter().any(|line| line.contains("paid with the provider's test card")), "{report:#?}");
    assert!(report.iter().any(|line| line.contains("closed unpaid")), "{report:#?}");
}

#[tokio::test]
async fn the_smoke_test_names_the_step_that_failed() {
    let stack = stack().await;
    // A shopper's token cannot create a sale: the run stops there and says so.
    let failed = run(&smoke_of(&stack, stack.token("not-staff", false))).await.expect_err("a shopper is not staff");
    assert!(failed.starts_with("creating a sale: POST /api/admin/sales answered 403"), "{failed}");
}
