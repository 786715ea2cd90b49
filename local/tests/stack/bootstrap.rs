//! Each function's real bootstrap binary starts and answers its sample event from
//! `events/` against the local services, under the AWS Lambda Runtime Interface
//! Emulator (`aws-lambda-rie`, which `sam local invoke` runs inside its container; it
//! ships in the aws-sam-cli package that `scripts/lint-template.sh` installs), with the
//! function's variables from `env.json` pointed at this test's own queues, databases
//! and bucket: `sam local invoke` minus Docker. `make test` builds the binaries first,
//! for this machine and for arm64 (`scripts/arm64.sh`); with `FLASHSALE_ARM64_DIR` set,
//! the arm64 release bootstraps, the ones a deploy ships, answer too, under qemu-user.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::*;
use flashsale::outbox::PendingOrders;
use flashsale_local::aws::runtime_api::RuntimeApi;
use serde_json::{json, Value};

/// How a bootstrap is started: natively from the debug build, or an arm64 release
/// build under qemu-user.
#[derive(Clone, Copy)]
enum Build {
    Native,
    Arm64,
}

impl Build {
    fn command(self, binary: &str) -> tokio::process::Command {
        let path = match self {
            Build::Native => {
                let target =
                    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo().join("target"));
                target.join("debug").join(binary)
            }
            Build::Arm64 => PathBuf::from(std::env::var("FLASHSALE_ARM64_DIR").unwrap()).join(binary),
        };
        assert!(path.exists(), "{} is not built (make test builds it first)", path.display());
        match self {
            Build::Native => tokio::process::Command::new(path),
            // The arm64 glibc is Debian's multiarch libc6:arm64 (/lib/ld-linux-aarch64.so.1);
            // the cross toolchain's copy (-L /usr/aarch64-linux-gnu) hangs in
            // pthread_create under qemu.
            Build::Arm64 => {
                let mut qemu = tokio::process::Command::new("qemu-aarch64");
                qemu.arg(path);
                qemu
            }
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The emulator for this machine, from the aws-sam-cli package in `.venv-sam`.
fn emulator() -> PathBuf {
    let lib = repo().join(".venv-sam/lib");
    let found = std::fs::read_dir(&lib).ok().into_iter().flatten().flatten().find_map(|python| {
        let rie = python.path().join("site-packages/samcli/local/rapid/aws-lambda-rie-x86_64");
        rie.exists().then_some(rie)
    });
    found.unwrap_or_else(|| {
        panic!("no aws-lambda-rie under {} (make test installs it: scripts/lint-template.sh)", lib.display())
    })
}

/// The function's variables as `sam local invoke --env-vars env.json` sets them, with
/// what this test's stack made (queues, databases, bucket, tables) in place of the
/// developer's defaults.
fn env_vars(logical_id: &str, stack: &flashsale_local::Stack) -> HashMap<String, String> {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(repo().join("env.json")).unwrap()).unwrap();
    let declared = file[logical_id].as_object().unwrap_or_else(|| panic!("env.json has no {logical_id}"));
    let c = &stack.config;
    let ours = HashMap::from([
        ("FLASHSALE_REDIS_URL", c.redis.url.expose().to_string()),
        ("FLASHSALE_DATABASE_URL", c.mysql.url.expose().to_string()),
        ("FLASHSALE_ORDERS_QUEUE_URL", c.aws.orders_queue_url.clone()),
        ("FLASHSALE_TIMEOUTS_QUEUE_URL", c.aws.timeouts_queue_url.clone()),
        ("FLASHSALE_LEASE_TABLE", c.aws.lease_table.clone()),
        ("FLASHSALE_PENDING_ORDERS_TABLE", c.aws.pending_orders_table.clone()),
        ("FLASHSALE_BUCKET", c.aws.bucket.clone()),
        ("FLASHSALE_PAYMENTS_API_URL", c.payments.api_url.clone()),
        ("FLASHSALE_PAYMENTS_SECRET", c.payments.keys_secret.clone().unwrap_or_default()),
    ]);
    let mut vars: HashMap<String, String> = declared
        .iter()
        .map(|(name, value)| {
            let value = ours
                .get(name.as_str())
                .cloned()
                .unwrap_or_else(|| value.as_str().unwrap().replace("host.docker.internal", "127.0.0.1"));
            (name.clone(), value)
        })
        .collect();
    vars.insert("AWS_REGION".into(), std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()));
    vars.insert("RUST_LOG".into(), "warn".into());
    // Reconcile looks at every open sale of the shared test database; leave other
    // tests' outboxes alone.
    vars.insert("FLASHSALE_OUTBOX_RESEND_AFTER_SECS".into(), "86400".into());
    vars
}

