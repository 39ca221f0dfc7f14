//! The alert lifecycle of a rule, with Prometheus's semantics: a finding makes an alert
//! pending; it fires once it has been found for `for`; when its finding is gone it keeps
//! firing for `keep_firing_for`, then resolves. Resolved alerts are kept a while so their
//! resolution is notified, then forgotten.

pub mod book;
pub mod external;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use serde::Serialize;

use crate::model::{Label, Labels};

/// How long a resolved alert is kept (as Prometheus does) so its resolution is sent.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Firing,
    Resolved,
}

impl Status {
    /// The lowercase name, as the API and plugins see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert instance of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    pub value: Option<f64>,
    pub status: Status,
    /// When the finding first appeared (ms).
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// The last evaluation that found it (ms).
    pub last_seen: i64,
    /// Restored after a restart: held as it is until this time (ms) even if not found,
    /// while the data that feeds the rule comes back. Not persisted.
    pub hold_until: Option<i64>,
    /// Where the sender's graph of it is (Prometheus's `generatorURL`), passed on to
    /// receivers; rule alerts have none.
    pub generator_url: Option<String>,
}

/// What one evaluation found for one alert instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub labels: Labels,
    pub annotations: Labels,
    pub value: Option<f64>,
}

/// The label sets a rule's alerts got from the series its findings were about, by series
/// id. While the rule is loaded, a finding over a series that adds no labels of its own
/// always gets the same label set: it is built once and shared with the alert. Series that
/// an evaluation did not find are forgotten at its end.
#[derive(Debug, Default)]
pub struct LabelsBySeries {
    labels: HashMap<u32, (Labels, u64)>,
    evaluations: u64,
}

impl LabelsBySeries {
    /// Starts an evaluation.
    pub fn begin(&mut self) {
        self.evaluations += 1;
    }

    /// The labels of the alert over series `id`, built by `build` the first time.
    pub fn get_or_build(&mut self, id: u32, build: impl FnOnce() -> Labels) -> Labels {
        let (labels, seen) = self.labels.entry(id).or_insert_with(|| (build(), 0));
        *seen = self.evaluations;
        labels.clone()
    }

    /// Ends an evaluation: forgets the series it did not find.
    pub fn end(&mut self) {
        let this = self.evaluations;
        self.labels.retain(|_, (_, seen)| *seen == this);
    }
}

/// A change of an alert's status during an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub labels: Labels,
    pub from: Option<Status>,
    pub to: Status,
    /// Dropped without resolving: its series moved to another instance, which carries the
    /// alert on (see [`RuleAlerts::hand_over`]). Nobody is told it resolved.
    pub handed_over: bool,
}

/// The alerts of one rule, keyed by their label set.
#[derive(Clone, Debug, Default)]
pub struct RuleAlerts {
    alerts: HashMap<Labels, Held>,
    /// Alerts that may have been handed over, by fingerprint, with when (ms).
    handing_over: HashMap<u64, i64>,
    /// Evaluations applied so far: what [`Held::seen`] counts.
    evaluations: u64,
    /// How many alerts are pending, firing and resolved, as of the last update.
    counts: [usize; 3],
}

/// An alert as its rule holds it: shared, so the dispatcher's pass over every alert copies
/// none; with its fingerprint, worked out once.
#[derive(Clone, Debug)]
struct Held {
    alert: Arc<Alert>,
    fingerprint: u64,
    /// The last evaluation that found it.
    seen: u64,
}

impl Held {
    fn new(alert: Alert) -> Held {
        Held {
            fingerprint: alert.labels.fingerprint(),
            alert: Arc::new(alert),
            seen: 0,
        }
    }
}

