//! The durable outbox of recovery actions, their safety rails and the decision log.
//!
//! When the dispatcher decides an incident goes to a receiver, [`Outbox::plan`] applies the
//! receiver's rails (target, minimum suspect score, cooldown, rate limit, dry-run) and, if
//! the action may run, writes it to the database *before* anything is attempted. The
//! delivery loop ([`run`]) attempts due actions, one at a time per (receiver, target): a
//! later action on a target waits until the earlier one is done or dead. It retries transient failures with exponential backoff and jitter until the
//! receiver's `max_attempts` or `max_age`, and then moves the action to the dead-letter
//! list, from which an operator can retry it. A crash between the write and the delivery
//! loses nothing: on restart the action is attempted again with the same idempotency key.
//!
//! Every decision (queued, done, retry, failed, dead, skipped and why, dry-run) is recorded
//! in the `decisions` table and served by the API.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::db::Db;
use crate::metrics::Metrics;
use crate::model::Labels;
use crate::rules::{Receiver, RuleSet};
use crate::runtime::{Failure, from_wit_labels, to_wit_labels, types};

/// States of an action.
pub mod state {
    /// Waiting for its next attempt.
    pub const PENDING: &str = "pending";
    /// Carried out.
    pub const DONE: &str = "done";
    /// Given up: the dead-letter list.
    pub const DEAD: &str = "dead";
    /// Recorded, not performed (the receiver is in dry-run).
    pub const DRY_RUN: &str = "dry-run";
    /// Every state.
    pub const ALL: [&str; 4] = [PENDING, DONE, DEAD, DRY_RUN];
}

/// A label pair, as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    pub name: String,
    pub value: String,
}

/// Label lists as JSON objects (`{"instance": "node4"}`), as Alertmanager shows labels;
/// the order of the pairs is kept.
mod label_map {
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Pair;

