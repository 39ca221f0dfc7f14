//! Every rule's alerts, by rule id (`group/name`): kept in memory for the dispatcher and the
//! API, and written through to the database on every change, so a restart neither re-fires
//! nor forgets. Restored alerts are held for a grace period while their data comes back.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{Alert, Observation, RuleAlerts, Status, persist};
use crate::db::Db;

/// The rules' alerts.
pub struct AlertBook {
    db: Db,
    rules: Mutex<HashMap<String, RuleAlerts>>,
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
        let mut all = self.lock();
        let alerts = all.entry(rule.to_string()).or_default();
        let changes = alerts.update(now, observations, for_, keep_firing_for);
        // One line per alert is noise for a rule with thousands of them (and Rust's debug
        // text besides): each change at debug, one summary per evaluation at info.
        let mut to = [0usize; 3];
        for c in &changes {
            to[c.to as usize] += 1;
            let from = c.from.map_or("new", Status::as_str);
            tracing::debug!(rule, alert = %c.labels, from, to = c.to.as_str(), "alert changed");
        }
        if !changes.is_empty() {
            let [pending, firing, resolved] = to;
            tracing::info!(rule, pending, firing, resolved, "alerts changed state");
        }
        let all_firing = !keep_firing_for.is_zero();
        if let Err(e) = persist::save(&self.db, rule, alerts, &changes, all_firing) {
            tracing::error!(rule, "saving alerts: {e}");
        }
        !changes.is_empty()
    }

    /// Resolves the alerts of rules that are no longer loaded (so their receivers hear of
    /// it), and forgets those rules once they have none left.
    pub fn retire(&self, loaded: &HashSet<String>, now: i64) {
        let mut all = self.lock();
        for (id, alerts) in all.iter_mut().filter(|(id, _)| !loaded.contains(*id)) {
            let changes = alerts.update(now, Vec::new(), Duration::ZERO, Duration::ZERO);
            if let Err(e) = persist::save(&self.db, id, alerts, &changes, false) {
                tracing::error!(rule = %id, "saving alerts: {e}");
            }
        }
        all.retain(|id, a| loaded.contains(id) || !a.is_empty());
    }

    /// How many alerts are pending, firing and resolved.
    pub fn counts(&self) -> [(Status, usize); 3] {
        let mut counts = [0usize; 3];
        for a in self.lock().values().flat_map(|r| r.iter()) {
            counts[a.status as usize] += 1;
        }
        [Status::Pending, Status::Firing, Status::Resolved].map(|s| (s, counts[s as usize]))
    }

    /// Every alert with its rule's id, ordered by labels.
    pub fn snapshot(&self) -> Vec<(String, Alert)> {
        let all = self.lock();
        let mut out: Vec<_> = all
            .iter()
            .flat_map(|(id, r)| r.iter().map(move |a| (id.clone(), a.clone())))
            .collect();
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

        // `g/b` is no longer loaded: its alert resolves, `g/a`'s stays.
        again.retire(&HashSet::from(["g/a".to_string()]), 6_000);
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
}
