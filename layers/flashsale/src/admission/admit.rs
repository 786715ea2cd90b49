//! The admission: one atomic script (`lua/admit.lua`) checks the sale window by Redis's
//! clock, the per-user limit before any deduction, and the stock, then takes the units
//! and writes the order's outbox entry. Undoing it takes an admission back when the
//! order could be kept nowhere durable.

use std::time::Duration;

use crate::domain::{OrderId, OrderMessage};
use crate::error::{Error, Result};
use crate::stores::redis::{order_id, order_ids, Redis, SaleKeys};

/// How many replicas must acknowledge an admission before it counts as durable, and how
/// long to wait for them (`WAIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replication {
    pub replicas: u32,
    pub timeout: Duration,
}

/// What the admission script decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted {
        order_id: OrderId,
        remaining: u64,
    },
    LimitReached {
        limit: u32,
        order_ids: Vec<OrderId>,
    },
    /// `holders_version`: how many times who holds what changed (see `lua/admit.lua`); a
    /// copy of the holders taken at this version still holds.
    SoldOut {
        remaining: u64,
        holders_version: u64,
    },
    NotStarted,
    Ended,
    UnknownSale,
    BadQuantity {
        limit: u32,
    },
    /// The sale has a waiting room and the purchase came without a pass, or with one
    /// spent already.
    PassRefused(crate::domain::PassRefused),
}

impl Admission {
    fn parse(reply: Vec<String>) -> Result<Self> {
        let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or("");
        let number =
            |i: usize| field(i).parse::<u64>().map_err(|_| Error::Internal(format!("admit.lua replied {reply:?}")));
        Ok(match field(0) {
            "admitted" => Admission::Admitted { order_id: order_id(field(1))?, remaining: number(2)? },
            "limit" => Admission::LimitReached { limit: number(1)? as u32, order_ids: order_ids(field(2))? },
            "sold_out" => Admission::SoldOut { remaining: number(1)?, holders_version: number(2)? },
            "not_started" => Admission::NotStarted,
            "ended" => Admission::Ended,
            // A promoted replica's copy is recovered like a lost one.
            "unknown" | "stale" => Admission::UnknownSale,
            "id_taken" => {
                return Err(Error::Internal(format!("order id {} admitted before with another order", field(1))))
            }
            "bad_quantity" => Admission::BadQuantity { limit: number(1)? as u32 },
            "pass_required" => Admission::PassRefused(crate::domain::PassRefused::Missing),
            "pass_used" => Admission::PassRefused(crate::domain::PassRefused::Used),
            _ => return Err(Error::Internal(format!("admit.lua replied {reply:?}"))),
        })
    }
}

/// What an undo found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Taken back: the units are on sale again.
    Undone,
    /// A consumer claimed the order for persistence: it stands.
    Claimed,
    /// Not in the sale's outbox (or the sale not in Redis): in MySQL already, or lost
    /// with the state a failover or a flush took. Only MySQL can say which.
    Gone,
}

/// One call of `lua/admit.lua` for `order` (its message `payload`, the purchase's `pass`):
/// the script's keys and arguments in its order. The function and the benchmarks' raw
/// baseline both build the call here, so a change of the script's arguments reaches both.
pub fn invocation<'s>(
    script: &'s redis::Script,
    keys: &SaleKeys,
    order: &OrderMessage,
    payload: &str,
    pass: Option<&str>,
) -> redis::ScriptInvocation<'s> {
    let mut call = script.prepare_invoke();
    for key in [
        &keys.meta,
        &keys.stock,
        &keys.bought,
        &keys.orders,
        &keys.outbox,
        &keys.outbox_at,
        &keys.passes,
        &keys.released,
    ] {
        call.key(key);
    }
    call.arg(order.user_id.as_str())
        .arg(order.quantity)
        .arg(order.order_id.to_string())
        .arg(payload)
        .arg(pass.unwrap_or(""));
    call
}

impl Redis {
    pub async fn admit(&self, order: &OrderMessage) -> Result<Admission> {
        Ok(self.admit_replicated(order, None, None).await?.0)
    }

    /// Runs the admission script, spending `pass` (a checked pass's id) when it admits,
    /// and, when it admitted and `replication` asks for it, waits until that many
    /// replicas hold it: `true` when they acknowledged in time.
    ///
    /// `WAIT` counts the writes of its own connection, so it follows the script on the
    /// same one, lent to this call alone (see [`Redis::lend_admitting`]); a turned-away
    /// request pays nothing for it.
    pub async fn admit_replicated(
        &self,
        order: &OrderMessage,
        pass: Option<&str>,
        replication: Option<Replication>,
    ) -> Result<(Admission, bool)> {
        let keys = SaleKeys::new(order.sale_id);
        let payload = serde_json::to_string(order).map_err(|e| Error::serde("order message", e))?;
        let (reply, mut conn): (Vec<String>, _) = self
            .call("admit", async {
                let mut conn = self.lend_admitting().await?;
                let reply =
                    invocation(&self.scripts.admit, &keys, order, &payload, pass).invoke_async(&mut conn).await?;
                Ok((reply, conn))
            })
            .await?;
        let admission = Admission::parse(reply)?;
        let wait = replication.filter(|_| matches!(admission, Admission::Admitted { .. }));
        let acknowledged = match wait {
            Some(replication) => replicated(&mut conn, replication).await,
            None => Some(false),
        };
        // A connection whose WAIT failed may still be blocked: it is not lent again.
        if acknowledged.is_some() {
            self.give_back_admitting(conn);
        }
        let acknowledged = acknowledged.unwrap_or(false);
        Ok((admission, acknowledged))
    }

    /// Takes back an admission whose order could be recorded nowhere durable, so the
    /// shopper can be told 503 truthfully.
    pub async fn undo_admission(&self, order: &OrderMessage) -> Result<Undo> {
        Ok(match self.run_release("undo", order, &[]).await? {
            -3 => Undo::Claimed,
            -4 | -1 => Undo::Gone,
            _ => Undo::Undone,
        })
    }
}

/// Whether `replication.replicas` replicas acknowledged the writes of `conn` within the
/// timeout; `None` when asking failed, which is no acknowledgement either, not a Redis
/// failure: the caller then keeps the order elsewhere.
async fn replicated(conn: &mut redis::aio::MultiplexedConnection, replication: Replication) -> Option<bool> {
    let asked: redis::RedisResult<i64> = redis::cmd("WAIT")
        .arg(replication.replicas)
        .arg(replication.timeout.as_millis().max(1) as u64)
        .query_async(conn)
        .await;
    match asked {
        Ok(acknowledged) => Some(acknowledged >= i64::from(replication.replicas)),
        Err(e) => {
            tracing::warn!(error = %e, "WAIT failed; not counted as replicated");
            None
        }
    }
}
