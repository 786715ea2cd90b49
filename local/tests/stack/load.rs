//! The load tool against the local stack, and the audit catching a planted oversell.

use std::time::Duration;

use crate::helpers::*;
use flashsale::stores::mysql::Mysql;
use flashsale::stores::redis::Redis;
use flashsale::SaleId;
use flashsale_local::ops::audit::audit;
use flashsale_local::ops::load::{run, LoadOptions, Tokens};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_of_20000_requests_sells_exactly_500_and_passes_the_audit() {
    let _heavy = one_heavy_test_at_a_time().await;
    // moto, the SQS and DynamoDB stand-in, takes the 500 sends of the opening second
    // more slowly than SQS does: give its calls room, or their timeouts open the
    // breakers and the admissions are undone (503), which is not what this test is about.
    let stack = stack_with(|o| {
        o.consumers = 3;
        o.config.aws.timeout = Duration::from_secs(15);
    })
    .await;
    let options = LoadOptions {
        base_url: stack.url(""),
        sale: None,
        stock: 500,
        per_user_limit: 1,
        shoppers: 5_000,
        requests: 20_000,
        concurrency: 64,
        ramp: Duration::ZERO,
        retry_429: true,
        tokens: Tokens::Signed { secret: stack.jwt_secret.clone() },
        admin_token: Some(stack.token("load-admin", true)),
        progress: false,
        // A bound on moto, the stand-in, not a speed goal: it drains SQS slowly under load.
        settle_timeout: Duration::from_secs(180),
    };
    let report = run(&options).await.unwrap();
    flashsale_local::ops::load::print(&report);
    assert_eq!(report.admitted, 500, "{:?}", report.outcomes);
    assert_eq!(report.outcomes.values().sum::<u64>(), 20_000);
    let outcomes: Vec<_> = report.outcomes.keys().collect();
    assert_eq!(report.latency_by_outcome.keys().collect::<Vec<_>>(), outcomes, "a latency for each outcome");
    let (admitted, overall) = (&report.latency_by_outcome["admitted"], &report.latency);
    assert!(admitted.max_ms <= overall.max_ms && admitted.p50_ms > 0.0, "{admitted:?} within {overall:?}");
    assert!(report.persisted_after_secs.is_some(), "every admitted order reached MySQL");

    let db = Mysql::connect(&stack.config).unwrap();
    let cache = Redis::connect(&stack.config, None).unwrap();
    let checks = audit(&db, &cache, SaleId(report.sale_id), Some(&report.admitted_ids)).await.unwrap();
    flashsale_local::ops::audit::print(&checks);
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_fails_on_a_planted_oversell() {
    let stack = stack().await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(2, 1, 600, -1, 3600)).await;
    let mut admitted = Vec::new();
    for user in ["x", "y"] {
        let (status, body) = api.buy(sale, user, None).await;
        assert_eq!(status, 202);
        admitted.push(body["order_id"].as_str().unwrap().parse::<flashsale::OrderId>().unwrap());
    }
    let pool = mysql(&stack).await;
    let redis = redis(&stack).await;
    // Settled: in MySQL, and their outbox entries cleared (until then a unit counts twice).
    eventually("both orders persisted", Duration::from_secs(20), || async {
        let settled = mysql_orders(&pool, sale).await.len() == 2 && outbox(&mut redis.clone(), sale).await.is_empty();
        settled.then_some(())
    })
    .await;
    let db = Mysql::connect(&stack.config).unwrap();
    let cache = Redis::connect(&stack.config, None).unwrap();
    assert!(audit(&db, &cache, SaleId(sale), Some(&admitted)).await.unwrap().iter().all(|c| c.passed));

    // By hand, behind every guard: a third unit sold to a shopper who already has one.
    sqlx::query(
        "INSERT INTO orders (id, sale_id, user_id, quantity, amount_cents, status, created_at, expires_at) \
         VALUES (?, ?, 'x', 1, 1000, 'UNPAID', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL 1 HOUR)",
    )
    .bind(rand::random::<u32>() as u64)
    .bind(sale)
    .execute(&pool)
    .await
    .unwrap();
    let checks = audit(&db, &cache, SaleId(sale), None).await.unwrap();
    flashsale_local::ops::audit::print(&checks);
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
    assert_eq!(
        failed,
        [
            "live orders within stock",
            "no shopper above the limit",
            "MySQL sold equals live orders",
            "the tallies agree with the orders"
        ]
    );
    let detail = &checks[0].detail;
    assert!(detail.contains("units held 3, stock 2"), "a clear message: {detail}");
    // The planted order is one no shopper was told of.
    let checks = audit(&db, &cache, SaleId(sale), Some(&admitted)).await.unwrap();
    let once = checks.iter().find(|c| c.name == "every admitted order in MySQL once").unwrap();
    assert!(!once.passed && once.detail.contains("1 no shopper was told of"), "{}", once.detail);

    // The command line says the same and exits non-zero.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_flashsale-local"))
        .args(["audit", "--sale", &sale.to_string()])
        .env("FLASHSALE_DATABASE_URL", stack.config.mysql.url.expose())
        .env("FLASHSALE_REDIS_URL", stack.config.redis.url.expose())
        .status()
        .await
        .unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn the_command_line_helps_everywhere_and_refuses_what_it_does_not_know() {
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_flashsale-local")).args(&args).output().await.unwrap()
        }
    };
    let commands = ["serve", "token", "migrate", "redrive", "load", "audit", "init-time"];
    let help = run(&["--help"]).await;
    assert!(help.status.success());
    let listed = String::from_utf8_lossy(&help.stdout);
    for command in commands {
        assert!(listed.contains(command), "--help lists {command}: {listed}");
        let output = run(&[command, "--help"]).await;
        assert!(output.status.success(), "{command} --help");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage: flashsale-local"), "{command} --help");
    }
    // Bad usage is exit code 2, with a message; a failed audit is 1 (the test above).
    for wrong in [&["audit"][..], &["audit", "--sale", "1", "--bogus"], &["token", "--user"], &["nonsense"]] {
        let output = run(wrong).await;
        assert_eq!(output.status.code(), Some(2), "{wrong:?}");
        assert!(!output.stderr.is_empty(), "{wrong:?} says why");
    }
}

#[tokio::test]
async fn token_count_signs_a_crowd_of_distinct_shoppers_for_a_load_tool() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flashsale-local"))
        .args(["token", "--user", "crowd", "--count", "50"])
        .env("FLASHSALE_DEV_JWT_SECRET", "crowd-secret")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let subjects: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|token| flashsale_local::sign_in::verify("crowd-secret", token).expect("a valid token")["sub"].clone())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("crowd-{i}")).collect();
    assert_eq!(subjects, expected);
}
