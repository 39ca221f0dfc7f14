//! The process-wide interner behind [`super::Labels::interned`]: one shared copy of each
//! distinct label set, and of each distinct label name and value, that long-lived holders
//! (the store, the scraper's memory of the previous scrape) keep. Strings alone are shared
//! too: the names and values of stored alerts ([`intern_strings`]) and matchers' names
//! ([`name`]), so that a matcher finds its label by comparing pointers
//! ([`super::Labels::get`]) and muting many alerts reads few distinct strings. What no
//! holder uses any more is dropped by [`purge_unused`], which the store's garbage
//! collection calls.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, LazyLock, Mutex};

use super::{Labels, Str};

/// Shards, so that concurrent ingestion rarely waits on one lock.
const SHARDS: usize = 16;

/// A set of shared values, split in shards by hash.
struct Interner<T> {
    hasher: RandomState,
    shards: [Mutex<HashSet<T>>; SHARDS],
}

impl<T: Hash + Eq + Clone> Interner<T> {
    fn new() -> Self {
        Interner {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashSet::new())),
        }
    }

    /// The shared copy of `v`, made the shared copy if there is none yet.
    fn intern(&self, v: &T) -> T {
        let i = self.hasher.hash_one(v) as usize % SHARDS;
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        match shard.get(v) {
            Some(shared) => shared.clone(),
            None => {
                shard.insert(v.clone());
                v.clone()
            }
        }
    }

    /// Drops the values `used` says only the interner holds; returns how many.
    fn purge(&self, used: impl Fn(&T) -> bool) -> usize {
        let mut purged = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = shard.len();
            shard.retain(&used);
            purged += before - shard.len();
            let keep = shard.len() * 2;
            shard.shrink_to(keep);
        }
        purged
    }
}

static STRINGS: LazyLock<Interner<Str>> = LazyLock::new(Interner::new);
static SETS: LazyLock<Interner<Labels>> = LazyLock::new(Interner::new);

/// The shared copy of a label set, its strings shared too.
pub(super) fn intern(labels: &Labels) -> Labels {
    SETS.intern(&intern_strings(labels))
}

/// The shared copy of a label name (or any string).
pub(crate) fn name(name: &str) -> Str {
    STRINGS.intern(&Str::from(name))
}

/// The same labels, each name and value the shared copy.
pub(super) fn intern_strings(labels: &Labels) -> Labels {
    Labels(
        labels
            .0
            .iter()
            .map(|(n, v)| (STRINGS.intern(n), STRINGS.intern(v)))
            .collect(),
    )
}

/// Drops the label sets and strings only the interner still holds; returns how many.
pub fn purge_unused() -> usize {
    // Sets first: a dropped set releases its strings.
    SETS.purge(|l| Arc::strong_count(&l.0) > 1) + STRINGS.purge(|s| Arc::strong_count(s) > 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Labels;

    #[test]
    fn interned_label_sets_share_their_strings_and_keep_their_content() {
        let a = Labels::from_pairs([("job", "intern-test-node"), ("instance", "a:9100")]);
        let b = Labels::from_pairs([("job", "intern-test-node"), ("instance", "b:9100")]);
        let (a2, b2) = (a.interned(), b.interned());
        assert_eq!(a2, a);
        assert_eq!(b2, b);
        assert_eq!(
            a2.to_string(),
            r#"{instance="a:9100", job="intern-test-node"}"#
        );
        let job = |l: &Labels| l.as_slice()[1].1.clone();
        assert!(
            Arc::ptr_eq(&job(&a2), &job(&b2)),
            "one copy of a shared value"
        );
        assert!(
            !Arc::ptr_eq(&job(&a), &job(&b)),
            "plain label sets are not interned"
        );
        let a3 = Labels::from_pairs([("instance", "a:9100"), ("job", "intern-test-node")]);
        assert!(
            Arc::ptr_eq(&a2.0, &a3.interned().0),
            "one copy of a label set"
        );
    }

    #[test]
    fn unused_strings_are_purged_and_used_ones_kept() {
        let kept = Labels::from_pairs([("intern_purge_test", "kept")]).interned();
        let dropped = Arc::downgrade(
            &Labels::from_pairs([("intern_purge_test", "dropped")])
                .interned()
                .as_slice()[0]
                .1,
        );
        assert!(dropped.upgrade().is_some(), "the interner holds it");
        super::purge_unused();
        assert!(dropped.upgrade().is_none(), "purged");
        // Interning again finds the kept copy.
        let again = Labels::from_pairs([("intern_purge_test", "kept")]).interned();
        assert!(Arc::ptr_eq(&kept.as_slice()[0].1, &again.as_slice()[0].1));
    }
}
