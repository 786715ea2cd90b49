//! HTTP plumbing shared by the API functions: identity from the authorizer's claims,
//! bounded JSON bodies, routing by path, and the one mapping of [`Error`] to an
//! RFC 9457 `application/problem+json` response.

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::domain::{BadId, UserId};
use crate::error::Error;

/// The header CloudFront adds to every request it forwards to the API (an origin custom
/// header, template.yaml), holding a value only the distribution and the functions know.
pub const ORIGIN_HEADER: &str = "x-origin-verify";

/// The API is reachable only through the edge: a request that came to the API Gateway
/// endpoint directly (skipping CloudFront, its cache, WAF and throttles) lacks the
/// origin header's value and is refused with 403 before any work. Chosen over a custom
/// domain with the default endpoint disabled, which needs a domain and a certificate
/// of the deployer's; this works on any account's first deploy.
#[derive(Clone, Default)]
pub struct EdgeOnly {
    /// SHA-256 of each accepted value (the current one and, while it rotates, the
    /// previous): comparing digests tells a timing observer nothing about the value.
    accepted: Vec<[u8; 32]>,
}

impl EdgeOnly {
    /// From the origin values read at init; with none, every request is taken.
    pub fn from_secrets(secrets: &crate::config::Secrets) -> Self {
        EdgeOnly { accepted: secrets.origin_values.iter().map(|v| digest(v.expose().as_bytes())).collect() }
    }

    /// The 403 for a request that did not come through the edge; `None` lets it in.
    pub fn refuses(&self, req: &Request) -> Option<Response<Body>> {
        if self.accepted.is_empty() {
            return None;
        }
        let sent = req.headers().get(ORIGIN_HEADER).map(|v| digest(v.as_bytes()));
        if sent.is_some_and(|sent| self.accepted.contains(&sent)) {
            return None;
        }
        Some(problem(&Error::Forbidden("requests reach this API through the site only")))
    }
}

fn digest(value: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(value).into()
}

/// Problem `type`s are relative URI references under this path; docs/problems.md
/// describes each one.
pub const PROBLEM_BASE: &str = "/problems/";

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Binary(bytes))
        .expect("static response parts are valid")
}

/// The problem document for an error. Bad input and lost races are 4xx with a stable
/// `type`; only a sick dependency is 503 (with `Retry-After`), only a bug is 500.
pub fn problem(err: &Error) -> Response<Body> {
    let (status, kind, title) = match err {
        Error::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-request", "The request is not valid"),
        Error::BadSignature(_) => (StatusCode::BAD_REQUEST, "bad-signature", "The webhook signature is not valid"),
        Error::PayloadTooLarge { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "The request body is too large")
        }
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Sign in to continue"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
        Error::SoldOut { .. } => (StatusCode::CONFLICT, "sold-out", "Sold out"),
        Error::LimitReached { .. } => (StatusCode::CONFLICT, "limit-reached", "Purchase limit reached"),
        Error::NotOpen(_) => (StatusCode::CONFLICT, "not-open", "The sale is not open"),
        Error::NotPayable { .. } => (StatusCode::CONFLICT, "not-payable", "The order cannot be paid"),
        Error::NoWaitingRoom => (StatusCode::CONFLICT, "no-waiting-room", "The sale has no waiting room"),
        Error::NotYourTurn { .. } => (StatusCode::CONFLICT, "not-your-turn", "Not your turn yet"),
        Error::PassRefused(_) => (StatusCode::FORBIDDEN, "pass-refused", "The pass is not valid"),
        Error::ProofRefused(_) => (StatusCode::FORBIDDEN, "proof-refused", "The proof of work is not valid"),
        Error::Unavailable { .. }
        | Error::CircuitOpen { .. }
        | Error::Redis { .. }
        | Error::Db { .. }
        | Error::Aws { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable, please retry")
        }
        Error::Throttled { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "rate-limited", "Too many payment calls right now, please retry")
        }
        e @ Error::Provider { .. } if e.is_dependency_failure() => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable, please retry")
        }
        Error::Provider { .. } | Error::Migrate(_) | Error::Serde { .. } | Error::Config(_) | Error::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
        }
    };
    if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "request failed");
    }
    // Server-side details stay in the logs; the client gets what it can act on.
    let detail = if status.is_server_error() { title.to_string() } else { err.to_string() };
    let mut body = json!({
        "type": format!("{PROBLEM_BASE}{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    match err {
        Error::SoldOut { remaining } => body["remaining"] = json!(remaining),
        Error::LimitReached { limit, order_ids } => {
            body["limit"] = json!(limit);
            body["order_ids"] = json!(order_ids);
        }
        Error::NotPayable { status, .. } => body["order_status"] = json!(status),
        Error::NotYourTurn { position, serving } => {
            body["position"] = json!(position);
            body["serving"] = json!(serving);
        }
        _ => {}
    }
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .header(header::CACHE_CONTROL, "no-store");
    let retry_after = match err {
        Error::Unavailable { retry_after_secs, .. }
        | Error::CircuitOpen { retry_after_secs, .. }
        | Error::Throttled { retry_after_secs, .. } => Some(*retry_after_secs),
        e if e.is_dependency_failure() => Some(1),
        _ => None,
    };
    if let Some(secs) = retry_after {
        response = response.header(header::RETRY_AFTER, secs.to_string());
    }
    response.body(Body::Binary(serde_json::to_vec(&body).unwrap_or_default())).expect("static response parts are valid")
}

/// Who is calling, as the API Gateway JWT authorizer vouched. The functions never
/// look at the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub admin: bool,
}

