//! From alerts to recovery actions, as Alertmanager's dispatcher does it.
//!
//! On every tick (and whenever alerts change), each firing or resolved alert that is not
//! muted is routed through the routing tree (and to its rule's own `recovery` receiver, if
//! any) into aggregation groups keyed by receiver, route and group labels. A group is
//! flushed `group_wait` after it appears and then every `group_interval`; a flush notifies
//! only if the group's firing set grew, an alert notified as firing has resolved, or
//! `repeat_interval` has passed. What was notified is kept in the notification log, in the
//! database, so a restart neither re-notifies nor forgets when to repeat.
//!
//! Each notification is delivered to the receiver's recovery plugin with retries and
//! exponential backoff; its idempotency key is stable across those attempts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::params;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::alerts::{Alert, Status};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::model::Labels;
use crate::route::Route;
use crate::rules::Receiver;
use crate::runtime::{Failure, to_wit_labels, types};

/// One notification of an incident to a receiver.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub receiver: String,
    pub group_key: String,
    pub incident: types::Incident,
    pub idempotency_key: String,
    /// Fingerprints of the firing alerts notified, for the notification log.
    pub firing: BTreeSet<u64>,
}

/// An alert offered to the dispatcher, with the receiver its rule names (if any).
#[derive(Clone, Debug)]
pub struct Routed {
    pub alert: Alert,
    pub recovery: Option<String>,
}

/// The notification log: per (receiver, group key), the firing alerts last notified and
/// when.
struct Nflog {
    db: Db,
    entries: HashMap<(String, String), (BTreeSet<u64>, i64)>,
}

