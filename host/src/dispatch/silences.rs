//! Silences, as Alertmanager's: a silence mutes every alert whose labels match all of its
//! matchers, from its start to its end. Created, updated and expired through the Alertmanager
//! API v2, with Alertmanager 0.25's rules and messages; kept in the database, so they
//! survive a restart; forgotten [`RETENTION`] after they expire.
//!
//! A recurring silence (Faultline's extension, Alertmanager's #3339) has a `schedule` in the
//! syntax of time intervals (`[{"weekdays": ["saturday", "sunday"]}]`): between its start and
//! its end it mutes only while the schedule holds, and the API shows it `pending` between
//! its windows, so amtool lists it sensibly.
//!
//! Updating a silence keeps its ID only when nothing that defines it changes: same matchers,
//! and for an active silence the same start. Otherwise the old one is expired and a new one
//! created, so that what muted an alert at any time stays on record.
//!
//! In a cluster, silences are replicated to every instance through etcd
//! (`crate::cluster::replica`): a replicated change is taken as it is, newest wins.
//!
//! "Is this alert silenced?" is asked for every alert on every dispatcher tick and API
//! listing, so the active silences are kept as a [`SilenceIndex`] (a [`MatcherIndex`]),
//! rebuilt only when a silence changes or one starts or ends, and shared as a snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cluster::replica::{Record, Replicated};
use crate::db::{Db, DbError};
use crate::dispatch::time_interval::{TimeInterval, TimeIntervalConfig, TimeSpecConfig};
use crate::model::Labels;
use crate::model::matcher::{MatchOp, Matcher};
use crate::model::matcher::{MatcherIndex, matches_all};

/// How long an expired silence is kept (Alertmanager's `--data.retention` default).
pub const RETENTION: Duration = Duration::from_secs(120 * 3600);

/// Where a silence is in its life at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

/// One matcher of a silence as the API gives it: not yet validated. Serialized as the API
/// shows it (fields in Alertmanager's order) and as the database keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherSpec {
    #[serde(rename = "isEqual")]
    pub is_equal: bool,
    #[serde(rename = "isRegex")]
    pub is_regex: bool,
    pub name: String,
    pub value: String,
}

impl MatcherSpec {
    fn op(&self) -> MatchOp {
        match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        }
    }
}

/// A silence as a client asks for it (times in ms since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct SilenceSpec {
    /// Set to update that silence.
    pub id: Option<String>,
    pub matchers: Vec<MatcherSpec>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    /// When it mutes within its start and end (empty: all the time).
    pub schedule: Vec<TimeSpecConfig>,
}

/// A stored silence.
#[derive(Clone, Debug)]
pub struct Silence {
    pub id: String,
    /// As given, for the API and for comparing updates.
    pub specs: Vec<MatcherSpec>,
    /// Compiled from `specs`.
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
    /// A recurring silence's schedule, compiled; `None`: it mutes all the time.
    pub schedule: Option<TimeInterval>,
}

impl Silence {
    /// Its state at `now`: pending before its start, expired from its end.
    pub fn state(&self, now: i64) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now >= self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    /// Whether it mutes an alert with these labels (whatever its state).
    pub fn matches(&self, labels: &Labels) -> bool {
        matches_all(&self.matchers, labels)
    }

    /// Whether it mutes at `now`: active, and within its schedule if it has one.
    pub fn mutes_at(&self, now: i64) -> bool {
        self.state(now) == SilenceState::Active
            && self.schedule.as_ref().is_none_or(|s| s.contains(now))
    }

    /// The state the API shows at `now`: a recurring silence between its windows is
    /// pending.
    pub fn shown_state(&self, now: i64) -> SilenceState {
        match self.state(now) {
            SilenceState::Active if !self.mutes_at(now) => SilenceState::Pending,
            state => state,
        }
    }

    /// The schedule as given (empty: none).
    pub fn schedule_specs(&self) -> &[TimeSpecConfig] {
        self.schedule
            .as_ref()
            .map_or(&[], |s| s.config.time_intervals.as_slice())
    }
}

/// Compiles a schedule; an empty one is none.
fn schedule(specs: &[TimeSpecConfig]) -> Result<Option<TimeInterval>, String> {
    if specs.is_empty() {
        return Ok(None);
    }
    let config = TimeIntervalConfig {
        name: "schedule".into(),
        time_intervals: specs.to_vec(),
    };
    TimeInterval::new(&config).map(Some).map_err(|e| {
        let at = e.field.trim_start_matches("time_intervals");
        format!("schedule{at}: {}", e.message)
    })
}

