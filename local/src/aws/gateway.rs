//! API Gateway HTTP API, played locally: routes, stage and route throttling, the JWT
//! authorizer. Each request is turned into the payload-v2 event API Gateway would send
//! and parsed by `lambda_http` exactly as on Lambda, so the handlers see the same thing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use flashsale::lambda::http::{ORIGIN_HEADER, PROBLEM_BASE};
use http::{header, HeaderMap, Method, StatusCode};
use lambda_http::Body;
use serde::{Serialize, Serializer};
use serde_json::json;

use crate::aws::throttle::TokenBucket;
use crate::Functions;

/// API Gateway's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Admit,
    Shop,
    Admin,
    Payments,
}

pub struct Route {
    /// `METHOD /pattern`, `ANY` for every method: template.yaml's `RouteKey`, and the
    /// event's `routeKey`.
    pub key: &'static str,
    pub target: Target,
    pub authorized: bool,
}

impl Route {
    /// The method (`ANY` for every one) and the path pattern.
    fn parts(&self) -> (&'static str, &'static str) {
        self.key.split_once(' ').expect("a route key is `METHOD /pattern`")
    }

    fn pattern(&self) -> &'static str {
        self.parts().1
    }

    fn serves(&self, method: &str) -> bool {
        let (route_method, _) = self.parts();
        route_method == "ANY" || route_method == method
    }
}

/// The routes of the HTTP API, as in template.yaml.
pub const ROUTES: &[Route] = &[
    Route { key: "POST /api/sales/{id}/purchase", target: Target::Admit, authorized: true },
    Route { key: "GET /api/sales/{id}", target: Target::Shop, authorized: false },
    Route { key: "GET /api/sales/{id}/queue/challenge", target: Target::Shop, authorized: true },
    Route { key: "POST /api/sales/{id}/queue", target: Target::Shop, authorized: true },
    Route { key: "GET /api/sales/{id}/queue/status", target: Target::Shop, authorized: false },
    Route { key: "POST /api/sales/{id}/pass", target: Target::Shop, authorized: true },
    Route { key: "GET /api/orders", target: Target::Shop, authorized: true },
    Route { key: "GET /api/orders/{id}", target: Target::Shop, authorized: true },
    Route { key: "POST /api/orders/{id}/payment", target: Target::Shop, authorized: true },
    Route { key: "POST /api/payments/webhook", target: Target::Payments, authorized: false },
    Route { key: "ANY /api/admin/{proxy+}", target: Target::Admin, authorized: true },
];

/// A route's path parameters, as named in its pattern, borrowed from the request path.
type PathParams<'p> = Vec<(&'static str, &'p str)>;

/// Matches a path against a route pattern, returning its path parameters.
fn matches<'p>(pattern: &'static str, path: &'p str) -> Option<PathParams<'p>> {
    let mut params = Vec::new();
    let mut rest = Some(path.trim_end_matches('/'));
    for part in pattern.split('/') {
        let remaining = rest?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            if remaining.split('/').all(str::is_empty) {
                return None;
            }
            params.push((name, remaining));
            return Some(params);
        }
        let (segment, after) = match remaining.split_once('/') {
            Some((segment, after)) => (segment, Some(after)),
            None => (remaining, None),
        };
        rest = after;
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => params.push((name, segment)),
            Some(_) => return None,
            None if part == segment => {}
            None => return None,
        }
    }
    rest.is_none().then_some(params)
}

pub struct Gateway {
    pub functions: Arc<Functions>,
    pub tokens: crate::sign_in::Verifier,
    pub stage_bucket: TokenBucket,
    /// Route throttles by route key, as the stage's `RouteSettings` in template.yaml.
    pub route_buckets: HashMap<&'static str, TokenBucket>,
    /// What the edge keeps of the API's answers, as CloudFront's API cache policy does.
    pub edge_cache: EdgeCache,
    /// The value the edge adds in the origin header, as CloudFront's origin custom header
    /// does: the functions refuse a request without it.
    pub origin: http::HeaderValue,
}