pub fn caller(req: &Request) -> Result<Caller, Error> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
        }
        _ => None,
    };
    let claims = claims.ok_or(Error::Unauthorized("no identity on the request"))?;
    let sub = claims.get("sub").ok_or(Error::Unauthorized("the token has no subject"))?;
    // HTTP APIs flatten array claims into "[admin shoppers]".
    let admin = claims
        .get("cognito:groups")
        .map(|g| {
            g.trim_matches(|c| c == '[' || c == ']')
                .split(|c: char| c == ',' || c.is_whitespace())
                .any(|group| group.trim_matches('"') == "admin")
        })
        .unwrap_or(false);
    let user =
        UserId::new(sub.as_str()).map_err(|_| Error::Unauthorized("the token's subject is not a valid user id"))?;
    Ok(Caller { user, admin })
}

pub fn admin(req: &Request) -> Result<Caller, Error> {
    let caller = caller(req)?;
    if !caller.admin {
        return Err(Error::Forbidden("admin group required"));
    }
    Ok(caller)
}

/// The gateway's id of this request, for the logs.
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// A span carrying the request id, with room for the sale and order ids, so every log
/// line of a request names all three.
pub fn request_span(name: &'static str, req: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        handler = name,
        request_id = %request_id(req),
        sale_id = tracing::field::Empty,
        order_id = tracing::field::Empty
    )
}

/// Parses a JSON body of at most `limit` bytes; `None` when there is no body.
pub fn body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<Option<T>, Error> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > limit {
        return Err(Error::PayloadTooLarge { limit });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| Error::Invalid(format!("body: {e}")))
}

/// A query string parameter, if given and not empty.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).filter(|v| !v.is_empty()).map(String::from)
}

/// How many items a page holds: `?limit=` within 1..=`max`, `default` when not given.
pub fn page_limit(req: &Request, default: u32, max: u32) -> Result<u32, Error> {
    match query(req, "limit") {
        None => Ok(default),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Error::Invalid(format!("limit must be a whole number from 1 to {max}"))),
        },
    }
}

/// A page cursor: `?before=` an id, as the previous page's `next` gave it.
pub fn cursor<T: std::str::FromStr<Err = BadId>>(req: &Request) -> Result<Option<T>, Error> {
    query(req, "before")
        .map(|text| text.parse().map_err(|BadId(kind)| Error::Invalid(format!("before must be a {kind} id"))))
        .transpose()
}

/// An id from the request path. Text that is no id names nothing there is: 404.
pub fn path_id<T: std::str::FromStr<Err = BadId>>(segment: &str) -> Result<T, Error> {
    segment.parse().map_err(|BadId(kind)| Error::NotFound(kind))
}

