//! The embedded database (SQLite): plugin state today, and everything else that must survive
//! a restart as it is added. One file in the data directory, no set-up.
//!
//! Commits go to SQLite's write-ahead log. A checkpointer thread, on a connection of its
//! own, copies the log into the database file every second, so that no commit does it:
//! SQLite's automatic checkpoint runs inside the commit that fills the log, and every
//! request waiting on that commit (a group commit of alert intake) would wait for it too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("opening database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("starting a database thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// The database file of a data directory.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("faultline.db")
}

/// A handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// Cached plugin state: (scope, key) to value, `None` for known-absent.
type StateCache = HashMap<(String, String), Option<Vec<u8>>>;

struct Inner {
    conn: Mutex<Connection>,
    /// Plugin state read-through cache: a plugin reading its state on every evaluation
    /// must not pay a query each time.
    state: Mutex<StateCache>,
    /// Dropped with the last handle, which stops the checkpointer.
    _checkpointer: Option<mpsc::Sender<()>>,
    /// The directory of the database file; none in memory.
    dir: Option<PathBuf>,
}

/// How often the checkpointer copies the log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Pages of log after which a commit checkpoints itself after all (SQLite's default is
/// 1,000): only if the checkpointer falls far behind.
const COMMIT_CHECKPOINT_PAGES: u32 = 16_384;

