//! A first deploy into an empty account: the `migrate` custom resource, run on a server
//! without the database, creates it, applies the schema and each function's own user;
//! the whole purchase path then runs with each function signed in as its own MySQL
//! user and its own Redis ACL user, with only the rights `flashsale::stores::access`
//! lists, and Redis refuses every command a function does not run.
//! Then every path of a later deploy: an update that adds a migration, a rollback to the
//! release before, a migration that fails and one a dead run left dirty, a response URL
//! that never answers, work that outlasts the invocation, and a panic: each answered,
//! within the invocation's bound.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_resource_brings_up_an_empty_server_for_the_purchase_path() {
    let mut config = Config::from_env().unwrap();
    let server = MySqlConnectOptions::from_str(config.database_url.expose()).unwrap();
    let address = format!("{}:{}", server.get_host(), server.get_port());
    let tag = format!("{:08x}", rand::random::<u32>());
    let database = format!("flashsale_deploy_{tag}");
    // As on AWS, the URL names only the server and the database; users come from secrets.
    config.database_url = (format!("mysql://{address}/{database}")).into();
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let admin = secret(&sdk, "flashsale_admin", "flashsale_admin").await;
    let (app_user, app_password) = (format!("app_{tag}"), format!("Pw{tag}{:08x}", rand::random::<u32>()));
    let app = secret(&sdk, &app_user, &app_password).await;
    let cfn = CloudFormation::start().await;
    // Each function's MySQL user, in a secret of its own as the template makes them.
    let mut function_secrets = Vec::new();
    let mut passwords = std::collections::BTreeMap::new();
    for f in access::FUNCTIONS {
        let password = format!("Pw{:016x}", rand::random::<u64>());
        function_secrets.push(secret(&sdk, f.mysql_user, &password).await);
        passwords.insert(f.function, password);
    }

    let migrate =
        migrate::Migrate::new(&config, &sdk, admin.clone(), app.clone()).with_function_users(function_secrets.clone());
    migrate.handle(cfn.event("Create"), soon()).await.unwrap();
    let answer = cfn.last();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], "DatabaseSchema-schema");
    assert_eq!(answer["RequestId"], "request-Create");
    // The next deploy migrates again: nothing to do, same resource.
    migrate.handle(cfn.event("Update"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS");
    assert_eq!(cfn.last()["PhysicalResourceId"], "DatabaseSchema-schema");

    // The purchase path as the application user, who may not migrate, on a Redis that
    // speaks only TLS and wants its AUTH token, which the functions read from Secrets
    // Manager at init: ElastiCache as the template makes it.
    let app_url = format!("mysql://{app_user}:{app_password}@{address}/{database}");
    let redis_token = format!("Tk{tag}{:016x}", rand::random::<u64>());
    let own_redis = OwnRedis::start_with(Some(&redis_token), true).await;
    let redis_secret = plain_secret(&sdk, &redis_token).await;
    // Each function's Redis user, with the access string the template gives it.
    let mut root = redis::Client::open(own_redis.url().replacen("://", &format!("://:{redis_token}@"), 1))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for f in access::FUNCTIONS {
        if let Some((user, rules)) = f.redis {
            let mut setuser = redis::cmd("ACL");
            setuser.arg("SETUSER").arg(user).arg("reset").arg(format!(">{}", passwords[f.function]));
            setuser.arg(rules.split_whitespace().collect::<Vec<_>>());
            setuser.query_async::<()>(&mut root).await.unwrap();
        }
    }
    redis::cmd("ACL").arg("LOG").arg("RESET").query_async::<()>(&mut root).await.unwrap();
    let users: std::collections::BTreeMap<String, flashsale_local::FunctionUser> = access::FUNCTIONS
        .iter()
        .map(|f| {
            let password = &passwords[f.function];
            let user = flashsale_local::FunctionUser {
                database_url: format!("mysql://{}:{password}@{address}/{database}", f.mysql_user).into(),
                redis: f.redis.map(|(user, _)| (user.to_string(), password.clone().into())),
            };
            (f.function.to_string(), user)
        })
        .collect();
    let stack = stack_with(|o| {
        o.migrate = false;
        o.config.database_url = (app_url.clone()).into();
        o.config.redis_url = (own_redis.url()).into();
        o.config.redis_wait_replicas = 0; // a single node
        o.config.redis_auth_secret = Some(redis_secret.clone());
        o.function_users = users.clone();
        o.reconcile_every_secs = 2;
    })
    .await;
    let anonymous = async {
        let mut conn = redis::Client::open(own_redis.url())?.get_multiplexed_async_connection().await?;
        redis::cmd("DBSIZE").query_async::<i64>(&mut conn).await
    };
    let refused = anonymous.await.expect_err("Redis refuses a client without the token");
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(3, 1, 2, -1, 3600)).await;
    let mut orders = Vec::new();
    for user in ["ann", "ben", "cat"] {
        let (status, body) = api.buy(sale, user, None).await;
        assert_eq!(status, 202, "{body}");
        orders.push((user, body["order_id"].as_str().unwrap().to_string()));
    }
    assert_eq!(api.buy(sale, "dan", None).await.0, 409);
    let db = mysql(&stack).await;
    eventually("three UNPAID orders", Duration::from_secs(30), || async {
        (mysql_orders(&db, sale).await.iter().filter(|(_, _, s)| s == "UNPAID").count() == 3).then_some(())
    })
    .await;
    let (user, order) = &orders[0];
    let (status, body) = api.pay(user, order, CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    api.await_status(user, order, "PAID").await;
    let redis = redis::Client::open(own_redis.url().replacen("://", &format!("://:{redis_token}@"), 1))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    eventually("the unpaid two closed and back on sale", Duration::from_secs(30), || async {
        (mysql_sale(&db, sale).await == (3, 1) && redis_stock(&mut redis.clone(), sale).await == 2).then_some(())
    })
    .await;
    // Only the rights the functions use.
    for ddl in
        ["DROP TABLE orders", "CREATE TABLE x (id INT)", "DELETE FROM orders", "ALTER TABLE sales ADD COLUMN x INT"]
    {
        assert!(sqlx::query(ddl).execute(&db).await.is_err(), "the application user may not: {ddl}");
    }
    // No function ran a command its Redis user may not: Redis logs every refusal.
    let refused: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query_async(&mut root).await.unwrap();
    assert!(refused.is_empty(), "commands Redis refused a function: {refused:?}");
    // The internet-facing function, as its own users, can do nothing else.
    let shop = access::of("shop-api").unwrap();
    let shop_db = sqlx::MySqlPool::connect(&format!(
        "mysql://{}:{}@{address}/{database}",
        shop.mysql_user, passwords["shop-api"]
    ))
    .await
    .unwrap();
    for statement in [
        "DELETE FROM orders",
        "INSERT INTO orders (id, sale_id, user_id, quantity, amount_cents, status) VALUES (1, 1, 'x', 1, 1, 'PAID')",
        "INSERT INTO order_tallies (sale_id, status) VALUES (1, 'PAID')",
        "INSERT INTO sales (name) VALUES ('x')",
        "DROP TABLE payment_events",
    ] {
        assert!(sqlx::query(statement).execute(&shop_db).await.is_err(), "shop-api's user may not: {statement}");
    }
    shop_db.close().await;
    let (shop_user, _) = shop.redis.unwrap();
    let mut shop_redis =
        redis::Client::open(own_redis.url().replacen("://", &format!("://{shop_user}:{}@", passwords["shop-api"]), 1))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
    for command in [
        vec!["FLUSHALL"],
        vec!["KEYS", "*"],
        vec!["CONFIG", "GET", "*"],
        vec!["SET", "elsewhere", "1"],
        vec!["SCRIPT", "FLUSH"],
    ] {
        let refused = redis::cmd(command[0]).arg(&command[1..]).query_async::<redis::Value>(&mut shop_redis).await;
        let error = refused.expect_err("refused");
        assert!(error.to_string().contains("no permissions"), "{command:?}: {error}");
    }
    assert_eq!(redis_stock(&mut redis.clone(), sale).await, 2, "nothing was flushed");

    // A secret that cannot be read fails the deploy at once, with the reason.
    let broken = migrate::Migrate::new(&config, &sdk, "no-such-secret".into(), app.clone());
    assert!(broken.handle(cfn.event("Update"), soon()).await.is_err());
    let answer = cfn.last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"].as_str().unwrap().contains("secretsmanager"), "{answer}");
    // Deleting the resource leaves the data alone.
    migrate.handle(cfn.event("Delete"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS");
    assert_eq!(mysql_orders(&db, sale).await.len(), 3);

    db.close().await;
    let root = sqlx::MySqlPool::connect(&format!("mysql://flashsale_admin:flashsale_admin@{address}")).await.unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE `{database}`; DROP USER '{app_user}'@'%'")).execute(&root).await.unwrap();
    for f in access::FUNCTIONS {
        sqlx::raw_sql(&format!("DROP USER IF EXISTS '{}'@'%'", f.mysql_user)).execute(&root).await.unwrap();
    }
}

/// Counts time by hand, so a test can step past a token's renewal.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A container signs in with an IAM token and signs a new one for the connections it
/// opens once its token is ten minutes old (RDS accepts one for fifteen; an open
/// connection outlives it). MariaDB stands in for the proxy's check: the probe user's
/// password is the token the proxy would expect at that moment.
#[tokio::test]
async fn iam_sign_in_signs_a_new_token_for_connections_opened_after_ten_minutes() {
    let mut config = Config::from_env().unwrap();
    config.db_max_connections = 1;
    Mysql::connect(&config).unwrap().migrate().await.unwrap();
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let server = MySqlConnectOptions::from_str(config.database_url.expose()).unwrap();
    let admin = server.clone().username("flashsale_admin").password("flashsale_admin");
    let root = sqlx::MySqlPool::connect_with(admin).await.unwrap();
    let user = format!("iam_{:08x}", rand::random::<u32>());
    let clock = Arc::new(ManualClock(AtomicU64::new(1_764_115_200_000)));
    let signer = || RdsAuth::new(&sdk, server.get_host(), server.get_port(), &user, clock.clone()).unwrap();
    // What the proxy expects now: a token signed with the same credentials at this instant.
    let expected = signer();
    let accept_current_token = || async {
        let (token, _) = expected.token().await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%'; ALTER USER '{user}'@'%' IDENTIFIED BY '{}'; \
             GRANT SELECT ON `{}`.* TO '{user}'@'%'",
            token.expose(),
            server.get_database().unwrap()
        ))
        .execute(&root)
        .await
        .unwrap();
    };
    // Drops the pool's open connection, so the next call opens one.
    let disconnect = || async {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?")
            .bind(&user)
            .fetch_all(&root)
            .await
            .unwrap();
        assert!(!ids.is_empty(), "the pool holds a connection");
        for id in ids {
            // One on its way out already is gone by now.
            sqlx::query(&format!("KILL {id}")).execute(&root).await.ok();
        }
    };
    let advance = |minutes: u64| clock.0.fetch_add(minutes * 60_000, Ordering::SeqCst);

    accept_current_token().await;
    let db = Mysql::connect_with_iam(&config, server.clone().username(&user).password(""), signer());
    db.sale(SaleId(1)).await.expect("signed in with the first token");
    // Five minutes on, a new connection still presents the first token, which is valid.
    advance(5);
    disconnect().await;
    db.sale(SaleId(1)).await.expect("the first token serves a new connection");
    // Eleven minutes on, the first token is near its end: the proxy now expects a new one.
    advance(6);
    accept_current_token().await;
    disconnect().await;
    db.sale(SaleId(1)).await.expect("a new connection presents a new token");

    sqlx::query(&format!("DROP USER '{user}'@'%'")).execute(&root).await.unwrap();
}

const ADD_NOTE: (&str, &str) = ("20990101000001_sale_note.sql", "ALTER TABLE sales ADD COLUMN note VARCHAR(64) NULL");
const BROKEN: (&str, &str) = ("20990101000002_broken.sql", "ALTER TABLE no_such_table ADD COLUMN x INT");
const ADD_FLAG: (&str, &str) = ("20990101000003_sale_flag.sql", "ALTER TABLE sales ADD COLUMN flag INT NULL");

async fn columns(db: &sqlx::MySqlPool, database: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = ? AND table_name = 'sales' ORDER BY ordinal_position",
    )
    .bind(database)
    .fetch_all(db)
    .await
    .unwrap()
}

