//! A webhook endpoint of the test's own at the provider: it records every delivery (the
//! body as sent and its `Stripe-Signature`) and answers 200, to hold back, replay or hand
//! to the stack.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::eventually;

/// What the provider delivered to the endpoint.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub body: String,
    pub signature: String,
}

impl Delivery {
    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An endpoint that records every delivery and answers 200.
pub struct Capture {
    pub url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Capture {
    pub async fn start() -> Self {
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Default::default();
        let kept = deliveries.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let signature = headers["stripe-signature"].to_str().unwrap().to_string();
                    kept.lock().unwrap().push(Delivery { body, signature });
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture { url, deliveries }
    }

    /// The deliveries of events about `intent`.
    pub fn of(&self, intent: &str) -> Vec<Delivery> {
        let all = self.deliveries.lock().unwrap().clone();
        all.into_iter().filter(|d| d.event()["data"]["object"]["id"] == intent).collect()
    }

    /// The delivery of the event `kind` about `intent`, once the provider sent it:
    /// `(body, signature)`.
    pub async fn delivery(&self, kind: &str, intent: &str) -> (String, String) {
        eventually(&format!("{kind} of {intent} delivered"), Duration::from_secs(10), || async {
            self.of(intent)
                .into_iter()
                .find(|d| d.event()["type"] == kind)
                .map(|Delivery { body, signature }| (body, signature))
        })
        .await
    }
}
