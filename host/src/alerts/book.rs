//! Every rule's alerts, by rule id (`group/name`): kept in memory for the dispatcher and the
//! API, and written through to the database on every change, so a restart neither re-fires
//! nor forgets. Restored alerts are held for a grace period while their data comes back,
//! and the alerts of a rule that vanished on a reload are kept as they are for a grace
//! period before they resolve, so a rule missing for a moment (an editor's save in two
//! steps) neither resolves nor fires again.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Alert, Observation, RuleAlerts, Status, persist};
use crate::db::Db;
use crate::model::Label;

/// The rules' alerts.
pub struct AlertBook {
    db: Db,
    rules: Mutex<HashMap<String, RuleAlerts>>,
    /// Rules whose alerts are held but that are no longer loaded, with when they were
    /// first found missing (ms).
    vanished: Mutex<HashMap<String, i64>>,
}

impl AlertBook {
    /// The alerts as last written, each held until `hold_until` (ms).
    pub fn open(db: &Db, hold_until: i64) -> rusqlite::Result<AlertBook> {
        let mut rules = persist::load(db)?;
        for a in rules.values_mut() {
            a.hold(hold_until);
        }
        Ok(AlertBook {
            db: db.clone(),
            rules: Mutex::new(rules),
            vanished: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, RuleAlerts>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one evaluation of a rule at `now`; returns whether any alert changed state.
    pub fn apply(
        &self,
        rule: &str,
        now: i64,
        observations: Vec<Observation>,
        for_: Duration,
        keep_firing_for: Duration,
    ) -> bool {
        let started = Instant::now();
        let mut all = self.lock();
        let alerts = all.entry(rule.to_string()).or_default();
        let changes = alerts.update(now, observations, for_, keep_firing_for);
        let all_firing = !keep_firing_for.is_zero();
        if let Err(e) = persist::save(&self.db, rule, alerts, &changes, all_firing) {
            tracing::error!(rule, "saving alerts: {e}");
        }
        // One line per alert is noise for a rule with thousands of them (and Rust's debug
        // text besides): each change at debug, one summary per evaluation at info, with how
        // long updating and saving the rule's alerts took.
        let (mut to, mut handed_over) = ([0usize; 3], 0);
        for c in &changes {
            let from = c.from.map_or("new", Status::as_str);
            if c.handed_over {
                handed_over += 1;
                tracing::debug!(rule, alert = %c.labels, from, "alert handed over");
                continue;
            }
            to[c.to as usize] += 1;
            tracing::debug!(rule, alert = %c.labels, from, to = c.to.as_str(), "alert changed");
        }
        if !changes.is_empty() {
            let [pending, firing, resolved] = to;
            let took = started.elapsed();
            tracing::info!(
                rule,
                pending,
                firing,
                resolved,
                handed_over,
                ?took,
                "alerts changed state"
            );
        }
        !changes.is_empty()
    }

    /// Resolves the alerts of rules that have not been loaded for `grace` (so their
    /// receivers hear of it), keeping those missing for less as they are, and forgets
    /// rules once they have no alerts left. A rule loaded again within `grace` carries on
    /// with its alerts. Returns how many rules that are not loaded still have alerts.
    pub fn retire(&self, loaded: &HashSet<String>, now: i64, grace: Duration) -> usize {
        let mut all = self.lock();
        let mut vanished = self.vanished.lock().unwrap_or_else(|e| e.into_inner());
        let grace = grace.as_millis() as i64;
        for (id, alerts) in all.iter_mut().filter(|(id, _)| !loaded.contains(*id)) {
            let since = *vanished.entry(id.clone()).or_insert(now);
            if now.saturating_sub(since) < grace {
                continue;
            }
            let changes = alerts.update(now, Vec::new(), Duration::ZERO, Duration::ZERO);
            if !changes.is_empty() {
                tracing::info!(rule = %id, resolved = changes.len(), "alerts of a vanished rule resolved after its grace period");
            }
            if let Err(e) = persist::save(&self.db, id, alerts, &changes, false) {
                tracing::error!(rule = %id, "saving alerts: {e}");
            }
        }
        all.retain(|id, a| loaded.contains(id) || !a.is_empty());
        vanished.retain(|id, _| all.contains_key(id) && !loaded.contains(id));
        vanished.len()
    }

    /// Marks, at `at` (ms), the alerts of every rule that the series only just given up
    /// named (see [`RuleAlerts::hand_over`]).
    pub fn hand_over(&self, only_theirs: &HashSet<Label>, at: i64) {
        if only_theirs.is_empty() {
            return;
        }
        for alerts in self.lock().values_mut() {
            alerts.hand_over(only_theirs, at);
        }
    }

    /// Whether any alert of `rule` is held.
    pub fn holds(&self, rule: &str) -> bool {
        self.lock().get(rule).is_some_and(|a| !a.is_empty())
    }

    /// How many alerts are pending, firing and resolved.
    pub fn counts(&self) -> [(Status, usize); 3] {
        let mut counts = [0usize; 3];
        for r in self.lock().values() {
            for (total, n) in counts.iter_mut().zip(r.counts()) {
                *total += n;
            }
        }
        [Status::Pending, Status::Firing, Status::Resolved].map(|s| (s, counts[s as usize]))
    }

    /// Calls `f` with each rule's id and alerts, under the lock: `f` should be quick.
    pub fn each_rule(&self, mut f: impl FnMut(&str, &RuleAlerts)) {
        for (id, alerts) in self.lock().iter() {
            f(id, alerts);
        }
    }

    /// Every alert with its rule's id, ordered by labels.
    pub fn snapshot(&self) -> Vec<(String, Alert)> {
        let mut out = Vec::new();
        self.each_rule(|id, r| out.extend(r.iter().map(|a| (id.to_string(), a.clone()))));
        out.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn obs(instance: &str) -> Observation {
        Observation {
            labels: Labels::from_pairs([("alertname", "A"), ("instance", instance)]),
            annotations: Labels::default(),
            value: Some(1.0),
        }
    }

    #[test]
    fn alerts_are_written_through_and_rules_that_are_gone_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.db")).unwrap();
        let book = AlertBook::open(&db, 0).unwrap();
        assert!(book.apply("g/a", 0, vec![obs("n1")], Duration::ZERO, Duration::ZERO));
        assert!(!book.apply(
            "g/a",
            1_000,
            vec![obs("n1")],
            Duration::ZERO,
            Duration::ZERO
        ));
        assert!(book.apply("g/b", 0, vec![obs("n2")], Duration::ZERO, Duration::ZERO));
        assert_eq!(book.counts()[1], (Status::Firing, 2));

        // Reopened from the database: the same alerts, held while data comes back.
        let again = AlertBook::open(&Db::open(&dir.path().join("f.db")).unwrap(), 5_000).unwrap();
        let ids: Vec<String> = again.snapshot().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["g/a", "g/b"]);

        // `g/b` is no longer loaded: with no grace its alert resolves, `g/a`'s stays.
        let loaded = HashSet::from(["g/a".to_string()]);
        assert_eq!(again.retire(&loaded, 6_000, Duration::ZERO), 1);
        let states: Vec<(String, Status)> = again
            .snapshot()
            .into_iter()
            .map(|(id, a)| (id, a.status))
            .collect();
        assert_eq!(
            states,
            [
                ("g/a".to_string(), Status::Firing),
                ("g/b".to_string(), Status::Resolved)
            ]
        );
    }

    fn states(book: &AlertBook) -> Vec<(String, Status, i64)> {
        book.snapshot()
            .into_iter()
            .map(|(id, a)| (id, a.status, a.active_at))
            .collect()
    }

    #[test]
    fn a_vanished_rule_keeps_its_alerts_for_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let book = AlertBook::open(&Db::open(&dir.path().join("f.db")).unwrap(), 0).unwrap();
        let z = Duration::ZERO;
        let grace = Duration::from_secs(60);
        book.apply("g/a", 0, vec![obs("n1")], z, z);
        let firing = vec![("g/a".to_string(), Status::Firing, 0)];
        let none = HashSet::new();

        // Missing for less than the grace, then back: the same alert, still firing.
        assert_eq!(book.retire(&none, 1_000, grace), 1);
        assert_eq!(book.retire(&none, 60_999, grace), 1);
        assert_eq!(states(&book), firing);
        let loaded = HashSet::from(["g/a".to_string()]);
        assert_eq!(book.retire(&loaded, 61_000, grace), 0);
        assert!(!book.apply("g/a", 62_000, vec![obs("n1")], z, z));
        assert_eq!(states(&book), firing);

        // Missing again: the grace starts afresh, and its alert resolves at its end.
        assert_eq!(book.retire(&none, 70_000, grace), 1);
        assert_eq!(states(&book), firing);
        book.retire(&none, 130_000, grace);
        assert_eq!(states(&book), [("g/a".to_string(), Status::Resolved, 0)]);
        assert!(book.holds("g/a"));
    }
}
