//! CloudFront, played locally: every path outside `/api/*` is served from the pages
//! bucket with the headers stored on the object and the security headers of the
//! distribution's response headers policy, and `/` is the index, as the distribution's
//! default behaviour and root object do. Plus a development sign-in that only the local
//! stack has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use flashsale::stores::s3::Bucket;
use http::{header, Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The headers `PageHeadersPolicy` in template.yaml adds to every page and asset, with
/// the local payment provider (scripts/services.sh) for Stripe's origins.
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self' http://127.0.0.1:8420; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' http://127.0.0.1:8420; frame-src http://127.0.0.1:8420 https://hooks.stripe.com; \
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
    /// The lifetime of the dev sign-in's ID and access tokens (`FLASHSALE_DEV_TOKEN_TTL_SECS`).
    pub token_ttl_secs: u64,
    /// The dev sign-in's codes not yet traded for tokens.
    pub codes: Mutex<HashMap<String, Grant>>,
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
            for (name, value) in
                [(header::CONTENT_TYPE, object.content_type), (header::CACHE_CONTROL, object.cache_control)]
            {
                if let Some(value) = value.and_then(|v| v.parse().ok()) {
                    headers.insert(name, value);
                }
            }
            response
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><title>Not found</title><p>Not found. <a href=\"/\">All sales</a>"),
        )
            .into_response(),
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

/// The development sign-in, an authorization server with the shape of Cognito's hosted
/// UI for the authorization code flow with PKCE: `authorize` shows a form where any
/// name signs in (as shop staff when ticked), `code` issues a one-time code for it, `token` trades the code and its
/// verifier for tokens, and a refresh token for fresh ones. Never on AWS.
pub async fn authorize_page() -> Html<&'static str> {
    Html(include_str!("sign_in.html"))
}

/// The client id of the pages' dev sign-in (`FLASHSALE_SIGN_IN_URL`'s default).
pub const DEV_CLIENT_ID: &str = "flashsale-local";
/// How long an issued code may be traded for tokens.
const CODE_TTL: Duration = Duration::from_secs(300);

/// An issued code, until it is traded or expires.
pub struct Grant {
    user: String,
    admin: bool,
    redirect_uri: String,
    code_challenge: String,
    expires: Instant,
}

#[derive(Deserialize)]
pub struct CodeRequest {
    user: String,
    /// A token of the admin group (shop staff).
    #[serde(default)]
    admin: bool,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    code_challenge_method: String,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": error, "error_description": description })))
        .into_response()
}

/// Whether `uri` is on the site that asks (its own `Host`): the dev sign-in sends
/// shoppers back only there, as Cognito only to the app client's callback URLs.
fn is_own_site(uri: &str, host: Option<&str>) -> bool {
    let rest = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://"));
    matches!((rest.and_then(|r| r.split_once('/')), host), (Some((authority, _)), Some(host)) if authority == host)
}

pub async fn issue_code(
    State(edge): State<Arc<Edge>>,
    headers: http::HeaderMap,
    Json(request): Json<CodeRequest>,
) -> Response {
    let user = request.user.trim();
    if flashsale::UserId::new(user).is_err() {
        return oauth_error("invalid_request", "user must be 1 to 128 printable characters");
    }
    if request.client_id != DEV_CLIENT_ID {
        return oauth_error("unauthorized_client", "unknown client_id");
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !is_own_site(&request.redirect_uri, host) {
        return oauth_error("invalid_request", "redirect_uri must be on this site");
    }
    if request.code_challenge_method != "S256" || request.code_challenge.len() < 43 {
        return oauth_error("invalid_request", "a S256 code_challenge is required");
    }
    let code = format!("{:032x}", rand::random::<u128>());
    let mut codes = edge.codes.lock().unwrap();
    codes.retain(|_, grant| grant.expires > Instant::now());
    codes.insert(
        code.clone(),
        Grant {
            user: user.to_string(),
            admin: request.admin,
            redirect_uri: request.redirect_uri,
            code_challenge: request.code_challenge,
            expires: Instant::now() + CODE_TTL,
        },
    );
    Json(serde_json::json!({ "code": code })).into_response()
}

/// A request to the token endpoint (a form, as OAuth 2.0 has it): the fields of both
/// grants, each empty when not sent.
#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    refresh_token: String,
}

