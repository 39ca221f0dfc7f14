//! Rules that vanished on a reload (their file deleted, or the rule removed from it): the
//! alert book keeps their alerts for a grace period, then resolves them. This keeps the
//! `recovery` receiver each such rule named, and that receiver itself in case the reload
//! removed it too, so the resolution reaches the receiver the rule named and a running
//! remediation is told to stand down.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Receiver, RuleSet};

/// The recovery receivers of vanished rules, by rule id (`group/name`).
#[derive(Default)]
pub struct Vanished {
    by_rule: Mutex<HashMap<String, Arc<Receiver>>>,
}

impl Vanished {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Receiver>>> {
        self.by_rule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the rules of `old` with a `recovery` receiver that `new` no longer has, and
    /// forgets those that `new` has (back within their grace period).
    pub fn reloaded(&self, old: &RuleSet, new: &RuleSet) {
        let mut by_rule = self.lock();
        let kept: std::collections::HashSet<String> = new.rules().map(|r| r.id()).collect();
        by_rule.retain(|id, _| !kept.contains(id));
        for rule in old.rules().filter(|r| !kept.contains(&r.id())) {
            if let Some(receiver) = rule.recovery.as_ref().and_then(|n| old.receivers.get(n)) {
                by_rule.insert(rule.id(), receiver.clone());
            }
        }
    }

    /// Keeps only the rules for which `held` is true (those with alerts left).
    pub fn retain(&self, held: impl Fn(&str) -> bool) {
        self.lock().retain(|id, _| held(id));
    }

    /// The `recovery` receiver the vanished rule `rule` named.
    pub fn recovery(&self, rule: &str) -> Option<String> {
        self.lock().get(rule).map(|r| r.name.clone())
    }

    /// `current` with the receivers of vanished rules that it no longer has.
    pub fn receivers<'a>(
        &self,
        current: &'a BTreeMap<String, Arc<Receiver>>,
    ) -> Cow<'a, BTreeMap<String, Arc<Receiver>>> {
        let by_rule = self.lock();
        let mut missing = by_rule
            .values()
            .filter(|r| !current.contains_key(&r.name))
            .peekable();
        if missing.peek().is_none() {
            return Cow::Borrowed(current);
        }
        let mut all = current.clone();
        for r in missing {
            all.entry(r.name.clone()).or_insert_with(|| r.clone());
        }
        Cow::Owned(all)
    }

    /// The receiver named `name` of a vanished rule, if any still names it.
    pub fn receiver(&self, name: &str) -> Option<Arc<Receiver>> {
        self.lock().values().find(|r| r.name == name).cloned()
    }
}