    pub fn serialize<S: Serializer>(pairs: &[Pair], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for p in pairs {
            m.serialize_entry(&p.name, &p.value)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Pair>, D::Error> {
        let map = serde_json::Map::deserialize(d)?;
        Ok(map
            .into_iter()
            .map(|(name, v)| Pair {
                name,
                value: v.as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }
}

fn pairs(labels: &[types::Label]) -> Vec<Pair> {
    labels
        .iter()
        .map(|l| Pair {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn wit_pairs(p: &[Pair]) -> Vec<types::Label> {
    p.iter()
        .map(|l| types::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// An alert of an incident, as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    #[serde(with = "label_map")]
    pub labels: Vec<Pair>,
    #[serde(with = "label_map")]
    pub annotations: Vec<Pair>,
    pub value: Option<f64>,
    pub state: String,
    pub active_at: i64,
    pub resolved_at: Option<i64>,
    pub generator_url: Option<String>,
}

/// An incident, as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentRecord {
    pub id: String,
    pub group_key: String,
    #[serde(with = "label_map")]
    pub group_labels: Vec<Pair>,
    pub status: String,
    pub alerts: Vec<AlertRecord>,
}

/// A suspect, as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SuspectRecord {
    #[serde(with = "label_map")]
    pub labels: Vec<Pair>,
    pub score: f64,
    pub reason: String,
}

impl IncidentRecord {
    pub fn from_wit(i: &types::Incident) -> Self {
        IncidentRecord {
            id: i.id.clone(),
            group_key: i.group_key.clone(),
            group_labels: pairs(&i.group_labels),
            status: i.status.clone(),
            alerts: i
                .alerts
                .iter()
                .map(|a| AlertRecord {
                    labels: pairs(&a.labels),
                    annotations: pairs(&a.annotations),
                    value: a.value,
                    state: a.state.clone(),
                    active_at: a.active_at,
                    resolved_at: a.resolved_at,
                    generator_url: a.generator_url.clone(),
                })
                .collect(),
        }
    }

    pub fn to_wit(&self) -> types::Incident {
        types::Incident {
            id: self.id.clone(),
            group_key: self.group_key.clone(),
            group_labels: wit_pairs(&self.group_labels),
            status: self.status.clone(),
            alerts: self
                .alerts
                .iter()
                .map(|a| types::Alert {
                    labels: wit_pairs(&a.labels),
                    annotations: wit_pairs(&a.annotations),
                    value: a.value,
                    state: a.state.clone(),
                    active_at: a.active_at,
                    resolved_at: a.resolved_at,
                    generator_url: a.generator_url.clone(),
                })
                .collect(),
        }
    }
}

impl SuspectRecord {
    pub fn from_wit(s: &types::Suspect) -> Self {
        SuspectRecord {
            labels: pairs(&s.labels),
            score: s.score,
            reason: s.reason.clone(),
        }
    }

    pub fn to_wit(&self) -> types::Suspect {
        types::Suspect {
            labels: wit_pairs(&self.labels),
            score: self.score,
            reason: self.reason.clone(),
        }
    }

    fn labels(&self) -> Labels {
        Labels::from_pairs(
            self.labels
                .iter()
                .map(|p| (p.name.clone(), p.value.clone())),
        )
    }
}

/// What an action hands its plugin: the incident and its suspects (the target first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payload {
    pub incident: IncidentRecord,
    pub suspects: Vec<SuspectRecord>,
}

/// One action of the outbox.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: i64,
    pub receiver: String,
    pub group_key: String,
    pub incident_id: String,
    /// What the action acts on: the target suspect's labels, or the group key.
    pub target: String,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: u32,
    pub created_at: i64,
    pub next_at: i64,
    pub updated_at: i64,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub payload: String,
}

/// One recorded decision.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub id: i64,
    pub at: i64,
    pub receiver: String,
    pub incident_id: String,
    pub target: String,
    pub action_id: Option<i64>,
    /// queued, done, retry, failed, dead, skipped, dry-run or retried.
    pub decision: String,
    pub reason: String,
}

/// Filters of the decisions listing.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DecisionQuery {
    pub receiver: Option<String>,
    pub incident: Option<String>,
    pub decision: Option<String>,
    pub limit: Option<usize>,
}

/// The outbox, its in-flight set and its wake-up.
pub struct Outbox {
    db: Db,
    metrics: Arc<Metrics>,
    /// Wakes the delivery loop when an action is queued or finishes.
    wake: Notify,
    in_flight: Mutex<InFlight>,
}

/// Actions being attempted, and the (receiver, target) pairs they hold.
#[derive(Default)]
struct InFlight {
    actions: HashSet<i64>,
    targets: HashSet<(String, String)>,
}

/// What the dispatcher hands [`Outbox::plan`].
pub struct Planned<'a> {
    pub receiver: &'a Receiver,
    pub incident: &'a types::Incident,
    /// Ranked best first.
    pub suspects: &'a [types::Suspect],
    /// Fingerprints, states and activation times of the alerts, for the idempotency key.
    pub alerts_key: &'a [u8],
}

const ACTION_COLUMNS: &str = "id, receiver, group_key, incident_id, target, idempotency_key, \
     state, attempts, created_at, next_at, updated_at, last_error, payload";

fn action_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Action> {
    Ok(Action {
        id: r.get(0)?,
        receiver: r.get(1)?,
        group_key: r.get(2)?,
        incident_id: r.get(3)?,
        target: r.get(4)?,
        idempotency_key: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        created_at: r.get(8)?,
        next_at: r.get(9)?,
        updated_at: r.get(10)?,
        last_error: r.get(11)?,
        payload: r.get(12)?,
    })
}

impl Outbox {
    pub fn new(db: Db, metrics: Arc<Metrics>) -> Outbox {
        Outbox {
            db,
            metrics,
            wake: Notify::new(),
            in_flight: Mutex::new(InFlight::default()),
        }
    }

    fn record(
        &self,
        c: &rusqlite::Connection,
        at: i64,
        (receiver, incident, target): (&str, &str, &str),
        action_id: Option<i64>,
        decision: &str,
        reason: &str,
    ) -> rusqlite::Result<()> {
        match decision {
            "skipped" | "dead" | "failed" => {
                tracing::warn!(receiver, incident, target, decision, "{reason}")
            }
            _ => tracing::info!(receiver, incident, target, decision, "{reason}"),
        }
        self.metrics.inc(
            "faultline_recovery_decisions_total",
            &[("receiver", receiver), ("decision", decision)],
        );
        c.execute(
            "INSERT INTO decisions (at, receiver, incident_id, target, action_id, decision, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![at, receiver, incident, target, action_id, decision, reason],
        )
        .map(|_| ())
    }

    /// Applies the receiver's rails to an incident and, if the action may run, writes it to
    /// the outbox. Returns the action's id when one was written (dry-run actions included).
    pub fn plan(&self, p: Planned<'_>, now: i64) -> Option<i64> {
        let r = p.receiver;
        let rails = &r.rails;
        let incident = &p.incident.id;
        let skip = |target: &str, reason: String| {
            let res = self.db.with(|c| {
                self.record(
                    c,
                    now,
                    (&r.name, incident, target),
                    None,
                    "skipped",
                    &reason,
                )
            });
            if let Err(e) = res {
                tracing::error!(receiver = %r.name, "recording a decision: {e}");
            }
            None
        };
        if p.incident.status == "resolved" && !r.send_resolved {
            return skip(
                "",
                "the incident resolved, and resolved incidents are not sent (send_resolved = false)"
                    .into(),
            );
        }
        let min_score = rails.min_score.unwrap_or(f64::NEG_INFINITY);
        let mut suspects: Vec<SuspectRecord> = p
            .suspects
            .iter()
            .filter(|s| s.score >= min_score)
            .map(SuspectRecord::from_wit)
            .collect();
        let target = if !rails.target.is_empty() {
            let found = suspects.iter().position(|s| {
                let l = s.labels();
                rails.target.iter().all(|t| l.get(t).is_some())
            });
            let Some(i) = found else {
                return skip(
                    "",
                    format!(
                        "no suspect with labels {:?}{} to act on",
                        rails.target,
                        rails
                            .min_score
                            .map(|m| format!(" scoring at least {m}"))
                            .unwrap_or_default()
                    ),
                );
            };
            let best = suspects.remove(i);
            let l = best.labels();
            let target = Labels::from_pairs(
                rails
                    .target
                    .iter()
                    .map(|t| (t.clone(), l.get(t).unwrap_or_default().to_string())),
            );
            suspects.insert(0, best);
            target.to_string()
        } else if let Some(best) = suspects.first() {
            best.labels().to_string()
        } else if rails.min_score.is_some() {
            return skip(
                "",
                format!(
                    "no suspect scoring at least {min_score} ({} suspects below)",
                    p.suspects.len()
                ),
            );
        } else {
            p.incident.group_key.clone()
        };
        let mut h = Sha256::new();
        h.update(r.name.as_bytes());
        h.update([0]);
        h.update(p.incident.group_key.as_bytes());
        h.update([0]);
        h.update(p.alerts_key);
        h.update([0]);
        h.update(target.as_bytes());
        let key = hex::encode(&h.finalize()[..16]);
        let payload = serde_json::to_string(&Payload {
            incident: IncidentRecord::from_wit(p.incident),
            suspects,
        })
        .unwrap_or_default();
        let res = self.db.with(|c| -> rusqlite::Result<Option<i64>> {
            let tx = c.unchecked_transaction()?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT id FROM outbox WHERE idempotency_key = ?1",
                    [&key],
                    |row| row.get(0),
                )
                .optional()?;
            if exists.is_some() {
                // Already planned (a restart re-planned it): at most once in the outbox.
                return Ok(None);
            }
            let who = (r.name.as_str(), incident.as_str(), target.as_str());
            let counted = "('pending', 'done', 'dead', 'dry-run')";
            if let Some(cooldown) = rails.cooldown {
                let last: Option<i64> = tx
                    .query_row(
                        &format!(
                            "SELECT MAX(created_at) FROM outbox WHERE receiver = ?1 AND target = ?2
                             AND state IN {counted}"
                        ),
                        params![r.name, target],
                        |row| row.get(0),
                    )
                    .optional()?
                    .flatten();
                if let Some(last) = last.filter(|l| now - l < cooldown.0.as_millis() as i64) {
                    let reason = format!(
                        "cooldown: the last action on {target} was {}s ago (cooldown {cooldown})",
                        (now - last) / 1000
                    );
                    self.record(&tx, now, who, None, "skipped", &reason)?;
                    tx.commit()?;
                    return Ok(None);
                }
            }
            if let Some(limit) = rails.rate_limit {
                let n: u32 = tx.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM outbox WHERE receiver = ?1 AND target = ?2
                         AND created_at > ?3 AND state IN {counted}"
                    ),
                    params![r.name, target, now - limit.per.as_millis() as i64],
                    |row| row.get(0),
                )?;
                if n >= limit.count {
                    let reason = format!(
                        "rate limit: {n} actions on {target} in the last {} (at most {})",
                        crate::rules::duration::PromDuration(limit.per),
                        limit.count
                    );
                    self.record(&tx, now, who, None, "skipped", &reason)?;
                    tx.commit()?;
                    return Ok(None);
                }
            }
            let st = if rails.dry_run {
                state::DRY_RUN
            } else {
                state::PENDING
            };
            tx.execute(
                "INSERT INTO outbox (receiver, group_key, incident_id, target, idempotency_key,
                     payload, state, attempts, created_at, next_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?8)",
                params![
                    r.name,
                    p.incident.group_key,
                    incident,
                    target,
                    key,
                    payload,
                    st,
                    now
                ],
            )?;
            let id = tx.last_insert_rowid();
            if rails.dry_run {
                let reason = format!(
                    "dry-run: would run {} ({}) on {target} for incident {incident} ({}); nothing done",
                    r.name, r.plugin.name, p.incident.status
                );
                self.record(&tx, now, who, Some(id), "dry-run", &reason)?;
            } else {
                let reason = format!(
                    "queued {} ({}) on {target}, idempotency key {key}",
                    r.name, r.plugin.name
                );
                self.record(&tx, now, who, Some(id), "queued", &reason)?;
            }
            tx.commit()?;
            Ok(Some(id))
        });
        match res {
            Ok(id) => {
                if id.is_some() && !rails.dry_run {
                    self.wake.notify_one();
                }
                id
            }
            Err(e) => {
                tracing::error!(receiver = %r.name, incident, "writing the outbox: {e}");
                None
            }
        }
    }

    /// Actions in a state (all when `None`), newest first.
    pub fn actions(&self, state: Option<&str>, limit: usize) -> Vec<Action> {
        self.db
            .with(|c| {
                let mut st = c.prepare(&format!(
                    "SELECT {ACTION_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1)
                     ORDER BY id DESC LIMIT ?2"
                ))?;
                st.query_map(params![state, limit as i64], action_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading the outbox: {e}");
                Vec::new()
            })
    }

    /// One action with its payload.
    pub fn action(&self, id: i64) -> Option<(Action, Payload)> {
        self.db
            .with(|c| {
                c.query_row(
                    &format!("SELECT {ACTION_COLUMNS} FROM outbox WHERE id = ?1"),
                    [id],
                    action_row,
                )
                .optional()
            })
            .ok()
            .flatten()
            .and_then(|a| {
                let p = serde_json::from_str(&a.payload).ok()?;
                Some((a, p))
            })
    }

    /// Recorded decisions, newest first.
    pub fn decisions(&self, q: &DecisionQuery) -> Vec<Decision> {
        self.db
            .with(|c| {
                let mut st = c.prepare(
                    "SELECT id, at, receiver, incident_id, target, action_id, decision, reason
                     FROM decisions WHERE (?1 IS NULL OR receiver = ?1)
                     AND (?2 IS NULL OR incident_id = ?2) AND (?3 IS NULL OR decision = ?3)
                     ORDER BY id DESC LIMIT ?4",
                )?;
                st.query_map(
                    params![
                        q.receiver,
                        q.incident,
                        q.decision,
                        q.limit.unwrap_or(1000) as i64
                    ],
                    |r| {
                        Ok(Decision {
                            id: r.get(0)?,
                            at: r.get(1)?,
                            receiver: r.get(2)?,
                            incident_id: r.get(3)?,
                            target: r.get(4)?,
                            action_id: r.get(5)?,
                            decision: r.get(6)?,
                            reason: r.get(7)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading decisions: {e}");
                Vec::new()
            })
    }

    /// Puts a dead-lettered action back in the queue, with a fresh attempt count (its
    /// idempotency key stays). Errors say why not.
    pub fn retry(&self, id: i64, now: i64) -> Result<Action, RetryError> {
        let res = self
            .db
            .with(|c| -> rusqlite::Result<Result<(), RetryError>> {
                let tx = c.unchecked_transaction()?;
                let row: Option<(String, String, String, String)> = tx
                    .query_row(
                        "SELECT state, receiver, incident_id, target FROM outbox WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((st, receiver, incident, target)) = row else {
                    return Ok(Err(RetryError::NotFound));
                };
                if st != state::DEAD {
                    return Ok(Err(RetryError::NotDead(st)));
                }
                tx.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, created_at = ?2,
                 next_at = ?2, updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                self.record(
                    &tx,
                    now,
                    (&receiver, &incident, &target),
                    Some(id),
                    "retried",
                    "moved back from the dead-letter list by an operator",
                )?;
                tx.commit()?;
                Ok(Ok(()))
            });
        match res {
            Ok(Ok(())) => {
                self.wake.notify_one();
                self.action(id).map(|(a, _)| a).ok_or(RetryError::NotFound)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(RetryError::Db(e.to_string())),
        }
    }

    fn due(&self, now: i64) -> Vec<Action> {
        self.db
            .with(|c| {
                // Only the oldest unfinished action of a (receiver, target) is due: a later
                // one waits until it is done or dead, retries included.
                let mut st = c.prepare(&format!(
                    "SELECT {ACTION_COLUMNS} FROM outbox o WHERE state = 'pending'
                     AND next_at <= ?1 AND NOT EXISTS (SELECT 1 FROM outbox e
                         WHERE e.receiver = o.receiver AND e.target = o.target
                         AND e.state = 'pending' AND e.id < o.id)
                     ORDER BY id LIMIT 1000"
                ))?;
                st.query_map([now], action_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| {
                tracing::error!("reading the outbox: {e}");
                Vec::new()
            })
    }

    /// Whether the action is still as it was read: pending, with the same attempt count.
    /// The delivery loop reads due actions before the attempts it started have finished,
    /// so a row it read may already be done; only a row still as read is attempted.
    fn claim(&self, a: &Action) -> bool {
        self.db
            .with(|c| {
                c.execute(
                    "UPDATE outbox SET updated_at = ?3
                     WHERE id = ?1 AND state = 'pending' AND attempts = ?2",
                    params![a.id, a.attempts, crate::now_ms()],
                )
            })
            .is_ok_and(|n| n == 1)
    }

    /// Records an attempt's result.
    fn finish(&self, a: &Action, st: &str, next_at: i64, decision: &str, reason: &str) {
        let now = crate::now_ms();
        let res = self.db.with(|c| -> rusqlite::Result<()> {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "UPDATE outbox SET state = ?2, attempts = ?3, next_at = ?4, updated_at = ?5,
                 last_error = ?6 WHERE id = ?1",
                params![
                    a.id,
                    st,
                    a.attempts,
                    next_at,
                    now,
                    (decision != "done").then_some(reason)
                ],
            )?;
            self.record(
                &tx,
                now,
                (&a.receiver, &a.incident_id, &a.target),
                Some(a.id),
                decision,
                reason,
            )?;
            tx.commit()
        });
        if let Err(e) = res {
            tracing::error!(receiver = %a.receiver, action = a.id, "writing the outbox: {e}");
        }
    }

    /// Sets the `faultline_outbox_actions` gauges from the table (when `/metrics` is read).
    pub fn export_metrics(&self) {
        let counts: BTreeMap<String, i64> = self
            .db
            .with(|c| {
                let mut st = c.prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<BTreeMap<_, _>>>()
            })
            .unwrap_or_default();
        for st in state::ALL {
            self.metrics.set(
                "faultline_outbox_actions",
                &[("state", st)],
                counts.get(st).copied().unwrap_or(0) as f64,
            );
        }
    }
}

/// Why an action could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no such action")]
    NotFound,
    #[error("only dead-lettered actions can be retried; this one is {0}")]
    NotDead(String),
    #[error("database: {0}")]
    Db(String),
}

/// Delay before the attempt after `attempt`: exponential from 500 ms, capped at a minute,
/// with up to 25% jitter so that many retries do not arrive together.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(8).saturating_sub(1));
    let base = base.min(Duration::from_secs(60));
    let jitter = (crate::now_ms() as u64 % 1000) as f64 / 4000.0;
    base.mul_f64(1.0 + jitter)
}

/// The delivery loop: attempts due actions until the process ends. `rules` gives the current
/// receivers (reloads take effect at the next attempt).
pub async fn run(
    outbox: Arc<Outbox>,
    rules: impl Fn() -> Arc<RuleSet> + Send + Sync + 'static,
    external_url: String,
) {
    let rules = Arc::new(rules);
    loop {
        let now = crate::now_ms();
        let current = rules();
        for a in outbox.due(now) {
            let slot = (a.receiver.clone(), a.target.clone());
            {
                let mut f = outbox.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                // At most one action in flight per target: the others wait their turn.
                if f.actions.contains(&a.id) || f.targets.contains(&slot) {
                    continue;
                }
                f.actions.insert(a.id);
                f.targets.insert(slot.clone());
            }
            let receiver = current.receivers.get(&a.receiver).cloned();
            let ob = outbox.clone();
            let url = external_url.clone();
            tokio::spawn(async move {
                attempt(&ob, a.clone(), receiver, url).await;
                let mut f = ob.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                f.actions.remove(&a.id);
                f.targets.remove(&slot);
                drop(f);
                ob.wake.notify_one();
            });
        }
        let next = outbox
            .db
            .with(|c| {
                // Waiting actions become due when the one before them finishes, which
                // wakes this loop: only the first of each target counts here.
                c.query_row(
                    "SELECT MIN(next_at) FROM outbox o WHERE state = 'pending'
                     AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.receiver = o.receiver
                         AND e.target = o.target AND e.state = 'pending' AND e.id < o.id)",
                    [],
                    |r| r.get::<_, Option<i64>>(0),
                )
            })
            .ok()
            .flatten();
        let wait = next.map_or(Duration::from_secs(1), |n| {
            Duration::from_millis((n - crate::now_ms()).clamp(10, 1000) as u64)
        });
        tokio::select! {
            _ = outbox.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn attempt(
    outbox: &Outbox,
    mut a: Action,
    receiver: Option<Arc<Receiver>>,
    external_url: String,
) {
    if !outbox.claim(&a) {
        return;
    }
    let Some(receiver) = receiver else {
        let reason = format!(
            "receiver {:?} no longer exists in the rules: dead-lettered",
            a.receiver
        );
        outbox.finish(&a, state::DEAD, a.next_at, "dead", &reason);
        return;
    };
    let payload: Payload = match serde_json::from_str(&a.payload) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("unreadable action payload: {e}");
            outbox.finish(&a, state::DEAD, a.next_at, "dead", &reason);
            return;
        }
    };
    a.attempts += 1;
    let input = types::RecoverInput {
        now: crate::now_ms(),
        incident: payload.incident.to_wit(),
        suspects: payload.suspects.iter().map(SuspectRecord::to_wit).collect(),
        attempt: a.attempts,
        idempotency_key: a.idempotency_key.clone(),
        receiver: a.receiver.clone(),
        external_url,
    };
    let r = receiver.clone();
    let result = tokio::task::spawn_blocking(move || {
        r.instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recover(&input)
    })
    .await;
    let name = &receiver.name;
    let m = &outbox.metrics;
    m.inc(
        "faultline_plugin_calls_total",
        &[("plugin", &receiver.plugin.name), ("world", "recovery")],
    );
    let retry_reason = match result {
        Ok(Ok(types::Outcome::Done(msg))) => {
            m.inc(
                "faultline_notifications_total",
                &[("receiver", name), ("outcome", "done")],
            );
            outbox.finish(&a, state::DONE, a.next_at, "done", &msg);
            return;
        }
        Ok(Ok(types::Outcome::Failed(msg))) => {
            m.inc(
                "faultline_notifications_total",
                &[("receiver", name), ("outcome", "failed")],
            );
            let reason = format!("the plugin failed permanently: {msg}");
            outbox.finish(&a, state::DEAD, a.next_at, "failed", &reason);
            return;
        }
        Ok(Ok(types::Outcome::RetryLater(msg))) => msg,
        Ok(Err(e)) if matches!(e.failure, Failure::Params(_)) => {
            outbox.finish(&a, state::DEAD, a.next_at, "failed", &e.to_string());
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("recovery task failed: {e}"),
    };
    m.inc(
        "faultline_notifications_total",
        &[("receiver", name), ("outcome", "retry")],
    );
    let now = crate::now_ms();
    let age = Duration::from_millis((now - a.created_at).max(0) as u64);
    if a.attempts >= receiver.max_attempts || age >= receiver.max_age {
        m.inc(
            "faultline_notifications_total",
            &[("receiver", name), ("outcome", "gave_up")],
        );
        let reason = format!(
            "gave up after {} attempts over {}s (max_attempts {}, max_age {}): {retry_reason}",
            a.attempts,
            age.as_secs(),
            receiver.max_attempts,
            crate::rules::duration::PromDuration(receiver.max_age)
        );
        outbox.finish(&a, state::DEAD, a.next_at, "dead", &reason);
        return;
    }
    let next = now + backoff(a.attempts).as_millis() as i64;
    let reason = format!("attempt {} failed, will retry: {retry_reason}", a.attempts);
    outbox.finish(&a, state::PENDING, next, "retry", &reason);
}

/// The key of an incident's alerts for idempotency: fingerprints, states and activation
/// times, so a new episode of the same alerts is a new action.
pub fn alerts_key(alerts: &[&crate::alerts::Alert]) -> Vec<u8> {
    let mut out = Vec::with_capacity(alerts.len() * 24);
    for a in alerts {
        out.extend(a.labels.fingerprint().to_be_bytes());
        out.extend(a.status.as_str().as_bytes());
        out.extend(a.active_at.to_be_bytes());
    }
    out
}

/// Merges suspects from several localizers: the same label set named twice combines its
/// scores as independent evidence (1 - Π(1 - s)) and joins the reasons; best first.
pub fn merge_suspects(lists: Vec<(String, Vec<types::Suspect>)>) -> Vec<types::Suspect> {
    let mut merged: Vec<(Labels, types::Suspect)> = Vec::new();
    for (source, list) in lists {
        for s in list {
            if !s.score.is_finite() {
                continue;
            }
            let score = s.score.clamp(0.0, 1.0);
            let labels = from_wit_labels(&s.labels);
            let reason = format!("{source}: {}", s.reason);
            match merged.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, m)) => {
                    m.score = 1.0 - (1.0 - m.score) * (1.0 - score);
                    m.reason = format!("{}; {reason}", m.reason);
                }
                None => merged.push((
                    labels.clone(),
                    types::Suspect {
                        labels: to_wit_labels(&labels),
                        score,
                        reason,
                    },
                )),
            }
        }
    }
    let mut out: Vec<types::Suspect> = merged.into_iter().map(|(_, s)| s).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suspect(l: &[(&str, &str)], score: f64) -> types::Suspect {
        types::Suspect {
            labels: to_wit_labels(&Labels::from_pairs(l.iter().copied())),
            score,
            reason: "r".into(),
        }
    }

    #[test]
    fn suspects_merge_as_independent_evidence() {
        let merged = merge_suspects(vec![
            (
                "topology".into(),
                vec![
                    suspect(&[("instance", "n4")], 0.5),
                    suspect(&[("instance", "n1")], 0.6),
                ],
            ),
            ("logs".into(), vec![suspect(&[("instance", "n4")], 0.5)]),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].labels[0].value, "n4");
        assert!((merged[0].score - 0.75).abs() < 1e-9);
        assert_eq!(merged[0].reason, "topology: r; logs: r");
        assert!((merged[1].score - 0.6).abs() < 1e-9);
    }

    #[test]
    fn payloads_round_trip_with_labels_as_objects() {
        let incident = types::Incident {
            id: "i".into(),
            group_key: "{}:{}".into(),
            group_labels: to_wit_labels(&Labels::from_pairs([("alertname", "A")])),
            status: "firing".into(),
            alerts: Vec::new(),
        };
        let p = Payload {
            incident: IncidentRecord::from_wit(&incident),
            suspects: vec![SuspectRecord::from_wit(&suspect(
                &[("instance", "n4")],
                0.9,
            ))],
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            text.contains(r#""groupLabels":{"alertname":"A"}"#),
            "{text}"
        );
        assert!(text.contains(r#""labels":{"instance":"n4"}"#), "{text}");
        let back: Payload = serde_json::from_str(&text).unwrap();
        assert_eq!(back.incident.group_labels, p.incident.group_labels);
        assert_eq!(back.suspects, p.suspects);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) < Duration::from_millis(700)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(75));
    }
}
