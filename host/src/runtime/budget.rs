//! The memory budget every plugin instance draws from: the sum of their linear memories
//! stays under one figure of the server configuration (`plugin_memory_budget`), whatever
//! each rule's own `memory` cap allows. An instance gives its share back when it is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of linear memory held by all instances, against a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` from the budget; false (and nothing taken) when it has not that many left.
    pub fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&u| u <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken by [`reserve`](Self::reserve).
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_come_back() {
        let b = MemoryBudget::new(100);
        assert!(b.reserve(60));
        assert!(!b.reserve(41));
        assert!(b.reserve(40));
        b.release(60);
        assert!(b.reserve(60));
        assert!(!b.reserve(1));
    }
}
