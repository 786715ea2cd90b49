//! Per-container memory of what a store said about a sale, for a short time, so a
//! flood stops at the container instead of reaching Redis or MySQL again. Entries
//! expire after the TTL; nothing here is shared or global.
//!
//! The sale ids come from request paths, so a stranger chooses them: the memory is
//! bounded. It holds at most [`SaleMemo::CAPACITY`] sales; every entry lives the same
//! TTL, so the oldest entry is also the first to expire, and a new one at capacity
//! first sweeps the expired and then, if none was, pushes the oldest out. A flood of
//! distinct ids costs each id its store read (as without the memo), never the
//! container's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::SaleId;

pub struct SaleMemo<V> {
    ttl: Duration,
    capacity: usize,
    kept: Mutex<Kept<V>>,
}

/// The entries by sale, and the sales in the order they were marked (with the deadline
/// each was marked with: a sale marked again has a later one in the map, and its older
/// place in the line is skipped).
struct Kept<V> {
    until: HashMap<SaleId, (Instant, V)>,
    line: VecDeque<(SaleId, Instant)>,
}

impl<V: Clone> SaleMemo<V> {
    /// Sales remembered at most, per memo and container: far more than a shop runs at
    /// once, a few hundred kilobytes when full.
    pub const CAPACITY: usize = 10_000;

    /// A zero `ttl` remembers nothing.
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, Self::CAPACITY)
    }

    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        let kept = Kept { until: HashMap::new(), line: VecDeque::new() };
        SaleMemo { ttl, capacity: capacity.max(1), kept: Mutex::new(kept) }
    }

    /// How long it remembers.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether it remembers anything (its TTL is not zero).
    pub fn remembers(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, sale: SaleId) -> Option<V> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match kept.until.get(&sale) {
            Some((t, v)) if *t > Instant::now() => Some(v.clone()),
            Some(_) => {
                kept.until.remove(&sale);
                None
            }
            None => None,
        }
    }

    pub fn mark(&self, sale: SaleId, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let until = now + self.ttl;
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.sweep(now);
        if !kept.until.contains_key(&sale) {
            while kept.until.len() >= self.capacity && !kept.line.is_empty() {
                kept.drop_oldest();
            }
        }
        kept.until.insert(sale, (until, value));
        kept.line.push_back((sale, until));
        // A few sales marked again and again leave stale places in the line: drop them
        // before the line outgrows the entries by much.
        if kept.line.len() > 2 * self.capacity {
            let Kept { until, line } = &mut *kept;
            line.retain(|(sale, at)| until.get(sale).is_some_and(|(t, _)| t == at));
        }
    }

    /// How many sales it holds now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> Kept<V> {
    /// Forgets every entry whose deadline has passed: they sit at the front of the line.
    fn sweep(&mut self, now: Instant) {
        while let Some(&(_, at)) = self.line.front() {
            if at > now {
                break;
            }
            self.drop_oldest();
        }
    }

    /// Forgets the sale at the front of the line, if that place is still its own.
    fn drop_oldest(&mut self) {
        if let Some((sale, at)) = self.line.pop_front() {
            if self.until.get(&sale).is_some_and(|(t, _)| *t == at) {
                self.until.remove(&sale);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_distinct_sales_cannot_grow_it_past_its_capacity() {
        let memo = SaleMemo::with_capacity(Duration::from_secs(60), 100);
        for id in 1..=100_000 {
            memo.mark(SaleId(id), ());
            assert!(memo.len() <= 100);
        }
        // The newest are kept; the oldest made room.
        assert_eq!(memo.get(SaleId(100_000)), Some(()));
        assert_eq!(memo.get(SaleId(99_901)), Some(()));
        assert_eq!(memo.get(SaleId(99_900)), None);
        assert!(memo.kept.lock().unwrap().line.len() <= 200);
    }

    #[test]
    fn one_sale_marked_again_and_again_keeps_the_line_short() {
        let memo = SaleMemo::with_capacity(Duration::from_secs(60), 10);
        for _ in 0..10_000 {
            memo.mark(SaleId(7), 1);
        }
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(SaleId(7)), Some(1));
        assert!(memo.kept.lock().unwrap().line.len() <= 20);
    }

    #[test]
    fn expired_entries_are_swept_by_the_next_mark() {
        let memo = SaleMemo::with_capacity(Duration::from_millis(300), 1_000);
        for id in 1..=500 {
            memo.mark(SaleId(id), ());
        }
        assert_eq!(memo.len(), 500);
        std::thread::sleep(Duration::from_millis(350));
        memo.mark(SaleId(1_000), ());
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(SaleId(1)), None);
    }

    #[test]
    fn a_sale_marked_again_lives_from_its_last_mark() {
        let memo = SaleMemo::with_capacity(Duration::from_millis(1_000), 2);
        memo.mark(SaleId(1), "first");
        std::thread::sleep(Duration::from_millis(600));
        memo.mark(SaleId(1), "again");
        std::thread::sleep(Duration::from_millis(600));
        // Its first place expired; the entry did not.
        memo.mark(SaleId(2), "other");
        assert_eq!(memo.get(SaleId(1)), Some("again"));
        // At capacity, the oldest live entry makes room.
        memo.mark(SaleId(3), "third");
        assert_eq!(memo.len(), 2);
        assert_eq!(memo.get(SaleId(1)), None);
        assert_eq!(memo.get(SaleId(3)), Some("third"));
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let memo = SaleMemo::new(Duration::ZERO);
        memo.mark(SaleId(1), ());
        assert!(!memo.remembers());
        assert!(memo.is_empty());
    }
}
