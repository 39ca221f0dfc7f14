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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
use crate::model::matcher::FnvMap;
use crate::outbox::{Outbox, Planned, Queued};
use crate::rules::Receiver;

/// An alert offered to the dispatcher, with the receiver its rule names (if any).
#[derive(Clone, Debug)]
pub struct Routed {
    /// Shared: a pass over many alerts copies none.
    pub alert: Arc<Alert>,
    /// Of the alert's labels, as its source keeps it: a pass hashes no label set.
    pub fingerprint: u64,
    pub recovery: Option<String>,
}

/// An aggregation group an alert goes to: (receiver, group key), its route and its group
/// labels. One per group and rules generation, shared by every alert of the group.
struct Destination {
    id: (String, String),
    route: Route,
    labels: Labels,
    /// Its number in the generation: groups of a pass are keyed by it.
    slot: usize,
}

/// An aggregation group of one pass, by its destination's slot: the destination and its
/// alerts, each with whether it is muted.
type Group<'a> = (Arc<Destination>, Vec<(&'a Routed, bool)>);

/// Where one alert goes, worked out once per rules generation.
struct Destinations {
    /// The rule's own receiver it was worked out with.
    recovery: Option<String>,
    groups: Vec<Arc<Destination>>,
    /// The last pass that offered the alert: those a pass did not offer are forgotten.
    seen: u64,
}

impl Destinations {
    /// The groups the routing tree (and the rule's own receiver) send `alert` to, shared
    /// through `known`, the destinations of the generation by (receiver, group key).
    fn of(
        alert: &Alert,
        recovery: &Option<String>,
        tree: Option<&Route>,
        known: &mut HashMap<(String, String), Arc<Destination>>,
    ) -> Destinations {
        let mut routes: Vec<&Route> = tree.map(|t| t.matches(&alert.labels)).unwrap_or_default();
        let own = recovery.as_deref().map(Route::direct);
        routes.extend(own.as_ref());
        let groups = routes
            .into_iter()
            .map(|route| {
                let labels = route.group_by.group_labels(&alert.labels);
                let id = (route.receiver.clone(), group_key(&route.key, &labels));
                let slot = known.len();
                known
                    .entry(id.clone())
                    .or_insert_with(|| {
                        Arc::new(Destination {
                            id,
                            route: route.clone(),
                            labels,
                            slot,
                        })
                    })
                    .clone()
            })
            .collect();
        Destinations {
            recovery: recovery.clone(),
            groups,
            seen: 0,
        }
    }
}

/// Timers of one aggregation group.
struct GroupTimer {
    created_at: i64,
    last_flush: Option<i64>,
}