/// Invokes `binary` once under the emulator with `event`; returns the emulator's answer
/// (the function's response, or its error as `{"errorType", "errorMessage"}`).
async fn invoke(build: Build, binary: &str, logical_id: &str, event: String, stack: &flashsale_local::Stack) -> Value {
    let (invoke_port, runtime_port) = (free_port().await, free_port().await);
    let bootstrap = build.command(binary);
    let mut emulator = tokio::process::Command::new(emulator());
    emulator
        .arg("--runtime-interface-emulator-address")
        .arg(format!("127.0.0.1:{invoke_port}"))
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{runtime_port}"))
        .arg(bootstrap.as_std().get_program())
        .args(bootstrap.as_std().get_args())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env_vars(logical_id, stack))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let child = emulator.spawn().expect("the emulator starts");
    let url = format!("http://127.0.0.1:{invoke_port}/2015-03-31/functions/function/invocations");
    eventually("the emulator listening", Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", invoke_port)).await.ok().map(|_| ())
    })
    .await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let answer = http.post(&url).body(event).send().await.expect("the emulator answered");
    let body = answer.text().await.unwrap();
    // The emulator's child (the bootstrap, or qemu) is in its process group.
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
    }
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

/// The native admit bootstrap with only `vars` and the Lambda runtime API of `runtime`,
/// once it asks for work.
async fn admit_on(runtime: &RuntimeApi, vars: HashMap<String, String>) -> tokio::process::Child {
    let admit = Build::Native
        .command("admit")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(vars)
        .envs(runtime.variables("admit"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    runtime.ready(Duration::from_secs(30)).await.expect("admit ready");
    admit
}

/// A sample event with its sale id pointed at a sale of this test.
fn sample(name: &str, sale: u64) -> String {
    std::fs::read_to_string(repo().join("events").join(format!("{name}.json")))
        .unwrap()
        .replace("/api/sales/1", &format!("/api/sales/{sale}"))
        .replace("\\\"sale_id\\\":1", &format!("\\\"sale_id\\\":{sale}"))
        // A fresh order id per run: the sample order is really persisted.
        .replace("1234567890123", &(rand::random::<u32>() as u64 + 1_000_000_000_000).to_string())
}

async fn every_bootstrap_answers(build: Build) {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 60, -1, 3600)).await;

    for (name, logical_id) in [
        ("admit", "AdmitFunction"),
        ("shop-api", "ShopApiFunction"),
        ("admin-api", "AdminApiFunction"),
        // A delivery not signed by the provider: 400, after the function's init.
        ("payment-webhook", "PaymentWebhookFunction"),
    ] {
        let response = invoke(build, name, logical_id, sample(name, sale), &stack).await;
        let status = response["statusCode"].as_u64().unwrap_or(0);
        assert!((200..500).contains(&status), "{name} answered {response}");
    }
    for (name, logical_id) in [
        ("persist-orders", "PersistOrdersFunction"),
        ("close-expired", "CloseExpiredFunction"),
        ("reconcile", "ReconcileFunction"),
        ("render-pages", "RenderPagesFunction"),
    ] {
        let response = invoke(build, name, logical_id, sample(name, sale), &stack).await;
        assert!(response.get("errorType").is_none() && !response.is_string(), "{name} answered {response}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bootstrap_answers_its_sample_event() {
    every_bootstrap_answers(Build::Native).await;
}

/// The binaries a deploy ships: arm64, release. `make test` builds them and sets
/// `FLASHSALE_ARM64_DIR`; a plain `cargo test` without it checks the native ones only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arm64_release_bootstrap_answers_its_sample_event_under_qemu() {
    let _heavy = one_heavy_test_at_a_time().await;
    if std::env::var_os("FLASHSALE_ARM64_DIR").is_none() {
        eprintln!("FLASHSALE_ARM64_DIR is not set: the arm64 bootstraps are checked by make test");
        return;
    }
    every_bootstrap_answers(Build::Arm64).await;
}

/// Lambda freezes a container once its runtime has asked for the next event after
/// answering and every extension has asked for its next event too. `admit` answers 202
/// before a slow hand-off ends (its replica acknowledged the order), and its extension
/// holds the freeze for the hand-off, but only within the settle bound: a container held
/// until a slow SQS answered would multiply the containers Lambda runs. Here AWS answers
/// 1.5 s late and SQS refuses the order (its queue is gone): the order is recorded in
/// the pending-orders table only after a slow round trip. The process is stopped at the moment
/// Lambda would freeze it: that is within the bound, with the order in the outbox
/// (durable: the replica holds it), and the hand-off goes on once it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admit_holds_its_freeze_for_a_slow_hand_off_only_within_the_settle_bound() {
    // A pending-orders table of its own: reconcile, run by other tests, forgets what MySQL has.
    let stack = stack_with(|o| {
        o.consumers = 0;
        o.config.aws.pending_orders_table = format!("pending-{:08x}", rand::random::<u32>());
    })
    .await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 60, -1, 3600)).await;
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("moto's address in AWS_ENDPOINT_URL");
    let moto: std::net::SocketAddr = moto.trim_start_matches("http://").parse().unwrap();
    let slow_aws = FaultProxy::lagging(moto, Duration::from_millis(1500)).await;
    let runtime = RuntimeApi::start().await.unwrap();
    let mut vars = env_vars("AdmitFunction", &stack);
    vars.insert("AWS_ENDPOINT_URL".into(), format!("http://{}", slow_aws.addr));
    vars.insert("FLASHSALE_AWS_TIMEOUT_MS".into(), "5000".into());
    vars.insert("FLASHSALE_ORDERS_QUEUE_URL".into(), format!("{}-gone", stack.config.aws.orders_queue_url));
    // The replica acknowledges the admission: the 202 goes out before the hand-off ends.
    vars.insert("FLASHSALE_REDIS_WAIT_REPLICAS".into(), "1".into());
    vars.insert("FLASHSALE_ADMIT_SETTLE_BOUND_MS".into(), "200".into());
    let admit = admit_on(&runtime, vars).await;
    assert_eq!(runtime.extensions().len(), 1, "admit registers its extension during init");
    slow_aws.lag_next_answers(u64::MAX);

    let started = std::time::Instant::now();
    let answer = runtime.invoke(sample("admit", sale), Duration::from_secs(9)).await.unwrap();
    let held = started.elapsed();
    let pid = admit.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();

    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["statusCode"], 202, "the shopper was admitted: {answer}");
    let order: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let mut redis = redis(&stack).await;
    let waiting = outbox(&mut redis, sale).await;
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert!(held < Duration::from_millis(1400), "frozen within the bound, not once the slow send ended: {held:?}");
    assert!(
        waiting.iter().any(|m| serde_json::from_str::<Value>(m).unwrap()["order_id"] == order["order_id"]),
        "the frozen container's order waits in the outbox: {waiting:?}"
    );
    let sdk = flashsale::stores::aws::sdk_config(&stack.config).await;
    let pending_orders = flashsale::outbox::PendingOrdersTable::new(&sdk, &stack.config);
    eventually("the order recorded once the container thawed", Duration::from_secs(20), || async {
        let kept = pending_orders.of_sale(flashsale::SaleId(sale)).await.unwrap();
        kept.iter().any(|o| json!(o.order_id) == order["order_id"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_missing_configuration_aws_needs_stops_at_init_and_says_what() {
    for (binary, missing) in [
        ("admit", "FLASHSALE_ORDERS_QUEUE_URL"),
        ("shop-api", "FLASHSALE_ORDERS_QUEUE_URL"),
        ("persist-orders", "FLASHSALE_TIMEOUTS_QUEUE_URL"),
        ("close-expired", "FLASHSALE_TIMEOUTS_QUEUE_URL"),
        ("reconcile", "FLASHSALE_ORDERS_QUEUE_URL"),
    ] {
        let run = Build::Native
            .command(binary)
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env_remove("FLASHSALE_ORDERS_QUEUE_URL")
            .env_remove("FLASHSALE_TIMEOUTS_QUEUE_URL")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), run).await.expect("it stops at once").unwrap();
        assert!(!output.status.success(), "{binary} started without {missing}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{missing} must be set")), "{binary} says what is missing: {stderr}");
    }
}

