//! A waiting room's state in Redis: joins (`lua/join.lua`), the reads of the status and
//! the pass (one pipeline each), and staff's changes (`lua/queue_control.lua`).

use std::collections::HashMap;

use super::challenge::SpentProof;
use crate::domain::{place, ProofRefused, QueueMode, SaleId, ServingClock, UserId, WaitingRoom};
use crate::error::{Error, Result};
use crate::stores::redis::{Redis, SaleKeys};

/// How many times staff's difficulty a long queue may raise a join's proof of work to.
pub const LOAD_FACTOR_MAX: u64 = 16;

/// A shopper's place after a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// `None` while a shuffled room's early joiners wait for the draw at the opening.
    pub position: Option<u64>,
    /// Whether this call gave the place (rather than finding it).
    pub new: bool,
    pub length: u64,
    pub mode: QueueMode,
}

/// A waiting room at an instant, by Redis's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomState {
    pub mode: QueueMode,
    pub clock: ServingClock,
    pub difficulty: u32,
    pub opens_ms: i64,
    pub ends_ms: i64,
    pub now_ms: i64,
    pub remaining: u64,
    /// How many shoppers hold a place.
    pub length: u64,
    /// The last place given: every joiner's, and the places a join after a lull skipped
    /// (`lua/join.lua`), so the end of the queue the number served counts towards.
    pub places: u64,
    /// The asking shopper's place: `None` when they have not joined, `Some(None)` while
    /// they wait for the draw.
    pub place: Option<Option<u64>>,
}

impl RoomState {
    pub fn serving(&self) -> u64 {
        self.clock.serving(self.now_ms)
    }

    pub fn sold_out(&self) -> bool {
        self.remaining == 0
    }

    pub fn ended(&self) -> bool {
        self.now_ms >= self.ends_ms
    }

    /// The largest number the next join's challenge hides: staff's difficulty, raised with
    /// the wait the queue already holds (one more time the difficulty per minute of it at
    /// the room's rate, at most [`LOAD_FACTOR_MAX`] times). A crowd of bots joining many
    /// accounts pays more per account the longer the queue they make, while a shopper's
    /// solve stays small next to the wait ahead of them.
    pub fn join_difficulty(&self) -> u32 {
        let waiting = self.places.saturating_sub(self.serving());
        let minute_of_places = u64::from(self.clock.rate.max(1)) * 60;
        let scaled = u64::from(self.difficulty) * (minute_of_places + waiting) / minute_of_places;
        let most = (u64::from(self.difficulty) * LOAD_FACTOR_MAX).min(u64::from(*WaitingRoom::DIFFICULTY.end()));
        scaled.min(most).max(u64::from(self.difficulty)) as u32
    }

    pub fn settings(&self) -> WaitingRoom {
        WaitingRoom { mode: self.mode, rate: self.clock.rate, difficulty: self.difficulty, paused: self.clock.paused }
    }

    /// What the page tells everyone waiting.
    pub fn message(&self) -> &'static str {
        if self.ended() {
            "The sale has ended."
        } else if self.sold_out() {
            "Sold out: every unit has been taken."
        } else if self.now_ms < self.opens_ms {
            match self.mode {
                QueueMode::Shuffled => "Places are drawn at the opening: joining early buys no better place.",
                QueueMode::Fifo => "The sale opens soon: places are served in order of joining.",
            }
        } else if self.clock.paused {
            "The queue is paused for a moment; your place is kept."
        } else {
            "The queue is moving: keep this page open."
        }
    }
}

