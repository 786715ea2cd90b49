//! A Lambda Runtime API of our own for one bootstrap process: the runtime's and the
//! Extensions API's endpoints, enough to time a function's init and to play one
//! invocation as Lambda does, freeze included. Lambda freezes a container once its
//! runtime has asked for the next event after answering and every registered extension
//! has asked for its next event too; [`RuntimeApi::invoke`] resolves at that moment, so
//! a test can stop the process there and look at what it left done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use flashsale::{Error, Result};
use serde_json::json;
use tokio::sync::watch;

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:local";

/// Where the bootstrap and its extensions stand.
#[derive(Clone, Default)]
struct Progress {
    /// When the runtime first asked for work, counted from the API's start: init ended.
    ready_after: Option<Duration>,
    /// What init failed with, if it did.
    init_error: Option<String>,
    /// Extension ids, in the order they registered.
    extensions: Vec<String>,
    /// The invocation handed out: its request id and deadline, once there is one.
    invocation: Option<(String, u64)>,
    /// The answer the runtime posted.
    answer: Option<String>,
    /// Who has been handed the invocation ([`RUNTIME`] or an extension id), and who has
    /// asked for their next event after it.
    given: Vec<String>,
    done: Vec<String>,
}

/// The runtime, among those the invocation is handed to.
const RUNTIME: &str = "runtime";

struct Shared {
    started: Instant,
    progress: watch::Sender<Progress>,
    /// The event of the one invocation, once `invoke` gives it.
    event: Mutex<Option<String>>,
}

pub struct RuntimeApi {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Serves the API on a free port of 127.0.0.1 until dropped with the runtime.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            progress: watch::Sender::new(Progress::default()),
            event: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(runtime_next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(answer))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(answer))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(extension_next))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(RuntimeApi { addr, shared })
    }

    /// The variables Lambda sets for a bootstrap, pointed at this API.
    pub fn variables(&self, function: &str) -> [(&'static str, String); 6] {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", function.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", function.to_string()),
        ]
    }

    /// How long after `start` the runtime first asked for work; an error if init failed
    /// or took longer than `limit`.
    pub async fn ready(&self, limit: Duration) -> Result<Duration> {
        let progress = self.until(limit, |p| p.ready_after.is_some() || p.init_error.is_some()).await?;
        match progress.init_error {
            Some(error) => Err(Error::Internal(format!("init failed: {error}"))),
            None => Ok(progress.ready_after.expect("ready")),
        }
    }

    /// The extensions registered so far.
    pub fn extensions(&self) -> Vec<String> {
        self.shared.progress.borrow().extensions.clone()
    }

    /// Hands `event` to the function as its one invocation, with `timeout` to its
    /// deadline, and returns the answer once Lambda would freeze the container.
    pub async fn invoke(&self, event: String, timeout: Duration) -> Result<String> {
        let deadline_ms =
            (SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + timeout).as_millis() as u64;
        *self.shared.event.lock().unwrap() = Some(event);
        self.shared
            .progress
            .send_modify(|p| p.invocation = Some((format!("{:032x}", rand::random::<u128>()), deadline_ms)));
        let frozen = self
            .until(timeout + Duration::from_secs(5), |p| {
                p.done.iter().any(|id| id == RUNTIME) && p.extensions.iter().all(|id| p.done.contains(id))
            })
            .await?;
        frozen.answer.ok_or_else(|| Error::Internal("the runtime asked for more work without answering".into()))
    }

    async fn until(&self, limit: Duration, reached: impl FnMut(&Progress) -> bool) -> Result<Progress> {
        let mut progress = self.shared.progress.subscribe();
        let reached = tokio::time::timeout(limit, async { progress.wait_for(reached).await.map(|p| p.clone()) }).await;
        match reached {
            Ok(Ok(progress)) => Ok(progress),
            _ => Err(Error::Internal(format!("the bootstrap did not get there within {limit:?}"))),
        }
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(e.to_string())
}

async fn runtime_next(State(shared): State<Arc<Shared>>) -> Response {
    let elapsed = shared.started.elapsed();
    shared.progress.send_modify(|p| {
        p.ready_after.get_or_insert(elapsed);
    });
    let (request_id, deadline_ms) = invocation(&shared, RUNTIME).await;
    let event = shared.event.lock().unwrap().take().unwrap_or_default();
    (
        [
            ("lambda-runtime-aws-request-id", request_id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        event,
    )
        .into_response()
}

/// The invocation for `party`'s first ask, once there is one; its next ask says it is
/// done with the invocation, and waits for good (the container is frozen).
async fn invocation(shared: &Shared, party: &str) -> (String, u64) {
    let mut handed_out = false;
    shared.progress.send_modify(|p| {
        handed_out = p.given.iter().any(|id| id == party);
        if handed_out {
            p.done.push(party.to_string());
        } else {
            p.given.push(party.to_string());
        }
    });
    if handed_out {
        return std::future::pending().await;
    }
    let mut progress = shared.progress.subscribe();
    let progress = progress.wait_for(|p| p.invocation.is_some()).await.expect("the sender lives in `shared`");
    progress.invocation.clone().expect("handed out")
}

async fn answer(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    shared.progress.send_modify(|p| p.answer = Some(body));
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    shared.progress.send_modify(|p| p.init_error = Some(body));
    StatusCode::ACCEPTED
}

async fn register(State(shared): State<Arc<Shared>>) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    shared.progress.send_modify(|p| p.extensions.push(id.clone()));
    let body = json!({"functionName": "local", "functionVersion": "$LATEST", "handler": "bootstrap"});
    ([("lambda-extension-identifier", id)], axum::Json(body)).into_response()
}

async fn extension_next(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let id = headers.get("lambda-extension-identifier").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (request_id, deadline_ms) = invocation(&shared, id).await;
    let event = json!({
        "eventType": "INVOKE",
        "deadlineMs": deadline_ms,
        "requestId": request_id,
        "invokedFunctionArn": FUNCTION_ARN,
    });
    axum::Json(event).into_response()
}
