//! The staff's audit trail (`admin_actions`): every change an admin asks for, who asked,
//! when, on which sale, with what, and how it ended. The entry is written before the
//! change is made, so a change cannot happen unrecorded (if MySQL cannot take the entry,
//! the change is refused); its outcome is written after. The trail is append-only to the
//! functions: admin-api may insert and set an outcome, never delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::domain::{SaleId, UserId};
use crate::error::Result;
use crate::stores::mysql::Mysql;

/// One entry of the trail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdminAction {
    pub id: u64,
    pub at: DateTime<Utc>,
    /// The admin's subject, as the token the gateway checked says.
    pub actor: String,
    pub action: String,
    pub sale_id: Option<SaleId>,
    /// What was asked (the request's body, as parsed).
    pub detail: serde_json::Value,
    /// `started`, `done`, or `failed: <reason>`.
    pub outcome: String,
    pub ended_at: Option<DateTime<Utc>>,
}

/// An entry written, its outcome still to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry(u64);

impl Mysql {
    /// Records that `actor` asks for `action`; the change comes after.
    pub async fn audit_begin(
        &self,
        actor: &UserId,
        action: &str,
        sale: Option<SaleId>,
        detail: &serde_json::Value,
    ) -> Result<Entry> {
        self.call("audit", async {
            let done = sqlx::query(
                "INSERT INTO admin_actions (at, actor, action, sale_id, detail) VALUES (UTC_TIMESTAMP(3), ?, ?, ?, ?)",
            )
            .bind(actor.as_str())
            .bind(action)
            .bind(sale.map(|s| s.0))
            .bind(detail.to_string())
            .execute(&self.pool)
            .await?;
            Ok(Entry(done.last_insert_id()))
        })
        .await
    }

    /// How the change of `entry` ended (and the sale it made, for a creation).
    pub async fn audit_end(&self, entry: Entry, outcome: &str, sale: Option<SaleId>) -> Result<()> {
        let outcome: String = outcome.chars().take(255).collect();
        self.call("audit", async {
            sqlx::query(
                "UPDATE admin_actions SET outcome = ?, ended_at = UTC_TIMESTAMP(3), sale_id = COALESCE(sale_id, ?) \
                 WHERE id = ?",
            )
            .bind(outcome)
            .bind(sale.map(|s| s.0))
            .bind(entry.0)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// The trail, newest first: of one sale or of all, before the entry `before`.
    pub async fn audit_trail(&self, sale: Option<SaleId>, before: Option<u64>, limit: u32) -> Result<Vec<AdminAction>> {
        self.call("audit trail", async {
            let rows = sqlx::query(
                "SELECT id, at, actor, action, sale_id, detail, outcome, ended_at FROM admin_actions \
                 WHERE (? IS NULL OR sale_id = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
            )
            .bind(sale.map(|s| s.0))
            .bind(sale.map(|s| s.0))
            .bind(before)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let detail: String = row.try_get("detail")?;
                    Ok(AdminAction {
                        id: row.try_get("id")?,
                        at: row.try_get("at")?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        sale_id: row.try_get::<Option<u64>, _>("sale_id")?.map(SaleId),
                        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                        outcome: row.try_get("outcome")?,
                        ended_at: row.try_get("ended_at")?,
                    })
                })
                .collect()
        })
        .await
    }
}