struct State {
    nflog: Nflog,
    /// The rules generation `routes` and `destinations` were worked out for.
    generation: u64,
    /// Where each alert of the last pass went, by fingerprint.
    routes: FnvMap<u64, Destinations>,
    /// Passes so far: what `Destinations::seen` counts.
    passes: u64,
    destinations: HashMap<(String, String), Arc<Destination>>,
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
                generation: 0,
                routes: FnvMap::default(),
                passes: 0,
                destinations: HashMap::new(),
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
    ///
    /// Where each alert goes is worked out once and kept by its fingerprint until the rules
    /// change (`generation`), so a pass over many unchanged alerts matches no route again.
    #[allow(clippy::too_many_arguments)]
    pub fn tick(
        &self,
        now: i64,
        generation: u64,
        alerts: &[Routed],
        muted: &dyn Fn(&Alert) -> bool,
        tree: Option<&Route>,
        receivers: &BTreeMap<String, Arc<Receiver>>,
        localize: &Localize<'_>,
    ) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.generation != generation {
            state.routes.clear();
            state.destinations.clear();
            state.generation = generation;
        }
        state.passes += 1;
        let pass_no = state.passes;
        let mut groups: HashMap<usize, Group<'_>> = HashMap::new();
        for r in alerts {
            let a: &Alert = &r.alert;
            if a.status == Status::Pending {
                continue;
            }
            let known = &mut state.destinations;
            let dests = state
                .routes
                .entry(r.fingerprint)
                .or_insert_with(|| Destinations::of(a, &r.recovery, tree, known));
            if dests.recovery != r.recovery {
                *dests = Destinations::of(a, &r.recovery, tree, known);
            }
            dests.seen = pass_no;
            // Routed nowhere, it needs no muting either.
            if dests.groups.is_empty() {
                continue;
            }
            let is_muted = muted(a);
            for d in &dests.groups {
                // A muted alert stays in its group only where its resolution is owed: the
                // receiver was told it fired and wants resolutions after a mute.
                if is_muted && !owes_resolution(&state.nflog, receivers, &d.id, r.fingerprint) {
                    continue;
                }
                groups
                    .entry(d.slot)
                    .or_insert_with(|| (d.clone(), Vec::new()))
                    .1
                    .push((r, is_muted));
            }
        }
        // Alerts gone since the last pass are forgotten with it.
        state.routes.retain(|_, d| d.seen == pass_no);
        let mut localized: HashMap<String, Ranking> = HashMap::new();
        let mut pass = Pass::default();
        let live: HashSet<&(String, String)> = groups.values().map(|(d, _)| &d.id).collect();
        state.timers.retain(|k, _| live.contains(k));
        for (dest, members) in groups.into_values() {
            let (route, gl) = (&dest.route, &dest.labels);
            let id = dest.id.clone();
            let (receiver_name, key) = (&dest.id.0, &dest.id.1);
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
                .filter(|(r, m)| r.alert.status == Status::Firing && !m)
                .map(|(r, _)| r.fingerprint)
                .collect();
            // Notified alerts that fire on muted: their resolution is still owed, so they
            // stay in the log without being notified again.
            let held: BTreeSet<u64> = members
                .iter()
                .filter(|(r, m)| r.alert.status == Status::Firing && *m)
                .map(|(r, _)| r.fingerprint)
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
                    && members.iter().any(|(r, _)| {
                        r.alert.status == Status::Resolved && notified.contains(&r.fingerprint)
                    }))
                || (!firing.is_empty()
                    && now.saturating_sub(notified_at) >= route.repeat_interval.as_millis() as i64);
            let logged: BTreeSet<u64> = firing.union(&held).copied().collect();
            if !needs {
                // Alerts that vanished (silenced, rule removed) are forgotten quietly.
                if newly_resolved {
                    pass.forgotten.push((id, logged, notified_at));
                }
                continue;
            }
            // Firing alerts not muted, and resolved ones that were notified as firing.
            let mut members: Vec<&Alert> = members
                .into_iter()
                .filter(|(r, m)| {
                    (r.alert.status == Status::Firing && !m)
                        || (r.alert.status == Status::Resolved && notified.contains(&r.fingerprint))
                })
                .map(|(r, _)| &*r.alert)
                .collect();
            members.sort_by(|a, b| a.labels.cmp(&b.labels));
            let Some(receiver) = receivers.get(receiver_name) else {
                tracing::error!(receiver = %receiver_name, "no such receiver: dropping notification");
                continue;
            };
            let incident = incident(key, gl, &members, firing.is_empty());
            // The same incident reaching several receivers is localized once per pass.
            let ranking = localized
                .entry(incident.id.clone())
                .or_insert_with(|| localize(&incident, &members))
                .clone();
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
            pass.notifications.push(Notification {
                id,
                receiver: receiver.clone(),
                incident,
                ranking,
                alerts_key,
                logged,
                previous_flush,
            });
        }
        self.write(state, pass, now);
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

    /// Writes a pass in one transaction: its actions with their decisions, and the
    /// notification log. Localization ran before, so the database is held only for the
    /// writes. If the transaction fails (a full disk, a write error), nothing of the pass
    /// was written: its groups stay due and the next pass plans them again.
    fn write(&self, state: &mut State, pass: Pass, now: i64) {
        if pass.notifications.is_empty() && pass.forgotten.is_empty() {
            return;
        }
        let written = self.outbox.db.with(|c| -> rusqlite::Result<Vec<Queued>> {
            let tx = c.unchecked_transaction()?;
            let mut queued = Vec::new();
            for (id, logged, at) in &pass.forgotten {
                Nflog::write(&tx, id, logged, *at)?;
            }
            for n in &pass.notifications {
                let planned = Planned {
                    receiver: &n.receiver,
                    incident: &n.incident,
                    ranking: &n.ranking,
                    alerts_key: &n.alerts_key,
                };
                queued.extend(self.outbox.plan(&tx, planned, now)?);
                // Logged with the action: the outbox now owns its delivery.
                Nflog::write(&tx, &n.id, &n.logged, now)?;
            }
            tx.commit()?;
            Ok(queued)
        });
        let queued = match written {
            Ok(queued) => queued,
            Err(e) => {
                tracing::error!(
                    notifications = pass.notifications.len(),
                    "writing the outbox: {e}; the groups stay due"
                );
                for n in &pass.notifications {
                    if let Some(timer) = state.timers.get_mut(&n.id) {
                        timer.last_flush = n.previous_flush;
                    }
                }
                return;
            }
        };
        self.outbox.queued(&queued);
        for (id, logged, at) in pass.forgotten {
            state.nflog.remember(id, logged, at);
        }
        for n in pass.notifications {
            let receiver_name = n.id.0.clone();
            state.nflog.remember(n.id, n.logged, now);
            // Receivers of the same pass accumulate; a later pass starts the list afresh.
            let mut sent_to = match state.incidents.remove(&n.incident.id) {
                Some(v) if v.updated_at == now => v.receivers,
                _ => Vec::new(),
            };
            if !sent_to.contains(&receiver_name) {
                sent_to.push(receiver_name);
            }
            state.incidents.insert(
                n.incident.id.clone(),
                IncidentView {
                    incident: n.incident,
                    localization: n.ranking,
                    receivers: sent_to,
                    updated_at: now,
                },
            );
        }
    }
}

/// What one pass writes: the notifications it hands the outbox, and the log entries of
/// groups whose notified alerts vanished.
#[derive(Default)]
struct Pass {
    notifications: Vec<Notification>,
    forgotten: Vec<((String, String), BTreeSet<u64>, i64)>,
}

/// A notification of one group: the action to plan and the log entry it leaves.
struct Notification {
    /// (receiver, group key).
    id: (String, String),
    receiver: Arc<Receiver>,
    incident: Incident,
    ranking: Ranking,
    /// Fingerprints, states and activation times of the alerts, and the previous
    /// notification's time: the idempotency key's input.
    alerts_key: Vec<u8>,
    /// The firing alerts the log records as notified.
    logged: BTreeSet<u64>,
    /// The group's flush before this one, restored if the pass cannot be written.
    previous_flush: Option<i64>,
}

/// Whether the group `id` (receiver, group key) owes a muted alert its resolution: the
/// receiver was notified of it firing and sends resolutions after a mute.
fn owes_resolution(
    nflog: &Nflog,
    receivers: &BTreeMap<String, Arc<Receiver>>,
    id: &(String, String),
    fingerprint: u64,
) -> bool {
    receivers
        .get(&id.0)
        .is_some_and(|r| r.send_resolved && r.send_resolved_after_mute)
        && nflog
            .entries
            .get(id)
            .is_some_and(|(notified, _)| notified.contains(&fingerprint))
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