/// Lambda ends a container with an extension registered (admit's) by SIGTERM, then
/// SIGKILL 500 ms later: admit gives its worker id back in between, so the next
/// container can take it at once instead of after the lease's minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admit_gives_its_worker_id_back_when_lambda_ends_its_container() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(10, 1, 60, -1, 3600)).await;
    let runtime = RuntimeApi::start().await.unwrap();
    let mut admit = admit_on(&runtime, env_vars("AdmitFunction", &stack)).await;
    let answer: Value =
        serde_json::from_str(&runtime.invoke(sample("admit", sale), Duration::from_secs(9)).await.unwrap()).unwrap();
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let order: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let order = flashsale::OrderId(order["order_id"].as_str().unwrap().parse().unwrap());
    let worker = flashsale::ids::snowflake::worker_of(order);

    let sdk = flashsale::stores::aws::sdk_config(&stack.config).await;
    let leases = aws_sdk_dynamodb::Client::new(&sdk);
    let lease = || async {
        let item = leases
            .get_item()
            .table_name(&stack.config.aws.lease_table)
            .key("worker_id", aws_sdk_dynamodb::types::AttributeValue::N(worker.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        item.item().and_then(|i| i.get("owner")).and_then(|o| o.as_s().ok()).cloned()
    };
    let owner = lease().await.expect("the container holds the worker id its order carries");

    let pid = admit.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let exited = tokio::time::timeout(Duration::from_millis(1500), admit.wait()).await;
    assert!(exited.is_ok_and(|s| s.unwrap().success()), "admit ends cleanly within Lambda's bound");
    assert_ne!(lease().await, Some(owner), "worker id {worker} given back");
}
