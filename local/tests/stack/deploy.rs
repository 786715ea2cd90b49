//! A first deploy into an empty account: the `migrate` custom resource, run on a server
//! without the database, creates it, applies the schema and the application's own
//! user; the whole purchase path then runs as that user, with only the rights it got.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;
use flashsale::clock::Clock;
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

    let migrate = migrate::Migrate::new(&config, &sdk, admin.clone(), app.clone());
    migrate.handle(cfn.event("Create")).await.unwrap();
    let answer = cfn.last();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], "DatabaseSchema-schema");
    assert_eq!(answer["RequestId"], "request-Create");
    // The next deploy migrates again: nothing to do, same resource.
    migrate.handle(cfn.event("Update")).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS");
    assert_eq!(cfn.last()["PhysicalResourceId"], "DatabaseSchema-schema");

    // The purchase path as the application user, who may not migrate, on a Redis that
    // speaks only TLS and wants its AUTH token, which the functions read from Secrets
    // Manager at init: ElastiCache as the template makes it.
    let app_url = format!("mysql://{app_user}:{app_password}@{address}/{database}");
    let redis_token = format!("Tk{tag}{:016x}", rand::random::<u64>());
    let own_redis = OwnRedis::start_with(Some(&redis_token), true).await;
    let redis_secret = plain_secret(&sdk, &redis_token).await;
    let stack = stack_with(|o| {
        o.migrate = false;
        o.config.database_url = (app_url.clone()).into();
        o.config.redis_url = (own_redis.url()).into();
        o.config.redis_wait_replicas = 0; // a single node
        o.config.redis_auth_secret = Some(redis_secret.clone());
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

    // A secret that cannot be read fails the deploy at once, with the reason.
    let broken = migrate::Migrate::new(&config, &sdk, "no-such-secret".into(), app.clone());
    assert!(broken.handle(cfn.event("Update")).await.is_err());
    let answer = cfn.last();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"].as_str().unwrap().contains("secretsmanager"), "{answer}");
    // Deleting the resource leaves the data alone.
    migrate.handle(cfn.event("Delete")).await.unwrap();
    assert_eq!(cfn.last()["Status"], "SUCCESS");
    assert_eq!(mysql_orders(&db, sale).await.len(), 3);

    db.close().await;
    let root = sqlx::MySqlPool::connect(&format!("mysql://flashsale_admin:flashsale_admin@{address}")).await.unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE `{database}`; DROP USER '{app_user}'@'%'")).execute(&root).await.unwrap();
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