/// (version, success) of every applied migration.
async fn applied(db: &sqlx::MySqlPool) -> Vec<(i64, bool)> {
    sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version").fetch_all(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_resource_answers_every_path_of_a_deploy_within_its_bound() {
    let mut config = Config::from_env().unwrap();
    let server = MySqlConnectOptions::from_str(config.database_url.expose()).unwrap();
    let address = format!("{}:{}", server.get_host(), server.get_port());
    let tag = format!("{:08x}", rand::random::<u32>());
    let database = format!("flashsale_schema_{tag}");
    config.database_url = (format!("mysql://{address}/{database}")).into();
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let admin = secret(&sdk, "flashsale_admin", "flashsale_admin").await;
    let app_user = format!("app_{tag}");
    let app = secret(&sdk, &app_user, &format!("Pw{tag}")).await;
    let cfn = CloudFormation::start().await;
    let function =
        |migrations| migrate::Migrate::new(&config, &sdk, admin.clone(), app.clone()).with_migrations(migrations);
    let (first_dir, first) = release(&tag, "first", &[]).await;
    let (second_dir, second) = release(&tag, "second", &[ADD_NOTE]).await;
    let (broken_dir, broken) = release(&tag, "broken", &[ADD_NOTE, BROKEN]).await;
    let (third_dir, third) = release(&tag, "third", &[ADD_NOTE, ADD_FLAG]).await;
    let flag = third.iter().find(|m| m.version == 20990101000003).unwrap().clone();
    let (first, second, broken, third) = (function(first), function(second), function(broken), function(third));

    // Create, then an update that adds a migration.
    first.handle(cfn.event("Create"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS", "{}", cfn.last());
    let db = sqlx::MySqlPool::connect(&format!("mysql://flashsale_admin:flashsale_admin@{address}/{database}"))
        .await
        .unwrap();
    let created = columns(&db, &database).await;
    assert!(!created.contains(&"note".to_string()));
    second.handle(cfn.event("Update"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS", "{}", cfn.last());
    let expanded = columns(&db, &database).await;
    assert_eq!(expanded.len(), created.len() + 1);
    assert!(expanded.contains(&"note".to_string()));

    // The stack rolls back: the release before runs against the newer schema. Success,
    // and the schema is left as it was.
    let before = applied(&db).await;
    first.handle(cfn.event("Update"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS", "a rollback to the release before: {}", cfn.last());
    assert_eq!(columns(&db, &database).await, expanded);
    assert_eq!(applied(&db).await, before);

    // A migration fails: FAILED with the version, and the rollback that follows is not
    // refused for the version it left dirty.
    assert!(broken.handle(cfn.event("Update"), soon()).await.is_err());
    let answer = cfn.last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"].as_str().unwrap().contains("20990101000002"), "{answer}");
    assert!(applied(&db).await.contains(&(20990101000002, false)), "sqlx left its dirty mark");
    second.handle(cfn.event("Update"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS", "the rollback after a failed migration: {}", cfn.last());
    assert_eq!(applied(&db).await, before, "the dirty mark is gone, nothing else changed");
    // The broken release fails the same way again, never worse.
    assert!(broken.handle(cfn.event("Update"), soon()).await.is_err());
    assert!(cfn.last()["Reason"].as_str().unwrap().contains("20990101000002"), "{}", cfn.last());

    // A run died between its statement and clearing the mark: the next run finds the
    // column there and records the version as applied.
    sqlx::raw_sql(ADD_FLAG.1).execute(&db).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?, ?, FALSE, ?, -1)",
    )
    .bind(flag.version)
    .bind(&*flag.description)
    .bind(&*flag.checksum)
    .execute(&db)
    .await
    .unwrap();
    third.handle(cfn.event("Update"), soon()).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS", "{}", cfn.last());
    let repaired = applied(&db).await;
    assert!(repaired.iter().all(|(_, success)| *success), "{repaired:?}");
    assert!(repaired.contains(&(20990101000003, true)), "{repaired:?}");
    assert_eq!(columns(&db, &database).await.iter().filter(|c| *c == "flag" || *c == "note").count(), 2);

    // A response URL that takes the connection and never answers: the handler still
    // returns within the invocation's bound, after its work is done.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/response", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mut event = serde_json::to_value(cfn.event("Update")).unwrap();
    event["ResponseURL"] = json!(silent_url);
    let started = Instant::now();
    let bound = Duration::from_secs(10);
    let outcome = third.handle(serde_json::from_value(event).unwrap(), started + bound).await;
    let took = started.elapsed();
    assert!(took <= bound + Duration::from_secs(1), "returned after {took:?}, bound {bound:?}");
    let refused = outcome.expect_err("no answer taken");
    assert!(refused.to_string().contains("could not answer CloudFormation"), "{refused}");
    held.abort();

    // Work that outlasts the invocation is cut short and answered FAILED in time.
    let started = Instant::now();
    let outcome = third.answering(&cfn.event("Update"), started + bound, std::future::pending()).await;
    assert!(started.elapsed() <= bound + Duration::from_secs(1));
    assert!(outcome.is_err());
    let answer = cfn.last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"].as_str().unwrap().contains("did not finish"), "{answer}");

    // A panic is answered FAILED by the panic hook (in a release build it then aborts).
    let panicking = Arc::new(third);
    let answered = cfn.answers.lock().unwrap().len();
    let run = panicking.clone();
    let event = cfn.event("Update");
    let crashed =
        tokio::spawn(
            async move { run.answering(&event, soon(), async { panic!("a bug in the migrate function") }).await },
        )
        .await;
    assert!(crashed.expect_err("the task panicked").is_panic());
    assert_eq!(cfn.answers.lock().unwrap().len(), answered + 1, "one answer, from the hook");
    let answer = cfn.last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"].as_str().unwrap().contains("a bug in the migrate function"), "{answer}");
    assert_eq!(answer["RequestId"], "request-Update");

    db.close().await;
    let root = sqlx::MySqlPool::connect(&format!("mysql://flashsale_admin:flashsale_admin@{address}")).await.unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE `{database}`; DROP USER IF EXISTS '{app_user}'@'%'"))
        .execute(&root)
        .await
        .unwrap();
    for dir in [first_dir, second_dir, broken_dir, third_dir] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