impl Db {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let open = || {
            Connection::open(path).map_err(|source| DbError::Open {
                path: path.display().to_string(),
                source,
            })
        };
        let conn = open()?;
        conn.pragma_update(None, "wal_autocheckpoint", COMMIT_CHECKPOINT_PAGES)?;
        let checkpoints = open()?;
        checkpoints.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("db-checkpointer".into())
            .spawn(move || checkpointer(&checkpoints, &stopped))
            .map_err(DbError::Thread)?;
        // A bare file name is in the working directory.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::with_connection(conn, Some(stop), Some(dir))
    }

    /// An in-memory database, for tests and `faultline test`.
    pub fn in_memory() -> Result<Db, DbError> {
        Self::with_connection(Connection::open_in_memory()?, None, None)
    }

    fn with_connection(
        conn: Connection,
        checkpointer: Option<mpsc::Sender<()>>,
        dir: Option<PathBuf>,
    ) -> Result<Db, DbError> {
        // Another process (`faultline backup`, an operator's sqlite3) may hold the lock a
        // moment: wait for it rather than fail the write.
        conn.busy_timeout(Duration::from_secs(5))?;
        // FULL: a commit is on disk (the WAL synced) before it returns, so an acknowledged
        // alert or action survives an OS crash or power loss, not only a process crash.
        // Intake stays fast because its writer commits many requests at once. A 64 MiB page
        // cache (2 MiB by default) keeps the pages of a few hundred thousand stored alerts,
        // whose refreshes touch pages all over the table.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA cache_size=-65536;
             CREATE TABLE IF NOT EXISTS plugin_state (
                 scope TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY (scope, key)
             );
             CREATE TABLE IF NOT EXISTS alerts (
                 rule TEXT NOT NULL,
                 labels TEXT NOT NULL,
                 annotations TEXT NOT NULL,
                 value REAL,
                 status TEXT NOT NULL,
                 active_at INTEGER NOT NULL,
                 fired_at INTEGER,
                 resolved_at INTEGER,
                 last_seen INTEGER NOT NULL,
                 PRIMARY KEY (rule, labels)
             );
             CREATE TABLE IF NOT EXISTS nflog (
                 receiver TEXT NOT NULL,
                 group_key TEXT NOT NULL,
                 firing TEXT NOT NULL,
                 notified_at INTEGER NOT NULL,
                 PRIMARY KEY (receiver, group_key)
             );
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 receiver TEXT NOT NULL,
                 group_key TEXT NOT NULL,
                 incident_id TEXT NOT NULL,
                 target TEXT NOT NULL,
                 idempotency_key TEXT NOT NULL UNIQUE,
                 payload TEXT NOT NULL,
                 state TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 created_at INTEGER NOT NULL,
                 next_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL,
                 last_error TEXT
             );
             CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
             CREATE INDEX IF NOT EXISTS outbox_target ON outbox (receiver, target, created_at);
             CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (state, updated_at);
             CREATE TABLE IF NOT EXISTS decisions (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at INTEGER NOT NULL,
                 receiver TEXT NOT NULL,
                 incident_id TEXT NOT NULL,
                 target TEXT NOT NULL,
                 action_id INTEGER,
                 decision TEXT NOT NULL,
                 reason TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at);",
        )?;
        Ok(Db {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                state: Mutex::new(HashMap::new()),
                _checkpointer: checkpointer,
                dir,
            }),
        })
    }

    /// The directory of the database file, where files kept beside it go; none in memory.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// Runs `f` with the connection.
    pub fn with<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        let conn = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }

    /// A plugin's state value.
    pub fn state_get(&self, scope: &str, key: &str) -> Option<Vec<u8>> {
        let ck = (scope.to_string(), key.to_string());
        if let Some(v) = self.cache().get(&ck) {
            return v.clone();
        }
        let v = self
            .with(|c| {
                c.query_row(
                    "SELECT value FROM plugin_state WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .optional()
            })
            .unwrap_or_else(|e| {
                tracing::error!(scope, key, "reading plugin state: {e}");
                None
            });
        self.cache().insert(ck, v.clone());
        v
    }

    /// Sets a plugin's state value (written through to the database).
    pub fn state_set(&self, scope: &str, key: &str, value: &[u8]) {
        let ck = (scope.to_string(), key.to_string());
        if self
            .cache()
            .get(&ck)
            .is_some_and(|v| v.as_deref() == Some(value))
        {
            return;
        }
        let r = self.with(|c| {
            c.execute(
                "INSERT INTO plugin_state (scope, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
                params![scope, key, value],
            )
        });
        if let Err(e) = r {
            tracing::error!(scope, key, "writing plugin state: {e}");
        }
        self.cache().insert(ck, Some(value.to_vec()));
    }

    /// Deletes a plugin's state value.
    pub fn state_delete(&self, scope: &str, key: &str) {
        let r = self.with(|c| {
            c.execute(
                "DELETE FROM plugin_state WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )
        });
        if let Err(e) = r {
            tracing::error!(scope, key, "deleting plugin state: {e}");
        }
        self.cache()
            .insert((scope.to_string(), key.to_string()), None);
    }

    /// How many keys a plugin's state holds, and their bytes (keys plus values).
    pub fn state_usage(&self, scope: &str) -> (usize, usize) {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0)
                 FROM plugin_state WHERE scope = ?1",
                params![scope],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )
        })
        .unwrap_or_else(|e| {
            tracing::error!(scope, "measuring plugin state: {e}");
            (0, 0)
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, StateCache> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The checkpointer thread: a passive checkpoint every [`CHECKPOINT_EVERY`] (it copies what
/// it can without waiting for, or holding up, the writer), until `stop` is dropped.
fn checkpointer(conn: &Connection, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!("checkpointing the database: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_state_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faultline.db");
        let db = Db::open(&path).unwrap();
        db.state_set("rule-a", "k", b"v1");
        db.state_set("rule-b", "k", b"other");
        assert_eq!(db.state_get("rule-a", "k").as_deref(), Some(&b"v1"[..]));
        db.state_delete("rule-b", "k");
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.state_get("rule-a", "k").as_deref(), Some(&b"v1"[..]));
        assert_eq!(db.state_get("rule-b", "k"), None);
    }

    #[test]
    fn commits_are_synced_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&file(dir.path())).unwrap();
        let (journal, synchronous): (String, i64) = db.with(|c| {
            let j = c
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            (
                j,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap(),
            )
        });
        assert_eq!(journal, "wal");
        assert_eq!(synchronous, 2, "PRAGMA synchronous is FULL");
    }

    #[test]
    fn the_checkpointer_moves_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path());
        let db = Db::open(&path).unwrap();
        let value = vec![7u8; 4096];
        for i in 0..200 {
            db.state_set("rule", &format!("k{i}"), &value);
        }
        // 800 KB committed to the log; no commit checkpoints before 16,384 pages of it, so
        // only the checkpointer can bring them into the file.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&path).unwrap().len() < 800_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file holds {} bytes after 60 s",
                std::fs::metadata(&path).unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
