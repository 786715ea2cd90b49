//! Every path of a later deploy: an update, a rollback, a failing or dirty migration, a
//! silent response URL, work past the invocation, a panic: each answered in its bound.

use super::*;

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
    let server = MySqlConnectOptions::from_str(config.mysql.url.expose()).unwrap();
    let address = format!("{}:{}", server.get_host(), server.get_port());
    let tag = format!("{:08x}", rand::random::<u32>());
    let database = format!("flashsale_schema_{tag}");
    config.mysql.url = (format!("mysql://{address}/{database}")).into();
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
