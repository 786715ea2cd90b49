//! Per-container memory of what a store said about a sale, for a short time, so a
//! flood stops at the container instead of reaching Redis or MySQL again. Entries
//! expire after the TTL; nothing here is shared or global.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::SaleId;

pub struct SaleMemo<V> {
    ttl: Duration,
    until: Mutex<HashMap<SaleId, (Instant, V)>>,
}

impl<V: Clone> SaleMemo<V> {
    /// A zero `ttl` remembers nothing.
    pub fn new(ttl: Duration) -> Self {
        SaleMemo { ttl, until: Mutex::new(HashMap::new()) }
    }

    /// Whether it remembers anything (its TTL is not zero).
    pub fn remembers(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, sale: SaleId) -> Option<V> {
        let mut until = self.until.lock().unwrap();
        match until.get(&sale) {
            Some((t, v)) if *t > Instant::now() => Some(v.clone()),
            Some(_) => {
                until.remove(&sale);
                None
            }
            None => None,
        }
    }

    pub fn mark(&self, sale: SaleId, value: V) {
        if !self.ttl.is_zero() {
            self.until.lock().unwrap().insert(sale, (Instant::now() + self.ttl, value));
        }
    }
}