/// `/api/*` through the edge: the request as CloudFront forwards it, with the origin
/// header set (a viewer's own value for it is overwritten, as CloudFront does).
///
/// A `GET` answer the API marks `public, max-age=N` is kept N seconds (at most a
/// minute, as the cache policy's MaxTTL) under its path and Authorization, the cache
/// policy's key, and served to the next viewers without reaching the API.
pub async fn via_edge(State(gateway): State<Arc<Gateway>>, mut request: Request) -> Response {
    request.headers_mut().insert(ORIGIN_HEADER, gateway.origin.clone());
    if request.method() != Method::GET {
        return api(State(gateway), request).await;
    }
    let key = EdgeCache::key(&request);
    if let Some(kept) = gateway.edge_cache.get(&key) {
        return kept;
    }
    let response = api(State(gateway.clone()), request).await;
    gateway.edge_cache.keep(key, response).await
}

/// Answers kept at the edge, each until its `max-age` ran out.
#[derive(Default)]
pub struct EdgeCache {
    kept: std::sync::Mutex<HashMap<String, KeptAnswer>>,
}

struct KeptAnswer {
    until: std::time::Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: axum::body::Bytes,
}

/// CloudFront's MaxTTL of the API's cache policy (template.yaml `ApiCachePolicy`).
const EDGE_MAX_TTL_SECS: u64 = 60;

/// Answers kept before the expired ones are swept out.
const EDGE_MAX_KEPT: usize = 10_000;

impl EdgeCache {
    /// The cache policy's key: the path and Authorization, or the path alone for the
    /// answers that are everyone's (template.yaml `PublicApiCachePolicy`: a waiting room's
    /// status), where a made-up Authorization must not miss the cache.
    fn key(request: &Request) -> String {
        let path = request.uri().path();
        if path.ends_with("/queue/status") {
            return path.to_string();
        }
        let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        format!("{path}\n{authorization}")
    }

    fn get(&self, key: &str) -> Option<Response> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match kept.get(key) {
            Some(answer) if answer.until > std::time::Instant::now() => {
                let mut response = (answer.status, answer.body.clone()).into_response();
                *response.headers_mut() = answer.headers.clone();
                Some(response)
            }
            Some(_) => {
                kept.remove(key);
                None
            }
            None => None,
        }
    }

    async fn keep(&self, key: String, response: Response) -> Response {
        let max_age = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.split(',').any(|d| d.trim() == "public"))
            .and_then(|v| v.split(',').find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok()))
            .filter(|secs| *secs > 0 && response.status() == StatusCode::OK);
        let Some(max_age) = max_age else {
            return response;
        };
        let (parts, body) = response.into_parts();
        let Ok(body) = to_bytes(body, MAX_BODY).await else {
            return gateway_problem(StatusCode::BAD_GATEWAY, "bad-gateway", "the answer could not be read");
        };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(max_age.min(EDGE_MAX_TTL_SECS));
        let answer = KeptAnswer { until, status: parts.status, headers: parts.headers.clone(), body: body.clone() };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Answers nobody asked for again are dropped once there are many.
        if kept.len() >= EDGE_MAX_KEPT {
            let now = std::time::Instant::now();
            kept.retain(|_, answer| answer.until > now);
        }
        kept.insert(key, answer);
        drop(kept);
        Response::from_parts(parts, AxumBody::from(body))
    }
}

fn gateway_problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    let body =
        json!({"type": format!("{PROBLEM_BASE}{kind}"), "title": detail, "status": status.as_u16(), "detail": detail});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, "application/problem+json".parse().unwrap());
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    response
}

