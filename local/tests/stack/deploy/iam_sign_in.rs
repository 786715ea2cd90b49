//! IAM sign-in to MySQL: the token the proxy expects, renewed for connections opened
//! once it is ten minutes old.

use super::*;

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
    config.mysql.max_connections = 1;
    Mysql::connect(&config).unwrap().migrate().await.unwrap();
    let sdk = flashsale::stores::aws::sdk_config(&config).await;
    let server = MySqlConnectOptions::from_str(config.mysql.url.expose()).unwrap();
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
