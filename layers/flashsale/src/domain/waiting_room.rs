//! A sale's waiting room as staff set it, and the number it serves at an instant: a
//! function of time and the room's rate, so no writer ticks it.

use serde::{Deserialize, Serialize};

use super::InvalidSale;

/// How places are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    /// In order of arrival.
    Fifo,
    /// Those who joined before the opening in a random order drawn at the opening (an
    /// early millisecond buys nothing); later joiners after them, in order of arrival.
    Shuffled,
}

impl QueueMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueMode::Fifo => "fifo",
            QueueMode::Shuffled => "shuffled",
        }
    }

    pub fn parse(mode: &str) -> Option<Self> {
        match mode {
            "fifo" => Some(QueueMode::Fifo),
            "shuffled" => Some(QueueMode::Shuffled),
            _ => None,
        }
    }
}

/// A sale's waiting room: who may buy is whoever's place the room serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoom {
    pub mode: QueueMode,
    /// Shoppers let through per second.
    pub rate: u32,
    /// The largest number a join's proof-of-work challenge hides: a browser tries half
    /// of them on average (at 50,000, about 0.2 s in desktop Chromium: BENCHMARKS.md).
    #[serde(default = "WaitingRoom::default_difficulty")]
    pub difficulty: u32,
    #[serde(default)]
    pub paused: bool,
}

impl WaitingRoom {
    pub const MAX_RATE: u32 = 100_000;
    pub const DIFFICULTY: std::ops::RangeInclusive<u32> = 1_000..=10_000_000;

    fn default_difficulty() -> u32 {
        50_000
    }

    pub fn check(&self) -> Result<(), InvalidSale> {
        if self.rate == 0 || self.rate > Self::MAX_RATE {
            Err(InvalidSale("waiting_room.rate must be between 1 and 100000"))
        } else if !Self::DIFFICULTY.contains(&self.difficulty) {
            Err(InvalidSale("waiting_room.difficulty must be between 1000 and 10000000"))
        } else {
            Ok(())
        }
    }
}

/// The number a room serves: `base` at `since_ms`, growing by `rate` a second unless
/// paused. A change of rate or a pause rebases it (`base` = the number then), so the
/// number never moves back. Before the opening it is `base` (0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServingClock {
    pub base: u64,
    pub since_ms: i64,
    pub rate: u32,
    pub paused: bool,
}

impl ServingClock {
    pub fn serving(&self, now_ms: i64) -> u64 {
        if self.paused || now_ms <= self.since_ms {
            return self.base;
        }
        let elapsed = (now_ms - self.since_ms) as u128;
        self.base.saturating_add((elapsed * u128::from(self.rate) / 1000).min(u128::from(u64::MAX)) as u64)
    }

    /// Seconds until `position` is served, at the current rate; `None` while paused.
    pub fn eta_secs(&self, position: u64, now_ms: i64) -> Option<u64> {
        let serving = self.serving(now_ms);
        if position <= serving {
            return Some(0);
        }
        if self.paused || self.rate == 0 {
            return None;
        }
        let wait_ms = ((position - serving) as u128 * 1000).div_ceil(u128::from(self.rate));
        let starts_in = (self.since_ms - now_ms).max(0) as u128;
        Some(((wait_ms + starts_in).div_ceil(1000)) as u64)
    }
}

/// A shopper's place: `None` while a shuffled room's early joiners wait for the draw.
pub fn place(held: &str, early_rank: Option<u64>, early_count: u64, drawn: bool) -> Option<u64> {
    match held {
        "e" => early_rank.filter(|_| drawn).map(|rank| rank + 1),
        seq => seq.parse::<u64>().ok().map(|seq| early_count + seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_number_grows_with_time_and_rate_and_stands_still_when_paused() {
        let clock = ServingClock { base: 10, since_ms: 1_000, rate: 4, paused: false };
        assert_eq!(clock.serving(0), 10);
        assert_eq!(clock.serving(1_000), 10);
        assert_eq!(clock.serving(1_250), 11);
        assert_eq!(clock.serving(3_000), 18);
        assert_eq!(ServingClock { paused: true, ..clock }.serving(9_000), 10);
        assert_eq!(clock.eta_secs(18, 1_000), Some(2));
        assert_eq!(clock.eta_secs(5, 1_000), Some(0));
        assert_eq!(ServingClock { paused: true, ..clock }.eta_secs(18, 1_000), None);
        // Before the opening the wait until it counts too.
        assert_eq!(clock.eta_secs(14, 0), Some(2));
    }

    #[test]
    fn a_place_is_the_drawn_rank_for_early_joiners_and_after_them_for_later_ones() {
        assert_eq!(place("e", Some(0), 5, true), Some(1));
        assert_eq!(place("e", Some(4), 5, false), None);
        assert_eq!(place("3", None, 5, true), Some(8));
        assert_eq!(place("junk", None, 5, true), None);
    }
}