pub async fn api(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some((route, params)) = find_route(&parts.method, parts.uri.path()) else {
        return gateway_problem(StatusCode::NOT_FOUND, "not-found", "no such route");
    };
    let route_bucket = gateway.route_buckets.get(route.key);
    if !gateway.stage_bucket.try_take() || route_bucket.is_some_and(|bucket| !bucket.try_take()) {
        return gateway_problem(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many requests, retry shortly");
    }
    let claims = match bearer(&parts.headers).and_then(|t| gateway.tokens.verify(t)) {
        Some(claims) => Some(claims),
        None if route.authorized => {
            return gateway_problem(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
        }
        None => None,
    };
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return gateway_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "request body too large");
    };
    let event = event(&parts, route, &params, claims.as_deref(), &body);
    let request = match lambda_http::request::from_str(&event) {
        Ok(r) => r,
        Err(e) => return gateway_problem(StatusCode::BAD_REQUEST, "invalid-request", &format!("bad request: {e}")),
    };
    let response = match route.target {
        Target::Admit => gateway.functions.admit.handle(request).await,
        Target::Shop => gateway.functions.shop.handle(request).await,
        Target::Payments => gateway.functions.payments.handle(request).await,
        Target::Admin => gateway.functions.admin.handle(request).await,
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    Response::from_parts(parts, AxumBody::from(bytes))
}

fn find_route<'p>(method: &Method, path: &'p str) -> Option<(&'static Route, PathParams<'p>)> {
    ROUTES.iter().find_map(|r| matches(r.pattern(), path).filter(|_| r.serves(method.as_str())).map(|p| (r, p)))
}

/// The request a function receives for `method path` from a caller with these claims,
/// built as the gateway builds it: for calling handlers directly in tests and tools.
pub fn lambda_request(
    method: &str,
    path: &str,
    claims: Option<HashMap<String, String>>,
    body: &[u8],
) -> lambda_http::Request {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(())
        .expect("valid request parts");
    let (parts, ()) = request.into_parts();
    let (route, params) = find_route(&parts.method, parts.uri.path()).expect("a known route");
    lambda_http::request::from_str(&event(&parts, route, &params, claims.as_ref(), body)).expect("a valid event")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The API Gateway HTTP API payload (version 2.0) for one request, written straight from
/// the request's parts: this runs for every request the local stack serves.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    headers: Headers<'a>,
    query_string_parameters: Pairs<'a, Cow<'a, str>>,
    path_parameters: Pairs<'a, &'a str>,
    request_context: Context<'a>,
    body: Cow<'a, str>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Context<'a> {
    account_id: &'static str,
    api_id: &'static str,
    domain_name: &'static str,
    domain_prefix: &'static str,
    request_id: String,
    route_key: &'a str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
    http: HttpContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<Authorizer<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: &'static str,
    user_agent: &'a str,
}

#[derive(Serialize)]
struct Authorizer<'a> {
    jwt: Jwt<'a>,
}

#[derive(Serialize)]
struct Jwt<'a> {
    claims: &'a HashMap<String, String>,
    scopes: Option<()>,
}

/// Headers as payload 2.0 has them: one string per name, repeated values joined by commas.
struct Headers<'a>(&'a HeaderMap);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.keys().map(|name| {
            let mut values = self.0.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let first = values.next().unwrap_or_default();
            let joined = values.fold(first, |mut all, value| {
                let all_text = all.to_mut();
                all_text.push(',');
                all_text.push_str(&value);
                all
            });
            (name.as_str(), joined)
        }))
    }
}

