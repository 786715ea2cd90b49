//! Snowflake order ids, the pure arithmetic: 41 bits of milliseconds since
//! [`EPOCH_MS`], 10 bits of worker id, 12 bits of sequence. No clock and no lease here
//! ([`super::generator`] brings both).

use crate::domain::OrderId;

/// 2024-01-01T00:00:00Z: 41 bits of milliseconds from here last until 2093.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
pub const WORKER_BITS: u32 = 10;
pub const SEQUENCE_BITS: u32 = 12;
pub const MAX_WORKER: u16 = (1 << WORKER_BITS) - 1;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;

/// The pure id arithmetic, apart from clocks and leases.
#[derive(Debug, Default)]
pub struct Snowflake {
    last_ms: u64,
    sequence: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Id(u64),
    /// The sequence of this millisecond is used up: wait until the clock reads this.
    WaitUntil(u64),
}

impl Snowflake {
    pub fn next(&mut self, now_ms: u64, worker: u16) -> Step {
        // A clock that stepped back keeps the last timestamp, so ids never go down.
        let now_ms = now_ms.max(self.last_ms).max(EPOCH_MS);
        if now_ms == self.last_ms {
            if self.sequence == MAX_SEQUENCE {
                return Step::WaitUntil(self.last_ms + 1);
            }
            self.sequence += 1;
        } else {
            self.last_ms = now_ms;
            self.sequence = 0;
        }
        Step::Id(compose(self.last_ms, worker, self.sequence))
    }
}

pub fn compose(ms: u64, worker: u16, sequence: u64) -> u64 {
    ((ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS))
        | (u64::from(worker & MAX_WORKER) << SEQUENCE_BITS)
        | (sequence & MAX_SEQUENCE)
}

/// When an id was minted (ms since the Unix epoch): the admission's time.
pub fn minted_at_ms(id: OrderId) -> u64 {
    (id.0 >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS
}

/// The worker id an id carries.
pub fn worker_of(id: OrderId) -> u16 {
    ((id.0 >> SEQUENCE_BITS) & u64::from(MAX_WORKER)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_time_worker_sequence() {
        let id = compose(EPOCH_MS + 5, 1023, 7);
        assert_eq!(id, (5 << 22) | (1023 << 12) | 7);
        assert_eq!(worker_of(OrderId(id)), 1023);
    }

    #[test]
    fn overflow_waits_for_the_next_millisecond() {
        let mut s = Snowflake::default();
        let t = EPOCH_MS + 1000;
        for seq in 0..=MAX_SEQUENCE {
            assert_eq!(s.next(t, 1), Step::Id(compose(t, 1, seq)));
        }
        assert_eq!(s.next(t, 1), Step::WaitUntil(t + 1));
        assert_eq!(s.next(t + 1, 1), Step::Id(compose(t + 1, 1, 0)));
    }

    #[test]
    fn clock_step_back_keeps_the_last_timestamp() {
        let mut s = Snowflake::default();
        let t = EPOCH_MS + 10_000;
        let Step::Id(a) = s.next(t, 3) else { panic!() };
        let Step::Id(b) = s.next(t - 5_000, 3) else { panic!() };
        assert!(b > a);
    }
}
