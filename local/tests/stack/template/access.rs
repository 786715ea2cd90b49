//! Each function's access as the template grants it: its own database and Redis users,
//! its own queue, the payment webhook's reserved concurrency.

use super::*;

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