struct Pairs<'a, V>(&'a [(&'a str, V)]);

impl<V: Serialize> Serialize for Pairs<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Query string parameters as API Gateway passes them: repeated names joined by commas.
fn query_params(query: &str) -> Vec<(&str, Cow<'_, str>)> {
    let mut params: Vec<(&str, Cow<str>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => {
                let values = values.to_mut();
                values.push(',');
                values.push_str(value);
            }
            None => params.push((name, Cow::Borrowed(value))),
        }
    }
    params
}

/// The event as JSON, as the Lambda service hands it to the function.
fn event(
    parts: &http::request::Parts,
    route: &Route,
    params: &PathParams,
    claims: Option<&HashMap<String, String>>,
    body: &[u8],
) -> String {
    let (body, is_base64_encoded) = match std::str::from_utf8(body) {
        Ok(text) => (Cow::Borrowed(text), false),
        Err(_) => (Cow::Owned(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    let query = parts.uri.query().unwrap_or("");
    let query_params = query_params(query);
    let now = chrono::Utc::now();
    let route_key = route.key;
    let event = Event {
        version: "2.0",
        route_key,
        raw_path: parts.uri.path(),
        raw_query_string: query,
        headers: Headers(&parts.headers),
        query_string_parameters: Pairs(&query_params),
        path_parameters: Pairs(params),
        request_context: Context {
            account_id: "000000000000",
            api_id: "local",
            domain_name: "localhost",
            domain_prefix: "localhost",
            request_id: format!("{:032x}", rand::random::<u128>()),
            route_key,
            stage: "$default",
            time: now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            time_epoch: now.timestamp_millis(),
            http: HttpContext {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                protocol: "HTTP/1.1",
                source_ip: "127.0.0.1",
                user_agent: parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            authorizer: claims.map(|claims| Authorizer { jwt: Jwt { claims, scopes: None } }),
        },
        body,
        is_base64_encoded,
    };
    serde_json::to_string(&event).expect("an event of strings serializes")
}

#[cfg(test)]
mod tests {
    use super::{matches, ROUTES};

    /// `METHOD /path` of every route: the gateway's, template.yaml's (RouteKey), and the
    /// operations of docs/openapi.yaml.
    fn gateway_routes() -> Vec<String> {
        let mut routes: Vec<String> = ROUTES.iter().map(|r| r.key.to_string()).collect();
        routes.sort();
        routes
    }

    fn template_routes() -> Vec<String> {
        let mut routes: Vec<String> = include_str!("../../../template.yaml")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("RouteKey: "))
            .map(String::from)
            .collect();
        routes.sort();
        routes
    }

    fn openapi_operations() -> Vec<(String, String)> {
        let mut operations = Vec::new();
        let mut path = None;
        for line in include_str!("../../../docs/openapi.yaml").lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if !line.starts_with("  ") {
                path = None;
            } else if let (Some(path), Some(method)) =
                (&path, line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')))
            {
                if ["get", "post", "put", "patch", "delete"].contains(&method) {
                    operations.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        operations
    }

    #[test]
    fn the_gateway_template_and_openapi_describe_the_same_routes() {
        assert_eq!(gateway_routes(), template_routes(), "local gateway vs template.yaml");
        let operations = openapi_operations();
        assert!(operations.len() >= 9, "{operations:?}");
        // Each described operation is served by exactly one route...
        for (method, path) in &operations {
            let serving: Vec<_> =
                ROUTES.iter().filter(|r| r.serves(method) && matches(r.pattern(), path).is_some()).collect();
            assert_eq!(serving.len(), 1, "{method} {path} is served by {} routes", serving.len());
        }
        // ...and each route serves at least one described operation.
        for route in ROUTES {
            let described = operations
                .iter()
                .any(|(method, path)| route.serves(method) && matches(route.pattern(), path).is_some());
            assert!(described, "{} is not in docs/openapi.yaml", route.key);
        }
    }

    #[test]
    fn route_patterns() {
        assert_eq!(matches("/api/sales/{id}", "/api/sales/7"), Some(vec![("id", "7")]));
        assert_eq!(matches("/api/sales/{id}/purchase", "/api/sales/7/purchase/"), Some(vec![("id", "7")]));
        assert_eq!(matches("/api/orders", "/api/orders"), Some(vec![]));
        assert!(matches("/api/sales/{id}", "/api/sales/7/purchase").is_none());
        assert!(matches("/api/sales/{id}", "/api/sales/").is_none());
        assert_eq!(
            matches("/api/admin/{proxy+}", "/api/admin/sales/3/publish"),
            Some(vec![("proxy", "sales/3/publish")])
        );
        assert!(matches("/api/orders/{id}", "/api/orders//").is_none());
        assert!(matches("/api/admin/{proxy+}", "/api/admin").is_none());
    }
}
