//! External alerts: alerts that other programs send, through Alertmanager's API
//! (`POST /api/v2/alerts`: Prometheus, vmalert, Grafana, `amtool alert add`) or as an
//! Alertmanager's webhook notifications. They join the alert lifecycle beside rule alerts
//! and are routed, silenced and inhibited like them.
//!
//! Their life is Alertmanager's: an alert is identified by its label set (fingerprint); it
//! fires from `startsAt` (default: when received) until `endsAt` (default: when received plus
//! the resolve timeout, so a sender that stops refreshing it lets it resolve); a re-post
//! refreshes it, merged with what is known as Alertmanager merges. Once `endsAt` has passed
//! it is resolved, kept [`RESOLVED_RETENTION`] so that its resolution is notified, then
//! forgotten.
//!
//! Every accepted alert is on disk before the sender gets its answer, and intake stays fast
//! by group commit: one [writer](writer) thread appends whatever requests are waiting to a
//! [journal](journal) and syncs it once, then answers them all; the database gets each
//! alert's latest version from the journal once a second.
//!
//! A restart does not wait for the stored alerts: a loader thread reads them in batches
//! while intake already runs. Until it is done, an alert received for a label set not yet
//! in memory is merged with its stored row, read by its key, so a refresh keeps its start;
//! the dispatcher and the listings wait for [`ExternalAlerts::loaded`], so none of them sees
//! a partial set (which would look like resolutions).
//!
//! In memory they are split into shards by fingerprint, each behind its own lock: the
//! dispatcher's pass over every alert (once a second) holds one shard at a time, so a
//! request waits at most for one shard's part of the walk, however many alerts are stored.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use tokio::sync::{oneshot, watch};

use crate::alerts::{Alert, RESOLVED_RETENTION, Status};
use crate::db::{Db, DbError};
use crate::ingest::alerts::PostableAlert;
use crate::model::Labels;

mod journal;
mod writer;

use writer::Job;
pub use writer::JournalWrites;

/// An alert received from outside.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalAlert {
    /// Its strings shared ([`Labels::with_shared_strings`]), for matchers to find by address.
    pub labels: Labels,
    /// Of `labels`, computed once.
    pub fingerprint: u64,
    pub annotations: Labels,
    /// Times in ms since the epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    /// When it was last received.
    pub updated_at: i64,
    pub generator_url: Option<String>,
    /// Whether `ends_at` is the resolve timeout rather than a time the sender gave.
    pub timeout: bool,
    /// `labels` and `annotations` as JSON objects, encoded once (and shared with the
    /// alert's re-posts): what the journal and the database store and what API listings
    /// copy.
    pub labels_json: Arc<str>,
    pub annotations_json: Arc<str>,
}

impl ExternalAlert {
    /// An alert as received at `now`, with Alertmanager's defaults for missing times; intake
    /// goes through [`ExternalAlerts::receive`], which shares what a re-post did not change.
    #[cfg(test)]
    pub fn received(p: PostableAlert, now: i64, resolve_timeout: Duration) -> ExternalAlert {
        let fingerprint = p.labels.fingerprint();
        Self::re_posted(p, fingerprint, None, now, resolve_timeout)
    }

    /// An alert as received at `now`, perhaps a re-post of `held` (the alert held with the
    /// same fingerprint), whose labels and annotations it shares, with their JSON, where
    /// they are the same: most posts refresh an alert already held.
    fn re_posted(
        p: PostableAlert,
        fingerprint: u64,
        held: Option<&ExternalAlert>,
        now: i64,
        resolve_timeout: Duration,
    ) -> ExternalAlert {
        let starts_at = p.starts_at.or(p.ends_at).unwrap_or(now);
        let (ends_at, timeout) = match p.ends_at {
            Some(e) => (e, false),
            None => (now + resolve_timeout.as_millis() as i64, true),
        };
        let (labels, labels_json) = match held.filter(|h| h.labels == p.labels) {
            Some(h) => (h.labels.clone(), h.labels_json.clone()),
            None => (p.labels.with_shared_strings(), to_json(&p.labels)),
        };
        let (annotations, annotations_json) = match held.filter(|h| h.annotations == p.annotations)
        {
            Some(h) => (h.annotations.clone(), h.annotations_json.clone()),
            None => {
                let json = to_json(&p.annotations);
                (p.annotations, json)
            }
        };
        ExternalAlert {
            fingerprint,
            labels,
            labels_json,
            annotations,
            annotations_json,
            starts_at,
            ends_at,
            updated_at: now,
            generator_url: p.generator_url,
            timeout,
        }
    }

