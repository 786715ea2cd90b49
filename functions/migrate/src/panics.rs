//! A panic answers CloudFormation too. Release builds abort on a panic (no unwinding,
//! no destructor runs), so the answer is sent from the panic hook, on a thread of its
//! own, before the process ends; otherwise the resource would wait out its
//! `ServiceTimeout` for an answer that never comes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceResponse as Response, CloudFormationCustomResourceResponseStatus as Status,
};

use crate::ANSWER_ATTEMPT;

tokio::task_local! {
    /// The armed answer of the request the current task works for.
    pub(crate) static ANSWERING: u64;
}

/// The answers due if the process panics now: URL and response, by arming.
static ARMED: Mutex<Option<HashMap<u64, (String, Response)>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);
static HOOK: Once = Once::new();

/// A request's FAILED answer, sent if a panic comes while it is held.
pub(crate) struct Armed(u64);

impl Armed {
    pub(crate) fn id(&self) -> u64 {
        self.0
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(armed) = ARMED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            armed.remove(&self.0);
        }
    }
}

pub(crate) fn arm(url: &str, response: &Response) -> Armed {
    HOOK.call_once(install);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    armed.get_or_insert_with(HashMap::new).insert(id, (url.to_string(), response.clone()));
    Armed(id)
}

/// Chains a hook before the one in place: it answers FAILED for the request of the
/// panicking task, or, when the panic is elsewhere (a task of a client library), for
/// every request in flight (a Lambda container serves one at a time).
fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let due: Vec<(String, Response)> = {
            let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
            let armed = armed.get_or_insert_with(HashMap::new);
            match ANSWERING.try_with(|id| *id) {
                Ok(id) => armed.remove(&id).into_iter().collect(),
                Err(_) => armed.drain().map(|(_, due)| due).collect(),
            }
        };
        let reason = format!("the migrate function panicked: {info} (see the function's log)");
        for (url, mut response) in due {
            response.status = Status::Failed;
            response.reason = Some(reason.clone());
            // The panicking thread may be a runtime's: the answer gets a runtime of its own.
            let sent = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                let body = serde_json::to_vec(&response).ok()?;
                runtime.block_on(async {
                    let client = reqwest::Client::builder().timeout(ANSWER_ATTEMPT).build().ok()?;
                    client.put(url).body(body).send().await.ok()?.error_for_status().ok()
                })
            })
            .join();
            if !matches!(sent, Ok(Some(_))) {
                eprintln!("migrate: could not answer CloudFormation after a panic");
            }
        }
        previous(info);
    }));
}
