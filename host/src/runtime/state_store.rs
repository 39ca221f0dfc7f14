//! A rule's state store as one plugin call sees it: writes are buffered and kept only when
//! the call succeeds (a call that traps, times out or returns an error leaves the store as
//! it was), and the store stays within the rule's quota of keys and bytes (keys plus
//! values). A write over the quota is refused, and the call fails with the reason.

use std::collections::BTreeMap;

use crate::db::Db;

/// The most a rule's state store may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateQuota {
    pub keys: usize,
    pub bytes: usize,
}

/// One call's view of the store.
#[derive(Debug, Default)]
pub struct StateWrites {
    /// Keys written during the call: a value, or `None` for a deletion.
    pending: BTreeMap<String, Option<Vec<u8>>>,
    /// Keys and bytes the store holds with the pending writes applied: measured at the
    /// call's first write.
    usage: Option<(usize, usize)>,
    /// Why a write was refused, if one was.
    exceeded: Option<String>,
}

impl StateWrites {
    pub fn get(&self, db: &Db, scope: &str, key: &str) -> Option<Vec<u8>> {
        match self.pending.get(key) {
            Some(v) => v.clone(),
            None => db.state_get(scope, key),
        }
    }

    /// Buffers `key = value`, or refuses it (and every later write of the call) if the store
    /// would outgrow `quota`.
    pub fn set(&mut self, db: &Db, scope: &str, quota: StateQuota, key: String, value: Vec<u8>) {
        if self.exceeded.is_some() {
            return;
        }
        let old = self.size(db, scope, &key);
        let (keys, bytes) = *self.usage.get_or_insert_with(|| db.state_usage(scope));
        let keys = keys + usize::from(old.is_none());
        let bytes = bytes - old.unwrap_or(0) + key.len() + value.len();
        if keys > quota.keys {
            self.exceeded = Some(format!(
                "state quota exceeded: writing {key:?} would make {keys} keys, over the rule's \
                 limit of {}",
                quota.keys
            ));
            return;
        }
        if bytes > quota.bytes {
            self.exceeded = Some(format!(
                "state quota exceeded: writing {key:?} ({} bytes) would make {bytes} bytes, \
                 over the rule's limit of {}",
                value.len(),
                quota.bytes
            ));
            return;
        }
        self.usage = Some((keys, bytes));
        self.pending.insert(key, Some(value));
    }

    pub fn delete(&mut self, db: &Db, scope: &str, key: String) {
        if self.exceeded.is_some() {
            return;
        }
        if let Some(old) = self.size(db, scope, &key) {
            let (keys, bytes) = self.usage.get_or_insert_with(|| db.state_usage(scope));
            *keys -= 1;
            *bytes -= old;
        }
        self.pending.insert(key, None);
    }

    /// Bytes `key` and its value take now, if it is set.
    fn size(&self, db: &Db, scope: &str, key: &str) -> Option<usize> {
        self.get(db, scope, key).map(|v| key.len() + v.len())
    }

    /// Ends the call: keeps its writes if it succeeded, else forgets them. Returns why a write
    /// was refused, if one was (then nothing is kept).
    pub fn finish(&mut self, db: &Db, scope: &str, succeeded: bool) -> Result<(), String> {
        let writes = std::mem::take(self);
        if let Some(reason) = writes.exceeded {
            return Err(reason);
        }
        if succeeded {
            for (key, value) in writes.pending {
                match value {
                    Some(v) => db.state_set(scope, &key, &v),
                    None => db.state_delete(scope, &key),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: StateQuota = StateQuota { keys: 2, bytes: 10 };

    #[test]
    fn writes_are_kept_only_when_the_call_succeeds() {
        let db = Db::in_memory().unwrap();
        let mut w = StateWrites::default();
        w.set(&db, "r", QUOTA, "a".into(), b"1".to_vec());
        assert_eq!(w.get(&db, "r", "a").as_deref(), Some(&b"1"[..]));
        w.finish(&db, "r", false).unwrap();
        assert_eq!(db.state_get("r", "a"), None);
        w.set(&db, "r", QUOTA, "a".into(), b"1".to_vec());
        w.finish(&db, "r", true).unwrap();
        assert_eq!(db.state_get("r", "a").as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn the_quota_counts_keys_and_bytes_and_replacements() {
        let db = Db::in_memory().unwrap();
        db.state_set("r", "a", b"12345");
        let mut w = StateWrites::default();
        // Replacing a value counts its new size only: 1 + 9 bytes.
        w.set(&db, "r", QUOTA, "a".into(), b"123456789".to_vec());
        w.finish(&db, "r", true).unwrap();
        w.set(&db, "r", QUOTA, "b".into(), b"x".to_vec());
        let e = w.finish(&db, "r", true).unwrap_err();
        assert!(e.starts_with("state quota exceeded: "), "{e}");
        assert!(e.contains("12 bytes, over the rule's limit of 10"), "{e}");
        assert_eq!(db.state_get("r", "b"), None);
        w.delete(&db, "r", "a".into());
        w.set(&db, "r", QUOTA, "b".into(), b"x".to_vec());
        w.set(&db, "r", QUOTA, "c".into(), b"x".to_vec());
        w.finish(&db, "r", true).unwrap();
        w.set(&db, "r", QUOTA, "d".into(), b"".to_vec());
        let e = w.finish(&db, "r", true).unwrap_err();
        assert!(
            e.contains("would make 3 keys, over the rule's limit of 2"),
            "{e}"
        );
    }
}
