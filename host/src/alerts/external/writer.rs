//! The writer: the one thread that makes received alerts durable, by group commit. Each
//! round it takes the writes of every request waiting, makes them durable at once, and then
//! answers each request.
//!
//! With a database file, a round is appended to the [journal](super::journal) and synced.
//! Once a second the writer goes on in a new journal file and hands the writes of the last
//! one to the applier thread, one write per alert (the latest). The applier writes them to
//! the database and then deletes the file. So no request waits for the database's page
//! writes, and an alert refreshed many times a second is written there once. At start,
//! journal files left by a crash are applied, in order, before anything is read.
//!
//! The journal holds alerts that the database will hold too, so it needs room twice. With
//! less than [`LOW_SPACE`] free (or not three times what the journal holds), the writer
//! first moves the journal to the database and empties it, then writes each round straight
//! to the database, one transaction per round, as it does with a database in memory (tests,
//! `faultline test`). A full disk then refuses alerts as the database does, and nothing
//! accepted is held twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::Write;
use super::journal::{self, Journal};
use crate::db::{Db, DbError};

/// The writes one request (or housekeeping) waits for.
pub(super) struct Job {
    pub writes: Vec<Write>,
    pub done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Free space kept per journal byte not yet in the database: the journal itself, then the
/// rows and the database's own log (with room to spare for what else the database writes).
const ROOM_FACTOR: u64 = 3;

/// With less free space than this, rounds go straight to the database, each one a
/// transaction, as without a journal.
const LOW_SPACE: u64 = 256 << 20;

/// How long journaled writes wait before they go to the database.
const APPLY_EVERY: Duration = Duration::from_secs(1);

/// A journal file this large goes to the database sooner.
const APPLY_AT_BYTES: u64 = 64 << 20;

/// Writes per database transaction of the applier, which holds the database connection for
/// one transaction at a time.
const APPLY_CHUNK: usize = 2_000;

/// Applies the journal files left in the database's directory, then starts the writer
/// thread (and the applier beside it); they stop when the returned sender is dropped.
pub(super) fn start(db: &Db) -> Result<mpsc::Sender<Job>, DbError> {
    let journal = match db.dir() {
        Some(dir) => Some(Journaled::start(db, dir)?),
        None => None,
    };
    let (writer, jobs) = mpsc::channel();
    let db = db.clone();
    std::thread::Builder::new()
        .name("external-alerts-writer".into())
        .spawn(move || write_loop(&db, &jobs, journal))
        .map_err(DbError::Thread)?;
    Ok(writer)
}

/// The journal, and the writes in it that the database does not have yet.
struct Journaled {
    journal: Journal,
    /// The latest write of each alert since the last hand-over.
    pending: HashMap<u64, Write>,
    /// Finished journal files that hold them (with the current one).
    finished: Vec<PathBuf>,
    /// Journal bytes of `pending`.
    pending_bytes: u64,
    /// When the first of `pending` was written.
    since: Instant,
    applier: mpsc::SyncSender<Handover>,
    /// Journal bytes not yet in the database (pending or with the applier).
    unapplied: Arc<AtomicU64>,
    dir: PathBuf,
    /// [`LOW_SPACE`], but for tests.
    low_space: u64,
}

/// Writes the applier puts in the database, and the journal files it then deletes.
struct Handover {
    writes: Vec<Write>,
    files: Vec<PathBuf>,
    bytes: u64,
}

impl Journaled {
    fn start(db: &Db, dir: &Path) -> Result<Journaled, DbError> {
        let file_error = |source| DbError::File {
            path: dir.display().to_string(),
            source,
        };
        let left = journal::read_all(dir).map_err(file_error)?;
        if !left.files.is_empty() {
            db.with(|c| apply(c, &left.writes))?;
            tracing::info!(
                files = left.files.len(),
                writes = left.writes.len(),
                "journal applied"
            );
        }
        for (_, file) in &left.files {
            std::fs::remove_file(file).ok();
        }
        // After the files left, and after any file of an earlier start that is still being
        // applied (numbers are start times unless the clock went back).
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let number = left.files.last().map_or(0, |(n, _)| n + 1).max(now_us);
        let journal = Journal::start(dir, number).map_err(file_error)?;
        // One hand-over waits while the applier works on another; while it waits, the
        // writer keeps the next writes pending (it never waits for the database).
        let (applier, handovers) = mpsc::sync_channel(1);
        let unapplied = Arc::new(AtomicU64::new(0));
        let (db, applied) = (db.clone(), unapplied.clone());
        std::thread::Builder::new()
            .name("external-alerts-applier".into())
            .spawn(move || apply_loop(&db, &handovers, &applied))
            .map_err(DbError::Thread)?;
        Ok(Journaled {
            journal,
            pending: HashMap::new(),
            finished: Vec::new(),
            pending_bytes: 0,
            since: Instant::now(),
            applier,
            unapplied,
            dir: dir.to_path_buf(),
            low_space: LOW_SPACE,
        })
    }

