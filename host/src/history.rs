//! The service's own recent figures, sampled every [`INTERVAL`] and kept in memory for
//! [`KEPT`]: what the console plots without an external Prometheus. Each sample holds, for
//! the interval that ended then:
//!
//! - `evaluation`: the mean evaluation time of each rule, in seconds;
//! - `firing`: the firing alerts, from rules and from outside, at the end of the interval;
//! - `ingest`: samples and log records ingested per second;
//! - `deliveries`: the recovery attempts of each receiver, by outcome.
//!
//! Counters are read from the metrics registry, so the history sees exactly what `/metrics`
//! shows.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::Metrics;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// How long samples are kept.
pub const KEPT: Duration = Duration::from_secs(3600);

/// The history: samples, oldest first, and the counters of the last one.
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    samples: VecDeque<Sample>,
    /// The counters as the last sample read them, by family and labels.
    last: Option<(i64, Counters)>,
}

type Counters = BTreeMap<(&'static str, String), f64>;

/// The counter families a sample reads.
const COUNTERS: [&str; 5] = [
    "faultline_rule_evaluations_total",
    "faultline_rule_evaluation_duration_seconds_sum",
    "faultline_samples_ingested_total",
    "faultline_log_records_ingested_total",
    "faultline_notifications_total",
];

struct Sample {
    at: i64,
    evaluation: BTreeMap<String, f64>,
    firing: f64,
    samples_per_second: f64,
    logs_per_second: f64,
    deliveries: BTreeMap<String, f64>,
}

/// The history as plots read it: one time axis, and per plot, a line per name with a value
/// (or `null`) at each time.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    /// Seconds between samples.
    pub interval_seconds: f64,
    /// Sample times, milliseconds since the epoch.
    pub times: Vec<i64>,
    pub evaluation: BTreeMap<String, Vec<Option<f64>>>,
    pub firing: BTreeMap<String, Vec<Option<f64>>>,
    pub ingest: BTreeMap<String, Vec<Option<f64>>>,
    pub deliveries: BTreeMap<String, Vec<Option<f64>>>,
}

impl History {
    /// Takes a sample at `now` from `metrics`, with `external_firing` firing alerts from
    /// outside. The first sample only sets the counters' baseline.
    pub fn record(&self, metrics: &Metrics, external_firing: usize, now: i64) {
        let mut counters = Counters::new();
        for family in COUNTERS {
            for (labels, value) in metrics.family(family) {
                counters.insert((family, labels), value);
            }
        }
        let firing = metrics
            .get("faultline_alerts", &[("state", "firing")])
            .unwrap_or(0.0)
            + external_firing as f64;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let last = inner.last.replace((now, counters.clone()));
        let Some((then, before)) = last else {
            return;
        };
        let seconds = ((now - then) as f64 / 1000.0).max(0.001);
        // A counter that went down was reset (a reloaded rule starts again): its increase
        // is what it counts now.
        let increase = |key: &(&'static str, String)| {
            let now = counters[key];
            match before.get(key) {
                Some(b) if *b <= now => now - b,
                _ => now,
            }
        };
        let total = |family: &str| {
            counters
                .keys()
                .filter(|(f, _)| *f == family)
                .map(&increase)
                .sum::<f64>()
        };
        let mut evaluation = BTreeMap::new();
        let mut deliveries = BTreeMap::new();
        for key in counters.keys() {
            match key.0 {
                "faultline_rule_evaluations_total" => {
                    let count = increase(key);
                    let sum_key = (
                        "faultline_rule_evaluation_duration_seconds_sum",
                        key.1.clone(),
                    );
                    if count > 0.0 && counters.contains_key(&sum_key) {
                        evaluation.insert(label_values(&key.1), increase(&sum_key) / count);
                    }
                }
                "faultline_notifications_total" => {
                    deliveries.insert(label_values(&key.1), increase(key));
                }
                _ => {}
            }
        }
        let sample = Sample {
            at: now,
            evaluation,
            firing,
            samples_per_second: total("faultline_samples_ingested_total") / seconds,
            logs_per_second: total("faultline_log_records_ingested_total") / seconds,
            deliveries,
        };
        inner.samples.push_back(sample);
        let kept = (KEPT.as_millis() / INTERVAL.as_millis()) as usize;
        while inner.samples.len() > kept {
            inner.samples.pop_front();
        }
    }

    /// The samples as plot lines.
    pub fn view(&self) -> View {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let samples = &inner.samples;
        let lines = |values: &dyn Fn(&Sample) -> Vec<(String, f64)>| {
            let mut lines: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
            for (i, sample) in samples.iter().enumerate() {
                for (name, value) in values(sample) {
                    lines
                        .entry(name)
                        .or_insert_with(|| vec![None; samples.len()])[i] = Some(value);
                }
            }
            lines
        };
        View {
            interval_seconds: INTERVAL.as_secs_f64(),
            times: samples.iter().map(|s| s.at).collect(),
            evaluation: lines(&|s| s.evaluation.clone().into_iter().collect()),
            firing: lines(&|s| vec![("firing".to_string(), s.firing)]),
            ingest: lines(&|s| {
                vec![
                    ("samples/s".to_string(), s.samples_per_second),
                    ("log records/s".to_string(), s.logs_per_second),
                ]
            }),
            deliveries: lines(&|s| s.deliveries.clone().into_iter().collect()),
        }
    }
}

/// `rule="a/b"` as `a/b`; `receiver="hook",outcome="done"` as `hook done`.
fn label_values(labels: &str) -> String {
    labels
        .split("\",")
        .filter_map(|pair| pair.split_once("=\""))
        .map(|(_, value)| value.trim_end_matches('"').replace("\\\"", "\""))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_hold_rates_means_and_increases_of_the_interval() {
        let metrics = Metrics::default();
        let history = History::default();
        let rule = [("rule", "g/HighErrors")];
        let done = [("receiver", "hook"), ("outcome", "done")];
        metrics.add(
            "faultline_samples_ingested_total",
            &[("source", "push")],
            100.0,
        );
        history.record(&metrics, 0, 10_000);
        assert!(
            history.view().times.is_empty(),
            "the first sample is the baseline"
        );

        metrics.add(
            "faultline_samples_ingested_total",
            &[("source", "push")],
            300.0,
        );
        metrics.add(
            "faultline_samples_ingested_total",
            &[("source", "scrape")],
            100.0,
        );
        metrics.add("faultline_rule_evaluations_total", &rule, 4.0);
        metrics.add(
            "faultline_rule_evaluation_duration_seconds_sum",
            &rule,
            0.02,
        );
        metrics.add("faultline_notifications_total", &done, 2.0);
        metrics.set("faultline_alerts", &[("state", "firing")], 3.0);
        history.record(&metrics, 2, 12_000);
        metrics.add("faultline_notifications_total", &done, 1.0);
        history.record(&metrics, 2, 14_000);

        let view = history.view();
        assert_eq!(view.times, [12_000, 14_000]);
        assert_eq!(view.ingest["samples/s"], [Some(200.0), Some(0.0)]);
        assert_eq!(view.firing["firing"], [Some(5.0), Some(5.0)]);
        let mean = view.evaluation["g/HighErrors"][0].unwrap();
        assert!((mean - 0.005).abs() < 1e-12, "{mean}");
        assert_eq!(
            view.evaluation["g/HighErrors"][1], None,
            "no evaluation then"
        );
        assert_eq!(view.deliveries["hook done"], [Some(2.0), Some(1.0)]);
    }
}