/// The token endpoint, as Cognito's `/oauth2/token`: `authorization_code` trades a code
/// and its PKCE verifier for an ID and access token and a refresh token;
/// `refresh_token` trades the refresh token for a fresh ID and access token. As
/// Cognito's by default, refresh tokens are not rotated: the answer carries none, and
/// the one the page holds keeps working until it lapses.
pub async fn token(State(edge): State<Arc<Edge>>, Form(request): Form<TokenRequest>) -> Response {
    let (user, admin, refresh) = match request.grant_type.as_str() {
        "authorization_code" => {
            // A code is good for one try, right or wrong.
            let grant = edge.codes.lock().unwrap().remove(&request.code);
            let Some(grant) = grant.filter(|g| g.expires > Instant::now()) else {
                return oauth_error("invalid_grant", "unknown or expired code");
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(request.code_verifier.as_bytes()));
            if request.client_id != DEV_CLIENT_ID
                || request.redirect_uri != grant.redirect_uri
                || challenge != grant.code_challenge
            {
                return oauth_error(
                    "invalid_grant",
                    "the code was issued for another client, redirect_uri or verifier",
                );
            }
            let refresh = crate::sign_in::refresh_token(
                &edge.jwt_secret,
                &grant.user,
                grant.admin,
                DEV_CLIENT_ID,
                crate::sign_in::REFRESH_TTL_SECS,
            );
            (grant.user, grant.admin, Some(refresh))
        }
        "refresh_token" => {
            if request.client_id != DEV_CLIENT_ID {
                return oauth_error("invalid_client", "unknown client_id");
            }
            if request.refresh_token.is_empty() {
                return oauth_error("invalid_request", "refresh_token is required");
            }
            let Some((user, admin)) =
                crate::sign_in::redeem_refresh_token(&edge.jwt_secret, &request.refresh_token, DEV_CLIENT_ID)
            else {
                return oauth_error("invalid_grant", "Invalid Refresh Token");
            };
            (user, admin, None)
        }
        _ => return oauth_error("unsupported_grant_type", "only authorization_code and refresh_token"),
    };
    let ttl = edge.token_ttl_secs;
    let token = crate::sign_in::token(&edge.jwt_secret, &user, admin, ttl);
    let mut body =
        serde_json::json!({ "id_token": token, "access_token": token, "token_type": "Bearer", "expires_in": ttl });
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    // Tokens are never cached on the way (RFC 6749, 5.1).
    ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_edge(token_ttl_secs: u64) -> Arc<Edge> {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        );
        Arc::new(Edge {
            bucket: Bucket::new(s3, "unused"),
            jwt_secret: "s3cret".into(),
            token_ttl_secs,
            codes: Default::default(),
        })
    }

    async fn answer(response: Response) -> (StatusCode, Option<String>, serde_json::Value) {
        let status = response.status();
        let cache = response.headers().get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, cache, serde_json::from_slice(&body).unwrap())
    }

    /// Signs `user` in as the page does: a code for a S256 challenge, traded with its verifier.
    async fn sign_in(edge: &Arc<Edge>, user: &str, admin: bool) -> serde_json::Value {
        let verifier = "a-verifier-of-the-page-that-is-long-enough-for-pkce";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
        let mut headers = http::HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        let asked = CodeRequest {
            user: user.into(),
            admin,
            client_id: DEV_CLIENT_ID.into(),
            redirect_uri: "http://127.0.0.1:3000/".into(),
            code_challenge: challenge,
            code_challenge_method: "S256".into(),
        };
        let (status, _, code) = answer(issue_code(State(edge.clone()), headers, Json(asked)).await).await;
        assert_eq!(status, StatusCode::OK, "{code}");
        let request = TokenRequest {
            grant_type: "authorization_code".into(),
            client_id: DEV_CLIENT_ID.into(),
            code: code["code"].as_str().unwrap().into(),
            redirect_uri: "http://127.0.0.1:3000/".into(),
            code_verifier: verifier.into(),
            refresh_token: String::new(),
        };
        let (status, cache, tokens) = answer(token(State(edge.clone()), Form(request)).await).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(cache.as_deref(), Some("no-store"));
        tokens
    }

    fn refresh(refresh_token: &str, client_id: &str) -> Form<TokenRequest> {
        Form(TokenRequest {
            grant_type: "refresh_token".into(),
            client_id: client_id.into(),
            code: String::new(),
            redirect_uri: String::new(),
            code_verifier: String::new(),
            refresh_token: refresh_token.into(),
        })
    }

    fn claims(token: &serde_json::Value) -> std::collections::HashMap<String, String> {
        crate::sign_in::verify("s3cret", token.as_str().expect("a token")).expect("a token of the dev secret")
    }

    #[tokio::test]
    async fn the_code_exchange_gives_a_refresh_token_that_renews_the_same_sign_in() {
        let edge = dev_edge(25);
        let signed_in = sign_in(&edge, "alice", true).await;
        assert_eq!(signed_in["expires_in"], 25, "the configured lifetime");
        let first = claims(&signed_in["id_token"]);
        assert_eq!(first["exp"].parse::<u64>().unwrap() - first["iat"].parse::<u64>().unwrap(), 25);
        let refresh_token = signed_in["refresh_token"].as_str().expect("a refresh token with the code's tokens");

        // Twice: the refresh token is not rotated, and still good after use.
        for _ in 0..2 {
            let (status, cache, renewed) =
                answer(token(State(edge.clone()), refresh(refresh_token, DEV_CLIENT_ID)).await).await;
            assert_eq!(status, StatusCode::OK, "{renewed}");
            assert_eq!(cache.as_deref(), Some("no-store"));
            assert_eq!(renewed["token_type"], "Bearer");
            assert_eq!(renewed["expires_in"], 25);
            assert!(renewed.get("refresh_token").is_none(), "not rotated: {renewed}");
            assert_eq!(renewed["id_token"], renewed["access_token"]);
            let claims = claims(&renewed["id_token"]);
            assert_eq!(claims["sub"], "alice");
            assert_eq!(claims["cognito:groups"], "[admin]", "still staff");
            assert!(claims["exp"].parse::<u64>().unwrap() >= first["exp"].parse::<u64>().unwrap());
        }
        // A shopper's stays a shopper's.
        let shopper = sign_in(&edge, "bob", false).await;
        let (_, _, renewed) = answer(
            token(State(edge.clone()), refresh(shopper["refresh_token"].as_str().unwrap(), DEV_CLIENT_ID)).await,
        )
        .await;
        let claims = claims(&renewed["id_token"]);
        assert_eq!(claims["sub"], "bob");
        assert!(!claims.contains_key("cognito:groups"));
    }

    #[tokio::test]
    async fn a_forged_unknown_or_misused_refresh_token_is_refused_as_cognito_does() {
        let edge = dev_edge(3600);
        let signed_in = sign_in(&edge, "alice", false).await;
        let good = signed_in["refresh_token"].as_str().unwrap().to_string();
        let mut tampered = good.clone();
        tampered.pop();
        let forged = crate::sign_in::refresh_token("another-secret", "alice", true, DEV_CLIENT_ID, 3600);
        for (what, refresh_token) in [
            ("a tampered token", tampered.as_str()),
            ("a token of another secret", forged.as_str()),
            ("a made-up token", "0123456789abcdef"),
            ("an ID token", signed_in["id_token"].as_str().unwrap()),
        ] {
            let (status, _, body) =
                answer(token(State(edge.clone()), refresh(refresh_token, DEV_CLIENT_ID)).await).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
            assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
        }
        let (status, _, body) = answer(token(State(edge.clone()), refresh(&good, "another-client")).await).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client")));
        let (status, _, body) = answer(token(State(edge.clone()), refresh("", DEV_CLIENT_ID)).await).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        let mut other = refresh(&good, DEV_CLIENT_ID);
        other.0.grant_type = "password".into();
        let (status, _, body) = answer(token(State(edge.clone()), other).await).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        // None of it spoiled the good one.
        let (status, _, _) = answer(token(State(edge.clone()), refresh(&good, DEV_CLIENT_ID)).await).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn the_dev_sign_in_sends_shoppers_back_only_to_the_site_that_asked() {
        let host = Some("127.0.0.1:3000");
        assert!(is_own_site("http://127.0.0.1:3000/", host));
        assert!(is_own_site("http://127.0.0.1:3000/sales/1", host));
        for crafted in [
            "http://evil.example/",
            "http://127.0.0.1:3000.evil.example/",
            "http://127.0.0.1:3000",
            "/\\evil.example",
            "//evil.example/",
            "javascript:alert(1)//127.0.0.1:3000/",
        ] {
            assert!(!is_own_site(crafted, host), "{crafted}");
        }
        assert!(!is_own_site("http://127.0.0.1:3000/", None));
    }

    /// The value of the first `key: value` line of `block` with a value.
    fn value<'a>(block: &'a str, key: &str) -> &'a str {
        block
            .lines()
            .filter_map(|line| line.trim().strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"'))
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{key} in PageHeadersPolicy"))
    }

    /// The policy line of the `!Sub` that builds the Content-Security-Policy.
    fn csp(block: &str) -> String {
        let line = block
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("- \"default-src"))
            .expect("the CSP in PageHeadersPolicy");
        line.trim_start_matches("- ").trim_matches('"').to_string()
    }

    #[test]
    fn the_edge_sends_the_headers_of_the_templates_response_headers_policy() {
        let template = include_str!("../../../template.yaml");
        let start = template.find("\n  PageHeadersPolicy:").expect("PageHeadersPolicy in template.yaml");
        let block = &template[start + 1..];
        let block = &block[..block.find("\n\n").unwrap_or(block.len())];
        assert_eq!(value(block, "IncludeSubdomains"), "true");
        let expected = [
            // The local token endpoint is on the site itself: no origin to add.
            (
                "content-security-policy",
                csp(block)
                    .replace(" ${AuthOrigin}", "")
                    .replace("${PaymentsScriptOrigin}", "http://127.0.0.1:8420")
                    .replace("${PaymentsApiOrigin}", "http://127.0.0.1:8420"),
            ),
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
