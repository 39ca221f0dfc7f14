//! Detection: one evaluation of a rule (select its data, call its plugin, turn findings into
//! alert observations), and the health of every rule with its quarantine policy: a rule that
//! fails [`QUARANTINE_AFTER`] times in a row is skipped for a while, each quarantine twice
//! as long as the one before (up to [`MAX_QUARANTINE`]), while the others carry on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alerts::Observation;
use crate::model::Labels;
use crate::rules::Rule;
use crate::rules::template::TemplateContext;
use crate::runtime::{Failure, Finding, PluginError};
use crate::store::Store;
use crate::workers::Worker;

/// Consecutive failures after which a rule is quarantined.
pub const QUARANTINE_AFTER: u32 = 3;
/// Longest quarantine.
pub const MAX_QUARANTINE: Duration = Duration::from_secs(600);

/// A rule's health, as the rules API shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// "ok", "err", "quarantined" or "unknown" (not evaluated yet).
    pub health: &'static str,
    pub last_evaluation: Option<i64>,
    pub last_duration_seconds: f64,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub quarantined_until: Option<i64>,
    /// How many quarantines in a row: each doubles the next.
    #[serde(skip)]
    quarantines: u32,
}

/// The health of every rule, by rule id.
#[derive(Debug, Default)]
pub struct HealthBook(Mutex<HashMap<String, Health>>);

/// What a failure did to a rule's health.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Failed; it will be evaluated again at its next interval.
    Failed { failures: u32 },
    /// Quarantined for `backoff`.
    Quarantined { failures: u32, backoff: Duration },
}

impl HealthBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Health>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Until when the rule is quarantined, if it is at `now`.
    pub fn quarantined(&self, id: &str, now: i64) -> Option<i64> {
        self.lock()
            .get(id)
            .and_then(|h| h.quarantined_until)
            .filter(|until| now < *until)
    }

    /// Records a successful evaluation: the rule is healthy again.
    pub fn succeeded(&self, id: &str, now: i64, elapsed: Duration) {
        self.lock().insert(
            id.to_string(),
            Health {
                health: "ok",
                last_evaluation: Some(now),
                last_duration_seconds: elapsed.as_secs_f64(),
                ..Health::default()
            },
        );
    }

    /// Records a failed evaluation; after repeated failures (and again after each failed
    /// retry) the rule is quarantined for a multiple of its group's `interval`.
    pub fn failed(
        &self,
        id: &str,
        interval: Duration,
        now: i64,
        elapsed: Duration,
        error: &PluginError,
    ) -> Verdict {
        let mut all = self.lock();
        let h = all.entry(id.to_string()).or_default();
        h.last_evaluation = Some(now);
        h.last_duration_seconds = elapsed.as_secs_f64();
        h.last_error = Some(error.to_string());
        h.consecutive_failures += 1;
        h.health = "err";
        if h.consecutive_failures < QUARANTINE_AFTER {
            return Verdict::Failed {
                failures: h.consecutive_failures,
            };
        }
        let backoff = interval
            .saturating_mul(1 << h.quarantines.min(16))
            .min(MAX_QUARANTINE);
        h.quarantines += 1;
        h.quarantined_until = Some(now + backoff.as_millis() as i64);
        h.health = "quarantined";
        Verdict::Quarantined {
            failures: h.consecutive_failures,
            backoff,
        }
    }

    /// A rule's health; `unknown` before its first evaluation.
    pub fn get(&self, id: &str) -> Health {
        self.lock().get(id).cloned().unwrap_or(Health {
            health: "unknown",
            ..Health::default()
        })
    }
}

/// Evaluates `rule` at `now` on its group's thread; returns the observations and how long
/// the evaluation took.
pub async fn evaluate(
    rule: &Arc<Rule>,
    store: &Arc<Store>,
    now: i64,
    worker: &Worker,
) -> (Result<Vec<Observation>, PluginError>, Duration) {
    let started = Instant::now();
    let (r, s) = (rule.clone(), store.clone());
    let result = worker
        .run(move || evaluate_blocking(&r, &s, now))
        .await
        .unwrap_or_else(|e| {
            Err(PluginError {
                rule: rule.id(),
                plugin: rule.plugin.name.clone(),
                failure: Failure::Trap(format!("evaluation task failed: {e}")),
            })
        });
    (result, started.elapsed())
}

