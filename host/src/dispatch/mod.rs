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
//! A route muted by its time intervals (`mute_time_intervals`, `active_time_intervals`)
//! flushes nothing and logs nothing while muted.
//!
//! Resolved after mute, a deliberate difference from Alertmanager: a receiver that was
//! notified of a firing alert is notified of its resolution even if a silence or inhibition
//! started in between (unless it sets `send_resolved_after_mute = false`). A muted alert stays
//! in the groups that owe it a resolution, held in their log but not notified while it fires.
//!
//! A notification is an incident: before it goes out, the localization rules that match its
//! alerts rank suspects for it. It is then handed to the outbox (see `outbox/`), which
//! applies the receiver's safety rails, writes the action durably and delivers it with
//! retries; the notification log is written with it, so a restart neither loses nor
//! repeats it.

pub mod incident;
pub mod inhibit;
pub mod mute;
pub mod nflog;
pub mod route;
pub mod silences;
pub mod time_interval;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::alerts::{Alert, Status};
use crate::db::Db;
use crate::dispatch::incident::{alerts_key, incident};
use crate::dispatch::nflog::Nflog;
use crate::dispatch::route::Route;
use crate::localize::Ranking;
use crate::model::Labels;
use crate::model::incident::Incident;
use crate::outbox::{Outbox, Planned};
use crate::rules::Receiver;

/// An alert offered to the dispatcher, with the receiver its rule names (if any).
#[derive(Clone, Debug)]
pub struct Routed {
    /// Shared: a pass over many alerts copies none.
    pub alert: Arc<Alert>,
    pub recovery: Option<String>,
}

/// An aggregation group of one pass, by (receiver, group key): its route, its group labels
/// and its alerts, each with whether it is muted.
type Group<'a> = (Route, Labels, Vec<(&'a Alert, bool)>);

/// Timers of one aggregation group.
struct GroupTimer {
    created_at: i64,
    last_flush: Option<i64>,
}

struct State {
    nflog: Nflog,
    timers: HashMap<(String, String), GroupTimer>,
    /// The latest view of each incident, by id, for the API.
    incidents: BTreeMap<String, IncidentView>,
}

/// An incident as the API shows it: its alerts, its suspects and where it went.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentView {
    #[serde(flatten)]
    pub incident: Incident,
    /// Ranked suspects from the localization rules that matched, best first, with how far
    /// the first leads and whether that is too little to act on (`ambiguous`).
    #[serde(flatten)]
    pub localization: Ranking,
    /// Receivers the incident was last notified to.
    pub receivers: Vec<String>,
    /// When it was last notified (ms).
    pub updated_at: i64,
}

/// Incidents kept for the API.
const MAX_INCIDENTS: usize = 1000;

/// Ranks suspects for an incident: given the incident and its alerts, returns the merged
/// ranking of every localization rule that applies.
pub type Localize<'a> = dyn Fn(&Incident, &[&Alert]) -> Ranking + 'a;

/// Groups alerts into incidents and hands notifications to the outbox.
pub struct Dispatcher {
    state: Arc<Mutex<State>>,
    outbox: Arc<Outbox>,
    /// In a cluster: idempotency keys every instance computes alike (see [`Self::tick`]).
    shared_keys: bool,
}

/// Alertmanager's group key: the route's key and the group labels.
pub fn group_key(route_key: &str, group_labels: &Labels) -> String {
    format!("{route_key}:{group_labels}").replace("\", ", "\",")
}

impl Dispatcher {
    /// A dispatcher writing to `outbox`; `shared_keys` in a cluster.
    pub fn new(db: Db, outbox: Arc<Outbox>, shared_keys: bool) -> Dispatcher {
        Dispatcher {
            state: Arc::new(Mutex::new(State {
                nflog: Nflog::open(db),
                timers: HashMap::new(),
                incidents: BTreeMap::new(),
            })),
            outbox,
            shared_keys,
        }
    }

