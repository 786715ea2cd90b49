//! The shopper pages and the staff console in a real browser: headless Chromium
//! (Debian's) driven by playwright-core from `e2e/`, against the local stack. `scripts/browser.sh` (run by
//! `make test`) installs both. Screenshots of each state land in
//! `target/browser-screenshots/`. The waiting room's test runs first, on a sale that
//! opens while its shoppers wait. The stack's sign-in issues tokens of
//! [`TOKEN_TTL_SECS`], so that every page here outlives its first token and renews it;
//! `session.test.mjs` checks the renewal itself.

use std::path::PathBuf;

use crate::helpers::*;

/// The lifetime of the dev sign-in's tokens in this test: short enough that pages renew
/// them while the test watches, long enough for a sign-in and a first call.
const TOKEN_TTL_SECS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_buy_and_pay_and_staff_run_a_sale_from_the_console() {
    let _heavy = one_heavy_test_at_a_time().await;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let e2e = repo.join("e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "the browser test needs scripts/browser.sh (make test runs it)"
    );
    let stack = stack_with(|o| {
        o.config.aws.bucket = format!("pages-{:08x}", rand::random::<u32>());
        o.dev_token_ttl_secs = TOKEN_TTL_SECS;
    })
    .await;
    let api = Api::new(&stack);
    let screenshots = repo.join("target/browser-screenshots");
    // The waiting room first, on a sale of its own: one unit, one shopper a second,
    // opening while both of its shoppers wait.
    let mut queued = sale_spec(1, 1, 120, 15, 3600);
    queued["waiting_room"] = serde_json::json!({ "mode": "fifo", "rate": 1, "difficulty": 50_000 });
    let queued = api.sale(queued).await;
    let mut waiting = tokio::process::Command::new("node");
    waiting
        .args(["--test", "waiting.test.mjs"])
        .current_dir(&e2e)
        .env("BASE_URL", stack.url(""))
        .env("PAYMENTS_URL", &stack.config.payments.api_url)
        .env("QUEUE_SALE_ID", queued.to_string())
        .env("SCREENSHOT_DIR", &screenshots);
    run_node(waiting, "the waiting-room browser test", &screenshots).await;
    // Opens a little after the browser has loaded the page, so it sees the countdown.
    let sale = api.sale(sale_spec(5, 1, 120, 15, 3600)).await;
    let sold = api.sale(sale_spec(1, 1, 120, -1, 3600)).await;
    let mut shopper = tokio::process::Command::new("node");
    shopper
        .args(["--test", "--test-concurrency=1", "shopper.test.mjs", "staff.test.mjs"])
        .current_dir(&e2e)
        .env("BASE_URL", stack.url(""))
        .env("PAYMENTS_URL", &stack.config.payments.api_url)
        .env("SALE_ID", sale.to_string())
        .env("SOLD_SALE_ID", sold.to_string())
        // A valid token of another shopper, for a crafted sign-in link.
        .env("FOREIGN_TOKEN", api.token("someone-else"))
        .env("SCREENSHOT_DIR", &screenshots);
    run_node(shopper, "the browser test", &screenshots).await;
    // Last: it waits out a token's lifetime, which the sales above do not wait for.
    let mut session = tokio::process::Command::new("node");
    session
        .args(["--test", "session.test.mjs"])
        .current_dir(&e2e)
        .env("BASE_URL", stack.url(""))
        .env("TOKEN_TTL_SECS", TOKEN_TTL_SECS.to_string())
        .env("SCREENSHOT_DIR", &screenshots);
    run_node(session, "the staying-signed-in browser test", &screenshots).await;
    for shot in [
        "01-countdown.png",
        "02-open.png",
        "03-payable.png",
        "04-paid.png",
        "05-sold-out-phone.png",
        "06-my-orders.png",
        "10-console-invalid-field.png",
        "11-console-funnel.png",
        "12-console-found.png",
        "13-console-renewed.png",
        "20-queue-joined.png",
        "21-queue-waiting.png",
        "22-queue-bought.png",
        "23-queue-sold-out.png",
    ] {
        assert!(screenshots.join(shot).exists(), "missing screenshot {shot}");
    }
}

/// Runs a `node --test` file set, prints its report, and fails with its failures' own
/// words (the report's `not ok` blocks), so that a failure reads in the test's message.
async fn run_node(mut command: tokio::process::Command, what: &str, screenshots: &std::path::Path) {
    let output = command.output().await.expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        let failures: Vec<&str> =
            report.split("\nnot ok ").skip(1).map(|block| block.split("\n  ...").next().unwrap_or(block)).collect();
        let mut why = failures.join("\n---\n");
        why.truncate(why.floor_char_boundary(4000));
        panic!("{what} failed (screenshots in {}):\nnot ok {why}", screenshots.display());
    }
}
