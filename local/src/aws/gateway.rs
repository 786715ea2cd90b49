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

/// Matches a path against a route pattern, returning its path parameters. A path has
/// one spelling: with a trailing slash or an empty segment it matches no route (404),
/// as the functions refuse it (`flashsale::lambda::http::route`), so what the WAF counts
/// and the edge keys on is what is served.
fn matches<'p>(pattern: &'static str, path: &'p str) -> Option<PathParams<'p>> {
    if path.strip_prefix('/').is_none_or(|rest| rest.split('/').any(str::is_empty)) {
        return None;
    }
    let mut params = Vec::new();
    let mut rest = Some(path);
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
    /// The requests that reached a function (the ones the edge did not answer).
    pub reached: std::sync::Arc<Reached>,
    /// The value the edge adds in the origin header, as CloudFront's origin custom header
    /// does: the functions refuse a request without it.
    pub origin: http::HeaderValue,
}

/// `/api/*` through the edge: the request as CloudFront forwards it, with the origin
/// header set (a viewer's own value for it is overwritten, as CloudFront does).
///
/// A `GET` answer the API marks `public, max-age=N` (a 200, or a 404) is kept N seconds
/// (at most a minute, as the cache policy's MaxTTL) under the key of its cache behaviour
/// ([`CACHE_BEHAVIOURS`]) and served to the next viewers without reaching the API.
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

/// Requests that reached a function, by path: what the edge did not answer itself, as
/// the origin's request count in CloudFront's metrics. Counted for at most
/// [`Reached::MAX_PATHS`] paths (a stranger chooses them), and in total.
#[derive(Default)]
pub struct Reached {
    by_path: std::sync::Mutex<HashMap<String, u64>>,
    total: std::sync::atomic::AtomicU64,
}

impl Reached {
    pub const MAX_PATHS: usize = 10_000;

    fn count(&self, path: &str) {
        self.total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut by_path = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = by_path.get_mut(path) {
            *count += 1;
        } else if by_path.len() < Self::MAX_PATHS {
            by_path.insert(path.to_string(), 1);
        }
    }

    /// Requests for `path` (as sent) that reached a function.
    pub fn of(&self, path: &str) -> u64 {
        self.by_path.lock().unwrap_or_else(|e| e.into_inner()).get(path).copied().unwrap_or(0)
    }

