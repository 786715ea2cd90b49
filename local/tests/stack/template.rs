//! `template.yaml` as CloudFormation orders it: a dependency graph from `Ref`,
//! `Fn::GetAtt`, `Fn::Sub`, `DependsOn` and both branches of `Fn::If`, with SAM's
//! `Globals` merged into each function. CloudFormation creates a resource after what it
//! depends on and deletes it before; so the schema's custom resource, which must answer
//! CloudFormation through S3 from inside the VPC, must depend on every part of that path,
//! or a stack delete (or the rollback of a failed create) takes the path away first and
//! the resource waits out its `ServiceTimeout` for an answer that cannot come.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

struct Template {
    resources: BTreeMap<String, Value>,
    parameters: BTreeSet<String>,
    globals: Option<Value>,
}

impl Template {
    fn load() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let names = |section: &str| -> BTreeMap<String, Value> {
            doc.get(section)
                .and_then(Value::as_mapping)
                .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone())).collect())
                .unwrap_or_default()
        };
        Template {
            resources: names("Resources"),
            parameters: names("Parameters").into_keys().collect(),
            globals: doc.get("Globals").and_then(|g| g.get("Function")).cloned(),
        }
    }

    /// A resource's definition as deployed: a SAM function gets `Globals.Function`
    /// (maps merged, the function's keys winning; lists added to; other values replaced).
    fn definition(&self, name: &str) -> Value {
        let mut resource = self.resources[name].clone();
        if resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function") {
            if let Some(globals) = &self.globals {
                let properties = resource.get("Properties").cloned().unwrap_or(Value::Null);
                resource["Properties"] = merged(globals.clone(), properties);
            }
            // SAM makes it a CodeDeploy deployment group of its own, which refers to the
            // function's alias and its rollback alarms; the function refers to none of it.
            if let Some(properties) = resource.get_mut("Properties").and_then(Value::as_mapping_mut) {
                properties.remove("DeploymentPreference");
            }
        }
        resource
    }

    /// The names a resource refers to (resources, parameters, pseudo parameters), by
    /// any of CloudFormation's ways.
    fn references(&self, name: &str) -> BTreeSet<String> {
        let resource = self.definition(name);
        let mut found = BTreeSet::new();
        match resource.get("DependsOn") {
            Some(Value::String(one)) => {
                found.insert(one.clone());
            }
            Some(Value::Sequence(many)) => found.extend(many.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
        for section in ["Properties", "Metadata"] {
            if let Some(value) = resource.get(section) {
                walk(value, &mut found);
            }
        }
        found
    }

    /// What `name` depends on, directly: the resources among its references.
    fn dependencies(&self, name: &str) -> BTreeSet<String> {
        self.references(name).into_iter().filter(|r| self.resources.contains_key(r)).collect()
    }

    /// Everything `name` depends on, through any chain.
    fn needs(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(next) = todo.pop() {
            for dep in self.dependencies(&next) {
                if seen.insert(dep.clone()) {
                    todo.push(dep);
                }
            }
        }
        seen
    }

    fn of_type(&self, kinds: &[&str]) -> Vec<String> {
        self.resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str).is_some_and(|t| kinds.contains(&t)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn merged(globals: Value, local: Value) -> Value {
    match (globals, local) {
        (Value::Mapping(mut g), Value::Mapping(l)) => {
            for (k, v) in l {
                let joined = match g.remove(&k) {
                    Some(gv) => merged(gv, v),
                    None => v,
                };
                g.insert(k, joined);
            }
            Value::Mapping(g)
        }
        (Value::Sequence(mut g), Value::Sequence(l)) => {
            g.extend(l);
            Value::Sequence(g)
        }
        (g, Value::Null) => g,
        (_, l) => l,
    }
}

/// The resource or parameter a `Ref`/`GetAtt` target names (`X`, `X.Attr`, SAM's `X.Version`).
fn target(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_string()
}

/// The names `${…}` in a `Fn::Sub` string refers to (`${!…}` is a literal).
fn sub_names(text: &str, found: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[..end];
        if !name.starts_with('!') {
            found.insert(target(name));
        }
        rest = &rest[end + 1..];
    }
}

fn walk(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = &tagged.value;
            match (tag.trim_start_matches('!'), inner) {
                ("Ref", Value::String(name)) => {
                    found.insert(target(name));
                }
                ("GetAtt", Value::String(path)) => {
                    found.insert(target(path));
                }
                ("GetAtt", Value::Sequence(parts)) => {
                    if let Some(name) = parts.first().and_then(Value::as_str) {
                        found.insert(name.to_string());
                    }
                }
                ("Sub", Value::String(text)) => sub_names(text, found),
                ("Sub", Value::Sequence(parts)) => {
                    // Names the variable map defines are the map's, not the template's.
                    let local: BTreeSet<String> = parts
                        .get(1)
                        .and_then(Value::as_mapping)
                        .map(|m| m.keys().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default();
                    if let Some(text) = parts.first().and_then(Value::as_str) {
                        let mut named = BTreeSet::new();
                        sub_names(text, &mut named);
                        found.extend(named.into_iter().filter(|n| !local.contains(n)));
                    }
                    parts.iter().skip(1).for_each(|p| walk(p, found));
                }
                // The condition's name, then both branches: either may be taken.
                ("If", Value::Sequence(parts)) => parts.iter().skip(1).for_each(|p| walk(p, found)),
                _ => walk(inner, found),
            }
        }
        Value::Mapping(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    (Some("Ref"), Value::String(name)) | (Some("Fn::GetAtt"), Value::String(name)) => {
                        found.insert(target(name));
                    }
                    (Some("Fn::Sub"), Value::String(text)) => sub_names(text, found),
                    _ => walk(inner, found),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| walk(i, found)),
        _ => {}
    }
}

/// Every name a resource refers to exists, and no chain of dependencies comes back to
/// where it started (CloudFormation refuses a circular template).
#[test]
fn every_reference_resolves_and_the_graph_has_no_cycle() {
    let template = Template::load();
    for name in template.resources.keys() {
        for reference in template.references(name) {
            let known = template.resources.contains_key(&reference)
                || template.parameters.contains(&reference)
                || reference.starts_with("AWS::");
            assert!(known, "{name} refers to {reference}, which the template does not define");
        }
        assert!(!template.needs(name).contains(name), "{name} depends on itself through a chain");
    }
}

/// The migrate function answers CloudFormation by a PUT to S3 from the private subnets:
/// through the S3 gateway endpoint on the private route table, or the NAT gateway; it
/// reads its secrets through the Secrets Manager endpoint, in its security group, and
/// logs to its log group. `DatabaseSchema` depends on all of it, so on a delete (or the
/// rollback of a failed create) it goes first, while it can still answer.
#[test]
fn the_schema_resource_is_deleted_before_anything_it_needs_to_answer() {
    let template = Template::load();
    let needs = template.needs("DatabaseSchema");
    let path = template.of_type(&[
        "AWS::EC2::VPCEndpoint",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::Subnet",
    ]);
    assert!(path.len() >= 10, "the template's network: {path:?}");
    // Its own security group, the endpoints', and the way to the database (Redis's is
    // not on its path).
    let own = [
        "MigrateFunction",
        "MigrateLogs",
        "FunctionSecurityGroup",
        "EndpointSecurityGroup",
        "DatabaseProxySecurityGroup",
    ];
    let missing: Vec<&str> = path.iter().map(String::as_str).chain(own).filter(|r| !needs.contains(*r)).collect();
    assert!(missing.is_empty(), "DatabaseSchema does not depend on {missing:?}, so a delete may remove them first");

    // And it waits minutes, not CloudFormation's default hour, for an answer.
    let timeout = template.definition("DatabaseSchema")["Properties"]["ServiceTimeout"].as_u64();
    let function_timeout = template.definition("MigrateFunction")["Properties"]["Timeout"].as_u64().unwrap();
    assert!(
        timeout.is_some_and(|t| t > function_timeout && t <= 900),
        "DatabaseSchema's ServiceTimeout ({timeout:?}) outlasts the function's {function_timeout} s by a little"
    );
}

/// The graph is not vacuous: it sees a dependency only a `Fn::Sub` or a `Fn::If` branch
/// names, and Globals' (the functions' security group).
#[test]
fn the_graph_sees_sub_if_and_globals() {
    let template = Template::load();
    let needs = template.needs("AdmitFunction");
    for expected in ["Redis", "DatabaseProxy", "FunctionSecurityGroup", "PrivateSubnetA", "UserPoolClient"] {
        assert!(needs.contains(expected), "AdmitFunction needs {expected}: {needs:?}");
    }
    assert!(!template.needs("Vpc").contains("DatabaseSchema"));
}

/// The username a secret's generated JSON carries (`SecretStringTemplate`).
fn secret_username(template: &Template, secret: &str) -> Option<String> {
    let text =
        template.definition(secret)["Properties"]["GenerateSecretString"]["SecretStringTemplate"].as_str()?.to_string();
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["username"].as_str().map(str::to_string)
}

/// The resource a `!Ref` names.
fn ref_target(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(t) if t.tag == "!Ref" || t.tag == "Ref" => t.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// The template gives each function the users `flashsale::stores::access` lists: its
/// database URL names its MySQL user, whose secret migrate reads; its Redis secret is
/// its Redis user's, and that ElastiCache user's access string is the one the local
/// tests run the purchase path under.
#[test]
fn each_function_signs_in_as_the_users_stores_access_lists() {
    use flashsale::stores::access::FUNCTIONS;
    let template = Template::load();
    let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let migrate_reads = template.references("MigrateFunction");
    for f in FUNCTIONS {
        let logical: String =
            f.function.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect::<String>() + "Function";
        let function = template.definition(&logical);
        let env = &function["Properties"]["Environment"]["Variables"];
        let url = match &env["FLASHSALE_DATABASE_URL"] {
            Value::Tagged(t) => t.value.as_str().unwrap_or_default().to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        assert!(
            url.starts_with(&format!("mysql://{}@", f.mysql_user)),
            "{logical} signs in as {}: {url}",
            f.mysql_user
        );
        assert!(url.contains("ssl-mode=verify-identity"), "{logical} checks the proxy's certificate: {url}");
        let db_secret = template
            .resources
            .keys()
            .find(|name| secret_username(&template, name).as_deref() == Some(f.mysql_user))
            .unwrap_or_else(|| panic!("no secret holds {}", f.mysql_user));
        assert!(migrate_reads.contains(db_secret), "migrate creates {} from {db_secret}", f.mysql_user);

        let redis_secret = ref_target(&env["FLASHSALE_REDIS_AUTH_SECRET"]);
        match f.redis {
            None => assert!(redis_secret.is_none(), "{logical} has no Redis user"),
            Some((user, access)) => {
                let secret = redis_secret.unwrap_or_else(|| panic!("{logical} has its Redis user's secret"));
                assert_eq!(secret_username(&template, &secret).as_deref(), Some(user), "{secret}");
                let users: Vec<&Value> = template
                    .resources
                    .values()
                    .filter(|r| r["Type"].as_str() == Some("AWS::ElastiCache::User"))
                    .filter(|r| r["Properties"]["UserName"].as_str() == Some(user))
                    .collect();
                assert_eq!(users.len(), 1, "one ElastiCache user {user}");
                let string = users[0]["Properties"]["AccessString"].as_str().unwrap_or_default();
                assert_eq!(collapse(string), collapse(access), "{user}'s access string");
            }
        }
    }
}

/// The queue a `!GetAtt Queue.Arn` or `!GetAtt Queue.QueueName` names.
fn getatt_target(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(t) if t.tag == "!GetAtt" || t.tag == "GetAtt" => t.value.as_str().map(target),
        _ => None,
    }
}

/// No function takes SAM's poller events (SQS, Kinesis, DynamoDB streams), whose managed
/// execution policies allow reading and deleting from every queue or stream of the
/// account; each queue's poller is an event source mapping, and its function may poll
/// that queue and no other.
#[test]
fn each_consumer_may_poll_its_own_queue_only() {
    let template = Template::load();
    let functions: Vec<&String> = template
        .resources
        .keys()
        .filter(|name| template.resources[*name]["Type"].as_str() == Some("AWS::Serverless::Function"))
        .collect();
    for name in &functions {
        let events = template.definition(name)["Properties"]["Events"].clone();
        for (event, definition) in events.as_mapping().into_iter().flatten() {
            let kind = definition["Type"].as_str().unwrap_or_default();
            assert!(
                !["SQS", "Kinesis", "DynamoDB", "MSK", "MQ"].contains(&kind),
                "{name}'s event {event:?} is SAM's {kind} poller: its managed policy allows every queue"
            );
        }
    }
    let mut mappings = 0;
    for (name, resource) in &template.resources {
        if resource["Type"].as_str() != Some("AWS::Lambda::EventSourceMapping") {
            continue;
        }
        mappings += 1;
        let function = ref_target(&resource["Properties"]["FunctionName"]).expect("the mapping's function by !Ref");
        let queue = getatt_target(&resource["Properties"]["EventSourceArn"]).expect("the mapping's queue by !GetAtt");
        let polled: Vec<String> = template.definition(&function)["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|policy| getatt_target(&policy.get("SQSPollerPolicy")?["QueueName"]))
            .collect();
        assert_eq!(polled, vec![queue.clone()], "{name}: {function} may poll {queue}, and only that queue");
    }
    assert_eq!(mappings, 2, "the orders' and the payment deadlines' pollers");
}

/// Anyone may post to the payment webhook (no JWT): by default it reserves a small
/// concurrency of its own, which is also its ceiling, so a flood of forged deliveries
/// holds at most that many containers and leaves the account's concurrency to admit.
#[test]
fn the_payment_webhook_reserves_a_small_concurrency_of_its_own_by_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let parameter = &doc["Parameters"]["PaymentWebhookReservedConcurrency"];
    let default = parameter["Default"].as_u64().expect("a number by default");
    assert!((1..=20).contains(&default), "a small reservation by default, not none: {default}");
    assert!(parameter["MaxValue"].as_u64().is_some_and(|max| max <= 100), "a ceiling, not a share of admit's");
    assert!(parameter["Description"].as_str().is_some_and(|d| d.len() > 40), "described");

    let reserved =
        Template::load().definition("PaymentWebhookFunction")["Properties"]["ReservedConcurrentExecutions"].clone();
    let Value::Tagged(choice) = &reserved else { panic!("reserved concurrency by a condition: {reserved:?}") };
    let branches = choice.value.as_sequence().expect("!If [condition, then, else]");
    let condition = branches[0].as_str().unwrap();
    assert_eq!(ref_target(&branches[1]).as_deref(), Some("PaymentWebhookReservedConcurrency"));
    // The condition holds for any reservation but 0, the default's included.
    let holds = serde_yaml::to_string(&doc["Conditions"][condition]).unwrap();
    assert!(
        holds.contains("!Not") && holds.contains("PaymentWebhookReservedConcurrency") && holds.contains("0"),
        "{condition}: {holds}"
    );
}

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
