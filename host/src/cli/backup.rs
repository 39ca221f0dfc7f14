//! `faultline backup <path>`: an online copy of a data directory's database, taken while the
//! service runs (SQLite's backup API: one consistent snapshot; in WAL mode the service keeps
//! reading and writing meanwhile), with the external alerts' journal applied to it. Restore
//! is stopping the service, putting the copy in place of `faultline.db` (removing
//! `faultline.db-wal`, `faultline.db-shm` and the journal files) and starting it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::alerts::external::JournalWrites;

/// Why a backup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0}: is the data directory right (--data, or data_dir in --config)?")]
    NoDatabase(PathBuf),
    #[error("{0} already exists: choose a new path")]
    Exists(PathBuf),
    #[error("backing up {from} to {to}: {source}")]
    Sql {
        from: PathBuf,
        to: PathBuf,
        source: rusqlite::Error,
    },
    #[error("reading the external alerts' journal in {dir}: {source}")]
    Journal {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("moving the copy to {to}: {source}")]
    Rename { to: PathBuf, source: std::io::Error },
}

/// Copies the database of `data_dir` to `dest`, which must not exist, and returns its size
/// in bytes. The copy is written beside `dest` and renamed, so `dest` is either whole or
/// absent.
pub fn run(data_dir: &Path, dest: &Path) -> Result<u64, BackupError> {
    let from = crate::db::file(data_dir);
    if !from.is_file() {
        return Err(BackupError::NoDatabase(from));
    }
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let sql = |source| BackupError::Sql {
        from: from.clone(),
        to: dest.to_path_buf(),
        source,
    };
    // Received alerts reach the database up to a second after their journal: read before
    // the snapshot, so that every write is in one or the other, and applied to the copy.
    let journal = JournalWrites::read(data_dir).map_err(|source| BackupError::Journal {
        dir: data_dir.to_path_buf(),
        source,
    })?;
    let copy = || -> rusqlite::Result<()> {
        // Read-write without create: a WAL database's reader needs its shared memory.
        let src = Connection::open_with_flags(
            &from,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        src.busy_timeout(Duration::from_secs(10))?;
        let mut dst = Connection::open(&partial)?;
        // Every page in one step: one snapshot, never restarted by the service's writes.
        rusqlite::backup::Backup::new(&src, &mut dst)?.run_to_completion(
            i32::MAX,
            Duration::from_millis(50),
            None,
        )?;
        if !journal.is_empty() {
            journal.apply_to(&dst)?;
        }
        Ok(())
    };
    if let Err(e) = copy() {
        std::fs::remove_file(&partial).ok();
        return Err(sql(e));
    }
    std::fs::rename(&partial, dest).map_err(|source| BackupError::Rename {
        to: dest.to_path_buf(),
        source,
    })?;
    Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[test]
    fn the_copy_holds_what_was_committed_and_an_existing_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&crate::db::file(dir.path())).unwrap();
        db.state_set("rule", "k", b"v");
        let dest = dir.path().join("copy.db");
        assert!(run(dir.path(), &dest).unwrap() > 0);
        let copy = Db::open(&dest).unwrap();
        assert_eq!(copy.state_get("rule", "k").as_deref(), Some(&b"v"[..]));
        let again = run(dir.path(), &dest).unwrap_err();
        assert!(matches!(again, BackupError::Exists(_)), "{again}");
        let none = run(&dir.path().join("nowhere"), &dir.path().join("x.db")).unwrap_err();
        assert!(none.to_string().contains("no database at"), "{none}");
    }

    #[tokio::test]
    async fn the_copy_has_the_alerts_still_in_the_journal() {
        use crate::alerts::external::ExternalAlerts;
        use crate::ingest::alerts::PostableAlert;
        use crate::model::Labels;

        let dir = tempfile::tempdir().unwrap();
        let ext =
            ExternalAlerts::open(&Db::open(&crate::db::file(dir.path())).unwrap(), 0).unwrap();
        let posted = PostableAlert {
            labels: Labels::from_pairs([("alertname", "InJournal")]),
            annotations: Labels::default(),
            starts_at: None,
            ends_at: None,
            generator_url: None,
        };
        ext.receive(vec![posted], 0, Duration::from_secs(300))
            .await
            .unwrap();
        // Copied while the service runs, before the alert goes from the journal to the
        // database (a second later).
        let dest = dir.path().join("copy.db");
        run(dir.path(), &dest).unwrap();
        let copied: String = Connection::open(&dest)
            .unwrap()
            .query_row("SELECT labels FROM external_alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(copied, r#"{"alertname":"InJournal"}"#);
    }
}