/// Why a silence could not be set or expired. Messages are Alertmanager's.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("silence invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The silences, in memory and in the database.
pub struct Silences {
    db: Db,
    all: RwLock<HashMap<String, Arc<Silence>>>,
    /// Bumped by every change, so the index knows it is stale.
    version: AtomicU64,
    index: Mutex<Arc<SilenceIndex>>,
    /// Makes IDs unique within the process.
    counter: AtomicU64,
}

impl Silences {
    /// Loads the silences of the database.
    pub fn open(db: &Db) -> Result<Silences, DbError> {
        let loaded = db.with(|c| -> rusqlite::Result<Vec<Silence>> {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS silences (
                     id TEXT PRIMARY KEY,
                     matchers TEXT NOT NULL,
                     starts_at INTEGER NOT NULL,
                     ends_at INTEGER NOT NULL,
                     updated_at INTEGER NOT NULL,
                     created_by TEXT NOT NULL,
                     comment TEXT NOT NULL,
                     schedule TEXT
                 );",
            )?;
            // Databases from before recurring silences lack the column.
            let has_schedule = c
                .prepare("SELECT 1 FROM pragma_table_info('silences') WHERE name = 'schedule'")?
                .exists([])?;
            if !has_schedule {
                c.execute_batch("ALTER TABLE silences ADD COLUMN schedule TEXT")?;
            }
            let mut st = c.prepare(
                "SELECT id, matchers, starts_at, ends_at, updated_at, created_by, comment,
                        schedule
                 FROM silences",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, specs, starts_at, ends_at, updated_at, created_by, comment, sched) = row?;
                let specs: Vec<MatcherSpec> = match serde_json::from_str(&specs) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(silence = %id, "unreadable matchers, silence skipped: {e}");
                        continue;
                    }
                };
                let sched: Vec<TimeSpecConfig> = sched
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                match compile(&specs).and_then(|m| Ok((m, schedule(&sched)?))) {
                    Ok((matchers, schedule)) => out.push(Silence {
                        id,
                        specs,
                        matchers,
                        starts_at,
                        ends_at,
                        updated_at,
                        created_by,
                        comment,
                        schedule,
                    }),
                    Err(e) => tracing::error!(silence = %id, "invalid silence skipped: {e}"),
                }
            }
            Ok(out)
        })?;
        let all = loaded
            .into_iter()
            .map(|s| (s.id.clone(), Arc::new(s)))
            .collect();
        Ok(Silences {
            db: db.clone(),
            all: RwLock::new(all),
            version: AtomicU64::new(1),
            index: Mutex::new(Arc::new(SilenceIndex::default())),
            counter: AtomicU64::new(0),
        })
    }

    /// A silence by ID.
    pub fn get(&self, id: &str) -> Option<Arc<Silence>> {
        self.read().get(id).cloned()
    }

    /// Every silence, as Alertmanager orders them: active ones by end, then pending ones by
    /// start, then expired ones, most recently ended first.
    pub fn list(&self, now: i64) -> Vec<Arc<Silence>> {
        let mut all: Vec<Arc<Silence>> = self.read().values().cloned().collect();
        all.sort_by_key(|s| {
            let state = s.state(now);
            let key = match state {
                SilenceState::Active => s.ends_at,
                SilenceState::Pending => s.starts_at,
                SilenceState::Expired => -s.ends_at,
            };
            (state, key, s.id.clone())
        });
        all
    }

    /// Creates a silence, or updates the one named by `spec.id`, at `now`; returns its ID,
    /// which is new unless the update kept the silence (see the module documentation).
    pub fn set(&self, spec: SilenceSpec, now: i64) -> Result<String, SilenceError> {
        let (matchers, schedule) = check(&spec).map_err(SilenceError::Invalid)?;
        let mut all = self.write();
        let prev = match &spec.id {
            Some(id) => Some(all.get(id).cloned().ok_or(SilenceError::NotFound)?),
            None => None,
        };
        let mut silence = Silence {
            id: String::new(),
            specs: spec.matchers,
            matchers,
            starts_at: spec.starts_at,
            ends_at: spec.ends_at,
            updated_at: now,
            created_by: spec.created_by,
            comment: spec.comment,
            schedule,
        };
        let mut expired = None;
        match prev {
            Some(prev) if can_update(&prev, &silence, now) => silence.id = prev.id.clone(),
            prev => {
                if let Some(prev) = prev.filter(|p| p.state(now) != SilenceState::Expired) {
                    expired = Some(expire(&prev, now));
                }
                silence.id = self.new_id(now);
                silence.starts_at = silence.starts_at.max(now);
            }
        }
        let silence = Arc::new(silence);
        self.db
            .with(|c| -> rusqlite::Result<()> {
                let tx = c.unchecked_transaction()?;
                if let Some(e) = &expired {
                    save(&tx, e)?;
                }
                save(&tx, &silence)?;
                tx.commit()
            })
            .map_err(DbError::from)?;
        if let Some(e) = expired {
            all.insert(e.id.clone(), Arc::new(e));
        }
        all.insert(silence.id.clone(), silence.clone());
        self.version.fetch_add(1, Ordering::Release);
        Ok(silence.id.clone())
    }

    /// Expires a silence at `now` (a pending one never starts). Expiring an expired silence
    /// changes nothing.
    pub fn expire(&self, id: &str, now: i64) -> Result<(), SilenceError> {
        let mut all = self.write();
        let prev = all.get(id).ok_or(SilenceError::NotFound)?;
        if prev.state(now) == SilenceState::Expired {
            return Ok(());
        }
        let s = expire(prev, now);
        self.db.with(|c| save(c, &s)).map_err(DbError::from)?;
        all.insert(s.id.clone(), Arc::new(s));
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// A number that changes with every change of the silences.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Forgets silences that expired more than [`RETENTION`] ago.
    pub fn gc(&self, now: i64) {
        let horizon = now - RETENTION.as_millis() as i64;
        let mut all = self.write();
        let old: Vec<String> = all
            .values()
            .filter(|s| s.ends_at < horizon)
            .map(|s| s.id.clone())
            .collect();
        if old.is_empty() {
            return;
        }
        let r = self
            .db
            .with(|c| c.execute("DELETE FROM silences WHERE ends_at < ?1", params![horizon]));
        if let Err(e) = r {
            tracing::error!("deleting expired silences: {e}");
            return;
        }
        for id in old {
            all.remove(&id);
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The active silences at `now`, indexed; cheap when nothing changed since the last call.
    pub fn index(&self, now: i64) -> Arc<SilenceIndex> {
        let mut cached = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let version = self.version.load(Ordering::Acquire);
        if cached.version == version && (cached.built_at..cached.valid_until).contains(&now) {
            return cached.clone();
        }
        let all = self.read();
        let mut active = Vec::new();
        let mut valid_until = i64::MAX;
        for s in all.values() {
            match s.state(now) {
                SilenceState::Active => {
                    valid_until = valid_until.min(s.ends_at);
                    if s.schedule.is_some() {
                        // Schedules turn on and off at whole minutes.
                        valid_until = valid_until.min((now.div_euclid(60_000) + 1) * 60_000);
                    }
                    if s.mutes_at(now) {
                        active.push(s.clone());
                    }
                }
                SilenceState::Pending => valid_until = valid_until.min(s.starts_at),
                SilenceState::Expired => {}
            }
        }
        active.sort_by(|a, b| a.id.cmp(&b.id));
        let index = MatcherIndex::new(active.iter().map(|s| s.matchers.as_slice()));
        *cached = Arc::new(SilenceIndex {
            active,
            index,
            version,
            built_at: now,
            valid_until,
        });
        cached.clone()
    }

    /// A UUID (version 4 layout), unique: a hash of the time, the process and a counter.
    fn new_id(&self, now: i64) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut h = Sha256::new();
        h.update(now.to_be_bytes());
        h.update(nanos.to_be_bytes());
        h.update(std::process::id().to_be_bytes());
        h.update(n.to_be_bytes());
        let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or_default();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let x = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &x[..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..]
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Silence>>> {
        self.all.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Silence>>> {
        self.all.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A silence as the instances of a cluster replicate it (its ID and update time travel in
/// the [`Record`]).
#[derive(Serialize, Deserialize)]
struct Replica {
    matchers: Vec<MatcherSpec>,
    starts_at: i64,
    ends_at: i64,
    created_by: String,
    comment: String,
    #[serde(default)]
    schedule: Vec<TimeSpecConfig>,
}

impl Replicated for Silences {
    fn records(&self) -> Vec<Record> {
        self.read()
            .values()
            .map(|s| Record {
                id: s.id.clone(),
                updated_at: s.updated_at,
                expires_at: s.ends_at + RETENTION.as_millis() as i64,
                body: serde_json::to_value(Replica {
                    matchers: s.specs.clone(),
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                    created_by: s.created_by.clone(),
                    comment: s.comment.clone(),
                    schedule: s.schedule_specs().to_vec(),
                })
                .unwrap_or_default(),
            })
            .collect()
    }

    fn merge(&self, record: Record) {
        let id = record.id;
        let silence = serde_json::from_value::<Replica>(record.body)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let matchers = compile(&r.matchers)?;
                Ok(Silence {
                    id: id.clone(),
                    schedule: schedule(&r.schedule)?,
                    specs: r.matchers,
                    matchers,
                    starts_at: r.starts_at,
                    ends_at: r.ends_at,
                    updated_at: record.updated_at,
                    created_by: r.created_by,
                    comment: r.comment,
                })
            });
        let silence = match silence {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(silence = %id, "replicated silence refused: {e}");
                return;
            }
        };
        let mut all = self.write();
        if let Err(e) = self.db.with(|c| save(c, &silence)) {
            tracing::error!(silence = %id, "saving a replicated silence: {e}");
            return;
        }
        all.insert(id, Arc::new(silence));
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// The silences active at one time, indexed by their matchers.
#[derive(Debug, Default)]
pub struct SilenceIndex {
    /// Sorted by ID.
    active: Vec<Arc<Silence>>,
    index: MatcherIndex,
    version: u64,
    built_at: i64,
    /// The first time a silence starts or ends after `built_at`.
    valid_until: i64,
}

impl SilenceIndex {
    /// IDs of the active silences that mute an alert with these labels, sorted.
    pub fn silenced_by(&self, labels: &Labels) -> Vec<String> {
        if self.active.is_empty() {
            return Vec::new();
        }
        self.index
            .candidates(labels)
            .into_iter()
            .map(|i| &self.active[i])
            .filter(|s| s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Whether any active silence mutes an alert with these labels.
    pub fn is_silenced(&self, labels: &Labels) -> bool {
        if self.active.is_empty() {
            return false;
        }
        self.index
            .candidates(labels)
            .into_iter()
            .any(|i| self.active[i].matches(labels))
    }
}

/// Whether `s` is written as a UUID (`8-4-4-4-12` hex digits), as silence IDs are.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Validates and compiles matchers, with Alertmanager's messages.
/// Checks a silence as a client asks for it: its matchers and schedule, compiled, or why not.
pub(crate) fn check(spec: &SilenceSpec) -> Result<(Vec<Matcher>, Option<TimeInterval>), String> {
    let matchers = compile(&spec.matchers)?;
    let schedule = schedule(&spec.schedule)?;
    if spec.ends_at < spec.starts_at {
        return Err("end time must not be before start time".into());
    }
    Ok((matchers, schedule))
}

fn compile(specs: &[MatcherSpec]) -> Result<Vec<Matcher>, String> {
    if specs.is_empty() {
        return Err("at least one matcher required".into());
    }
    let mut out = Vec::with_capacity(specs.len());
    for (i, m) in specs.iter().enumerate() {
        if !crate::model::is_label_name(&m.name) {
            return Err(format!(
                "invalid label matcher {i}: invalid label name {:?}",
                m.name
            ));
        }
        let matcher = Matcher::new(m.name.clone(), m.op(), m.value.clone()).map_err(|reason| {
            format!(
                "invalid label matcher {i}: invalid regular expression {:?}: {reason}",
                m.value
            )
        })?;
        out.push(matcher);
    }
    if out.iter().all(|m| m.matches("")) {
        return Err("at least one matcher must not match the empty string".into());
    }
    Ok(out)
}

/// Whether `new` may replace `prev` under the same ID (Alertmanager's `canUpdate`).
fn can_update(prev: &Silence, new: &Silence, now: i64) -> bool {
    if prev.specs != new.specs || prev.schedule_specs() != new.schedule_specs() {
        return false;
    }
    match prev.state(now) {
        SilenceState::Active => new.starts_at == prev.starts_at && new.ends_at >= now,
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// A copy of an unexpired silence, expired at `now`.
fn expire(s: &Silence, now: i64) -> Silence {
    let mut s = s.clone();
    if s.state(now) == SilenceState::Pending {
        s.starts_at = now;
    }
    s.ends_at = now;
    s.updated_at = now;
    s
}

fn save(c: &rusqlite::Connection, s: &Silence) -> rusqlite::Result<()> {
    let specs = serde_json::to_string(&s.specs).unwrap_or_else(|_| "[]".into());
    let schedule = s
        .schedule
        .as_ref()
        .and_then(|_| serde_json::to_string(s.schedule_specs()).ok());
    c.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, updated_at, created_by, comment,
                               schedule)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers,
             starts_at = excluded.starts_at, ends_at = excluded.ends_at,
             updated_at = excluded.updated_at, created_by = excluded.created_by,
             comment = excluded.comment, schedule = excluded.schedule",
        params![
            s.id,
            specs,
            s.starts_at,
            s.ends_at,
            s.updated_at,
            s.created_by,
            s.comment,
            schedule
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn eq(name: &str, value: &str) -> MatcherSpec {
        MatcherSpec {
            name: name.into(),
            value: value.into(),
            is_regex: false,
            is_equal: true,
        }
    }

    fn spec(matchers: Vec<MatcherSpec>, starts_at: i64, ends_at: i64) -> SilenceSpec {
        SilenceSpec {
            id: None,
            matchers,
            starts_at,
            ends_at,
            created_by: "me".into(),
            comment: "maintenance".into(),
            schedule: Vec::new(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn states_follow_the_clock() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let id = s
            .set(spec(vec![eq("a", "1")], 10 * MIN, 20 * MIN), 0)
            .unwrap();
        let sil = s.get(&id).unwrap();
        assert_eq!(sil.state(0), SilenceState::Pending);
        assert_eq!(sil.state(10 * MIN), SilenceState::Active);
        assert_eq!(sil.state(20 * MIN - 1), SilenceState::Active);
        assert_eq!(sil.state(20 * MIN), SilenceState::Expired);
        let l = labels(&[("a", "1")]);
        assert!(!s.index(0).is_silenced(&l), "pending silences do not mute");
        assert!(
            s.index(10 * MIN).is_silenced(&l),
            "the index notices the start"
        );
        assert_eq!(s.index(15 * MIN).silenced_by(&l), vec![id]);
        assert!(
            !s.index(20 * MIN).is_silenced(&l),
            "the index notices the end"
        );
    }

    #[test]
    fn a_start_in_the_past_becomes_now() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let id = s
            .set(spec(vec![eq("a", "1")], 0, 60 * MIN), 5 * MIN)
            .unwrap();
        let sil = s.get(&id).unwrap();
        assert_eq!((sil.starts_at, sil.updated_at), (5 * MIN, 5 * MIN));
    }

    #[test]
    fn matching_needs_every_matcher_and_treats_missing_labels_as_empty() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let regex = MatcherSpec {
            is_regex: true,
            ..eq("instance", "web-.*")
        };
        let not_eq = MatcherSpec {
            is_equal: false,
            ..eq("env", "prod")
        };
        let id = s
            .set(
                spec(vec![eq("alertname", "Down"), regex, not_eq], 0, MIN),
                0,
            )
            .unwrap();
        let idx = s.index(1);
        assert_eq!(
            idx.silenced_by(&labels(&[("alertname", "Down"), ("instance", "web-1")])),
            vec![id]
        );
        assert!(!idx.is_silenced(&labels(&[("alertname", "Down"), ("instance", "db-1")])));
        assert!(!idx.is_silenced(&labels(&[
            ("alertname", "Down"),
            ("instance", "web-1"),
            ("env", "prod")
        ])));
        assert!(!idx.is_silenced(&labels(&[("instance", "web-1")])));
    }

    #[test]
    fn an_update_keeps_the_id_only_when_matchers_and_active_start_are_unchanged() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let id = s.set(spec(vec![eq("a", "1")], 0, 60 * MIN), 0).unwrap();
        // Longer, same matchers and start: updated in place.
        let same = s
            .set(
                SilenceSpec {
                    id: Some(id.clone()),
                    comment: "longer".into(),
                    ..spec(vec![eq("a", "1")], 0, 120 * MIN)
                },
                MIN,
            )
            .unwrap();
        assert_eq!(same, id);
        assert_eq!(s.get(&id).unwrap().ends_at, 120 * MIN);
        assert_eq!(s.get(&id).unwrap().comment, "longer");
        // Other matchers: the old one expires, a new one takes over.
        let new = s
            .set(
                SilenceSpec {
                    id: Some(id.clone()),
                    ..spec(vec![eq("a", "2")], 0, 120 * MIN)
                },
                2 * MIN,
            )
            .unwrap();
        assert_ne!(new, id);
        assert_eq!(s.get(&id).unwrap().state(2 * MIN), SilenceState::Expired);
        assert_eq!(s.get(&new).unwrap().state(2 * MIN), SilenceState::Active);
        // An expired silence is never updated in place.
        let again = s
            .set(
                SilenceSpec {
                    id: Some(id.clone()),
                    ..spec(vec![eq("a", "1")], 3 * MIN, 120 * MIN)
                },
                3 * MIN,
            )
            .unwrap();
        assert_ne!(again, id);
        assert!(matches!(
            s.set(
                SilenceSpec {
                    id: Some("nope".into()),
                    ..spec(vec![eq("a", "1")], 0, MIN)
                },
                0
            ),
            Err(SilenceError::NotFound)
        ));
    }

    #[test]
    fn expiring_ends_an_active_silence_and_cancels_a_pending_one() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let active = s.set(spec(vec![eq("a", "1")], 0, 60 * MIN), 0).unwrap();
        let pending = s
            .set(spec(vec![eq("a", "1")], 30 * MIN, 60 * MIN), 0)
            .unwrap();
        s.expire(&active, 10 * MIN).unwrap();
        s.expire(&pending, 10 * MIN).unwrap();
        for id in [&active, &pending] {
            let sil = s.get(id).unwrap();
            assert_eq!(sil.state(10 * MIN), SilenceState::Expired);
            assert_eq!(sil.ends_at, 10 * MIN);
            assert_eq!(sil.state(40 * MIN), SilenceState::Expired);
        }
        assert!(!s.index(40 * MIN).is_silenced(&labels(&[("a", "1")])));
        s.expire(&active, 11 * MIN).unwrap();
        assert_eq!(s.get(&active).unwrap().ends_at, 10 * MIN, "no change");
        assert!(matches!(s.expire("nope", 0), Err(SilenceError::NotFound)));
    }

    #[test]
    fn validation_messages_are_alertmanagers() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let err = |m: Vec<MatcherSpec>| s.set(spec(m, 0, MIN), 0).unwrap_err().to_string();
        assert_eq!(
            err(vec![]),
            "silence invalid: at least one matcher required"
        );
        assert_eq!(
            err(vec![eq("a", "")]),
            "silence invalid: at least one matcher must not match the empty string"
        );
        assert_eq!(
            err(vec![eq("a", "1"), eq("a-b", "x")]),
            "silence invalid: invalid label matcher 1: invalid label name \"a-b\""
        );
        let bad_regex = MatcherSpec {
            is_regex: true,
            ..eq("a", "(")
        };
        assert!(err(vec![bad_regex]).starts_with(
            "silence invalid: invalid label matcher 0: invalid regular expression \"(\": "
        ),);
    }

    #[test]
    fn silences_survive_a_restart_and_old_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let s = Silences::open(&Db::open(&path).unwrap()).unwrap();
        let kept = s.set(spec(vec![eq("a", "1")], 0, 60 * MIN), 0).unwrap();
        let old = s.set(spec(vec![eq("b", "1")], 0, MIN), 0).unwrap();
        drop(s);
        let s = Silences::open(&Db::open(&path).unwrap()).unwrap();
        assert_eq!(s.get(&kept).unwrap().specs, vec![eq("a", "1")]);
        assert!(s.index(MIN / 2).is_silenced(&labels(&[("a", "1")])));
        s.gc(MIN + RETENTION.as_millis() as i64 + 1);
        assert!(s.get(&old).is_none());
        assert!(s.get(&kept).is_some());
        drop(s);
        let s = Silences::open(&Db::open(&path).unwrap()).unwrap();
        assert!(s.get(&old).is_none(), "forgotten in the database too");
    }

    #[test]
    fn a_replicated_silence_is_merged_as_it_was_set_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let one = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let mut weekend = spec(vec![eq("a", "1")], 0, 60 * MIN);
        weekend.schedule = serde_json::from_str(r#"[{"weekdays": ["saturday"]}]"#).unwrap();
        let id = one.set(weekend, 0).unwrap();
        let two = Silences::open(&Db::open(&path).unwrap()).unwrap();
        let records = one.records();
        let expires = records[0].expires_at;
        assert_eq!(expires, 60 * MIN + RETENTION.as_millis() as i64);
        two.merge(records[0].clone());
        assert_eq!(two.records(), records, "the same record on both");
        drop(two);
        let two = Silences::open(&Db::open(&path).unwrap()).unwrap();
        let kept = two.get(&id).expect("saved in the database");
        assert_eq!(
            kept.schedule_specs(),
            one.get(&id).unwrap().schedule_specs()
        );
        // Expired on one, the change replaces the copy on the other.
        one.expire(&id, 10 * MIN).unwrap();
        two.merge(one.records()[0].clone());
        assert_eq!(two.get(&id).unwrap().ends_at, 10 * MIN);
        // A record that cannot be a silence is refused, not merged.
        let mut bad = one.records()[0].clone();
        bad.id = "other".into();
        bad.body["matchers"] = serde_json::json!([]);
        two.merge(bad);
        assert!(two.get("other").is_none());
    }

    #[test]
    fn a_recurring_silence_mutes_only_while_its_schedule_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        // A database from before schedules: the column is added on opening.
        Db::open(&path)
            .unwrap()
            .with(|c| {
                c.execute_batch(
                    "CREATE TABLE silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL,
                     starts_at INTEGER NOT NULL, ends_at INTEGER NOT NULL,
                     updated_at INTEGER NOT NULL, created_by TEXT NOT NULL,
                     comment TEXT NOT NULL)",
                )
            })
            .unwrap();
        let s = Silences::open(&Db::open(&path).unwrap()).unwrap();
        // 1970-01-01 was a Thursday: the first hour of each day, on Thursdays.
        let weekly: Vec<TimeSpecConfig> = serde_json::from_str(
            r#"[{"weekdays": ["thursday"], "times": [{"start_time": "00:00", "end_time": "01:00"}]}]"#,
        )
        .unwrap();
        let week = 7 * 24 * 60 * MIN;
        let id = s
            .set(
                SilenceSpec {
                    schedule: weekly.clone(),
                    ..spec(vec![eq("a", "1")], 0, 2 * week)
                },
                0,
            )
            .unwrap();
        let a1 = labels(&[("a", "1")]);
        assert!(s.index(30 * MIN).is_silenced(&a1));
        assert!(
            !s.index(90 * MIN).is_silenced(&a1),
            "the index is rebuilt as it ends"
        );
        assert!(s.index(week + 10 * MIN).is_silenced(&a1), "a week later");
        let silence = s.get(&id).unwrap();
        assert_eq!(silence.shown_state(90 * MIN), SilenceState::Pending);
        assert_eq!(silence.shown_state(30 * MIN), SilenceState::Active);
        assert_eq!(silence.state(90 * MIN), SilenceState::Active);
        drop(s);
        let s = Silences::open(&Db::open(&path).unwrap()).unwrap();
        assert_eq!(s.get(&id).unwrap().schedule_specs(), weekly.as_slice());
        assert!(
            s.index(week + 10 * MIN).is_silenced(&a1),
            "kept across a restart"
        );
        let bad: Vec<TimeSpecConfig> =
            serde_json::from_str(r#"[{"weekdays": ["friday:monday"]}]"#).unwrap();
        let err = s
            .set(
                SilenceSpec {
                    schedule: bad,
                    ..spec(vec![eq("a", "1")], 0, week)
                },
                0,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "silence invalid: schedule[0].weekdays: start day cannot be before end day"
        );
    }

    #[test]
    fn ids_are_uuids_and_unique() {
        let s = Silences::open(&Db::in_memory().unwrap()).unwrap();
        let a = s.new_id(0);
        let b = s.new_id(0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(is_uuid(&a), "{a}");
        assert!(!is_uuid("nope"));
    }
}
