//! Stacks that start together on an empty database all migrate it.

use flashsale::Config;

/// A fresh machine's first `make test`: several stacks start at once on an empty
/// database and every one of them migrates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_starting_together_on_an_empty_database_all_migrate_it() {
    let mut config = Config::from_env().unwrap();
    let base = config.mysql.url.expose().rsplit_once('/').unwrap().0.to_string();
    let name = format!("flashsale_migrate_{:08x}", rand::random::<u32>());
    let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    config.mysql.url = (format!("{base}/{name}")).into();

    let starts: Vec<_> = (0..6)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { flashsale::stores::mysql::Mysql::connect(&config)?.migrate().await })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(starts).await.into_iter().map(|r| r.unwrap()).collect();

    let db = sqlx::MySqlPool::connect(config.mysql.url.expose()).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version").fetch_all(&db).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('sales', 'orders')",
    )
    .bind(&name)
    .fetch_one(&db)
    .await
    .unwrap();
    db.close().await;
    sqlx::query(&format!("DROP DATABASE {name}")).execute(&admin).await.unwrap();

    for result in &results {
        assert!(result.is_ok(), "a concurrent migration failed: {result:?}");
    }
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations")).unwrap().count();
    assert_eq!(applied.len(), migrations, "each migration recorded once: {applied:?}");
    assert!(applied.iter().all(|(_, success)| *success));
    assert_eq!(tables, 2);
}
