//! The web ACL counts every form of the buying and paying paths.

use super::*;

/// A request as the web ACL inspects it: its method and its path as sent.
struct Seen<'a> {
    method: &'a str,
    path: &'a str,
}

/// `%XY` decoded to its byte, as WAF's `URL_DECODE` does; anything else kept.
fn url_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// WAF's `NORMALIZE_PATH`: runs of slashes made one, `.` segments dropped and `..`
/// segments taken back, except at the beginning of the input.
fn normalized_path(text: &str) -> String {
    let leading: String = text.chars().take_while(|c| *c == '/').collect();
    let trailing = text.len() > leading.len() && text.ends_with('/');
    let mut kept: Vec<&str> = Vec::new();
    for segment in text[leading.len()..].split('/') {
        match segment {
            "" | "." => {}
            ".." if !kept.is_empty() => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    format!("{leading}{}{}", kept.join("/"), if trailing && !kept.is_empty() { "/" } else { "" })
}

/// The text a statement inspects, after its transformations in priority order.
fn inspected(statement: &Value, request: &Seen) -> String {
    let field = &statement["FieldToMatch"];
    let mut text = if field.get("Method").is_some() {
        request.method.to_string()
    } else if field.get("UriPath").is_some() {
        request.path.to_string()
    } else {
        panic!("a field this test does not know: {field:?}")
    };
    let mut transformations: Vec<&Value> =
        statement["TextTransformations"].as_sequence().map(|t| t.iter().collect()).unwrap_or_default();
    transformations.sort_by_key(|t| t["Priority"].as_u64());
    for transformation in transformations {
        text = match transformation["Type"].as_str().unwrap() {
            "NONE" => text,
            "URL_DECODE" => url_decoded(&text),
            "NORMALIZE_PATH" => normalized_path(&text),
            "LOWERCASE" => text.to_lowercase(),
            other => panic!("a transformation this test does not know: {other}"),
        };
    }
    text
}

/// Whether a web ACL statement matches the request, as WAF evaluates it.
fn statement_matches(statement: &Value, request: &Seen) -> bool {
    let all = |s: &Value| {
        s["Statements"].as_sequence().unwrap().iter().map(|s| statement_matches(s, request)).collect::<Vec<_>>()
    };
    if let Some(and) = statement.get("AndStatement") {
        return all(and).into_iter().all(|m| m);
    }
    if let Some(or) = statement.get("OrStatement") {
        return all(or).into_iter().any(|m| m);
    }
    if let Some(not) = statement.get("NotStatement") {
        return !statement_matches(&not["Statement"], request);
    }
    if let Some(byte) = statement.get("ByteMatchStatement") {
        let text = inspected(byte, request);
        let search = byte["SearchString"].as_str().unwrap();
        return match byte["PositionalConstraint"].as_str().unwrap() {
            "EXACTLY" => text == search,
            "STARTS_WITH" => text.starts_with(search),
            "ENDS_WITH" => text.ends_with(search),
            "CONTAINS" => text.contains(search),
            other => panic!("a positional constraint this test does not know: {other}"),
        };
    }
    if let Some(regex) = statement.get("RegexMatchStatement") {
        let pattern = regex_lite::Regex::new(regex["RegexString"].as_str().unwrap()).unwrap();
        return pattern.is_match(&inspected(regex, request));
    }
    panic!("a statement this test does not know: {statement:?}")
}

/// The web ACL's rate rules: name, what they count by (`IP` or `JA4`), and what they count.
fn rate_rules() -> Vec<(String, &'static str, Value)> {
    let acl = Template::load().definition("EdgeWebAcl");
    let rules = acl["Properties"]["Rules"].as_sequence().unwrap().clone();
    rules
        .into_iter()
        .filter_map(|rule| {
            let rate = rule["Statement"].get("RateBasedStatement")?.clone();
            let by = match rate["AggregateKeyType"].as_str().unwrap() {
                "IP" => "IP",
                "CUSTOM_KEYS" if rate["CustomKeys"][0].get("JA4Fingerprint").is_some() => "JA4",
                other => panic!("{other}"),
            };
            Some((rule["Name"].as_str().unwrap().to_string(), by, rate["ScopeDownStatement"].clone()))
        })
        .collect()
}

/// The forms a path may be sent in that API Gateway or CloudFront could take for it: as
/// is, with trailing slashes, doubled slashes, dot segments, percent-encoded letters
/// or slashes.
fn spellings(path: &str) -> Vec<String> {
    let (head, last) = path.rsplit_once('/').unwrap();
    let encoded_last: String =
        last.bytes().take(1).map(|b| format!("%{b:02X}")).chain([last[1..].to_string()]).collect();
    vec![
        path.to_string(),
        format!("{path}/"),
        format!("{path}//"),
        format!("/{path}"),
        path.replacen("/api/", "/api//", 1),
        format!("{head}//{last}"),
        format!("{head}/./{last}"),
        format!("{head}/x/../{last}"),
        format!("{head}/{encoded_last}"),
        format!("{head}%2F{last}"),
        format!("{head}/{last}/."),
    ]
}

/// The web ACL counts what the routes serve: every buying POST (purchase, join, pass)
/// and every payment start is limited per IP and per TLS fingerprint, and the webhook
/// per IP, in every form of its path, a trailing slash included; the reads and the
/// staff's waiting-room changes are not counted.
#[test]
fn the_web_acl_counts_every_form_of_the_buying_and_paying_paths() {
    let rules = rate_rules();
    let counted_by = |method: &str, path: &str| -> Vec<(String, &'static str)> {
        let request = Seen { method, path };
        rules
            .iter()
            .filter(|(_, _, scope)| statement_matches(scope, &request))
            .map(|(n, by, _)| (n.clone(), *by))
            .collect()
    };
    let kinds = |counted: &[(String, &'static str)]| -> Vec<&'static str> {
        let mut by: Vec<&'static str> = counted.iter().map(|(_, by)| *by).collect();
        by.sort();
        by
    };
    for path in ["/api/sales/7/purchase", "/api/sales/7/queue", "/api/sales/7/pass", "/api/orders/123456789/payment"] {
        for form in spellings(path) {
            let counted = counted_by("POST", &form);
            assert_eq!(kinds(&counted), ["IP", "JA4"], "POST {form} counted by {counted:?}");
        }
    }
    // Buying and paying are limited apart: a shopper's retries at one do not spend the other.
    let buying = counted_by("POST", "/api/sales/7/purchase");
    let paying = counted_by("POST", "/api/orders/1/payment");
    assert!(buying.iter().all(|rule| !paying.contains(rule)), "{buying:?} {paying:?}");
    for form in spellings("/api/payments/webhook") {
        let counted = counted_by("POST", &form);
        assert_eq!(kinds(&counted), ["IP"], "POST {form} counted by {counted:?}");
    }
    for (method, path) in [
        ("GET", "/api/sales/7"),
        ("GET", "/api/sales/7/queue/status"),
        ("GET", "/api/sales/7/queue/challenge"),
        ("GET", "/api/orders/1"),
        ("GET", "/api/admin/sales/7/queue"),
        ("PATCH", "/api/admin/sales/7/queue"),
        ("POST", "/api/admin/sales"),
    ] {
        assert!(counted_by(method, path).is_empty(), "{method} {path}: {:?}", counted_by(method, path));
    }
    // The transformations the forms rely on.
    assert_eq!(normalized_path("/api//sales/./7/x/../purchase//"), "/api/sales/7/purchase/");
    assert_eq!(url_decoded("/api/sales/7%2F%70urchase"), "/api/sales/7/purchase");
}
