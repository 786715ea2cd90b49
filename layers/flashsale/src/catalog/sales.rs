//! Sales as the shop defines them, in MySQL: create, read, list, publish.

use crate::domain::{Currency, NewSale, Sale, SaleId, WaitingRoom};
use crate::error::{Error, Result};
use crate::stores::mysql::{placeholders, sale_from, Mysql, SALE_COLUMNS};
use crate::tallies::{self, StatusCounts};

impl Mysql {
    pub async fn create_sale(&self, new: &NewSale) -> Result<Sale> {
        let id = self
            .call("create sale", async {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "INSERT INTO sales (name, description, price_cents, currency, stock, per_user_limit, starts_at, \
                     ends_at, payment_window_secs, queue_mode, queue_rate, queue_paused, queue_difficulty, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))",
                )
                .bind(&new.name)
                .bind(&new.description)
                .bind(new.price_cents)
                .bind(new.currency.as_str())
                .bind(new.stock)
                .bind(new.per_user_limit)
                // As DATETIME: sqlx sends a DateTime<Utc> as a TIMESTAMP, which MariaDB
                // turns into NULL past 2038-01-19, and the sale would not be stored.
                .bind(new.starts_at.naive_utc())
                .bind(new.ends_at.naive_utc())
                .bind(new.payment_window_secs)
                .bind(new.waiting_room.map(|room| room.mode.as_str()))
                .bind(new.waiting_room.map_or(0, |room| room.rate))
                .bind(new.waiting_room.is_some_and(|room| room.paused))
                .bind(new.waiting_room.map_or(0, |room| room.difficulty))
                .execute(&mut *tx)
                .await?;
                let id = SaleId(done.last_insert_id());
                tallies::open(&mut tx, id).await?;
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.sale(id).await?.ok_or(Error::Internal("sale vanished after insert".into()))
    }

    pub async fn sale(&self, id: SaleId) -> Result<Option<Sale>> {
        self.call("sale", async {
            let row = sqlx::query(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = ?"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(sale_from).transpose()
        })
        .await
    }

    /// The currency of each of `ids` that exists (the amounts of a page of orders are
    /// in their sales' currencies): one statement.
    pub async fn currencies(&self, ids: &[SaleId]) -> Result<Vec<(SaleId, Currency)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.call("sale currencies", async {
            let sql = format!("SELECT id, currency FROM sales WHERE id IN ({})", placeholders(ids.len()));
            let mut query = sqlx::query_as::<_, (u64, String)>(&sql);
            for id in ids {
                query = query.bind(id.0);
            }
            let rows = query.fetch_all(&self.pool).await?;
            Ok(rows.into_iter().map(|(id, code)| (SaleId(id), Currency::stored(code))).collect())
        })
        .await
    }

    /// Sales whose window has not ended, for reconcile and the pages.
    pub async fn open_sales(&self) -> Result<Vec<Sale>> {
        self.call("open sales", async {
            let rows = sqlx::query(&format!(
                "SELECT {SALE_COLUMNS} FROM sales WHERE published_at IS NOT NULL \
                 AND ends_at > UTC_TIMESTAMP(3) - INTERVAL 1 DAY ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(sale_from).collect()
        })
        .await
    }

    /// Up to `limit` sales, newest first, older than `before` when given, each with its
    /// orders and units per status.
    pub async fn sales_page(&self, before: Option<SaleId>, limit: u32) -> Result<Vec<(Sale, StatusCounts)>> {
        let sales: Vec<Sale> = self
            .call("sales page", async {
                let rows =
                    sqlx::query(&format!("SELECT {SALE_COLUMNS} FROM sales WHERE id < ? ORDER BY id DESC LIMIT ?"))
                        .bind(before.map_or(u64::MAX, |id| id.0))
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(sale_from).collect()
            })
            .await?;
        let mut tallies = self.tallies_of(&sales.iter().map(|s| s.id).collect::<Vec<_>>()).await?;
        Ok(sales
            .into_iter()
            .map(|sale| {
                let counts = tallies.remove(&sale.id).unwrap_or_default().counts;
                (sale, counts)
            })
            .collect())
    }

    /// Staff's changes to a sale's waiting room (its rate, pause, difficulty), kept so a
    /// rebuilt sale's room is the one staff left.
    pub async fn set_waiting_room(&self, id: SaleId, room: &WaitingRoom) -> Result<()> {
        self.call("set waiting room", async {
            sqlx::query(
                "UPDATE sales SET queue_mode = ?, queue_rate = ?, queue_paused = ?, queue_difficulty = ? WHERE id = ?",
            )
            .bind(room.mode.as_str())
            .bind(room.rate)
            .bind(room.paused)
            .bind(room.difficulty)
            .bind(id.0)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn mark_published(&self, id: SaleId) -> Result<()> {
        self.call("mark published", async {
            sqlx::query("UPDATE sales SET published_at = COALESCE(published_at, UTC_TIMESTAMP(3)) WHERE id = ?")
                .bind(id.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }
}
