//! Each function's real bootstrap binary starts and answers its sample event from
//! `events/` against the local services. A minimal Lambda Runtime API (the interface
//! the Lambda service and every runtime emulator offer) hands the event over and
//! takes the answer back. `make test` builds the binaries first, for this machine and
//! for arm64 (`scripts/arm64.sh`); with `FLASHSALE_ARM64_DIR` set, the arm64 release
//! bootstraps, the ones a deploy ships, answer too, under qemu-user.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use common::*;
use serde_json::Value;
use tokio::sync::oneshot;

struct Invocation {
    event: Mutex<Option<String>>,
    answer: Mutex<Option<oneshot::Sender<(String, Value)>>>,
}

async fn next(State(inv): State<Arc<Invocation>>) -> (HeaderMap, String) {
    loop {
        let event = inv.event.lock().unwrap().take();
        if let Some(event) = event {
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            headers.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:test".parse().unwrap(),
            );
            return (headers, event);
        }
        // Only one invocation per test: later polls wait until the process is killed.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn respond(State(inv): State<Arc<Invocation>>, Path((_, kind)): Path<(String, String)>, body: String) {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if let Some(tx) = inv.answer.lock().unwrap().take() {
        let _ = tx.send((kind, value));
    }
}

async fn init_error(State(inv): State<Arc<Invocation>>, body: String) {
    if let Some(tx) = inv.answer.lock().unwrap().take() {
        let _ = tx.send(("init-error".into(), Value::String(body)));
    }
}

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
                let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
                let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo.join("target"));
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

/// Runs `binary` under the runtime API with `event`; returns ("response" | "error" | "init-error", payload).
async fn invoke(build: Build, binary: &str, event: String, stack: &flashsale_local::Stack) -> (String, Value) {
    let (tx, rx) = oneshot::channel();
    let inv = Arc::new(Invocation { event: Mutex::new(Some(event)), answer: Mutex::new(Some(tx)) });
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(respond))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(inv);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let c = &stack.config;
    let mut child = build
        .command(binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bootstrap-test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bootstrap-test")
        .env("FLASHSALE_ORDERS_QUEUE_URL", &c.orders_queue_url)
        .env("FLASHSALE_TIMEOUTS_QUEUE_URL", &c.timeouts_queue_url)
        .env("FLASHSALE_BUCKET", &c.bucket)
        .env("RUST_LOG", "warn")
        // Reconcile looks at every open sale of the shared test database; leave other
        // tests' outboxes alone.
        .env("FLASHSALE_OUTBOX_RESEND_AFTER_SECS", "86400")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(120), rx).await.expect("the bootstrap answered").unwrap();
    let _ = child.kill().await;
    server.abort();
    answer
}

/// A sample event with its sale id pointed at a sale of this test.
fn sample(name: &str, sale: u64) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(repo.join("events").join(format!("{name}.json")))
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

    for name in ["admit", "shop-api", "admin-api"] {
        let (kind, response) = invoke(build, name, sample(name, sale), &stack).await;
        assert_eq!(kind, "response", "{name}: {response}");
        let status = response["statusCode"].as_u64().unwrap_or(0);
        assert!((200..500).contains(&status), "{name} answered {response}");
    }
    for name in ["persist-orders", "close-expired", "reconcile", "render-pages"] {
        let (kind, response) = invoke(build, name, sample(name, sale), &stack).await;
        assert_eq!(kind, "response", "{name}: {response}");
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
    if std::env::var_os("FLASHSALE_ARM64_DIR").is_none() {
        eprintln!("FLASHSALE_ARM64_DIR is not set: the arm64 bootstraps are checked by make test");
        return;
    }
    every_bootstrap_answers(Build::Arm64).await;
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
