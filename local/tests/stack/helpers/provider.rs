//! The local payment provider behind a proxy of the test's own, and a client of the
//! stack's account at the provider.
//!
//! A provider slow on the wire (every answer late, byte for byte) is a [`super::FaultProxy`]
//! in front of it instead (`fairness.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use flashsale_local::Stack;

/// An account's POST as the proxy saw it: its path and `Idempotency-Key`.
pub type Post = (String, Option<String>);

/// The local provider behind a proxy of the test's own. Of the account's calls (those
/// with a secret key; the page's confirmations carry none) it counts every one and
/// records each POST (path, `Idempotency-Key`); while `refusing`, it answers them 429 as
/// a rate-limited provider does; while `slow` names a path, it holds back the provider's
/// answer to the account's calls to it (the call is made; only its answer is late).
pub struct ProviderProxy {
    pub url: String,
    calls: Arc<AtomicUsize>,
    posts: Arc<Mutex<Vec<Post>>>,
    refusing: Arc<AtomicBool>,
    slow: Arc<Mutex<Option<(&'static str, Duration)>>>,
    held: Arc<AtomicUsize>,
}

impl ProviderProxy {
    pub async fn start() -> Self {
        let upstream = flashsale_local::Options::from_env().unwrap().payments_url.trim_end_matches('/').to_string();
        let proxy = ProviderProxy {
            url: String::new(),
            calls: Default::default(),
            posts: Default::default(),
            refusing: Default::default(),
            slow: Default::default(),
            held: Default::default(),
        };
        let (calls, posts, refusing, slow, held) =
            (proxy.calls.clone(), proxy.posts.clone(), proxy.refusing.clone(), proxy.slow.clone(), proxy.held.clone());
        flashsale::stores::aws::install_crypto_provider();
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (upstream, client, calls, posts, refusing, slow, held) = (
                upstream.clone(),
                client.clone(),
                calls.clone(),
                posts.clone(),
                refusing.clone(),
                slow.clone(),
                held.clone(),
            );
            async move {
                let (parts, body) = request.into_parts();
                let account = parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("Bearer sk_"));
                let key = parts.headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_string());
                if account {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if refusing.load(Ordering::SeqCst) {
                        let body = r#"{"error":{"message":"Too many requests hit the API too quickly."}}"#;
                        return (http::StatusCode::TOO_MANY_REQUESTS, [("content-type", "application/json")], body)
                            .into_response();
                    }
                    if parts.method == http::Method::POST {
                        posts.lock().unwrap().push((parts.uri.path().to_string(), key.clone()));
                    }
                }
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let mut forward = client.request(parts.method.clone(), format!("{upstream}{path}")).body(body);
                for name in [http::header::AUTHORIZATION, http::header::CONTENT_TYPE] {
                    if let Some(value) = parts.headers.get(&name) {
                        forward = forward.header(name, value);
                    }
                }
                if let Some(key) = key {
                    forward = forward.header("idempotency-key", key);
                }
                let answer = forward.send().await.expect("the local provider answers");
                let status = answer.status();
                let kind = answer.headers().get(http::header::CONTENT_TYPE).cloned();
                let body = answer.bytes().await.unwrap_or_default();
                let delay = *slow.lock().unwrap();
                if let Some((slowed, by)) = delay.filter(|(slowed, _)| account && parts.uri.path() == *slowed) {
                    held.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(slowed, "answer held back");
                    tokio::time::sleep(by).await;
                }
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                *response.status_mut() = status;
                if let Some(kind) = kind {
                    response.headers_mut().insert(http::header::CONTENT_TYPE, kind);
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        ProviderProxy { url, ..proxy }
    }

    /// The account's calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// From now on, answers the account's calls 429 (or forwards them again).
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// From now on, holds back the answers to the account's calls to `path` by `by`
    /// (`None`: answers at once).
    pub fn slow(&self, slow: Option<(&'static str, Duration)>) {
        *self.slow.lock().unwrap() = slow;
    }

    /// The idempotency keys of the refunds asked for (made or answered again).
    pub fn refund_keys(&self) -> Vec<Option<String>> {
        let posts = self.posts.lock().unwrap().clone();
        posts.into_iter().filter(|(path, _)| path == "/v1/refunds").map(|(_, key)| key).collect()
    }

    /// How many answers were held back.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

/// A client of the stack's account at the local payment provider.
pub fn provider(stack: &Stack) -> flashsale::payments::Provider {
    flashsale::payments::Provider::from_config(&stack.config, &stack.secrets).expect("the stack's payment keys")
}
