//! The per-user limit, in its three mirrors: `lua/admit.lua` checks it before any
//! deduction ([`past_limit`] is the same rule in Rust), a container's copy of who holds
//! a sold-out sale's units answers repeat clicks ([`Holders`]), and MySQL checks it again
//! in the persistence transaction ([`fitting`]).

use std::collections::HashMap;

use crate::domain::{OrderId, SaleId, UserId};
use crate::error::{Error, Result};
use crate::stores::redis::{order_ids, Redis, SaleKeys};

/// Who held a sale's units at one moment, with its per-user limit.
#[derive(Debug)]
pub struct Holders {
    /// How many times who holds what had changed when the copy was taken: it holds
    /// while Redis reports the same.
    pub version: u64,
    limit: u32,
    by_user: HashMap<String, (u32, Vec<OrderId>)>,
}

impl Holders {
    /// The limit and the shopper's orders when `quantity` more units would pass the
    /// limit, as `held_at_limit` tells it.
    pub fn at_limit(&self, user: &UserId, quantity: u32) -> Option<(u32, Vec<OrderId>)> {
        let (held, ids) = self.by_user.get(user.as_str())?;
        past_limit(*held, quantity, self.limit).then(|| (self.limit, ids.clone()))
    }
}

/// Whether `quantity` more units would take a shopper holding `held` past `limit`, as
/// `lua/admit.lua` decides it.
fn past_limit(held: u32, quantity: u32, limit: u32) -> bool {
    held + quantity > limit
}

/// What `lua/holders.lua` answers: the limit, units per holder and each holder's order
/// ids, and the version of the holders; `None` past the number of holders asked for.
type HoldersReply = Option<(u32, HashMap<String, u32>, HashMap<String, String>, u64)>;

impl Redis {
    /// The orders a shopper holds in a sale, when one more of `quantity` would pass the
    /// limit: what a repeat click gets back even once the sale sold out.
    pub async fn held_at_limit(
        &self,
        sale: SaleId,
        user: &UserId,
        quantity: u32,
    ) -> Result<Option<(u32, Vec<OrderId>)>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let (limit, held, ids): (Option<u32>, Option<u32>, Option<String>) = self
            .call("held at limit", async {
                redis::pipe()
                    .hget(&keys.meta, "limit")
                    .hget(&keys.bought, user.as_str())
                    .hget(&keys.orders, user.as_str())
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        match (limit, held) {
            (Some(limit), Some(held)) if past_limit(held, quantity, limit) => {
                let ids = order_ids(&ids.unwrap_or_default())?;
                Ok(Some((limit, ids)))
            }
            _ => Ok(None),
        }
    }

    /// Who holds the sale's units and its per-user limit, when at most `max` shoppers do
    /// (see `lua/holders.lua`).
    pub async fn holders(&self, sale: SaleId, max: usize) -> Result<Option<Holders>> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let reply: HoldersReply = self
            .call("holders", async {
                self.scripts
                    .holders
                    .key(&keys.meta)
                    .key(&keys.bought)
                    .key(&keys.orders)
                    .arg(max)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        let Some((limit, bought, orders, version)) = reply else { return Ok(None) };
        let by_user = bought
            .into_iter()
            .map(|(user, units)| {
                let ids = order_ids(orders.get(&user).map_or("", String::as_str))?;
                Ok((user, (units, ids)))
            })
            .collect::<Result<_>>()?;
        Ok(Some(Holders { version, limit, by_user }))
    }
}

/// Which orders of a batch fit, taken in turn: each needs room in the units left
/// (`room`) and must keep its shopper within `limit`, counting what the shopper holds
/// already (`held`) and what the batch gave them before it. An order that does not fit
/// takes nothing, so a later, smaller one may still fit.
pub fn fitting<'a>(
    mut room: u32,
    limit: u32,
    mut held: HashMap<String, u64>,
    orders: impl IntoIterator<Item = (&'a str, u32)>,
) -> Vec<bool> {
    orders
        .into_iter()
        .map(|(shopper, quantity)| {
            let holds = held.entry(shopper.to_string()).or_default();
            let fits = quantity <= room && *holds + u64::from(quantity) <= u64::from(limit);
            if fits {
                room -= quantity;
                *holds += u64::from(quantity);
            }
            fits
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_orders_in_turn_while_stock_and_limits_have_room() {
        let held = HashMap::from([("carol".to_string(), 1)]);
        let orders = [("alice", 2), ("bob", 2), ("carol", 1), ("alice", 1), ("dave", 1), ("erin", 1)];
        // 4 units left, limit 2: alice and bob take 2 each; carol already holds 1 but
        // the stock is gone; alice is at her limit; dave and erin find no room.
        assert_eq!(fitting(4, 2, held.clone(), orders), [true, true, false, false, false, false]);
        // With room to spare only the limits refuse: carol may add one, alice may not.
        assert_eq!(fitting(100, 2, held, orders), [true, true, true, false, true, true]);
    }

    #[test]
    fn a_refused_order_leaves_its_room_to_a_later_smaller_one() {
        assert_eq!(fitting(1, 5, HashMap::new(), [("a", 3), ("b", 1), ("c", 1)]), [false, true, false]);
        assert_eq!(fitting(0, 5, HashMap::new(), [("a", 1)]), [false]);
    }
}
