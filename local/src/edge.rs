//! CloudFront, played locally: every path outside `/api/*` is served from the pages
//! bucket with the headers stored on the object and the security headers of the
//! distribution's response headers policy, and `/` is the index, as the distribution's
//! default behaviour and root object do. Plus a development sign-in that only the local
//! stack has.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use flashsale::bucket::Bucket;
use http::{header, Method, StatusCode};
use serde::Deserialize;

/// The headers `PageHeadersPolicy` in template.yaml adds to every page and asset.
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
];

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
    let mut response = match edge.bucket.get(key).await {
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
    };
    for (name, value) in PAGE_HEADERS {
        response.headers_mut().insert(name, http::HeaderValue::from_static(value));
    }
    response
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

#[cfg(test)]
mod tests {
    use super::PAGE_HEADERS;

    /// The value of the first `key: value` line of `block` with a value.
    fn value<'a>(block: &'a str, key: &str) -> &'a str {
        block
            .lines()
            .filter_map(|line| line.trim().strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"'))
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{key} in PageHeadersPolicy"))
    }

    #[test]
    fn the_edge_sends_the_headers_of_the_templates_response_headers_policy() {
        let template = include_str!("../../template.yaml");
        let start = template.find("\n  PageHeadersPolicy:").expect("PageHeadersPolicy in template.yaml");
        let block = &template[start + 1..];
        let block = &block[..block.find("\n\n").unwrap_or(block.len())];
        assert_eq!(value(block, "IncludeSubdomains"), "true");
        let expected = [
            ("content-security-policy", value(block, "ContentSecurityPolicy").to_string()),
            ("x-content-type-options", "nosniff".to_string()),
            ("x-frame-options", value(block, "FrameOption").to_string()),
            ("referrer-policy", value(block, "ReferrerPolicy").to_string()),
            (
                "strict-transport-security",
                format!("max-age={}; includeSubDomains", value(block, "AccessControlMaxAgeSec")),
            ),
        ];
        let local: Vec<(&str, String)> = PAGE_HEADERS.iter().map(|(k, v)| (*k, v.to_string())).collect();
        assert_eq!(local, expected);
    }
}
