//! The schema: `migrations/`, compiled in, applied one process at a time, in a way a
//! deploy's custom resource can always finish.
//!
//! Two rules keep every path of a deploy able to end (docs/deploy.md, "Writing a migration"):
//! - **Expand, then contract.** A release runs against the schema of the release after
//!   it (a rollback of the stack brings back the older functions, not the older schema),
//!   so a migration only adds what the release before can ignore, and removes only what
//!   no running release reads. Versions the running release does not know are then not
//!   an error.
//! - **One statement per migration.** MySQL's DDL is not transactional: sqlx marks a
//!   version dirty before running it and refuses every later run while the mark stays.
//!   One statement either took effect or did not, so the migrate function repairs a
//!   dirty version itself (see [`run`]).

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};

use crate::error::Result;

/// The migrations this release knows, compiled in.
pub fn migrations() -> Migrator {
    let mut migrator = sqlx::migrate!("../../migrations");
    // Versions of a later release (the stack rolled back to this one) stay applied.
    migrator.set_ignore_missing(true);
    migrator
}

/// Applies `migrator` on `conn`, first repairing what a failed run left dirty: the mark
/// is removed and the version runs again (if this release still has it); a version that
/// then finds its own work already done (its statement took effect, but the run died or
/// timed out before clearing the mark) is recorded as applied. A version that fails
/// leaves a mark the next run repairs the same way, so no run is refused for it.
pub(crate) async fn run(conn: &mut MySqlConnection, migrator: &Migrator) -> Result<()> {
    conn.ensure_migrations_table().await?;
    let dirty: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = FALSE").fetch_all(&mut *conn).await?;
    if !dirty.is_empty() {
        tracing::warn!(?dirty, "a failed run left these versions dirty: running them again");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE success = FALSE").execute(&mut *conn).await?;
    }
    loop {
        match migrator.run_direct(&mut *conn).await {
            Err(MigrateError::ExecuteMigration(e, version)) if dirty.contains(&version) && already_done(&e) => {
                let migration =
                    migrator.iter().find(|m| m.version == version).ok_or(MigrateError::VersionMissing(version))?;
                tracing::warn!(version, error = %e, "a dirty version had taken effect: recorded as applied");
                sqlx::query(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (?, ?, TRUE, ?, 0) ON DUPLICATE KEY UPDATE success = TRUE",
                )
                .bind(version)
                .bind(&*migration.description)
                .bind(&*migration.checksum)
                .execute(&mut *conn)
                .await?;
            }
            done => return Ok(done?),
        }
    }
}

/// MySQL's answer to a DDL statement whose work is there already: the table, column,
/// index, primary key or foreign key exists.
fn already_done(error: &sqlx::Error) -> bool {
    const EXISTS: [u16; 5] = [1050, 1060, 1061, 1068, 1826];
    let number = error.as_database_error().and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>()).map(|e| e.number());
    number.is_some_and(|n| EXISTS.contains(&n))
}

/// The statements of a migration's SQL: `;`-separated, comment lines dropped.
#[cfg(test)]
fn statements(sql: &str) -> usize {
    let code: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    code.split(';').filter(|s| !s.trim().is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_after_the_first_is_one_statement() {
        let migrator = migrations();
        let mut all = migrator.iter();
        // The first creates the schema on an empty database, in the stack's first create,
        // whose rollback deletes the database with it: nothing to repair.
        assert!(statements(&all.next().unwrap().sql) >= 1);
        for m in all {
            assert_eq!(statements(&m.sql), 1, "migration {} ({}) is one statement", m.version, m.description);
        }
    }

    #[test]
    fn statements_are_counted_without_comments() {
        assert_eq!(statements("-- a; b\nALTER TABLE x ADD COLUMN y INT;\n"), 1);
        assert_eq!(statements("CREATE TABLE a (id INT);\nCREATE TABLE b (id INT);"), 2);
        assert_eq!(statements("-- nothing;\n"), 0);
    }
}