    /// The incidents notified lately, newest first.
    pub fn incidents(&self) -> Vec<IncidentView> {
        let mut out: Vec<IncidentView> = self.lock().incidents.values().cloned().collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.updated_at));
        out
    }

    /// Forgets the notification log entries last notified before `before`.
    pub fn prune_log(&self, before: i64) -> rusqlite::Result<usize> {
        self.lock().nflog.prune(before)
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
        localize: &Localize<'_>,
    ) {
        let mut state = self.lock();
        let state = &mut *state;
        let mut groups: HashMap<(String, String), Group<'_>> = HashMap::new();
        let mut direct: HashMap<String, Route> = HashMap::new();
        for r in alerts {
            let a: &Alert = &r.alert;
            if a.status == Status::Pending {
                continue;
            }
            let is_muted = muted(a);
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
                // A muted alert stays in its group only where its resolution is owed: the
                // receiver was told it fired and wants resolutions after a mute.
                let id = (route.receiver.clone(), key);
                if is_muted && !owes_resolution(&state.nflog, receivers, &id, a) {
                    continue;
                }
                groups
                    .entry(id)
                    .or_insert_with(|| (route.clone(), gl, Vec::new()))
                    .2
                    .push((a, is_muted));
            }
        }
        let mut localized: HashMap<String, Ranking> = HashMap::new();
        state.timers.retain(|k, _| groups.contains_key(k));
        for ((receiver_name, key), (route, gl, members)) in groups {
            let id = (receiver_name.clone(), key.clone());
            let timer = state.timers.entry(id.clone()).or_insert(GroupTimer {
                created_at: now,
                last_flush: None,
            });
            let due = match timer.last_flush {
                None => now >= timer.created_at + route.group_wait.as_millis() as i64,
                Some(t) => now >= t + route.group_interval.as_millis() as i64,
            };
            if !due {
                continue;
            }
            let previous_flush = timer.last_flush.replace(now);
            // Muted by its time intervals, the route notifies nothing and logs nothing, so
            // the group notifies what it owes once the interval ends (as Alertmanager does).
            if route.time_muted(now) {
                continue;
            }
            let firing: BTreeSet<u64> = members
                .iter()
                .filter(|(a, m)| a.status == Status::Firing && !m)
                .map(|(a, _)| a.labels.fingerprint())
                .collect();
            // Notified alerts that fire on muted: their resolution is still owed, so they
            // stay in the log without being notified again.
            let held: BTreeSet<u64> = members
                .iter()
                .filter(|(a, m)| a.status == Status::Firing && *m)
                .map(|(a, _)| a.labels.fingerprint())
                .collect();
            let (notified, notified_at) = state
                .nflog
                .entries
                .get(&id)
                .cloned()
                .unwrap_or((BTreeSet::new(), i64::MIN));
            let newly_resolved = notified
                .iter()
                .any(|f| !firing.contains(f) && !held.contains(f));
            let needs = !firing.is_subset(&notified)
                || (newly_resolved
                    && members.iter().any(|(a, _)| {
                        a.status == Status::Resolved && notified.contains(&a.labels.fingerprint())
                    }))
                || (!firing.is_empty()
                    && now.saturating_sub(notified_at) >= route.repeat_interval.as_millis() as i64);
            let logged: BTreeSet<u64> = firing.union(&held).copied().collect();
            if !needs {
                // Alerts that vanished (silenced, rule removed) are forgotten quietly.
                if newly_resolved {
                    state
                        .nflog
                        .record(&receiver_name, &key, logged, notified_at);
                }
                continue;
            }
            // Firing alerts not muted, and resolved ones that were notified as firing.
            let mut members: Vec<&Alert> = members
                .into_iter()
                .filter(|(a, m)| {
                    (a.status == Status::Firing && !m)
                        || (a.status == Status::Resolved
                            && notified.contains(&a.labels.fingerprint()))
                })
                .map(|(a, _)| a)
                .collect();
            members.sort_by(|a, b| a.labels.cmp(&b.labels));
            let Some(receiver) = receivers.get(&receiver_name) else {
                tracing::error!(receiver = %receiver_name, "no such receiver: dropping notification");
                continue;
            };
            let incident = incident(&key, &gl, &members, firing.is_empty());
            // The same incident reaching several receivers is localized once per pass.
            let ranking = localized
                .entry(incident.id.clone())
                .or_insert_with(|| localize(&incident, &members));
            // The action's idempotency key covers the alerts and the previous notification:
            // a repeat after `repeat_interval` is a new action, while the same notification
            // planned again (after a crash before the log below was written) is not. In a
            // cluster, when this instance last notified is its own; the number of the
            // repeat within the episode (since its earliest alert started, the same on
            // every instance) is what every instance agrees on.
            let mut alerts_key = alerts_key(&members);
            if self.shared_keys {
                let start = members.iter().map(|a| a.active_at).min().unwrap_or(now);
                let every = (route.repeat_interval.as_millis() as i64).max(1);
                alerts_key.extend((now.saturating_sub(start) / every).to_be_bytes());
            } else {
                alerts_key.extend(notified_at.to_be_bytes());
            }
            let planned = self.outbox.plan(
                Planned {
                    receiver,
                    incident: &incident,
                    ranking,
                    alerts_key: &alerts_key,
                },
                now,
            );
            if let Err(e) = planned {
                // Not written (a full disk, a write error): the log stays as it was and the
                // group stays due, so the next pass plans the notification again.
                tracing::error!(receiver = %receiver_name, incident = %incident.id, "writing the outbox: {e}");
                if let Some(timer) = state.timers.get_mut(&id) {
                    timer.last_flush = previous_flush;
                }
                continue;
            }
            // Logged only once the action is written: the outbox now owns its delivery.
            state.nflog.record(&receiver_name, &key, logged, now);
            // Receivers of the same pass accumulate; a later pass starts the list afresh.
            let mut sent_to = match state.incidents.remove(&incident.id) {
                Some(v) if v.updated_at == now => v.receivers,
                _ => Vec::new(),
            };
            if !sent_to.contains(&receiver_name) {
                sent_to.push(receiver_name.clone());
            }
            state.incidents.insert(
                incident.id.clone(),
                IncidentView {
                    incident: incident.clone(),
                    localization: ranking.clone(),
                    receivers: sent_to,
                    updated_at: now,
                },
            );
        }
        if state.incidents.len() > MAX_INCIDENTS {
            let mut by_age: Vec<(i64, String)> = state
                .incidents
                .iter()
                .map(|(id, v)| (v.updated_at, id.clone()))
                .collect();
            by_age.sort();
            for (_, id) in by_age.iter().take(state.incidents.len() - MAX_INCIDENTS) {
                state.incidents.remove(id);
            }
        }
    }
}

/// Whether the group `id` (receiver, group key) owes a muted alert its resolution: the
/// receiver was notified of it firing and sends resolutions after a mute.
fn owes_resolution(
    nflog: &Nflog,
    receivers: &BTreeMap<String, Arc<Receiver>>,
    id: &(String, String),
    a: &Alert,
) -> bool {
    receivers
        .get(&id.0)
        .is_some_and(|r| r.send_resolved && r.send_resolved_after_mute)
        && nflog
            .entries
            .get(id)
            .is_some_and(|(notified, _)| notified.contains(&a.labels.fingerprint()))
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
}
