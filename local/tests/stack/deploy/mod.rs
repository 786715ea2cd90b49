//! A first deploy into an empty account: the `migrate` custom resource, run on a server
//! without the database, creates it, applies the schema and each function's own user;
//! the whole purchase path then runs with each function signed in as its own MySQL
//! user and its own Redis ACL user, with only the rights `flashsale::stores::access`
//! lists, and Redis refuses every command a function does not run.
//! Then every path of a later deploy: an update that adds a migration, a rollback to the
//! release before, a migration that fails and one a dead run left dirty, a response URL
//! that never answers, work that outlasts the invocation, and a panic: each answered,
//! within the invocation's bound.
//!
//! By what they prove: a first deploy ([`first_deploy`]), IAM sign-in to MySQL
//! ([`iam_sign_in`]) and every path of a later one ([`later_deploys`]); here, the
//! CloudFormation stand-in and the releases they deploy.

mod first_deploy;
mod iam_sign_in;
mod later_deploys;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::*;
use flashsale::clock::Clock;
use flashsale::stores::access;
use flashsale::stores::mysql::iam::RdsAuth;
use flashsale::stores::mysql::Mysql;
use flashsale::{Config, SaleId};
use serde_json::{json, Value};
use sqlx::mysql::MySqlConnectOptions;

/// Stands in for the pre-signed S3 URL CloudFormation waits on: keeps what is PUT.
struct CloudFormation {
    url: String,
    answers: Arc<Mutex<Vec<Value>>>,
}

impl CloudFormation {
    async fn start() -> Self {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let keep = answers.clone();
        let app = axum::Router::new().route(
            "/response",
            axum::routing::put(move |body: String| {
                let keep = keep.clone();
                async move { keep.lock().unwrap().push(serde_json::from_str::<Value>(&body).unwrap()) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/response", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        CloudFormation { url, answers }
    }

    fn last(&self) -> Value {
        self.answers.lock().unwrap().last().cloned().expect("CloudFormation got an answer")
    }

    fn event(&self, kind: &str) -> aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest {
        let mut event = json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:us-east-1:000000000000:function:migrate",
            "ResponseURL": self.url,
            "StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/flashsale/1",
            "RequestId": format!("request-{kind}"),
            "ResourceType": "Custom::DatabaseSchema",
            "LogicalResourceId": "DatabaseSchema",
            "ResourceProperties": {"ServiceToken": "arn", "Version": "2"},
        });
        if kind != "Create" {
            event["PhysicalResourceId"] = json!("DatabaseSchema-schema");
            event["OldResourceProperties"] = json!({"ServiceToken": "arn", "Version": "1"});
        }
        serde_json::from_value(event).unwrap()
    }
}

/// An invocation's deadline far enough away for any of these runs.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

/// A release's `migrations/`: the repository's, plus `extra` (file name, SQL).
async fn release(tag: &str, name: &str, extra: &[(&str, &str)]) -> (PathBuf, sqlx::migrate::Migrator) {
    let dir = std::env::temp_dir().join(format!("flashsale-migrations-{tag}-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    for file in std::fs::read_dir(repo).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
    }
    for (file, sql) in extra {
        std::fs::write(dir.join(file), sql).unwrap();
    }
    let mut migrator = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    migrator.set_ignore_missing(true); // as flashsale::stores::mysql::schema::migrations()
    (dir, migrator)
}

/// A MySQL user's secret, as RDS keeps them.
async fn secret(sdk: &aws_config::SdkConfig, username: &str, password: &str) -> String {
    plain_secret(sdk, &json!({"username": username, "password": password}).to_string()).await
}

async fn plain_secret(sdk: &aws_config::SdkConfig, value: &str) -> String {
    let name = format!("flashsale-test-{:08x}", rand::random::<u32>());
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let created = secrets.create_secret().name(name).secret_string(value).send().await.unwrap();
    created.arn().unwrap().to_string()
}