/// The blocking part of an evaluation: select, call the plugin, turn findings into
/// observations.
pub fn evaluate_blocking(
    rule: &Rule,
    store: &Store,
    now: i64,
) -> Result<Vec<Observation>, PluginError> {
    let mut exec = rule.exec.lock().unwrap_or_else(|e| e.into_inner());
    let exec = &mut *exec;
    store.select(
        rule.series_selectors(),
        rule.range,
        rule.log_selectors(),
        rule.range.unwrap_or_default(),
        now,
        &mut exec.cache,
        &mut exec.selection,
    );
    let findings = exec.instance.evaluate(now, &mut exec.selection)?;
    // What the rule sets on each of its alerts, worked out once per evaluation.
    let mut own = rule.labels.builder();
    own.set("alertname", &rule.name);
    let own = own.build();
    let (sel, by_series) = (&exec.selection, &mut exec.alert_labels);
    by_series.begin();
    let observations = findings
        .into_iter()
        .map(|f| {
            let series = f.series.and_then(|id| Some((id, sel.labels(id)?)));
            let labels = match series {
                // Labels of the series and the rule alone: the same at every evaluation.
                Some((id, series)) if f.labels.is_empty() => {
                    by_series.get_or_build(id, || alert_labels(series, &f, &own))
                }
                Some((_, series)) => alert_labels(series, &f, &own),
                None => alert_labels(&Labels::default(), &f, &own),
            };
            observe(rule, labels, f)
        })
        .collect();
    by_series.end();
    Ok(observations)
}

/// An alert's labels from a finding: the series' labels without the metric name, the
/// finding's labels, then `own` (the rule's labels and `alertname`). The label set is
/// copied once, and shares its strings with the series and the rule.
fn alert_labels(series: &Labels, f: &Finding, own: &Labels) -> Labels {
    let mut labels = series.builder();
    labels.remove("__name__");
    for (name, value) in &f.labels {
        labels.set(name, value);
    }
    for pair in own.as_slice() {
        labels.set_shared(pair);
    }
    labels.build()
}

/// An alert's observation from a finding and its labels: the rule's annotations rendered,
/// then the finding's.
fn observe(rule: &Rule, labels: Labels, f: Finding) -> Observation {
    let ctx = TemplateContext {
        labels: &labels,
        value: f.value,
        external_labels: None,
    };
    let annotations = if f.annotations.is_empty() && rule.annotations.is_empty() {
        Labels::default()
    } else {
        Labels::from_pairs(
            rule.annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&ctx)))
                .chain(f.annotations),
        )
    };
    Observation {
        labels,
        annotations,
        value: f.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error() -> PluginError {
        PluginError {
            rule: "g/r".into(),
            plugin: "p".into(),
            failure: Failure::Trap("boom".into()),
        }
    }

    #[test]
    fn quarantine_after_repeated_failures_doubles_and_is_capped() {
        let book = HealthBook::default();
        let interval = Duration::from_secs(100);
        let fail = |now| book.failed("g/r", interval, now, Duration::ZERO, &error());
        assert_eq!(fail(0), Verdict::Failed { failures: 1 });
        assert_eq!(fail(1), Verdict::Failed { failures: 2 });
        assert_eq!(
            fail(2),
            Verdict::Quarantined {
                failures: 3,
                backoff: interval
            }
        );
        assert_eq!(book.quarantined("g/r", 3), Some(2 + 100_000));
        assert_eq!(book.get("g/r").health, "quarantined");
        assert_eq!(
            fail(200_000),
            Verdict::Quarantined {
                failures: 4,
                backoff: interval * 2
            }
        );
        for n in 0..10 {
            fail(1_000_000 + n);
        }
        assert!(matches!(
            fail(2_000_000),
            Verdict::Quarantined { backoff, .. } if backoff == MAX_QUARANTINE
        ));
        book.succeeded("g/r", 3_000_000, Duration::ZERO);
        assert_eq!(book.quarantined("g/r", 3_000_001), None);
        assert_eq!(book.get("g/r").health, "ok");
        assert_eq!(book.get("other").health, "unknown");
    }
}
