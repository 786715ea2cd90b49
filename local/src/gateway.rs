//! API Gateway HTTP API, played locally: routes, stage and route throttling, the JWT
//! authorizer. Each request is turned into the payload-v2 event API Gateway would send
//! and parsed by `lambda_http` exactly as on Lambda, so the handlers see the same thing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use flashsale::http::PROBLEM_BASE;
use http::{header, HeaderMap, Method, StatusCode};
use lambda_http::Body;
use serde_json::json;

use crate::throttle::TokenBucket;
use crate::Functions;

/// API Gateway's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Admit,
    Shop,
    Admin,
}

pub struct Route {
    pub method: Option<Method>,
    pub pattern: &'static str,
    pub target: Target,
    pub authorized: bool,
}

/// The routes of the HTTP API, as in template.yaml.
pub const ROUTES: &[Route] = &[
    Route { method: Some(Method::POST), pattern: "/api/sales/{id}/purchase", target: Target::Admit, authorized: true },
    Route { method: Some(Method::GET), pattern: "/api/sales/{id}", target: Target::Shop, authorized: false },
    Route { method: Some(Method::GET), pattern: "/api/orders", target: Target::Shop, authorized: true },
    Route { method: Some(Method::GET), pattern: "/api/orders/{id}", target: Target::Shop, authorized: true },
    Route { method: Some(Method::POST), pattern: "/api/orders/{id}/pay", target: Target::Shop, authorized: true },
    Route { method: None, pattern: "/api/admin/{proxy+}", target: Target::Admin, authorized: true },
];

/// Matches a path against a route pattern, returning its path parameters.
fn matches(pattern: &str, path: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut segments = path.trim_end_matches('/').split('/');
    for part in pattern.split('/') {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            let rest: Vec<&str> = segments.by_ref().collect();
            if rest.is_empty() || rest.iter().all(|s| s.is_empty()) {
                return None;
            }
            params.insert(name.to_string(), rest.join("/"));
            return Some(params);
        }
        let segment = segments.next()?;
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => {
                params.insert(name.to_string(), segment.to_string());
            }
            Some(_) => return None,
            None if part == segment => {}
            None => return None,
        }
    }
    segments.next().is_none().then_some(params)
}

pub struct Gateway {
    pub functions: Arc<Functions>,
    pub jwt_secret: String,
    pub stage_bucket: TokenBucket,
    pub purchase_bucket: TokenBucket,
}

fn gateway_problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    let body = json!({"type": format!("{PROBLEM_BASE}{kind}"), "title": detail, "status": status.as_u16(), "detail": detail});
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/problem+json".parse().unwrap());
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    response
}

pub async fn api(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some((route, params)) = find_route(&parts.method, &path) else {
        return gateway_problem(StatusCode::NOT_FOUND, "not-found", "no such route");
    };
    if !gateway.stage_bucket.try_take()
        || (route.target == Target::Admit && !gateway.purchase_bucket.try_take())
    {
        return gateway_problem(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many requests, retry shortly");
    }
    let claims = match bearer(&parts.headers).and_then(|t| crate::auth::verify(&gateway.jwt_secret, t)) {
        Some(claims) => Some(claims),
        None if route.authorized => {
            return gateway_problem(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
        }
        None => None,
    };
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return gateway_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "request body too large");
    };
    let event = event(&parts, route, &params, claims, &body);
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => return gateway_problem(StatusCode::BAD_REQUEST, "invalid-request", &format!("bad request: {e}")),
    };
    let response = match route.target {
        Target::Admit => gateway.functions.admit.handle(request).await,
        Target::Shop => gateway.functions.shop.handle(request).await,
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

fn find_route(method: &Method, path: &str) -> Option<(&'static Route, HashMap<String, String>)> {
    ROUTES.iter().find_map(|r| {
        let method_ok = r.method.as_ref().is_none_or(|m| m == method);
        matches(r.pattern, path).filter(|_| method_ok).map(|p| (r, p))
    })
}

/// The request a function receives for `method path` from a caller with these claims,
/// built as the gateway builds it: for calling handlers directly in tests and tools.
pub fn lambda_request(method: &str, path: &str, claims: Option<HashMap<String, String>>, body: &[u8]) -> lambda_http::Request {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(())
        .expect("valid request parts");
    let (parts, ()) = request.into_parts();
    let (route, params) = find_route(&parts.method, path).expect("a known route");
    lambda_http::request::from_str(&event(&parts, route, &params, claims, body).to_string()).expect("a valid event")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The API Gateway HTTP API payload (version 2.0) for one request.
fn event(
    parts: &http::request::Parts,
    route: &Route,
    params: &HashMap<String, String>,
    claims: Option<HashMap<String, String>>,
    body: &[u8],
) -> serde_json::Value {
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = chrono::Utc::now();
    let method = parts.method.as_str();
    let route_key = match &route.method {
        Some(m) => format!("{m} {}", route.pattern),
        None => format!("ANY {}", route.pattern),
    };
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "requestId": format!("{:032x}", rand::random::<u128>()),
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
        "http": {
            "method": method,
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
        },
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let query = parts.uri.query().unwrap_or("");
    let mut query_params: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_params.insert(k.to_string(), v.to_string());
    }
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": query_params,
        "pathParameters": params,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

#[cfg(test)]
mod tests {
    use super::{matches, ROUTES};

    /// `METHOD /path` of every route: the gateway's, template.yaml's (RouteKey), and the
    /// operations of docs/openapi.yaml.
    fn gateway_routes() -> Vec<String> {
        let mut routes: Vec<String> = ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method.as_ref().map_or("ANY", |m| m.as_str()), r.pattern))
            .collect();
        routes.sort();
        routes
    }

    fn template_routes() -> Vec<String> {
        let mut routes: Vec<String> = include_str!("../../template.yaml")
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
        for line in include_str!("../../docs/openapi.yaml").lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if !line.starts_with("  ") {
                path = None;
            } else if let (Some(path), Some(method)) = (&path, line.strip_prefix("    ").and_then(|m| m.strip_suffix(':'))) {
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
            let serving: Vec<_> = ROUTES
                .iter()
                .filter(|r| r.method.as_ref().is_none_or(|m| m.as_str() == method) && matches(r.pattern, path).is_some())
                .collect();
            assert_eq!(serving.len(), 1, "{method} {path} is served by {} routes", serving.len());
        }
        // ...and each route serves at least one described operation.
        for route in ROUTES {
            let described = operations.iter().any(|(method, path)| {
                route.method.as_ref().is_none_or(|m| m.as_str() == method) && matches(route.pattern, path).is_some()
            });
            assert!(described, "{} is not in docs/openapi.yaml", route.pattern);
        }
    }

    #[test]
    fn route_patterns() {
        assert_eq!(matches("/api/sales/{id}", "/api/sales/7").unwrap()["id"], "7");
        assert!(matches("/api/sales/{id}", "/api/sales/7/purchase").is_none());
        assert!(matches("/api/sales/{id}", "/api/sales/").is_none());
        assert_eq!(matches("/api/admin/{proxy+}", "/api/admin/sales/3/publish").unwrap()["proxy"], "sales/3/publish");
        assert!(matches("/api/admin/{proxy+}", "/api/admin").is_none());
    }
}