impl Nflog {
    fn open(db: Db) -> Nflog {
        let entries = db
            .with(|c| {
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS nflog (
                         receiver TEXT NOT NULL,
                         group_key TEXT NOT NULL,
                         firing TEXT NOT NULL,
                         notified_at INTEGER NOT NULL,
                         PRIMARY KEY (receiver, group_key)
                     );",
                )?;
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

    fn record(&mut self, receiver: &str, key: &str, firing: BTreeSet<u64>, at: i64) {
        let text = firing
            .iter()
            .map(|f| format!("{f:016x}"))
            .collect::<Vec<_>>()
            .join(",");
        let r = self.db.with(|c| {
            c.execute(
                "INSERT INTO nflog (receiver, group_key, firing, notified_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (receiver, group_key) DO UPDATE SET firing = excluded.firing,
                 notified_at = excluded.notified_at",
                params![receiver, key, text, at],
            )
        });
        if let Err(e) = r {
            tracing::error!(receiver, group = key, "writing the notification log: {e}");
        }
        self.entries
            .insert((receiver.to_string(), key.to_string()), (firing, at));
    }
}

/// Timers of one aggregation group.
struct GroupTimer {
    created_at: i64,
    last_flush: Option<i64>,
}

struct State {
    nflog: Nflog,
    timers: HashMap<(String, String), GroupTimer>,
    /// Groups with a delivery under way: not flushed again until it ends.
    in_flight: HashSet<(String, String)>,
}

/// Groups alerts into incidents and queues notifications per receiver.
pub struct Dispatcher {
    state: Arc<Mutex<State>>,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Delivery>>>,
    metrics: Arc<Metrics>,
    external_url: String,
}

/// Alertmanager's group key: the route's key and the group labels.
pub fn group_key(route_key: &str, group_labels: &Labels) -> String {
    format!("{route_key}:{group_labels}").replace("\", ", "\",")
}

impl Dispatcher {
    pub fn new(db: Db, metrics: Arc<Metrics>, external_url: String) -> Dispatcher {
        Dispatcher {
            state: Arc::new(Mutex::new(State {
                nflog: Nflog::open(db),
                timers: HashMap::new(),
                in_flight: HashSet::new(),
            })),
            queues: Mutex::new(HashMap::new()),
            metrics,
            external_url,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pass over every alert at `now`: route, group, and flush the groups that are due.
    pub fn tick(
        &self,
        now: i64,
        alerts: &[Routed],
        muted: &dyn Fn(&Alert) -> bool,
        tree: Option<&Route>,
        receivers: &BTreeMap<String, Arc<Receiver>>,
    ) {
        // (receiver, group key) -> (route, group labels, alerts)
        let mut groups: HashMap<(String, String), (Route, Labels, Vec<&Alert>)> = HashMap::new();
        let mut direct: HashMap<String, Route> = HashMap::new();
        for r in alerts {
            let a = &r.alert;
            if a.status == Status::Pending || muted(a) {
                continue;
            }
            let mut routes: Vec<&Route> = tree.map(|t| t.matches(&a.labels)).unwrap_or_default();
            let own;
            if let Some(rec) = &r.recovery {
                own = direct
                    .entry(rec.clone())
                    .or_insert_with(|| Route::direct(rec))
                    .clone();
                routes.push(&own);
            }
            for route in routes {
                let gl = route.group_by.group_labels(&a.labels);
                let key = group_key(&route.key, &gl);
                groups
                    .entry((route.receiver.clone(), key))
                    .or_insert_with(|| (route.clone(), gl, Vec::new()))
                    .2
                    .push(a);
            }
        }
        let mut state = self.lock();
        let state = &mut *state;
        state.timers.retain(|k, _| groups.contains_key(k));
        for ((receiver_name, key), (route, gl, mut members)) in groups {
            let id = (receiver_name.clone(), key.clone());
            let timer = state.timers.entry(id.clone()).or_insert(GroupTimer {
                created_at: now,
                last_flush: None,
            });
            let due = match timer.last_flush {
                None => now >= timer.created_at + route.group_wait.as_millis() as i64,
                Some(t) => now >= t + route.group_interval.as_millis() as i64,
            };
            if !due || state.in_flight.contains(&id) {
                continue;
            }
            timer.last_flush = Some(now);
            let firing: BTreeSet<u64> = members
                .iter()
                .filter(|a| a.status == Status::Firing)
                .map(|a| a.labels.fingerprint())
                .collect();
            let (notified, notified_at) = state
                .nflog
                .entries
                .get(&id)
                .cloned()
                .unwrap_or((BTreeSet::new(), i64::MIN));
            let newly_resolved = notified.iter().any(|f| !firing.contains(f));
            let needs = !firing.is_subset(&notified)
                || (newly_resolved
                    && members.iter().any(|a| {
                        a.status == Status::Resolved && notified.contains(&a.labels.fingerprint())
                    }))
                || (!firing.is_empty()
                    && now.saturating_sub(notified_at) >= route.repeat_interval.as_millis() as i64);
            if !needs {
                // Alerts that vanished (silenced, rule removed) are forgotten quietly.
                if newly_resolved {
                    state
                        .nflog
                        .record(&receiver_name, &key, firing, notified_at);
                }
                continue;
            }
            // Firing alerts, and resolved ones that were notified as firing.
            members.retain(|a| {
                a.status == Status::Firing || notified.contains(&a.labels.fingerprint())
            });
            members.sort_by(|a, b| a.labels.cmp(&b.labels));
            let Some(receiver) = receivers.get(&receiver_name) else {
                tracing::error!(receiver = %receiver_name, "no such receiver: dropping notification");
                continue;
            };
            let delivery = delivery(&receiver_name, &key, &gl, &members, firing);
            state.in_flight.insert(id);
            self.queue(receiver).send(delivery).ok();
        }
    }

    fn queue(&self, receiver: &Arc<Receiver>) -> mpsc::UnboundedSender<Delivery> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = queues.get(&receiver.name).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(
            receiver.clone(),
            rx,
            self.metrics.clone(),
            self.external_url.clone(),
            self.state.clone(),
        ));
        queues.insert(receiver.name.clone(), tx.clone());
        tx
    }

    /// Forgets queues for receivers replaced by a reload, so new deliveries use the new ones.
    pub fn receivers_reloaded(&self) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn delivery(
    receiver: &str,
    key: &str,
    gl: &Labels,
    alerts: &[&Alert],
    firing: BTreeSet<u64>,
) -> Delivery {
    let mut h = Sha256::new();
    h.update(receiver.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    for a in alerts {
        h.update(a.labels.fingerprint().to_be_bytes());
        h.update(a.status.as_str().as_bytes());
        h.update(a.active_at.to_be_bytes());
    }
    let idempotency_key = hex::encode(&h.finalize()[..16]);
    let status = if firing.is_empty() {
        "resolved"
    } else {
        "firing"
    };
    Delivery {
        receiver: receiver.to_string(),
        group_key: key.to_string(),
        incident: types::Incident {
            id: hex::encode(&Sha256::digest(format!("{receiver}\0{key}").as_bytes())[..8]),
            group_key: key.to_string(),
            group_labels: to_wit_labels(gl),
            status: status.into(),
            alerts: alerts.iter().map(|a| wit_alert(a)).collect(),
        },
        idempotency_key,
        firing,
    }
}

/// An alert as plugins see it.
pub fn wit_alert(a: &Alert) -> types::Alert {
    types::Alert {
        labels: to_wit_labels(&a.labels),
        annotations: to_wit_labels(&a.annotations),
        value: a.value,
        state: a.status.as_str().into(),
        active_at: a.active_at,
        resolved_at: a.resolved_at,
        generator_url: None,
    }
}

/// Delay before attempt `attempt + 1`: exponential from 500 ms, capped at a minute, with
/// up to 25% jitter so that many retries do not arrive together.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(8).saturating_sub(1));
    let base = base.min(Duration::from_secs(60));
    let jitter = (crate::now_ms() as u64 % 1000) as f64 / 4000.0;
    base.mul_f64(1.0 + jitter)
}

async fn deliver(
    receiver: Arc<Receiver>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    metrics: Arc<Metrics>,
    external_url: String,
    state: Arc<Mutex<State>>,
) {
    let name = receiver.name.clone();
    while let Some(d) = rx.recv().await {
        let mut attempt = 1;
        let delivered = loop {
            let input = types::RecoverInput {
                now: crate::now_ms(),
                incident: d.incident.clone(),
                suspects: Vec::new(),
                attempt,
                idempotency_key: d.idempotency_key.clone(),
                receiver: name.clone(),
                external_url: external_url.clone(),
            };
            let r = receiver.clone();
            let result = tokio::task::spawn_blocking(move || {
                r.instance
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .recover(&input)
            })
            .await;
            metrics.inc(
                "faultline_plugin_calls_total",
                &[("plugin", &receiver.plugin.name), ("world", "recovery")],
            );
            let retry_reason = match result {
                Ok(Ok(types::Outcome::Done(msg))) => {
                    tracing::info!(receiver = %name, incident = %d.incident.id, attempt, "delivered: {msg}");
                    // Logged before it is counted: whoever sees the count sees the log.
                    state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .nflog
                        .record(&d.receiver, &d.group_key, d.firing.clone(), crate::now_ms());
                    metrics.inc(
                        "faultline_notifications_total",
                        &[("receiver", &name), ("outcome", "done")],
                    );
                    break true;
                }
                Ok(Ok(types::Outcome::Failed(msg))) => {
                    tracing::error!(receiver = %name, incident = %d.incident.id, attempt, "recovery failed: {msg}");
                    metrics.inc(
                        "faultline_notifications_total",
                        &[("receiver", &name), ("outcome", "failed")],
                    );
                    break false;
                }
                Ok(Ok(types::Outcome::RetryLater(msg))) => msg,
                Ok(Err(e)) if matches!(e.failure, Failure::Params(_)) => {
                    tracing::error!(receiver = %name, "{e}");
                    break false;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("recovery task failed: {e}"),
            };
            metrics.inc(
                "faultline_notifications_total",
                &[("receiver", &name), ("outcome", "retry")],
            );
            if attempt >= receiver.max_attempts {
                tracing::error!(receiver = %name, incident = %d.incident.id, attempt, "giving up: {retry_reason}");
                metrics.inc(
                    "faultline_notifications_total",
                    &[("receiver", &name), ("outcome", "gave_up")],
                );
                break false;
            }
            tracing::warn!(receiver = %name, incident = %d.incident.id, attempt, "will retry: {retry_reason}");
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        };
        let id = (d.receiver.clone(), d.group_key.clone());
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight
            .remove(&id);
        if !delivered {
            tracing::warn!(receiver = %name, group = %d.group_key, "not delivered: the group is notified again at its next flush");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_key_is_alertmanagers_form() {
        let gl = Labels::from_pairs([("alertname", "HighLoad"), ("job", "node")]);
        assert_eq!(
            group_key("{}", &gl),
            r#"{}:{alertname="HighLoad",job="node"}"#
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) < Duration::from_millis(700)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(75));
    }

    #[test]
    fn notification_log_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.db")).unwrap();
        let mut log = Nflog::open(db);
        log.record("hook", "{}:{a=\"1\"}", BTreeSet::from([1, 0xabc]), 42);
        let log = Nflog::open(Db::open(&dir.path().join("f.db")).unwrap());
        assert_eq!(
            log.entries
                .get(&("hook".to_string(), "{}:{a=\"1\"}".to_string())),
            Some(&(BTreeSet::from([1, 0xabc]), 42))
        );
    }
}