impl RuleAlerts {
    /// Every alert, pending, firing or recently resolved.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().map(|h| &*h.alert)
    }

    /// Every alert, shared, with its fingerprint.
    pub fn shared(&self) -> impl Iterator<Item = (u64, &Arc<Alert>)> {
        self.alerts.values().map(|h| (h.fingerprint, &h.alert))
    }

    /// Number of alerts held.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether no alert is held.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// How many alerts are pending, firing and resolved (indexed by [`Status`]).
    pub fn counts(&self) -> [usize; 3] {
        self.counts
    }

    /// Holds every pending and firing alert until `until` (ms): for alerts restored after a
    /// restart, until their data is back.
    pub fn hold(&mut self, until: i64) {
        for h in self.alerts.values_mut() {
            if h.alert.status != Status::Resolved {
                Arc::make_mut(&mut h.alert).hold_until = Some(until);
            }
        }
    }

    /// Marks, at `at` (ms), the pending and firing alerts that have a label pair from
    /// `only_theirs`, the pairs that only the series this instance just gave up had (their
    /// service, their instance): another instance holds those series now and carries their
    /// alerts on. A marked alert that the rule's next evaluation (begun at or after `at`)
    /// does not find is dropped without resolving, so receivers see no resolve and re-fire;
    /// one it finds stays. `alertname` names the rule, not the series, and is not compared.
    pub fn hand_over(&mut self, only_theirs: &HashSet<Label>, at: i64) {
        let theirs = |a: &Alert| {
            let mut pairs = a.labels.as_slice().iter();
            pairs.any(|pair| &*pair.0 != "alertname" && only_theirs.contains(pair))
        };
        for h in self.alerts.values() {
            if h.alert.status != Status::Resolved && theirs(&h.alert) {
                self.handing_over.insert(h.fingerprint, at);
            }
        }
    }

    /// Applies one evaluation's observations at `now` and returns what changed.
    pub fn update(
        &mut self,
        now: i64,
        observations: Vec<Observation>,
        for_: Duration,
        keep_firing_for: Duration,
    ) -> Vec<Change> {
        let for_ms = for_.as_millis() as i64;
        let kff_ms = keep_firing_for.as_millis() as i64;
        self.evaluations += 1;
        let this = self.evaluations;
        let mut changes = Vec::new();
        // What a new alert instance starts as.
        let new_status = if for_ms == 0 {
            Status::Firing
        } else {
            Status::Pending
        };
        for obs in observations {
            let found = |status| Alert {
                labels: obs.labels.clone(),
                annotations: obs.annotations.clone(),
                value: obs.value,
                status,
                active_at: now,
                fired_at: (status == Status::Firing).then_some(now),
                resolved_at: None,
                last_seen: now,
                hold_until: None,
                generator_url: None,
            };
            let from = match self.alerts.entry(obs.labels.clone()) {
                Entry::Vacant(v) => {
                    v.insert(Held {
                        seen: this,
                        ..Held::new(found(new_status))
                    });
                    None
                }
                // Two findings with one label set: the first wins, as one alert can only
                // have one value.
                Entry::Occupied(o) if o.get().seen == this => continue,
                Entry::Occupied(mut o) if o.get().alert.status != Status::Resolved => {
                    let h = o.get_mut();
                    h.seen = this;
                    let a = Arc::make_mut(&mut h.alert);
                    a.value = obs.value;
                    a.annotations = obs.annotations;
                    a.last_seen = now;
                    if a.status == Status::Pending && now - a.active_at >= for_ms {
                        a.status = Status::Firing;
                        a.fired_at = Some(now);
                        changes.push(Change {
                            labels: a.labels.clone(),
                            from: Some(Status::Pending),
                            to: Status::Firing,
                            handed_over: false,
                        });
                    }
                    continue;
                }
                // Resolved and back: a new alert instance.
                Entry::Occupied(mut o) => {
                    let h = o.get_mut();
                    h.seen = this;
                    h.alert = Arc::new(found(new_status));
                    Some(Status::Resolved)
                }
            };
            changes.push(Change {
                labels: obs.labels,
                from,
                to: new_status,
                handed_over: false,
            });
        }
        let retention = RESOLVED_RETENTION.as_millis() as i64;
        let handing_over = std::mem::take(&mut self.handing_over);
        let mut counts = [0; 3];
        self.alerts.retain(|labels, h| {
            let a = &h.alert;
            let keep = if h.seen == this {
                if a.hold_until.is_some() {
                    Arc::make_mut(&mut h.alert).hold_until = None;
                }
                true
            } else if a.status != Status::Resolved && a.hold_until.is_some_and(|h| now < h) {
                true
            } else {
                match a.status {
                    Status::Pending => {
                        changes.push(Change {
                            labels: labels.clone(),
                            from: Some(Status::Pending),
                            to: Status::Resolved,
                            handed_over: false,
                        });
                        false
                    }
                    Status::Firing if handing_over.contains_key(&h.fingerprint) => {
                        changes.push(Change {
                            labels: labels.clone(),
                            from: Some(Status::Firing),
                            to: Status::Resolved,
                            handed_over: true,
                        });
                        false
                    }
                    Status::Firing if now - a.last_seen < kff_ms => true,
                    Status::Firing => {
                        let a = Arc::make_mut(&mut h.alert);
                        a.status = Status::Resolved;
                        a.resolved_at = Some(now);
                        changes.push(Change {
                            labels: labels.clone(),
                            from: Some(Status::Firing),
                            to: Status::Resolved,
                            handed_over: false,
                        });
                        true
                    }
                    Status::Resolved => a.resolved_at.is_some_and(|r| now - r < retention),
                }
            };
            if keep {
                counts[h.alert.status as usize] += 1;
            }
            keep
        });
        self.counts = counts;
        // A mark made after this evaluation began (which may have seen the series that went)
        // waits for the next one.
        self.handing_over = handing_over
            .into_iter()
            .filter(|(_, at)| *at > now)
            .collect();
        changes
    }

    /// Adds an alert as it was last written.
    fn restore(&mut self, alert: Alert) {
        self.counts[alert.status as usize] += 1;
        self.alerts.insert(alert.labels.clone(), Held::new(alert));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(instance: &str, v: f64) -> Observation {
        Observation {
            labels: Labels::from_pairs([("alertname", "A"), ("instance", instance)]),
            annotations: Labels::default(),
            value: Some(v),
        }
    }

    fn status(r: &RuleAlerts, instance: &str) -> Option<Status> {
        r.iter()
            .find(|a| a.labels.get("instance") == Some(instance))
            .map(|a| a.status)
    }

    const S: i64 = 1000;

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let mut r = RuleAlerts::default();
        let f = Duration::from_secs(30);
        let z = Duration::ZERO;
        r.update(0, vec![obs("a", 1.0)], f, z);
        assert_eq!(status(&r, "a"), Some(Status::Pending));
        r.update(29 * S, vec![obs("a", 2.0)], f, z);
        assert_eq!(status(&r, "a"), Some(Status::Pending));
        let ch = r.update(30 * S, vec![obs("a", 3.0)], f, z);
        assert_eq!(status(&r, "a"), Some(Status::Firing));
        assert_eq!(ch[0].to, Status::Firing);
        assert_eq!(r.iter().next().unwrap().value, Some(3.0));
        let ch = r.update(45 * S, vec![], f, z);
        assert_eq!(status(&r, "a"), Some(Status::Resolved));
        assert_eq!(ch[0].from, Some(Status::Firing));
        // Kept for the retention, then gone.
        r.update(45 * S + RESOLVED_RETENTION.as_millis() as i64, vec![], f, z);
        assert!(r.is_empty());
    }

    /// The pairs only the given-up series of instance `i` had.
    fn only(instance: &str) -> HashSet<Label> {
        HashSet::from([("instance".into(), instance.into())])
    }

    #[test]
    fn alerts_over_series_given_up_are_handed_over_not_resolved() {
        let (z, kff) = (Duration::ZERO, Duration::from_secs(60));
        let mut r = RuleAlerts::default();
        r.update(0, vec![obs("a", 1.0), obs("b", 1.0), obs("c", 1.0)], z, kff);
        // `alertname` names the rule: that every alert shares it hands none over.
        r.hand_over(&HashSet::from([("alertname".into(), "A".into())]), S);
        r.hand_over(&only("a"), S);
        r.hand_over(&only("b"), S);
        // b is still found (other series name it too); a and c are not. a goes quietly,
        // although keep_firing_for would have held it, and c, not handed over, is held.
        let ch = r.update(2 * S, vec![obs("b", 1.0)], z, kff);
        assert_eq!(status(&r, "a"), None);
        assert_eq!(
            (status(&r, "b"), status(&r, "c")),
            (Some(Status::Firing), Some(Status::Firing))
        );
        assert_eq!(ch.len(), 1);
        assert!(ch[0].handed_over && ch[0].labels.get("instance") == Some("a"));
        // The marks were used up: b resolves as usual once it is gone for keep_firing_for.
        let ch = r.update(70 * S, vec![], z, kff);
        assert_eq!(status(&r, "b"), Some(Status::Resolved));
        assert!(ch.iter().all(|c| !c.handed_over));
    }

    #[test]
    fn a_hand_over_during_an_evaluation_waits_for_the_next_one() {
        let z = Duration::ZERO;
        let mut r = RuleAlerts::default();
        r.update(0, vec![obs("a", 1.0)], z, z);
        // Given up at 5 s, while the evaluation begun at 4 s still saw the series.
        r.hand_over(&only("a"), 5 * S);
        r.update(4 * S, vec![obs("a", 1.0)], z, z);
        let ch = r.update(6 * S, vec![], z, z);
        assert_eq!(status(&r, "a"), None);
        assert!(ch[0].handed_over);
    }

    #[test]
    fn pending_alert_that_disappears_is_dropped_without_firing() {
        let mut r = RuleAlerts::default();
        r.update(
            0,
            vec![obs("a", 1.0)],
            Duration::from_secs(60),
            Duration::ZERO,
        );
        r.update(10 * S, vec![], Duration::from_secs(60), Duration::ZERO);
        assert!(r.is_empty());
    }

    #[test]
    fn zero_for_fires_at_once() {
        let mut r = RuleAlerts::default();
        let ch = r.update(0, vec![obs("a", 1.0)], Duration::ZERO, Duration::ZERO);
        assert_eq!(ch[0].to, Status::Firing);
    }

    #[test]
    fn keep_firing_for_holds_then_resolves() {
        let mut r = RuleAlerts::default();
        let kff = Duration::from_secs(60);
        r.update(0, vec![obs("a", 1.0)], Duration::ZERO, kff);
        r.update(30 * S, vec![], Duration::ZERO, kff);
        assert_eq!(status(&r, "a"), Some(Status::Firing));
        r.update(59 * S, vec![], Duration::ZERO, kff);
        assert_eq!(status(&r, "a"), Some(Status::Firing));
        r.update(60 * S, vec![], Duration::ZERO, kff);
        assert_eq!(status(&r, "a"), Some(Status::Resolved));
    }

    #[test]
    fn held_alerts_survive_missing_findings_until_the_hold_ends() {
        let mut r = RuleAlerts::default();
        r.update(0, vec![obs("a", 1.0)], Duration::ZERO, Duration::ZERO);
        r.update(
            0,
            vec![obs("a", 1.0), obs("p", 1.0)],
            Duration::from_secs(600),
            Duration::ZERO,
        );
        assert_eq!(status(&r, "p"), Some(Status::Pending));
        r.hold(10 * S);
        r.update(5 * S, vec![], Duration::ZERO, Duration::ZERO);
        assert_eq!(status(&r, "a"), Some(Status::Firing));
        assert_eq!(status(&r, "p"), Some(Status::Pending));
        r.update(10 * S, vec![], Duration::ZERO, Duration::ZERO);
        assert_eq!(status(&r, "a"), Some(Status::Resolved));
        assert_eq!(status(&r, "p"), None);
    }

    #[test]
    fn two_findings_with_one_label_set_make_one_alert_with_the_first_value() {
        let mut r = RuleAlerts::default();
        let z = Duration::ZERO;
        let ch = r.update(0, vec![obs("a", 1.0), obs("a", 2.0)], z, z);
        assert_eq!((ch.len(), r.len()), (1, 1));
        assert_eq!(r.iter().next().unwrap().value, Some(1.0));
        let ch = r.update(S, vec![obs("a", 3.0), obs("a", 4.0)], z, z);
        assert!(ch.is_empty());
        assert_eq!(r.iter().next().unwrap().value, Some(3.0));
    }

    #[test]
    fn counts_follow_every_update() {
        let mut r = RuleAlerts::default();
        let (f, z) = (Duration::from_secs(10), Duration::ZERO);
        r.update(0, vec![obs("a", 1.0), obs("b", 1.0)], f, z);
        assert_eq!(r.counts(), [2, 0, 0]);
        r.update(10 * S, vec![obs("a", 1.0), obs("b", 1.0)], f, z);
        assert_eq!(r.counts(), [0, 2, 0]);
        r.update(11 * S, vec![obs("a", 1.0), obs("c", 1.0)], f, z);
        assert_eq!(r.counts(), [1, 1, 1]);
        r.update(12 * S + RESOLVED_RETENTION.as_millis() as i64, vec![], f, z);
        assert_eq!(r.counts(), [0, 0, 1], "a resolved, b forgotten, c dropped");
    }

    #[test]
    fn an_alert_shared_with_the_dispatcher_is_not_changed_under_it() {
        let mut r = RuleAlerts::default();
        let z = Duration::ZERO;
        r.update(0, vec![obs("a", 1.0)], z, z);
        let (fingerprint, held) = r.shared().next().map(|(f, a)| (f, a.clone())).unwrap();
        assert_eq!(fingerprint, held.labels.fingerprint());
        r.update(S, vec![obs("a", 2.0)], z, z);
        r.update(2 * S, vec![], z, z);
        assert_eq!((held.value, held.status), (Some(1.0), Status::Firing));
        let now = r.iter().next().unwrap();
        assert_eq!((now.value, now.status), (Some(2.0), Status::Resolved));
    }

    #[test]
    fn labels_by_series_are_built_once_and_forgotten_when_not_found() {
        let mut by = LabelsBySeries::default();
        let mut built = 0;
        let mut get = |by: &mut LabelsBySeries, id| {
            by.get_or_build(id, || {
                built += 1;
                Labels::from_pairs([("id", id.to_string())])
            })
        };
        by.begin();
        assert_eq!(get(&mut by, 1).get("id"), Some("1"));
        get(&mut by, 2);
        by.end();
        by.begin();
        assert_eq!(get(&mut by, 1).get("id"), Some("1"));
        by.end();
        // 2 was not found by the second evaluation: built again when it is found again.
        by.begin();
        get(&mut by, 2);
        by.end();
        assert_eq!(built, 3);
    }

    #[test]
    fn resolved_alert_that_returns_is_a_new_instance() {
        let mut r = RuleAlerts::default();
        let f = Duration::from_secs(10);
        r.update(0, vec![obs("a", 1.0)], Duration::ZERO, Duration::ZERO);
        r.update(S, vec![], Duration::ZERO, Duration::ZERO);
        r.update(2 * S, vec![obs("a", 1.0)], f, Duration::ZERO);
        let a = r.iter().next().unwrap();
        assert_eq!(a.status, Status::Pending);
        assert_eq!(a.active_at, 2 * S);
        assert_eq!(a.resolved_at, None);
    }
}

