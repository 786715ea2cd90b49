//! The provider's webhook events taken, by id (`payment_events`): recorded once an
//! event's effect is done, so a redelivery is recognised and changes nothing.

use crate::error::Result;
use crate::stores::mysql::Mysql;

impl Mysql {
    /// Whether the event `id` was taken before.
    pub async fn event_taken(&self, id: &str) -> Result<bool> {
        self.call("event taken", async {
            let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM payment_events WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            Ok(found.is_some())
        })
        .await
    }

    /// Records the event `id` as taken; taking it again is a no-op.
    pub async fn take_event(&self, id: &str, kind: &str, intent: Option<&str>) -> Result<()> {
        self.call("take event", async {
            sqlx::query(
                "INSERT IGNORE INTO payment_events (id, type, payment_intent, received_at) \
                 VALUES (?, ?, ?, UTC_TIMESTAMP(3))",
            )
            .bind(id)
            .bind(kind)
            .bind(intent)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }
}
