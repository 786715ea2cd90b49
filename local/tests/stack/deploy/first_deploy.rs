//! A first deploy into an empty account: the schema, each function's own users, and the
//! purchase path run with only their rights.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_resource_brings_up_an_empty_server_for_the_purchase_path() {
    let mut config = Config::from_env().unwrap();
    let server = MySqlConnectOptions::from_str(config.mysql.url.expose()).unwrap();
    let address = format!("{}:{}", server.get_host(), server.get_port());
    let tag = format!("{:08x}", rand::random::<u32>());
    let database = format!("flashsale_deploy_{tag}");
    // As on AWS, the URL names only the server and the database; users come from secrets.
    config.mysql.url = (format!("mysql://{address}/{database}")).into();
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
        o.config.mysql.url = (app_url.clone()).into();
        o.config.redis.url = (own_redis.url()).into();
        o.config.redis.wait_replicas = 0; // a single node
        o.config.redis.auth_secret = Some(redis_secret.clone());
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