/// The method and the path segments after `/api`, so one function can serve several
/// routes whatever stage prefix the gateway put in front.
///
/// A path has one spelling: one with an empty segment (`/purchase/`, `//`) is no route's
/// (its segments hold an empty one, which no route names), so it is a 404 before any
/// store is asked. The WAF's rules and the edge's cache keys see the path as sent; were
/// `.../purchase/` served as `.../purchase`, it would be counted and cached apart.
pub fn route(req: &Request) -> (Method, Vec<String>) {
    let path = req.uri().path();
    let all: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let segments = match all.iter().position(|s| *s == "api") {
        Some(_) if all.iter().any(|s| s.is_empty()) => vec![String::new()],
        Some(api) => all[api + 1..].iter().map(|s| s.to_string()).collect(),
        None => vec![String::new()],
    };
    (req.method().clone(), segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(claims: serde_json::Value, path: &str) -> Request {
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "000000000000", "apiId": "local", "domainName": "localhost",
                "domainPrefix": "localhost", "requestId": "r1", "routeKey": "$default",
                "stage": "$default", "time": "", "timeEpoch": 0,
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            },
            "body": "{\"quantity\": 2}",
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn identity_comes_from_the_authorizer_claims() {
        let req = request(json!({"sub": "alice", "cognito:groups": "[shoppers admin]"}), "/api/sales/7/purchase");
        assert_eq!(caller(&req).unwrap(), Caller { user: UserId::new("alice").unwrap(), admin: true });
        let req = request(json!({"sub": "bob"}), "/api/sales/7/purchase");
        assert!(!caller(&req).unwrap().admin);
        assert!(matches!(admin(&req), Err(Error::Forbidden(_))));
        let req = request(json!({}), "/api/sales/7/purchase");
        assert!(matches!(caller(&req), Err(Error::Unauthorized(_))));
    }

    #[test]
    fn routes_ignore_the_stage_prefix() {
        let req = request(json!({"sub": "a"}), "/prod/api/sales/7/purchase");
        let (method, segments) = route(&req);
        assert_eq!(method, Method::POST);
        assert_eq!(segments, ["sales", "7", "purchase"]);
        assert_eq!(route(&request(json!({}), "/api")).1, Vec::<String>::new());
    }

    #[test]
    fn a_path_with_an_empty_segment_names_no_route() {
        for path in [
            "/api/sales/7/purchase/",
            "/api/sales/7/purchase//",
            "/api/sales//7/purchase",
            "//api/sales/7/purchase",
            "/api//sales/7/purchase",
            "/api/",
            "/sales/7/purchase",
        ] {
            assert_eq!(route(&request(json!({}), path)).1, [""], "{path}");
        }
    }

    #[test]
    fn ids_in_paths_have_one_spelling() {
        assert_eq!(path_id::<crate::domain::SaleId>("7").unwrap(), crate::domain::SaleId(7));
        for other in ["07", "+7", " 7", "7 ", "0", ""] {
            assert!(matches!(path_id::<crate::domain::SaleId>(other), Err(Error::NotFound("sale"))), "{other:?}");
        }
    }

    #[test]
    fn bodies_are_bounded_and_typed() {
        #[derive(serde::Deserialize)]
        struct Q {
            quantity: u32,
        }
        let req = request(json!({"sub": "a"}), "/api/x");
        assert_eq!(body::<Q>(&req, 100).unwrap().unwrap().quantity, 2);
        assert!(matches!(body::<Q>(&req, 4), Err(Error::PayloadTooLarge { .. })));
    }

    #[test]
    fn problems_carry_status_type_and_details() {
        let r = problem(&Error::LimitReached { limit: 1, order_ids: vec![crate::domain::OrderId(5)] });
        assert_eq!(r.status(), 409);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: serde_json::Value = serde_json::from_slice(r.body().as_ref()).unwrap();
        assert_eq!(v["type"], "/problems/limit-reached");
        assert_eq!(v["order_ids"], json!(["5"]));
        let r = problem(&Error::Unavailable { service: "redis", retry_after_secs: 2 });
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "2");
    }

    #[test]
    fn only_the_current_or_previous_origin_value_lets_a_request_in() {
        let secrets = crate::config::Secrets {
            origin_values: vec!["current-value".into(), "previous-value".into()],
            ..Default::default()
        };
        let edge = EdgeOnly::from_secrets(&secrets);
        let with = |value: Option<&str>| {
            let mut req = request(json!({"sub": "u"}), "/api/orders");
            if let Some(value) = value {
                req.headers_mut().insert(ORIGIN_HEADER, value.parse().unwrap());
            }
            edge.refuses(&req).map(|r| r.status())
        };
        assert_eq!(with(Some("current-value")), None);
        assert_eq!(with(Some("previous-value")), None);
        for refused in [None, Some(""), Some("current-valu"), Some("current-value "), Some("CURRENT-VALUE")] {
            assert_eq!(with(refused), Some(StatusCode::FORBIDDEN), "{refused:?}");
        }
        // Unconfigured (sam local, a function called alone): every request is taken.
        assert!(EdgeOnly::default().refuses(&request(json!({"sub": "u"}), "/api/orders")).is_none());
    }
}