    /// Whether its end has passed.
    pub fn is_resolved(&self, now: i64) -> bool {
        self.ends_at <= now
    }

    /// The alert as the lifecycle, the dispatcher and inhibition see it at `now`: firing
    /// from `startsAt`, resolved at `endsAt` once that has passed.
    pub fn alert(&self, now: i64) -> Alert {
        let resolved = self.is_resolved(now);
        Alert {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            value: None,
            status: if resolved {
                Status::Resolved
            } else {
                Status::Firing
            },
            active_at: self.starts_at,
            fired_at: Some(self.starts_at),
            resolved_at: resolved.then_some(self.ends_at),
            last_seen: self.updated_at,
            hold_until: None,
            generator_url: self.generator_url.clone(),
        }
    }

    /// Combines a re-posted alert with what is known, if their activity overlaps (else the
    /// new one replaces the old), as Alertmanager does: the younger one's contents, the
    /// earliest start, and the latest end unless that end was a timeout.
    fn merge(old: &ExternalAlert, new: ExternalAlert, now: i64) -> ExternalAlert {
        let overlaps = (new.ends_at > old.starts_at && new.ends_at < old.ends_at)
            || (new.starts_at > old.starts_at && new.starts_at < old.ends_at);
        if !overlaps {
            return new;
        }
        // Of the older one only its times count; the younger one is moved, not copied.
        let (older, mut merged) = if new.updated_at < old.updated_at {
            ((new.starts_at, new.ends_at, new.timeout), old.clone())
        } else {
            ((old.starts_at, old.ends_at, old.timeout), new)
        };
        let (older_starts, older_ends, older_timeout) = older;
        merged.starts_at = merged.starts_at.min(older_starts);
        let later_end = older_ends > merged.ends_at;
        if merged.is_resolved(now) {
            if older_ends <= now && later_end {
                merged.ends_at = older_ends;
            }
        } else if later_end && !older_timeout {
            merged.ends_at = older_ends;
        }
        merged
    }
}

/// What one alert's row becomes.
#[derive(Clone)]
enum Write {
    Upsert(Arc<ExternalAlert>),
    Delete(u64),
}

impl Write {
    fn fingerprint(&self) -> u64 {
        match self {
            Write::Upsert(a) => a.fingerprint,
            Write::Delete(fp) => *fp,
        }
    }
}

/// Why received alerts could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storing alerts: {0}")]
    Db(String),
    #[error("the alert writer has stopped")]
    WriterStopped,
}

/// The external alerts, in memory and in the database.
pub struct ExternalAlerts {
    alerts: Arc<Shards>,
    writer: mpsc::Sender<Job>,
    db: Db,
    /// True once the stored alerts are all in memory.
    loaded: watch::Receiver<bool>,
}

/// An alert as received, and as the dispatcher sees it while it fires: built once when it
/// arrives, so that a dispatcher pass over many alerts copies none of them.
struct Held {
    alert: Arc<ExternalAlert>,
    firing: Arc<Alert>,
}

impl Held {
    fn new(alert: Arc<ExternalAlert>) -> Held {
        Held {
            firing: Arc::new(alert.alert(i64::MIN)),
            alert,
        }
    }
}

