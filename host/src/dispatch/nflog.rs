//! The notification log: per (receiver, group key), the firing alerts last notified and
//! when, kept in the database so that a restart neither re-notifies nor forgets when to
//! repeat.

use std::collections::{BTreeSet, HashMap};

use rusqlite::params;

use crate::db::Db;

/// The notification log: per (receiver, group key), the firing alerts last notified and
/// when.
pub struct Nflog {
    db: Db,
    pub entries: HashMap<(String, String), (BTreeSet<u64>, i64)>,
}

impl Nflog {
    pub fn open(db: Db) -> Nflog {
        let entries = db
            .with(|c| {
                let mut st =
                    c.prepare("SELECT receiver, group_key, firing, notified_at FROM nflog")?;
                let rows = st.query_map([], |r| {
                    let firing: String = r.get(2)?;
                    let set = firing
                        .split(',')
                        .filter_map(|h| u64::from_str_radix(h, 16).ok())
                        .collect();
                    Ok(((r.get(0)?, r.get(1)?), (set, r.get(3)?)))
                })?;
                rows.collect::<Result<HashMap<_, _>, _>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading the notification log: {e}");
                HashMap::new()
            });
        Nflog { db, entries }
    }

    /// Writes an entry through `tx`, the transaction of a dispatcher pass; once it commits,
    /// [`Nflog::remember`] the entry.
    pub fn write(
        tx: &rusqlite::Connection,
        (receiver, key): &(String, String),
        firing: &BTreeSet<u64>,
        at: i64,
    ) -> rusqlite::Result<()> {
        let text = firing
            .iter()
            .map(|f| format!("{f:016x}"))
            .collect::<Vec<_>>()
            .join(",");
        tx.execute(
            "INSERT INTO nflog (receiver, group_key, firing, notified_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (receiver, group_key) DO UPDATE SET firing = excluded.firing,
             notified_at = excluded.notified_at",
            params![receiver, key, text, at],
        )
        .map(|_| ())
    }

    /// Keeps in memory an entry written with [`Nflog::write`].
    pub fn remember(&mut self, id: (String, String), firing: BTreeSet<u64>, at: i64) {
        self.entries.insert(id, (firing, at));
    }

    /// Forgets, in batches, the entries last notified before `before`. Returns how many.
    pub fn prune(&mut self, before: i64) -> rusqlite::Result<usize> {
        let old: Vec<(String, String)> = self
            .entries
            .iter()
            .filter(|(_, (_, at))| *at < before)
            .map(|(k, _)| k.clone())
            .collect();
        for batch in old.chunks(crate::retention::BATCH) {
            self.db.with(|c| -> rusqlite::Result<()> {
                let tx = c.unchecked_transaction()?;
                {
                    let mut delete = tx.prepare_cached(
                        "DELETE FROM nflog WHERE receiver = ?1 AND group_key = ?2",
                    )?;
                    for (receiver, key) in batch {
                        delete.execute(params![receiver, key])?;
                    }
                }
                tx.commit()
            })?;
            for k in batch {
                self.entries.remove(k);
            }
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes and remembers an entry, as a dispatcher pass does.
    fn record(log: &mut Nflog, db: &Db, receiver: &str, key: &str, firing: &[u64], at: i64) {
        let id = (receiver.to_string(), key.to_string());
        let firing = BTreeSet::from_iter(firing.iter().copied());
        db.with(|c| Nflog::write(c, &id, &firing, at)).unwrap();
        log.remember(id, firing, at);
    }

    #[test]
    fn notification_log_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.db")).unwrap();
        let mut log = Nflog::open(db.clone());
        record(&mut log, &db, "hook", "{}:{a=\"1\"}", &[1, 0xabc], 42);
        let log = Nflog::open(Db::open(&dir.path().join("f.db")).unwrap());
        assert_eq!(
            log.entries
                .get(&("hook".to_string(), "{}:{a=\"1\"}".to_string())),
            Some(&(BTreeSet::from([1, 0xabc]), 42))
        );
    }

    #[test]
    fn entries_notified_before_the_horizon_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.db")).unwrap();
        let mut log = Nflog::open(db.clone());
        record(&mut log, &db, "hook", "old", &[1], 1_000);
        record(&mut log, &db, "hook", "recent", &[2], 5_000);
        assert_eq!(log.prune(2_000).unwrap(), 1);
        let keys = |log: &Nflog| {
            let mut k: Vec<String> = log.entries.keys().map(|(_, g)| g.clone()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&log), ["recent"]);
        assert_eq!(
            keys(&Nflog::open(db)),
            ["recent"],
            "deleted from the database too"
        );
    }
}