/// Alert state in the database, so that a restart neither re-fires nor forgets.
pub mod persist {
    use std::collections::HashMap;

    use rusqlite::params;

    use super::{Alert, Change, RuleAlerts, Status};
    use crate::db::Db;
    use crate::model::Labels;

    fn labels_json(l: &Labels) -> String {
        serde_json::to_string(&l.iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
    }

    fn labels_from_json(s: &str) -> Labels {
        let pairs: Vec<(String, String)> = serde_json::from_str(s).unwrap_or_default();
        Labels::from_pairs(pairs)
    }

    /// Every rule's alerts as last written.
    pub fn load(db: &Db) -> rusqlite::Result<HashMap<String, RuleAlerts>> {
        db.with(|c| {
            let mut st = c.prepare(
                "SELECT rule, labels, annotations, value, status, active_at, fired_at,
                        resolved_at, last_seen FROM alerts",
            )?;
            let rows = st.query_map([], |r| {
                let status: String = r.get(4)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Alert {
                        labels: labels_from_json(&r.get::<_, String>(1)?),
                        annotations: labels_from_json(&r.get::<_, String>(2)?),
                        value: r.get(3)?,
                        status: match status.as_str() {
                            "pending" => Status::Pending,
                            "firing" => Status::Firing,
                            _ => Status::Resolved,
                        },
                        active_at: r.get(5)?,
                        fired_at: r.get(6)?,
                        resolved_at: r.get(7)?,
                        last_seen: r.get(8)?,
                        hold_until: None,
                        generator_url: None,
                    },
                ))
            })?;
            let mut out: HashMap<String, RuleAlerts> = HashMap::new();
            for row in rows {
                let (rule, alert) = row?;
                out.entry(rule).or_default().restore(alert);
            }
            Ok(out)
        })
    }

    /// Writes what an evaluation changed: the alerts named in `changes` (and, for rules
    /// with `keep_firing_for`, every firing alert, whose last-seen time matters).
    pub fn save(
        db: &Db,
        rule: &str,
        alerts: &RuleAlerts,
        changes: &[Change],
        all_firing: bool,
    ) -> rusqlite::Result<()> {
        if changes.is_empty() && !all_firing {
            return Ok(());
        }
        let mut touched: Vec<&Labels> = changes.iter().map(|c| &c.labels).collect();
        if all_firing {
            touched.extend(
                alerts
                    .iter()
                    .filter(|a| a.status == Status::Firing)
                    .map(|a| &a.labels),
            );
        }
        db.with(|c| {
            let tx = c.unchecked_transaction()?;
            for labels in touched {
                let key = labels_json(labels);
                match alerts.alerts.get(labels).map(|h| &h.alert) {
                    Some(a) => {
                        tx.execute(
                            "INSERT INTO alerts (rule, labels, annotations, value, status,
                                 active_at, fired_at, resolved_at, last_seen)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                             ON CONFLICT (rule, labels) DO UPDATE SET
                                 annotations = excluded.annotations, value = excluded.value,
                                 status = excluded.status, active_at = excluded.active_at,
                                 fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,
                                 last_seen = excluded.last_seen",
                            params![
                                rule,
                                key,
                                labels_json(&a.annotations),
                                a.value,
                                a.status.as_str(),
                                a.active_at,
                                a.fired_at,
                                a.resolved_at,
                                a.last_seen
                            ],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "DELETE FROM alerts WHERE rule = ?1 AND labels = ?2",
                            params![rule, key],
                        )?;
                    }
                }
            }
            // Resolved alerts past their retention are dropped from memory by `update`.
            tx.execute(
                "DELETE FROM alerts WHERE rule = ?1 AND status = 'resolved' AND resolved_at < ?2",
                params![
                    rule,
                    crate::model::time::now_ms() - super::RESOLVED_RETENTION.as_millis() as i64
                ],
            )?;
            tx.commit()
        })
    }

    #[cfg(test)]
    mod tests {
        use std::time::Duration;

        use super::super::{Observation, RuleAlerts, Status};
        use super::*;

        #[test]
        fn alerts_survive_a_restart_with_their_times() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.db");
            let db = Db::open(&path).unwrap();
            let mut r = RuleAlerts::default();
            let obs = |i: &str| Observation {
                labels: Labels::from_pairs([("alertname", "A"), ("instance", i)]),
                annotations: Labels::from_pairs([("summary", "s")]),
                value: Some(1.5),
            };
            let f = Duration::from_secs(60);
            let ch = r.update(1000, vec![obs("a"), obs("b")], f, Duration::ZERO);
            save(&db, "g/A", &r, &ch, false).unwrap();
            let ch = r.update(61_000, vec![obs("a")], f, Duration::ZERO);
            save(&db, "g/A", &r, &ch, false).unwrap();
            drop(db);

            let loaded = load(&Db::open(&path).unwrap()).unwrap();
            let a: Vec<_> = loaded["g/A"].iter().cloned().collect();
            assert_eq!(a.len(), 1, "the dropped pending alert is gone");
            assert_eq!(a[0].status, Status::Firing);
            assert_eq!(a[0].active_at, 1000);
            assert_eq!(a[0].fired_at, Some(61_000));
            assert_eq!(a[0].annotations.get("summary"), Some("s"));
            assert_eq!(a[0], *r.iter().next().unwrap());
        }
    }
}
