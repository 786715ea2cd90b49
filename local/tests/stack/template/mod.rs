//! `template.yaml` as CloudFormation orders it: a dependency graph from `Ref`,
//! `Fn::GetAtt`, `Fn::Sub`, `DependsOn` and both branches of `Fn::If`, with SAM's
//! `Globals` merged into each function. CloudFormation creates a resource after what it
//! depends on and deletes it before; so the schema's custom resource, which must answer
//! CloudFormation through S3 from inside the VPC, must depend on every part of that path,
//! or a stack delete (or the rollback of a failed create) takes the path away first and
//! the resource waits out its `ServiceTimeout` for an answer that cannot come.
//!
//! The template's tests by what they prove: its dependency graph ([`graph`]), each
//! function's access ([`access`]) and the web ACL ([`web_acl`]).

mod access;
mod graph;
mod web_acl;

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
