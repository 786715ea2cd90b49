//! CloudFront, played locally: every path outside `/api/*` is served from the pages
//! bucket with the headers stored on the object, and `/` is the index, as the
//! distribution's default behaviour and root object do. Plus a development sign-in
//! that only the local stack has.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use flashsale::bucket::Bucket;
use http::{header, Method, StatusCode};
use serde::Deserialize;

pub struct Edge {
    pub bucket: Bucket,
    pub jwt_secret: String,
}

pub async fn static_file(State(edge): State<Arc<Edge>>, request: Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = request.uri().path();
    let key = match path.trim_start_matches('/') {
        "" => "index.html",
        key => key,
    };
    match edge.bucket.get(key).await {
        Ok(Some(object)) => {
            let mut response = (StatusCode::OK, object.body).into_response();
            let headers = response.headers_mut();
            for (name, value) in [(header::CONTENT_TYPE, object.content_type), (header::CACHE_CONTROL, object.cache_control)] {
                if let Some(value) = value.and_then(|v| v.parse().ok()) {
                    headers.insert(name, value);
                }
            }
            response
        }
        Ok(None) => (StatusCode::NOT_FOUND, Html("<!doctype html><title>Not found</title><p>Not found. <a href=\"/\">All sales</a>")).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, key, "bucket read failed");
            StatusCode::BAD_GATEWAY.into_response()
        }
    }
}

/// A sign-in form for development: any user name gets a token. Never on AWS.
pub async fn sign_in_page() -> Html<&'static str> {
    Html(include_str!("sign_in.html"))
}

#[derive(Deserialize)]
pub struct TokenRequest {
    user: String,
}

pub async fn dev_token(State(edge): State<Arc<Edge>>, Json(request): Json<TokenRequest>) -> Response {
    let user = request.user.trim();
    if flashsale::UserId::new(user).is_err() {
        return (StatusCode::BAD_REQUEST, "user must be 1 to 128 printable characters").into_response();
    }
    let token = crate::auth::token(&edge.jwt_secret, user, false, 24 * 3600);
    Json(serde_json::json!({ "token": token })).into_response()
}