    /// Requests for any path that reached a function.
    pub fn total(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What a cache behaviour keys the API's answers on besides the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKey {
    /// The path alone (template.yaml `PublicApiCachePolicy`): answers that are the same
    /// for everyone, where a made-up Authorization must not miss the cache.
    Path,
    /// The path and Authorization (template.yaml `ApiCachePolicy`): CloudFront forwards
    /// Authorization only when it is in the key, and a shopper's answers are theirs.
    PathAndAuthorization,
}

/// The distribution's `/api` cache behaviours, in its order (template.yaml
/// `CacheBehaviors`; the first whose pattern matches the path applies): a sale and its
/// waiting room's status are public, everything under a sale deeper than its id is not.
pub const CACHE_BEHAVIOURS: &[(&str, CacheKey)] = &[
    ("/api/sales/*/queue/status", CacheKey::Path),
    ("/api/sales/*/*", CacheKey::PathAndAuthorization),
    ("/api/sales/*", CacheKey::Path),
    ("/api/*", CacheKey::PathAndAuthorization),
];

/// A CloudFront path pattern: `*` stands for any characters (`/` included), `?` for
/// one; everything else is itself, case-sensitive.
pub fn path_pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, path) = (pattern.as_bytes(), path.as_bytes());
    // The classic glob walk: on a mismatch, go back to the last `*` and let it take one
    // more character.
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < path.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            Some(&c) if c == b'?' || c == path[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
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
    /// The cache key of the behaviour the path falls under ([`CACHE_BEHAVIOURS`]): the
    /// path alone for the public reads, the path and Authorization for the rest. No
    /// query string: the cache policies key on none.
    fn key(request: &Request) -> String {
        let path = request.uri().path();
        let behaviour = CACHE_BEHAVIOURS.iter().find(|(pattern, _)| path_pattern_matches(pattern, path));
        match behaviour.map(|(_, key)| *key) {
            Some(CacheKey::Path) => path.to_string(),
            _ => {
                let authorization =
                    request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                format!("{path}\n{authorization}")
            }
        }
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
            // A 404 too, as CloudFront keeps an error answer for its max-age (with the
            // distribution's error-caching minimum TTL 0 for it, template.yaml).
            .filter(|secs| *secs > 0 && matches!(response.status(), StatusCode::OK | StatusCode::NOT_FOUND));
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
    gateway.reached.count(parts.uri.path());
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
    use super::{matches, path_pattern_matches, CacheKey, CACHE_BEHAVIOURS, ROUTES};

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
        assert_eq!(matches("/api/sales/{id}/purchase", "/api/sales/7/purchase"), Some(vec![("id", "7")]));
        for other in
            ["/api/sales/7/purchase/", "/api/sales/7/purchase//", "/api/sales//7/purchase", "//api/sales/7/purchase"]
        {
            assert!(matches("/api/sales/{id}/purchase", other).is_none(), "{other}");
        }
        assert!(matches("/api/admin/{proxy+}", "/api/admin/sales/3/publish/").is_none());
        assert!(matches("/api/admin/{proxy+}", "/api/admin/sales//publish").is_none());
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
    #[test]
    fn path_patterns_match_as_cloudfront_matches_them() {
        assert!(path_pattern_matches("/api/sales/*", "/api/sales/7"));
        assert!(path_pattern_matches("/api/sales/*", "/api/sales/7/purchase"));
        assert!(path_pattern_matches("/api/sales/*/*", "/api/sales/7/queue/challenge"));
        assert!(path_pattern_matches("/api/sales/*/*", "/api/sales/7/"));
        assert!(!path_pattern_matches("/api/sales/*/*", "/api/sales/7"));
        assert!(path_pattern_matches("/api/sales/*/queue/status", "/api/sales/12/queue/status"));
        assert!(!path_pattern_matches("/api/sales/*/queue/status", "/api/sales/12/queue/status/x"));
        assert!(path_pattern_matches("/api/sales/?", "/api/sales/7"));
        assert!(!path_pattern_matches("/api/sales/?", "/api/sales/77"));
    }

    /// Which behaviour each route's path falls under: the public reads key on the path
    /// alone, every route that needs its caller's token keeps Authorization (CloudFront
    /// forwards it to the origin only then).
    #[test]
    fn public_reads_key_on_the_path_and_authorized_routes_keep_authorization() {
        for route in ROUTES {
            let path = route.pattern().replace("{id}", "7").replace("{proxy+}", "sales/7/publish");
            let key =
                CACHE_BEHAVIOURS.iter().find(|(pattern, _)| path_pattern_matches(pattern, &path)).map(|(_, k)| *k);
            let expected =
                if route.authorized || !route.serves("GET") { CacheKey::PathAndAuthorization } else { CacheKey::Path };
            // The webhook is a POST: never cached, and keeping Authorization costs nothing.
            assert_eq!(key, Some(expected), "{}", route.key);
        }
    }

    /// The local edge's behaviours are the distribution's: the `/api` cache behaviours of
    /// template.yaml, in order, each with the key its cache policy names.
    #[test]
    fn the_local_edge_keys_as_the_template_s_cache_behaviours() {
        let template = include_str!("../../../template.yaml");
        let mut behaviours = Vec::new();
        let mut pattern = None;
        for line in template.lines().map(str::trim) {
            if let Some(p) = line.strip_prefix("- PathPattern: ") {
                pattern = Some(p.to_string());
            } else if let (Some(p), Some(policy)) = (&pattern, line.strip_prefix("CachePolicyId: !Ref ")) {
                let key = match policy {
                    "PublicApiCachePolicy" => CacheKey::Path,
                    "ApiCachePolicy" => CacheKey::PathAndAuthorization,
                    other => panic!("{p}: unknown cache policy {other}"),
                };
                behaviours.push((p.clone(), key));
                pattern = None;
            }
        }
        let local: Vec<(String, CacheKey)> = CACHE_BEHAVIOURS.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        assert_eq!(behaviours, local);
    }
}