/// The held alerts in [`SHARDS`] maps by fingerprint, each behind its own lock.
struct Shards(Vec<RwLock<HashMap<u64, Held>>>);

/// Enough that a walk holds any one lock for a small part of its time.
const SHARDS: usize = 64;

type Shard = HashMap<u64, Held>;

impl Shards {
    fn new() -> Shards {
        Shards((0..SHARDS).map(|_| RwLock::default()).collect())
    }

    /// The shard of a fingerprint.
    fn of(fp: u64) -> usize {
        // Mixed first: FNV's low bits follow the last bytes hashed.
        (fp.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % SHARDS
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.0[shard].read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.0[shard].write().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` over every held alert, holding one shard's lock at a time.
    fn each(&self, mut f: impl FnMut(u64, &Held)) {
        for shard in 0..SHARDS {
            for (&fp, h) in self.read(shard).iter() {
                f(fp, h);
            }
        }
    }
}

impl ExternalAlerts {
    /// Opens the external alerts of the database and starts the loader thread, which reads
    /// them (forgetting those resolved too long ago), and the writer thread, which stops
    /// when this is dropped.
    pub fn open(db: &Db, now: i64) -> Result<ExternalAlerts, DbError> {
        db.with(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS external_alerts (
                     fingerprint INTEGER PRIMARY KEY,
                     labels TEXT NOT NULL,
                     annotations TEXT NOT NULL,
                     starts_at INTEGER NOT NULL,
                     ends_at INTEGER NOT NULL,
                     updated_at INTEGER NOT NULL,
                     generator_url TEXT,
                     timeout INTEGER NOT NULL
                 );",
            )
        })?;
        // First: the journal left by the last run goes into the table the loader reads.
        let writer = writer::start(db)?;
        let alerts = Arc::new(Shards::new());
        let (done, loaded) = watch::channel(false);
        let (loader_db, into) = (db.clone(), alerts.clone());
        std::thread::Builder::new()
            .name("external-alerts-loader".into())
            .spawn(move || {
                let started = Instant::now();
                match load(&loader_db, &into, now) {
                    Ok(n) => tracing::info!(alerts = n, took = ?started.elapsed(), "external alerts loaded"),
                    Err(e) => tracing::error!("loading external alerts: {e}; those not yet read are left out"),
                }
                done.send_replace(true);
            })
            .map_err(DbError::Thread)?;
        Ok(ExternalAlerts {
            alerts,
            writer,
            db: db.clone(),
            loaded,
        })
    }

    /// Waits until the stored alerts are all in memory.
    pub async fn loaded(&self) {
        let mut loaded = self.loaded.clone();
        // An error means the loader is gone, and it always says `true` before it goes.
        loaded.wait_for(|l| *l).await.ok();
    }

    /// Whether the stored alerts are all in memory.
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Takes in alerts received at `now` and returns once they are on disk (the journal's,
    /// or the database's).
    /// `resolve_timeout` sets the end of alerts that do not give one.
    pub async fn receive(
        &self,
        posted: Vec<PostableAlert>,
        now: i64,
        resolve_timeout: Duration,
    ) -> Result<(), StoreError> {
        if posted.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        // Encoded before taking the write locks, by as many requests as run at once.
        let received: Vec<ExternalAlert> = posted
            .into_iter()
            .map(|p| {
                let fp = p.labels.fingerprint();
                let held = self
                    .alerts
                    .read(Shards::of(fp))
                    .get(&fp)
                    .map(|h| h.alert.clone());
                ExternalAlert::re_posted(p, fp, held.as_deref(), now, resolve_timeout)
            })
            .collect();
        {
            // Merged and queued under the locks of their shards (taken in order), so the
            // database sees each alert's writes in memory's order.
            let of: Vec<usize> = received.iter().map(|a| Shards::of(a.fingerprint)).collect();
            let mut shards = of.clone();
            shards.sort_unstable();
            shards.dedup();
            let mut locked: Vec<_> = shards.iter().map(|&i| self.alerts.write(i)).collect();
            let loading = !self.is_loaded();
            let mut writes = Vec::with_capacity(received.len());
            for (new, shard) in received.into_iter().zip(of) {
                let fp = new.fingerprint;
                let alerts = &mut locked[shards.partition_point(|&i| i < shard)];
                let stored = match alerts.get(&fp) {
                    Some(old) => Some(old.alert.clone()),
                    // Not read yet by the loader, perhaps.
                    None if loading => self.stored(fp).map_err(StoreError::Db)?.map(Arc::new),
                    None => None,
                };
                let alert = Arc::new(match stored {
                    Some(old) => ExternalAlert::merge(&old, new, now),
                    None => new,
                });
                alerts.insert(fp, Held::new(alert.clone()));
                writes.push(Write::Upsert(alert));
            }
            self.writer
                .send(Job {
                    writes,
                    done: Some(done),
                })
                .map_err(|_| StoreError::WriterStopped)?;
        }
        committed
            .await
            .map_err(|_| StoreError::WriterStopped)?
            .map_err(StoreError::Db)
    }

    /// The stored row of one alert, by fingerprint.
    fn stored(&self, fp: u64) -> Result<Option<ExternalAlert>, String> {
        self.db
            .with(|c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM external_alerts WHERE fingerprint = ?1"),
                    [fp as i64],
                    row,
                )
                .optional()
            })
            .map_err(|e| e.to_string())
    }

    /// Every external alert, as received.
    pub fn snapshot(&self) -> Vec<Arc<ExternalAlert>> {
        let mut out = Vec::new();
        self.alerts.each(|_, h| out.push(h.alert.clone()));
        out
    }

    /// Every external alert as the lifecycle sees it at `now` (firing or resolved), with
    /// its fingerprint. Only the resolved ones are built; firing ones are shared.
    pub fn alerts(&self, now: i64) -> Vec<(u64, Arc<Alert>)> {
        let mut out = Vec::new();
        self.alerts.each(|fp, h| {
            let alert = if h.alert.is_resolved(now) {
                Arc::new(h.alert.alert(now))
            } else {
                h.firing.clone()
            };
            out.push((fp, alert));
        });
        out
    }

    /// How many are firing and how many resolved at `now`.
    pub fn counts(&self, now: i64) -> (usize, usize) {
        let (mut firing, mut resolved) = (0, 0);
        self.alerts.each(|_, h| match h.alert.is_resolved(now) {
            true => resolved += 1,
            false => firing += 1,
        });
        (firing, resolved)
    }

    /// Forgets alerts resolved more than [`RESOLVED_RETENTION`] before `now`, and the shared
    /// label strings that only they held.
    pub fn gc(&self, now: i64) {
        let horizon = now - RESOLVED_RETENTION.as_millis() as i64;
        let mut removed = false;
        for shard in 0..SHARDS {
            // Queued under the shard's lock, like intake's writes, so a deletion cannot
            // overtake a newer alert with the same labels.
            let mut alerts = self.alerts.write(shard);
            let old: Vec<u64> = alerts
                .iter()
                .filter(|(_, h)| h.alert.ends_at < horizon)
                .map(|(fp, _)| *fp)
                .collect();
            if old.is_empty() {
                continue;
            }
            for fp in &old {
                alerts.remove(fp);
            }
            let writes = old.into_iter().map(Write::Delete).collect();
            self.writer.send(Job { writes, done: None }).ok();
            removed = true;
        }
        if removed {
            // Their label strings that nothing else holds leave the interner.
            crate::model::purge_interned();
        }
    }
}

const COLUMNS: &str =
    "fingerprint, labels, annotations, starts_at, ends_at, updated_at, generator_url, timeout";

/// Rows read per batch by the loader, which holds the database only for one batch (a few
/// milliseconds), so intake and startup do not wait for it.
const LOAD_BATCH: i64 = 1_000;

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExternalAlert> {
    let (labels_json, annotations_json): (String, String) = (r.get(1)?, r.get(2)?);
    let (labels_json, annotations_json): (Arc<str>, Arc<str>) =
        (labels_json.into(), annotations_json.into());
    Ok(ExternalAlert {
        // The key it was written under: the fingerprint of its labels.
        fingerprint: r.get::<_, i64>(0)? as u64,
        labels: from_json(&labels_json).with_shared_strings(),
        annotations: from_json(&annotations_json),
        labels_json,
        annotations_json,
        starts_at: r.get(3)?,
        ends_at: r.get(4)?,
        updated_at: r.get(5)?,
        generator_url: r.get(6)?,
        timeout: r.get(7)?,
    })
}

/// The loader: reads the stored alerts in batches of [`LOAD_BATCH`] into `into`, keeping
/// what intake put there meanwhile (it is newer), skipping those resolved too long before
/// `now`, and then deletes those from the database. Returns how many it read.
fn load(db: &Db, into: &Shards, now: i64) -> rusqlite::Result<usize> {
    let horizon = now - RESOLVED_RETENTION.as_millis() as i64;
    let (mut after, mut n) = (None::<i64>, 0);
    loop {
        let batch = db.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM external_alerts
                 WHERE (?1 IS NULL OR fingerprint > ?1) AND ends_at >= ?2
                 ORDER BY fingerprint LIMIT ?3"
            ))?;
            st.query_map(params![after, horizon, LOAD_BATCH], row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let Some(last) = batch.last() else {
            break;
        };
        after = Some(last.fingerprint as i64);
        n += batch.len();
        for a in batch {
            into.write(Shards::of(a.fingerprint))
                .entry(a.fingerprint)
                .or_insert_with(|| Held::new(Arc::new(a)));
        }
    }
    db.with(|c| {
        c.execute(
            "DELETE FROM external_alerts WHERE ends_at < ?1",
            params![horizon],
        )
    })?;
    Ok(n)
}

fn to_json(l: &Labels) -> Arc<str> {
    serde_json::to_string(l).map_or_else(|_| "{}".into(), Arc::from)
}

/// Labels as stored (a JSON object, written in name order): read straight into pairs,
/// which a restart does for every stored alert.
fn from_json(s: &str) -> Labels {
    struct Pairs(Vec<(String, String)>);
    impl<'de> serde::Deserialize<'de> for Pairs {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Pairs;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object of label names and values")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Pairs, A::Error> {
                    let mut pairs = Vec::with_capacity(m.size_hint().unwrap_or(8));
                    while let Some(pair) = m.next_entry()? {
                        pairs.push(pair);
                    }
                    Ok(Pairs(pairs))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_str::<Pairs>(s).map_or_else(|_| Labels::default(), |p| Labels::from_pairs(p.0))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const MIN: i64 = 60_000;
    const TIMEOUT: Duration = Duration::from_secs(300);

    fn posted(name: &str, starts_at: Option<i64>, ends_at: Option<i64>) -> PostableAlert {
        PostableAlert {
            labels: Labels::from_pairs([("alertname", name)]),
            annotations: Labels::from_pairs([("summary", "s")]),
            starts_at,
            ends_at,
            generator_url: Some("http://prometheus/graph".into()),
        }
    }

    fn one(ext: &ExternalAlerts) -> ExternalAlert {
        let all = ext.snapshot();
        assert_eq!(all.len(), 1);
        (*all[0]).clone()
    }

    #[tokio::test]
    async fn missing_times_default_as_in_alertmanager() {
        let ext = ExternalAlerts::open(&Db::in_memory().unwrap(), 0).unwrap();
        ext.receive(vec![posted("A", None, None)], 10 * MIN, TIMEOUT)
            .await
            .unwrap();
        let a = one(&ext);
        assert_eq!(
            (a.starts_at, a.ends_at, a.timeout),
            (10 * MIN, 15 * MIN, true)
        );
        assert_eq!(a.alert(14 * MIN).status, Status::Firing);
        let resolved = a.alert(15 * MIN);
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.resolved_at, Some(15 * MIN));
        assert_eq!(resolved.active_at, 10 * MIN);
        // Only an end given: it starts then.
        let b = ExternalAlert::received(posted("B", None, Some(MIN)), 10 * MIN, TIMEOUT);
        assert_eq!((b.starts_at, b.ends_at, b.timeout), (MIN, MIN, false));
    }

    #[tokio::test]
    async fn a_refresh_keeps_the_start_and_moves_the_end() {
        let ext = ExternalAlerts::open(&Db::in_memory().unwrap(), 0).unwrap();
        // As Prometheus sends: the same start, an end four intervals ahead.
        ext.receive(vec![posted("A", Some(0), Some(4 * MIN))], 0, TIMEOUT)
            .await
            .unwrap();
        ext.receive(vec![posted("A", Some(0), Some(5 * MIN))], MIN, TIMEOUT)
            .await
            .unwrap();
        let a = one(&ext);
        assert_eq!((a.starts_at, a.ends_at, a.updated_at), (0, 5 * MIN, MIN));
        // Resolved: the end Prometheus gives wins over the timeout-free later one.
        ext.receive(vec![posted("A", Some(0), Some(2 * MIN))], 2 * MIN, TIMEOUT)
            .await
            .unwrap();
        let a = one(&ext);
        assert_eq!(a.ends_at, 2 * MIN);
        assert_eq!(a.alert(2 * MIN).status, Status::Resolved);
        // Firing again later: a new instance with its own start.
        ext.receive(vec![posted("A", Some(10 * MIN), None)], 10 * MIN, TIMEOUT)
            .await
            .unwrap();
        let a = one(&ext);
        assert_eq!((a.starts_at, a.ends_at), (10 * MIN, 15 * MIN));
    }

    #[tokio::test]
    async fn a_re_post_shares_what_did_not_change_with_the_alert_held() {
        let ext = ExternalAlerts::open(&Db::in_memory().unwrap(), 0).unwrap();
        ext.receive(vec![posted("A", Some(0), None)], 0, TIMEOUT)
            .await
            .unwrap();
        let first = one(&ext);
        ext.receive(vec![posted("A", Some(0), None)], MIN, TIMEOUT)
            .await
            .unwrap();
        let again = one(&ext);
        assert_eq!(again.updated_at, MIN);
        assert!(Arc::ptr_eq(&first.labels_json, &again.labels_json));
        assert!(Arc::ptr_eq(
            &first.annotations_json,
            &again.annotations_json
        ));
        assert!(std::ptr::eq(
            first.labels.as_slice(),
            again.labels.as_slice()
        ));
        // New annotations are encoded anew; the labels are still shared.
        let changed = PostableAlert {
            annotations: Labels::from_pairs([("summary", "changed")]),
            ..posted("A", Some(0), None)
        };
        ext.receive(vec![changed], 2 * MIN, TIMEOUT).await.unwrap();
        let changed = one(&ext);
        assert_eq!(&*changed.annotations_json, r#"{"summary":"changed"}"#);
        assert_eq!(changed.annotations.get("summary"), Some("changed"));
        assert!(Arc::ptr_eq(&first.labels_json, &changed.labels_json));
    }

    #[tokio::test]
    async fn a_timeout_end_does_not_outlive_a_given_one() {
        let ext = ExternalAlerts::open(&Db::in_memory().unwrap(), 0).unwrap();
        ext.receive(vec![posted("A", Some(0), None)], 0, TIMEOUT)
            .await
            .unwrap();
        ext.receive(vec![posted("A", Some(MIN), Some(2 * MIN))], MIN, TIMEOUT)
            .await
            .unwrap();
        let a = one(&ext);
        assert_eq!((a.starts_at, a.ends_at, a.timeout), (0, 2 * MIN, false));
    }

    /// Muting many alerts reads few distinct strings, and matchers find labels by address:
    /// received and restored alerts hold the shared copies of their names and values.
    #[tokio::test]
    async fn received_and_restored_alerts_share_their_label_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let shared = |ext: &ExternalAlerts| {
            let all = ext.snapshot();
            assert_eq!(all.len(), 2);
            let pair = |a: &ExternalAlert, i: usize| a.labels.as_slice()[i].clone();
            // [alertname, severity]: the names, and the value both alerts have.
            let name = crate::model::shared_name("alertname");
            assert!(all.iter().all(|a| Arc::ptr_eq(&pair(a, 0).0, &name)));
            assert!(Arc::ptr_eq(&pair(&all[0], 1).1, &pair(&all[1], 1).1));
        };
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 0).unwrap();
        let alert = |name: &str| PostableAlert {
            labels: Labels::from_pairs([("alertname", name), ("severity", "page")]),
            ..posted(name, None, None)
        };
        ext.receive(vec![alert("A"), alert("B")], 0, TIMEOUT)
            .await
            .unwrap();
        shared(&ext);
        drop(ext);
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 0).unwrap();
        ext.loaded().await;
        shared(&ext);
    }

    #[tokio::test]
    async fn forgotten_alerts_leave_their_strings_to_the_interner_purge() {
        let ext = ExternalAlerts::open(&Db::in_memory().unwrap(), 0).unwrap();
        let alert = PostableAlert {
            labels: Labels::from_pairs([("alertname", "A"), ("id", "external-gc-purge-test")]),
            ..posted("A", Some(0), Some(MIN))
        };
        ext.receive(vec![alert], 0, TIMEOUT).await.unwrap();
        let value = Arc::downgrade(&one(&ext).labels.as_slice()[1].1);
        ext.gc(MIN + RESOLVED_RETENTION.as_millis() as i64 + 1);
        assert!(ext.snapshot().is_empty());
        assert!(value.upgrade().is_none(), "the interner still holds it");
    }

    #[tokio::test]
    async fn alerts_survive_a_restart_and_old_resolved_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 0).unwrap();
        ext.receive(
            vec![
                posted("Firing", None, None),
                posted("Done", Some(0), Some(MIN)),
            ],
            0,
            TIMEOUT,
        )
        .await
        .unwrap();
        let before = ext.snapshot();
        drop(ext);
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 2 * MIN).unwrap();
        ext.loaded().await;
        let mut after = ext.snapshot();
        after.sort_by_key(|a| a.starts_at);
        assert_eq!(after.len(), 2);
        for a in &before {
            assert!(after.contains(a), "{a:?} lost");
        }
        assert_eq!(ext.counts(2 * MIN), (1, 1));
        let later = MIN + RESOLVED_RETENTION.as_millis() as i64 + 1;
        ext.gc(later);
        assert_eq!(ext.snapshot().len(), 1);
        // The deletion reaches the database (the writer runs it before this job).
        ext.receive(vec![posted("Other", None, None)], later, TIMEOUT)
            .await
            .unwrap();
        drop(ext);
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 0).unwrap();
        ext.loaded().await;
        let names: Vec<String> = ext
            .snapshot()
            .iter()
            .map(|a| a.labels.get("alertname").unwrap().to_string())
            .collect();
        assert!(!names.contains(&"Done".to_string()), "{names:?}");
        assert_eq!(names.len(), 2);
    }

    #[tokio::test]
    async fn alerts_a_crash_left_in_the_journal_are_applied_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let db = Db::open(&path).unwrap();
        drop(ExternalAlerts::open(&db, 0).unwrap());
        // As a killed process leaves it: rounds journaled and answered, not yet in the
        // database, the last one torn while it was written.
        let kept = ExternalAlert::received(posted("Journaled", Some(MIN), None), MIN, TIMEOUT);
        let gone = ExternalAlert::received(posted("Gone", None, None), MIN, TIMEOUT);
        let mut j = journal::Journal::start(dir.path(), 1).unwrap();
        j.append([Write::Upsert(Arc::new(gone.clone()))].iter())
            .unwrap();
        j.append(
            [
                Write::Upsert(Arc::new(kept.clone())),
                Write::Delete(gone.fingerprint),
            ]
            .iter(),
        )
        .unwrap();
        let file = j.path();
        drop(j);
        let mut torn = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        std::io::Write::write_all(&mut torn, b"U\t1\t2").unwrap();

        let ext = ExternalAlerts::open(&db, MIN).unwrap();
        ext.loaded().await;
        assert_eq!(one(&ext), kept);
        assert!(!file.exists(), "an applied journal file is deleted");
        let rows: i64 = db
            .with(|c| c.query_row("SELECT COUNT(*) FROM external_alerts", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn a_refresh_received_while_loading_keeps_the_stored_start_and_the_loader_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.db")).unwrap();
        let stored = ExternalAlerts::open(&db, 0).unwrap();
        stored
            .receive(vec![posted("Firing", Some(MIN), None)], MIN, TIMEOUT)
            .await
            .unwrap();
        drop(stored);
        // Restarted, with the loader not yet run: nothing in memory, not loaded.
        let (_loading, loaded) = watch::channel(false);
        let writer = writer::start(&db).unwrap();
        let ext = ExternalAlerts {
            alerts: Arc::new(Shards::new()),
            writer,
            db: db.clone(),
            loaded,
        };
        ext.receive(vec![posted("Firing", None, None)], 5 * MIN, TIMEOUT)
            .await
            .unwrap();
        let refreshed = one(&ext);
        assert_eq!(refreshed.starts_at, MIN, "the stored start is kept");
        assert_eq!(refreshed.updated_at, 5 * MIN);
        // The loader, running late, keeps the newer alert that intake put in memory.
        assert_eq!(load(&db, &ext.alerts, 5 * MIN).unwrap(), 1);
        assert_eq!(one(&ext), refreshed);
    }

    #[tokio::test]
    async fn a_batch_over_every_shard_is_merged_and_stored_alert_by_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 0).unwrap();
        let batch = |starts_at| -> Vec<PostableAlert> {
            (0..1000)
                .map(|i| posted(&format!("A{i}"), starts_at, None))
                .collect()
        };
        ext.receive(batch(Some(MIN)), MIN, TIMEOUT).await.unwrap();
        let shards: HashSet<usize> = ext
            .snapshot()
            .iter()
            .map(|a| Shards::of(a.fingerprint))
            .collect();
        assert_eq!(shards.len(), SHARDS, "1,000 alerts reach every shard");
        for a in ext.snapshot() {
            let held = ext.alerts.read(Shards::of(a.fingerprint));
            assert!(held.contains_key(&a.fingerprint), "held in its own shard");
        }
        // A refresh without a start keeps each stored start and moves each end.
        ext.receive(batch(None), 3 * MIN, TIMEOUT).await.unwrap();
        drop(ext);
        let ext = ExternalAlerts::open(&Db::open(&path).unwrap(), 3 * MIN).unwrap();
        ext.loaded().await;
        let all = ext.snapshot();
        assert_eq!(all.len(), 1000);
        for a in all {
            assert_eq!(
                (a.starts_at, a.ends_at),
                (MIN, 3 * MIN + TIMEOUT.as_millis() as i64)
            );
        }
        assert_eq!(ext.counts(4 * MIN), (1000, 0));
    }

    #[tokio::test]
    async fn concurrent_requests_share_commits_and_all_land() {
        let ext = Arc::new(ExternalAlerts::open(&Db::in_memory().unwrap(), 0).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let ext = ext.clone();
                tokio::spawn(async move {
                    ext.receive(vec![posted(&format!("A{i}"), None, None)], 0, TIMEOUT)
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(ext.snapshot().len(), 200);
    }
}