impl Redis {
    /// Joins `user` to the sale's waiting room with `proof` spent, or finds their place;
    /// `Ok(None)` when Redis does not hold the sale.
    pub async fn join_queue(&self, sale: SaleId, user: &UserId, proof: Option<&SpentProof>) -> Result<Option<Joined>> {
        let keys = SaleKeys::new(sale);
        // The draw: an integer a double holds exactly (scores are doubles).
        let draw = rand::random::<u64>() >> 11;
        let proof_key = format!("{}{}", keys.proof_prefix, proof.map_or("", |p| p.nonce.as_str()));
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .call("join queue", async {
                self.scripts
                    .join
                    .key(&keys.meta)
                    .key(&keys.queue)
                    .key(&keys.queue_early)
                    .key(proof_key)
                    .arg(user.as_str())
                    .arg(draw)
                    .arg(proof.map_or(String::new(), |p| p.expires_ms.to_string()))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or("");
        let number = |i: usize| field(i).parse::<u64>().ok();
        match field(0) {
            answer @ ("joined" | "member") => Ok(Some(Joined {
                position: place(field(1), number(2), number(3).unwrap_or(0), field(4) == "1"),
                new: answer == "joined",
                length: number(5).unwrap_or(0),
                mode: QueueMode::parse(field(6)).ok_or(Error::NoWaitingRoom)?,
            })),
            "unknown" => Ok(None),
            "no_queue" => Err(Error::NoWaitingRoom),
            "ended" => Err(Error::NotOpen("the sale has ended")),
            "proof_required" => Err(Error::ProofRefused(ProofRefused::Missing)),
            "proof_used" => Err(Error::ProofRefused(ProofRefused::Used)),
            _ => Err(Error::Internal(format!("join.lua replied {reply:?}"))),
        }
    }

    /// The sale's waiting room now, with `user`'s place when given; `Ok(None)` when Redis
    /// does not hold the sale, [`Error::NoWaitingRoom`] when it has none.
    pub async fn room(&self, sale: SaleId, user: Option<&UserId>) -> Result<Option<RoomState>> {
        let keys = SaleKeys::new(sale);
        let user = user.map_or("", UserId::as_str);
        let mut conn = self.conn.clone();
        type Reply = (HashMap<String, String>, Option<String>, Option<u64>, u64, Option<i64>, (i64, i64), u64);
        let (meta, held, rank, early, remaining, (secs, micros), length): Reply = self
            .call("waiting room", async {
                redis::pipe()
                    .hgetall(&keys.meta)
                    .hget(&keys.queue, user)
                    .zrank(&keys.queue_early, user)
                    .zcard(&keys.queue_early)
                    .get(&keys.stock)
                    .cmd("TIME")
                    .hlen(&keys.queue)
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let mode = meta.get("q_mode").and_then(|m| QueueMode::parse(m)).ok_or(Error::NoWaitingRoom)?;
        let num = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok());
        let opens_ms = num("starts_at_ms").unwrap_or(0);
        let now_ms = secs * 1000 + micros / 1000;
        Ok(Some(RoomState {
            mode,
            clock: ServingClock {
                base: num("q_base").unwrap_or(0).max(0) as u64,
                since_ms: num("q_since_ms").unwrap_or(opens_ms),
                rate: num("q_rate").unwrap_or(0).max(0) as u32,
                paused: num("q_paused") == Some(1),
            },
            difficulty: num("q_difficulty").unwrap_or(0).max(0) as u32,
            opens_ms,
            ends_ms: num("ends_at_ms").unwrap_or(0),
            now_ms,
            remaining: remaining.unwrap_or(0).max(0) as u64,
            length,
            places: early + num("q_late").unwrap_or(0).max(0) as u64,
            place: held.map(|held| place(&held, rank, early, now_ms >= opens_ms)),
        }))
    }

    /// Applies staff's settings to the running room; `false` when Redis does not hold
    /// the sale (its next warming or rebuild takes them from MySQL).
    pub async fn control_room(&self, sale: SaleId, room: &WaitingRoom) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut conn = self.conn.clone();
        let applied: i64 = self
            .call("control waiting room", async {
                self.scripts
                    .queue_control
                    .key(&keys.meta)
                    .arg(room.rate)
                    .arg(if room.paused { "1" } else { "0" })
                    .arg(room.difficulty)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        Ok(applied == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(difficulty: u32, rate: u32, places: u64, serving: u64) -> RoomState {
        RoomState {
            mode: QueueMode::Fifo,
            clock: ServingClock { base: serving, since_ms: 0, rate, paused: true },
            difficulty,
            opens_ms: 0,
            ends_ms: i64::MAX,
            now_ms: 1,
            remaining: 10,
            length: places,
            places,
            place: None,
        }
    }

    #[test]
    fn a_joins_proof_of_work_grows_with_the_wait_the_queue_holds_within_bounds() {
        // Nobody waiting (or everyone served): staff's difficulty.
        assert_eq!(room(50_000, 10, 0, 0).join_difficulty(), 50_000);
        assert_eq!(room(50_000, 10, 500, 900).join_difficulty(), 50_000);
        // A minute of waiting at the room's rate doubles it, two minutes triple it.
        assert_eq!(room(50_000, 10, 600, 0).join_difficulty(), 100_000);
        assert_eq!(room(50_000, 10, 1_300, 100).join_difficulty(), 150_000);
        // At most sixteen times, and never past the largest difficulty a room may have.
        assert_eq!(room(50_000, 10, 1_000_000, 0).join_difficulty(), 800_000);
        assert_eq!(room(5_000_000, 1, 1_000_000, 0).join_difficulty(), 10_000_000);
        // A room of rate 0 (never, but) does not divide by zero.
        assert_eq!(room(1_000, 0, 120, 0).join_difficulty(), 3_000);
    }
}
