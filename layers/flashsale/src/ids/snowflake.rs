//! Snowflake order ids, the pure arithmetic. The top bit marks the layout: set, 41 bits
//! of milliseconds since [`EPOCH_MS`], 13 bits of worker id, 9 bits of sequence; clear,
//! the first layout (41, 10, 12), of the orders minted before it. No clock and no lease
//! here ([`super::generator`] brings both).
//!
//! Why these widths (docs/architecture.md, "Order ids"): a worker id is one `admit`
//! container, which serves one request at a time and mints one id per admission, so 512
//! ids a millisecond per container is far above what it can ask, while 8,192 worker ids
//! cover the admit concurrency the template allows (`AdmitReservedConcurrency` is at
//! most 5,000) with the leases of containers that died without releasing theirs. The
//! marker bit keeps every id of this layout above every id of the first: an id minted by
//! a container of the release before, in the same millisecond, can never be the same.

use crate::domain::OrderId;

/// 2024-01-01T00:00:00Z: 41 bits of milliseconds from here last until 2093.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
pub const WORKER_BITS: u32 = 13;
pub const SEQUENCE_BITS: u32 = 9;
pub const MAX_WORKER: u16 = (1 << WORKER_BITS) - 1;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
/// Set in every id of this layout.
const LAYOUT: u64 = 1 << 63;
/// The first layout's widths, to read the ids minted under it.
const FIRST_WORKER_BITS: u32 = 10;
const FIRST_SEQUENCE_BITS: u32 = 12;

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
    LAYOUT
        | ((ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS))
        | (u64::from(worker & MAX_WORKER) << SEQUENCE_BITS)
        | (sequence & MAX_SEQUENCE)
}

/// The widths of worker id and sequence `id` was minted with.
fn widths(id: OrderId) -> (u32, u32) {
    if id.0 & LAYOUT != 0 {
        (WORKER_BITS, SEQUENCE_BITS)
    } else {
        (FIRST_WORKER_BITS, FIRST_SEQUENCE_BITS)
    }
}

/// When an id was minted (ms since the Unix epoch): the admission's time.
pub fn minted_at_ms(id: OrderId) -> u64 {
    let (worker, sequence) = widths(id);
    ((id.0 & !LAYOUT) >> (worker + sequence)) + EPOCH_MS
}

/// The worker id an id carries.
pub fn worker_of(id: OrderId) -> u16 {
    let (worker, sequence) = widths(id);
    ((id.0 >> sequence) & ((1 << worker) - 1)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_marker_time_worker_sequence() {
        let id = compose(EPOCH_MS + 5, 8191, 7);
        assert_eq!(id, (1 << 63) | (5 << 22) | (8191 << 9) | 7);
        assert_eq!(worker_of(OrderId(id)), 8191);
        assert_eq!(minted_at_ms(OrderId(id)), EPOCH_MS + 5);
    }

    #[test]
    fn ids_of_the_first_layout_are_read_and_stay_below() {
        // Minted by the release before: 10 worker bits, 12 of sequence, no marker.
        let first = OrderId((5 << 22) | (1023 << 12) | 4095);
        assert_eq!(worker_of(first), 1023);
        assert_eq!(minted_at_ms(first), EPOCH_MS + 5);
        // The same millisecond under this layout, any worker and sequence: above, never equal.
        for (worker, sequence) in [(0, 0), (1023 << 3, 0), (8191, 511)] {
            assert!(compose(EPOCH_MS + 5, worker, sequence) > first.0);
        }
        let last_first_layout = OrderId((1 << 63) - 1);
        assert!(compose(EPOCH_MS, 0, 0) > last_first_layout.0);
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