    /// Writes a round: to the journal while the disk has room, else straight to the
    /// database, after what the journal holds.
    fn write(&mut self, db: &Db, writes: Vec<Write>) -> Result<(), String> {
        let round = self.journal.encode(writes.iter());
        if self.has_room(round)? {
            return self.append(writes, round);
        }
        self.drain(db)?;
        db.with(|c| apply(c, &writes))
            .map_err(|e| format!("writing external alerts: {e}"))
    }

    /// Whether the disk has room for a round in the journal and then in the database: the
    /// database needs about as much again as the journal holds, for its rows and its own
    /// log. Near full, alerts are not held twice.
    fn has_room(&self, round: u64) -> Result<bool, String> {
        let needed = ROOM_FACTOR * (self.unapplied.load(Ordering::Relaxed) + round);
        let free = rustix::fs::statvfs(&self.dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .map_err(|e| format!("measuring the free space of {}: {e}", self.dir.display()))?;
        Ok(free >= needed.max(self.low_space))
    }

    /// Puts what the journal holds in the database and empties it, once the applier is
    /// done with what it was handed: a write straight to the database must not be
    /// overwritten by an older one from the journal, then or at a restart.
    fn drain(&mut self, db: &Db) -> Result<(), String> {
        let deadline = Instant::now() + APPLY_EVERY;
        while self.unapplied.load(Ordering::Relaxed) > self.pending_bytes {
            if Instant::now() > deadline {
                return Err(
                    "the disk is nearly full and the database is still taking the journal's alerts"
                        .into(),
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.pending_bytes == 0 && self.finished.is_empty() && !self.journal.torn() {
            return Ok(());
        }
        let writes: Vec<Write> = self.pending.values().cloned().collect();
        db.with(|c| apply(c, &writes))
            .map_err(|e| format!("writing journaled external alerts: {e}"))?;
        self.journal
            .clear()
            .map_err(|e| format!("emptying the external alerts' journal: {e}"))?;
        for file in self.finished.drain(..) {
            std::fs::remove_file(&file).ok();
        }
        self.pending.clear();
        self.unapplied
            .fetch_sub(std::mem::take(&mut self.pending_bytes), Ordering::Relaxed);
        Ok(())
    }

    /// When the pending writes are due to go to the database, if there are any.
    fn due(&self) -> Option<Instant> {
        (!self.pending.is_empty()).then(|| self.since + APPLY_EVERY)
    }

    /// Appends the round just encoded, of `bytes`, and keeps its writes pending.
    fn append(&mut self, writes: Vec<Write>, bytes: u64) -> Result<(), String> {
        if self.journal.torn() {
            self.next_file();
        }
        self.journal
            .write()
            .map_err(|e| format!("writing the external alerts' journal: {e}"))?;
        self.pending_bytes += bytes;
        self.unapplied.fetch_add(bytes, Ordering::Relaxed);
        if self.pending.is_empty() {
            self.since = Instant::now();
        }
        for w in writes {
            self.pending.insert(w.fingerprint(), w);
        }
        Ok(())
    }

    /// Hands the pending writes to the applier if they are due, going on in a new file.
    fn hand_over_if_due(&mut self) {
        let due = self.due().is_some_and(|at| at <= Instant::now())
            || self.journal.bytes() >= APPLY_AT_BYTES;
        if due && self.next_file() {
            self.hand_over();
        }
    }

    /// Goes on in a new journal file; false if none could be made.
    fn next_file(&mut self) -> bool {
        match self.journal.next_file() {
            Ok(file) => {
                self.finished.push(file);
                true
            }
            Err(e) => {
                tracing::error!(
                    "starting a new journal file: {e}; trying again in {APPLY_EVERY:?}"
                );
                self.since = Instant::now();
                false
            }
        }
    }

    /// Hands the pending writes, which the finished files hold, to the applier; if it is
    /// still busy with the last ones, they stay pending and are handed over later.
    fn hand_over(&mut self) {
        let handover = self.take_pending();
        match self.applier.try_send(handover) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(back) | mpsc::TrySendError::Disconnected(back)) => {
                self.finished = back.files;
                self.pending_bytes = back.bytes;
                // Newer writes of the same alerts, if any, are already pending.
                for w in back.writes {
                    self.pending.entry(w.fingerprint()).or_insert(w);
                }
                self.since = Instant::now();
            }
        }
    }

    /// At the writer's end: hands over what is pending with the file being written,
    /// waiting for the applier to take it.
    fn finish(mut self) {
        self.finished.push(self.journal.path());
        // The applier stops only after this end of the channel is dropped.
        let handover = self.take_pending();
        self.applier.send(handover).ok();
    }

    /// The pending writes, with the files that hold them, as a hand-over.
    fn take_pending(&mut self) -> Handover {
        Handover {
            writes: self.pending.drain().map(|(_, w)| w).collect(),
            files: std::mem::take(&mut self.finished),
            bytes: std::mem::take(&mut self.pending_bytes),
        }
    }
}

/// The writer thread: each round takes every waiting job, makes its writes durable and
/// answers each job.
fn write_loop(db: &Db, jobs: &mpsc::Receiver<Job>, mut journal: Option<Journaled>) {
    loop {
        let first = match journal.as_ref().and_then(Journaled::due) {
            Some(due) => match jobs.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(j) = journal.as_mut() {
                        j.hand_over_if_due();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let mut round = vec![first];
        round.extend(jobs.try_iter().take(4096));
        let mut answers = Vec::with_capacity(round.len());
        let mut writes = Vec::with_capacity(round.iter().map(|j| j.writes.len()).sum());
        for Job { writes: w, done } in round {
            writes.extend(w);
            answers.extend(done);
        }
        let result = match &mut journal {
            Some(j) => j.write(db, writes),
            None => {
                let result = db.with(|c| apply(c, &writes));
                // Released before the senders hear back, so that an alert one forgets next
                // is not still held here (and its strings leave the interner with it).
                drop(writes);
                result.map_err(|e| format!("writing external alerts: {e}"))
            }
        };
        if let Err(e) = &result {
            tracing::error!("{e}");
        }
        for done in answers {
            done.send(result.clone()).ok();
        }
        if let Some(j) = journal.as_mut() {
            j.hand_over_if_due();
        }
    }
    if let Some(j) = journal {
        j.finish();
    }
}

/// The applier thread: puts each hand-over in the database, then deletes its journal file.
fn apply_loop(db: &Db, handovers: &mpsc::Receiver<Handover>, unapplied: &AtomicU64) {
    for Handover {
        writes,
        files,
        bytes,
    } in handovers
    {
        // Tried until it is in (a full disk): later files must not reach the database
        // before it.
        while let Err(e) = writes
            .chunks(APPLY_CHUNK)
            .try_for_each(|chunk| db.with(|c| apply(c, chunk)))
        {
            tracing::error!(
                "writing journaled external alerts to the database: {e}; trying again in {APPLY_EVERY:?}"
            );
            std::thread::sleep(APPLY_EVERY);
        }
        for file in files {
            if let Err(e) = std::fs::remove_file(&file) {
                tracing::warn!(file = %file.display(), "deleting an applied journal file: {e}");
            }
        }
        unapplied.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Writes to the database, in one transaction.
fn apply(c: &Connection, writes: &[Write]) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO external_alerts (fingerprint, labels, annotations,
                 starts_at, ends_at, updated_at, generator_url, timeout)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels,
                 annotations = excluded.annotations, starts_at = excluded.starts_at,
                 ends_at = excluded.ends_at, updated_at = excluded.updated_at,
                 generator_url = excluded.generator_url, timeout = excluded.timeout",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM external_alerts WHERE fingerprint = ?1")?;
        for w in writes {
            match w {
                Write::Upsert(a) => {
                    upsert.execute(params![
                        a.fingerprint as i64,
                        &*a.labels_json,
                        &*a.annotations_json,
                        a.starts_at,
                        a.ends_at,
                        a.updated_at,
                        a.generator_url,
                        a.timeout
                    ])?;
                }
                Write::Delete(fp) => {
                    delete.execute(params![*fp as i64])?;
                }
            }
        }
    }
    tx.commit()
}

/// The writes that journal files in a data directory hold, oldest first: what a copy of
/// the database taken meanwhile may lack.
pub struct JournalWrites(Vec<Write>);

impl JournalWrites {
    /// Reads the journal files in `dir` (files deleted meanwhile were in the database).
    pub fn read(dir: &Path) -> std::io::Result<JournalWrites> {
        journal::read_all(dir).map(|left| JournalWrites(left.writes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes them to a database (a copy), in one transaction.
    pub fn apply_to(&self, c: &Connection) -> rusqlite::Result<()> {
        apply(c, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::external::{ExternalAlert, ExternalAlerts};
    use crate::ingest::alerts::PostableAlert;
    use crate::model::Labels;

    fn version(summary: &str, now: i64) -> Write {
        let posted = PostableAlert {
            labels: Labels::from_pairs([("alertname", "A")]),
            annotations: Labels::from_pairs([("summary", summary)]),
            starts_at: None,
            ends_at: None,
            generator_url: None,
        };
        Write::Upsert(Arc::new(ExternalAlert::received(
            posted,
            now,
            Duration::from_secs(300),
        )))
    }

    fn stored(db: &Db) -> Vec<String> {
        db.with(|c| {
            let mut st = c
                .prepare("SELECT annotations FROM external_alerts")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        })
    }

    #[test]
    fn near_full_a_round_goes_to_the_database_after_the_journal_and_a_restart_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.db")).unwrap();
        drop(ExternalAlerts::open(&db, 0).unwrap());
        let mut j = Journaled::start(&db, dir.path()).unwrap();
        j.write(&db, vec![version("journaled", 1)]).unwrap();
        assert!(stored(&db).is_empty(), "journaled, not yet in the database");
        assert!(j.journal.bytes() > 0);

        // The disk is nearly full: the journal goes to the database first, then the round.
        j.low_space = u64::MAX;
        j.write(&db, vec![version("straight", 2)]).unwrap();
        assert_eq!(stored(&db), [r#"{"summary":"straight"}"#]);
        assert_eq!(j.journal.bytes(), 0, "the journal is emptied");
        assert_eq!(j.unapplied.load(Ordering::Relaxed), 0);
        assert!(j.pending.is_empty());

        // A restart applies no older version over it.
        drop(j);
        let j = Journaled::start(&db, dir.path()).unwrap();
        assert_eq!(stored(&db), [r#"{"summary":"straight"}"#]);
        drop(j);
    }
}
