//! Reading orders: by id, by page, and the one read path of the shop and the staff
//! console: MySQL's word once it has the order, the outbox's (`PENDING`) before.

use crate::domain::{Order, OrderId, OrderStatus, SaleId, UserId};
use crate::error::Result;
use crate::stores::mysql::{order_from, placeholders, Mysql, ORDER_COLUMNS};
use crate::stores::redis::Redis;

/// Which orders a page of orders holds: every condition given must hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct OrderFilter<'a> {
    pub sale: Option<SaleId>,
    pub user: Option<&'a UserId>,
    pub status: Option<OrderStatus>,
}

impl Mysql {
    pub async fn order(&self, id: OrderId) -> Result<Option<Order>> {
        self.call("order", self.fetch_order(id)).await
    }

    pub(crate) async fn fetch_order(&self, id: OrderId) -> Result<Option<Order>> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from).transpose()
    }

    /// Up to `limit` orders matching `filter`, newest first (ids grow with time), older
    /// than `before` when given.
    pub async fn orders_page(
        &self,
        filter: OrderFilter<'_>,
        before: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<Order>> {
        self.call("orders page", async {
            let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id < ?");
            for (condition, given) in [
                (" AND sale_id = ?", filter.sale.is_some()),
                (" AND user_id = ?", filter.user.is_some()),
                (" AND status = ?", filter.status.is_some()),
            ] {
                if given {
                    sql.push_str(condition);
                }
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            let mut query = sqlx::query(&sql).bind(before.map_or(u64::MAX, |id| id.0));
            if let Some(sale) = filter.sale {
                query = query.bind(sale.0);
            }
            if let Some(user) = filter.user {
                query = query.bind(user.as_str());
            }
            if let Some(status) = filter.status {
                query = query.bind(status.to_string());
            }
            query.bind(limit).fetch_all(&self.pool).await?.iter().map(order_from).collect()
        })
        .await
    }

    pub(crate) async fn orders_by_id(&self, ids: &[OrderId]) -> Result<Vec<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id IN ({})", placeholders(ids.len()));
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.0);
        }
        query.fetch_all(&self.pool).await?.iter().map(order_from).collect()
    }
}

/// An order by id, whoever owns it: MySQL's word once it has it, the outbox's
/// (`PENDING`, priced from the sale's live state) before. The two reads are not one
/// snapshot, so an order that moved from the outbox to MySQL between them is read again.
pub async fn find_order(mysql: &Mysql, redis: &Redis, id: OrderId) -> Result<Option<Order>> {
    if let Some(order) = mysql.order(id).await? {
        return Ok(Some(order));
    }
    let Some((message, admitted_at)) = redis.outbox_order(id).await? else {
        return mysql.order(id).await;
    };
    let price = redis.live_sale(mysql, message.sale_id).await?.map_or(0, |s| s.price_cents);
    Ok(Some(Order::admitted(message, admitted_at, price)))
}
