//! Where reconcile's next run begins: the sales are visited in id order from a cursor
//! kept in Redis, wrapping around, so the sale a run reaches last (or not at all, its
//! time spent) is among the first of the next. Without it the sales late in id order
//! would wait behind every busy one before them, run after run.

use crate::domain::SaleId;
use crate::error::{Error, Result};
use crate::stores::redis::Redis;

/// `sales` (any order) from the first whose id is at least `start`, in id order,
/// wrapping around to the lowest.
pub fn rotated<T>(mut sales: Vec<T>, id: impl Fn(&T) -> SaleId, start: SaleId) -> Vec<T> {
    sales.sort_by_key(|s| id(s));
    let first = sales.iter().position(|s| id(s) >= start).unwrap_or(0);
    sales.rotate_left(first);
    sales
}

impl Redis {
    /// The sale the next run begins at (0, the lowest, when none was kept).
    pub async fn rotation_start(&self, key: &str) -> Result<SaleId> {
        let mut conn = self.conn.clone();
        self.call("rotation start", async {
            let start: Option<u64> = redis::cmd("GET").arg(key).query_async(&mut conn).await.map_err(Error::from)?;
            Ok(SaleId(start.unwrap_or(0)))
        })
        .await
    }

    /// Keeps `start` for the next run.
    pub async fn set_rotation_start(&self, key: &str, start: SaleId) -> Result<()> {
        let mut conn = self.conn.clone();
        self.call("rotation start", async {
            let () = redis::cmd("SET").arg(key).arg(start.0).query_async(&mut conn).await.map_err(Error::from)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sales_are_visited_from_the_start_wrapping_around() {
        let ids = |v: Vec<u64>| v.into_iter().map(SaleId).collect::<Vec<_>>();
        let sales = ids(vec![30, 10, 20, 40]);
        assert_eq!(rotated(sales.clone(), |s| *s, SaleId(0)), ids(vec![10, 20, 30, 40]));
        assert_eq!(rotated(sales.clone(), |s| *s, SaleId(20)), ids(vec![20, 30, 40, 10]));
        assert_eq!(rotated(sales.clone(), |s| *s, SaleId(25)), ids(vec![30, 40, 10, 20]));
        assert_eq!(rotated(sales.clone(), |s| *s, SaleId(41)), ids(vec![10, 20, 30, 40]), "past the last: the first");
        assert!(rotated(Vec::<SaleId>::new(), |s| *s, SaleId(5)).is_empty());
    }
}
