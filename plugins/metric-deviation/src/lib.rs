//! `metric-deviation`: a localizer that suspects the components whose metrics moved furthest
//! from their own recent baseline when the incident began.
//!
//! ```toml
//! [[localizer]]
//! name = "slow-node"
//! plugin = "metric-deviation"
//! match = ['alertname="HighLatency"']            # the incidents it localizes
//! select = 'http_request_duration_seconds{job="api", quantile="0.99"}'
//! range = "30m"                                  # baseline and incident window together
//! params = { by = ["instance"], lead = "2m", direction = "up", min_z = 3.0, max_suspects = 3 }
//! # logs = '...'   # not used by this plugin
//! ```
//!
//! The incident starts at the earliest `active_at` of its firing alerts (of all its alerts
//! when none fires). Each selected series is split at `incident start - lead`: the samples
//! before are its baseline, the samples from then until now its incident window. Its robust
//! z-score is
//!
//! ```text
//! z = (median(window) - median(baseline)) / (1.4826 × MAD(baseline))
//! ```
//!
//! where MAD is the median absolute deviation from the baseline's median (1.4826 × MAD
//! estimates the standard deviation of normal data, and neither it nor the medians care
//! about a few outliers). The denominator is at least 1e-3 × max(|median(baseline)|, 1),
//! so a flat baseline gives a large but finite z.
//!
//! A component is a value of the `by` labels (series without one of them are skipped); its
//! z is that of its series with the largest |z| in the allowed `direction`. Components with
//! |z| ≥ `min_z` are suspects, scored |z| / (|z| + `min_z`): 0.5 at the threshold, towards
//! 1 beyond. Because each series is compared with its own past, a node that is always slow
//! is not blamed; the one that became slow is.
//!
//! Params (all optional): `by` (default `["instance"]`), `lead` (default `"1m"`;
//! milliseconds or a duration such as `"90s"`, `"5m"`, `"1h"`), `direction` (`"up"`,
//! `"down"` or `"both"`, the default), `min_z` (default 3.0), `max_suspects` (default: no
//! limit; every component at or above `min_z` is returned, best first, because the host
//! merges the suspects of several localizers and truncates only after merging: a cap here
//! could drop the real cause before it is weighed with other evidence), `min_baseline`
//! (baseline samples a series needs to be judged, default 5). Non-finite samples
//! (Prometheus's staleness markers) are ignored.

use std::collections::BTreeMap;

use faultline_sdk::localizer::*;
use faultline_sdk::params::duration_ms;
use faultline_sdk::stats::median;
use faultline_sdk::text::{number, series_name};
use serde::Deserialize;
use serde_json::Value;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The labels naming a component. Default `["instance"]`.
    #[serde(default = "default_by")]
    pub by: Vec<String>,
    /// How long before the incident start its window begins: milliseconds, or a duration
    /// string such as `"90s"`. Default `"1m"`.
    #[serde(default = "default_lead")]
    pub lead: Value,
    /// Which moves count: `"up"`, `"down"` or `"both"`. Default `"both"`.
    #[serde(default = "default_direction")]
    pub direction: String,
    /// The smallest |z| that makes a suspect. Default 3.
    #[serde(default = "default_min_z")]
    pub min_z: f64,
    /// At most this many suspects, best first. Default: no limit (the host truncates after
    /// merging the suspects of every localizer).
    #[serde(default)]
    pub max_suspects: Option<usize>,
    /// Series with fewer baseline samples are not judged. Default 5.
    #[serde(default = "default_min_baseline")]
    pub min_baseline: usize,
}

fn default_by() -> Vec<String> {
    vec!["instance".to_string()]
}

fn default_lead() -> Value {
    Value::from("1m")
}

fn default_direction() -> String {
    "both".to_string()
}

fn default_min_z() -> f64 {
    3.0
}

fn default_min_baseline() -> usize {
    5
}

/// Which way a series must move to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
    Both,
}

impl Direction {
    fn allows(self, z: f64) -> bool {
        match self {
            Direction::Up => z > 0.0,
            Direction::Down => z < 0.0,
            Direction::Both => true,
        }
    }
}

/// The localizer, built from validated [`Params`].
#[derive(Debug)]
pub struct MetricDeviation {
    by: Vec<String>,
    lead_ms: i64,
    direction: Direction,
    min_z: f64,
    max_suspects: Option<usize>,
    min_baseline: usize,
}

impl Localizer for MetricDeviation {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.by.is_empty() || p.by.iter().any(String::is_empty) {
            return Err("params: `by` must name at least one label, none empty"
                .to_string()
                .into());
        }
        let direction = match p.direction.as_str() {
            "up" => Direction::Up,
            "down" => Direction::Down,
            "both" => Direction::Both,
            other => {
                return Err(format!(
                    "params: `direction` must be \"up\", \"down\" or \"both\", not {other:?}"
                )
                .into());
            }
        };
        if !(p.min_z.is_finite() && p.min_z > 0.0) {
            return Err(format!("params: `min_z` ({}) must be a positive number", p.min_z).into());
        }
        if p.max_suspects == Some(0) {
            return Err("params: `max_suspects` must be at least 1"
                .to_string()
                .into());
        }
        // One sample has no spread: every later move would look infinitely unusual.
        if p.min_baseline < 2 {
            return Err("params: `min_baseline` must be at least 2 (samples)"
                .to_string()
                .into());
        }
        Ok(Self {
            lead_ms: duration_ms("lead", &p.lead)?,
            by: p.by,
            direction,
            min_z: p.min_z,
            max_suspects: p.max_suspects,
            min_baseline: p.min_baseline,
        })
    }

    fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error> {
        let start = input
            .incident()
            .start()
            .ok_or("the incident has no alerts, so no start to compare against")?;
        let window_start = start.saturating_sub(self.lead_ms);
        let now = input.now();

        // Per component (its `by` values), its most deviating series.
        let mut worst = BTreeMap::<Vec<&str>, Deviation>::new();
        for series in input.series() {
            let labels = series.labels();
            let Some(component) = self
                .by
                .iter()
                .map(|name| labels.get(name))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let Some(d) = self.deviation(&series, window_start, now) else {
                continue;
            };
            if !self.direction.allows(d.z) {
                continue;
            }
            match worst.get(&component) {
                Some(w) if w.z.abs() >= d.z.abs() => {}
                _ => {
                    worst.insert(component, d);
                }
            }
        }

        let mut suspects: Vec<Suspect> = worst
            .into_iter()
            .filter(|(_, d)| d.z.abs() >= self.min_z)
            .map(|(component, d)| self.suspect(&component, &d))
            .collect();
        // Stable sort: equal scores keep the components' (label value) order.
        suspects.sort_by(|a, b| b.score.total_cmp(&a.score));
        if let Some(max) = self.max_suspects {
            suspects.truncate(max);
        }
        Ok(suspects)
    }
}

/// How far one series moved from its baseline.
#[derive(Debug)]
struct Deviation<'a> {
    labels: &'a Labels,
    window_median: f64,
    baseline_median: f64,
    mad: f64,
    z: f64,
}

impl MetricDeviation {
    /// The series' deviation, or `None` when it lacks baseline or window samples.
    fn deviation<'a>(
        &self,
        series: &Series<'a>,
        window_start: i64,
        now: i64,
    ) -> Option<Deviation<'a>> {
        let mut baseline = Vec::new();
        let mut window = Vec::new();
        for (&t, &v) in series.timestamps().iter().zip(series.values()) {
            if !v.is_finite() {
                continue;
            }
            if t < window_start {
                baseline.push(v);
            } else if t <= now {
                window.push(v);
            }
        }
        if baseline.len() < self.min_baseline || window.is_empty() {
            return None;
        }
        let baseline_median = median(&mut baseline);
        let window_median = median(&mut window);
        let mut spread: Vec<f64> = baseline
            .iter()
            .map(|v| (v - baseline_median).abs())
            .collect();
        let mad = median(&mut spread);
        let floor = 1e-3 * baseline_median.abs().max(1.0);
        let z = (window_median - baseline_median) / (1.4826 * mad).max(floor);
        Some(Deviation {
            labels: series.labels(),
            window_median,
            baseline_median,
            mad,
            z,
        })
    }

    fn suspect(&self, component: &[&str], d: &Deviation) -> Suspect {
        let mut suspect = Suspect::new();
        for (name, value) in self.by.iter().zip(component) {
            suspect = suspect.label(name, *value);
        }
        let name = match component {
            [one] => one.to_string(),
            _ => suspect.labels.to_string(),
        };
        let z = d.z.abs();
        let reason = format!(
            "{name}: {} median {} in the incident window against {} before (MAD {}): z={:+.1}",
            series_name(
                d.labels,
                &self.by.iter().map(String::as_str).collect::<Vec<_>>()
            ),
            number(d.window_median),
            number(d.baseline_median),
            number(d.mad),
            d.z,
        );
        suspect.score(z / (z + self.min_z)).reason(reason)
    }
}

export_localizer!(MetricDeviation);

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    /// The incident's alert became active at 30 minutes; the call is at 35.
    const START: i64 = 30 * MINUTE;
    const NOW: i64 = 35 * MINUTE;

    fn incident(alerts: &[(&str, i64)]) -> Incident {
        Incident {
            id: "i1".into(),
            status: "firing".into(),
            alerts: alerts
                .iter()
                .map(|&(state, active_at)| Alert {
                    state: state.into(),
                    active_at,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// One sample a minute from 0 to `NOW`: `before` until the window (which opens a minute
    /// before `START` under the default lead), `during` from then on, each value nudged by
    /// `jitter` times a repeating -1, 0, +1 so the baseline has a spread.
    fn samples(before: f64, during: f64, jitter: f64) -> Vec<(i64, f64)> {
        (0..=35)
            .map(|m| {
                let t = m * MINUTE;
                let level = if t < START - MINUTE { before } else { during };
                (t, level + jitter * ((m % 3) as f64 - 1.0))
            })
            .collect()
    }

    fn latency(instance: &str) -> [(&'static str, String); 2] {
        [
            ("__name__", "http_request_duration_seconds".to_string()),
            ("instance", instance.to_string()),
        ]
    }

    fn localize(params: &str, data: Input, alerts: &[(&str, i64)]) -> Vec<Suspect> {
        MetricDeviation::configure(params)
            .unwrap()
            .localize(&LocalizeInput::new(incident(alerts), data))
            .unwrap()
    }

    fn instances(suspects: &[Suspect]) -> Vec<&str> {
        suspects
            .iter()
            .map(|s| s.labels.get("instance").unwrap())
            .collect()
    }

    #[test]
    fn blames_the_node_that_changed_not_the_one_always_slow() {
        let data = Input::builder()
            .now(NOW)
            .series(latency("node1"), &samples(0.20, 0.21, 0.02))
            .series(latency("node2"), &samples(0.22, 0.22, 0.02))
            .series(latency("node3"), &samples(0.19, 0.20, 0.02))
            // Normally fast, slow since the incident.
            .series(latency("node4"), &samples(0.21, 1.9, 0.02))
            // Always the slowest by far, and no slower now.
            .series(latency("node5"), &samples(3.0, 3.05, 0.3))
            .build();
        let suspects = localize("{}", data, &[("firing", START)]);
        assert_eq!(instances(&suspects), ["node4"]);
        let top = &suspects[0];
        assert_eq!(top.labels.to_string(), r#"{instance="node4"}"#);
        // (1.9 - 0.21) / (1.4826 × 0.02) = 57.0
        assert_eq!(
            top.reason,
            "node4: http_request_duration_seconds median 1.9 in the incident window \
             against 0.21 before (MAD 0.02): z=+57.0"
        );
        assert!((top.score - 57.0 / 60.0).abs() < 1e-3, "{}", top.score);
    }

    #[test]
    fn ranks_by_deviation_and_keeps_the_best() {
        let data = || {
            Input::builder()
                .now(NOW)
                .series(latency("a"), &samples(1.0, 1.5, 0.1)) // z = 3.4
                .series(latency("b"), &samples(1.0, 3.0, 0.1)) // z = 13.5
                .series(latency("c"), &samples(1.0, 2.0, 0.1)) // z = 6.7
                .series(latency("d"), &samples(1.0, 1.2, 0.1)) // z = 1.3: below min_z
                .build()
        };
        let suspects = localize("{}", data(), &[("firing", START)]);
        assert_eq!(instances(&suspects), ["b", "c", "a"]);
        assert!(suspects.windows(2).all(|w| w[0].score > w[1].score));
        assert!(suspects.iter().all(|s| s.score > 0.5 && s.score < 1.0));

        let suspects = localize(r#"{"max_suspects": 2}"#, data(), &[("firing", START)]);
        assert_eq!(instances(&suspects), ["b", "c"]);
    }

    #[test]
    fn every_component_above_min_z_is_returned_by_default() {
        // Seven components past the threshold: the old default (5) dropped the two
        // weakest, which the host could then never merge with another localizer's evidence.
        let mut b = Input::builder().now(NOW);
        for (i, node) in ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]
            .iter()
            .enumerate()
        {
            b = b.series(latency(node), &samples(1.0, 1.5 + 0.5 * i as f64, 0.1));
        }
        let suspects = localize("{}", b.build(), &[("firing", START)]);
        assert_eq!(
            instances(&suspects),
            ["n7", "n6", "n5", "n4", "n3", "n2", "n1"]
        );
        assert!(suspects.windows(2).all(|w| w[0].score > w[1].score));
        assert_eq!(MetricDeviation::configure("{}").unwrap().max_suspects, None);
    }

    #[test]
    fn score_is_one_half_at_the_threshold() {
        // Baseline MAD 0.1 → denominator 0.14826; a move of exactly 4 × that.
        let moved = 1.0 + 4.0 * 0.14826;
        let data = Input::builder()
            .now(NOW)
            .series(latency("a"), &samples(1.0, moved, 0.1))
            .build();
        let suspects = localize(r#"{"min_z": 4}"#, data, &[("firing", START)]);
        assert!((suspects[0].score - 0.5).abs() < 1e-9, "{:?}", suspects);
    }

    #[test]
    fn direction_filters_moves() {
        let data = || {
            Input::builder()
                .now(NOW)
                .series(latency("up"), &samples(1.0, 2.0, 0.1))
                .series(latency("down"), &samples(1.0, 0.2, 0.1))
                .build()
        };
        let alerts = &[("firing", START)];
        assert_eq!(instances(&localize("{}", data(), alerts)), ["up", "down"]);
        let up = localize(r#"{"direction": "up"}"#, data(), alerts);
        assert_eq!(instances(&up), ["up"]);
        let down = localize(r#"{"direction": "down"}"#, data(), alerts);
        assert_eq!(instances(&down), ["down"]);
        assert!(down[0].reason.ends_with("z=-5.4"), "{}", down[0].reason);
    }

    #[test]
    fn a_component_counts_its_most_deviating_series() {
        let errors = |instance: &str| {
            [
                ("__name__", "http_errors_rate".to_string()),
                ("instance", instance.to_string()),
                ("handler", "/api".to_string()),
            ]
        };
        let data = Input::builder()
            .now(NOW)
            .series(latency("a"), &samples(1.0, 1.5, 0.1))
            .series(errors("a"), &samples(1.0, -0.5, 0.1))
            .series(latency("b"), &samples(1.0, 2.0, 0.1))
            .build();
        let suspects = localize("{}", data, &[("firing", START)]);
        assert_eq!(instances(&suspects), ["a", "b"]);
        assert!(
            suspects[0]
                .reason
                .starts_with(r#"a: http_errors_rate{handler="/api"} median -0.5 "#),
            "{}",
            suspects[0].reason
        );
        assert_eq!(suspects.len(), 2, "one suspect per component");
    }

    #[test]
    fn components_are_named_by_several_labels() {
        let series = |service: &str, instance: &str| {
            [
                ("service", service.to_string()),
                ("instance", instance.to_string()),
            ]
        };
        let data = Input::builder()
            .now(NOW)
            .series(series("db", "x"), &samples(1.0, 4.0, 0.1))
            .series(series("api", "x"), &samples(1.0, 1.0, 0.1))
            // No `service`: not a component.
            .series([("instance", "y")], &samples(1.0, 9.0, 0.1))
            .build();
        let params = r#"{"by": ["service", "instance"]}"#;
        let suspects = localize(params, data, &[("firing", START)]);
        assert_eq!(suspects.len(), 1);
        assert_eq!(
            suspects[0].labels,
            Labels::from([("service", "db"), ("instance", "x")])
        );
        assert!(
            suspects[0]
                .reason
                .starts_with(r#"{instance="x", service="db"}: the series median 4 "#),
            "{}",
            suspects[0].reason
        );
    }

    #[test]
    fn flat_baselines_give_finite_scores() {
        let data = Input::builder()
            .now(NOW)
            .series(latency("flat"), &samples(200.0, 210.0, 0.0))
            .series(latency("zero"), &samples(0.0, 0.0, 0.0))
            .build();
        let suspects = localize("{}", data, &[("firing", START)]);
        // Denominator 1e-3 × 200 = 0.2: z = 10 / 0.2 = 50. `zero` did not move: z = 0.
        assert_eq!(instances(&suspects), ["flat"]);
        assert!(suspects[0].reason.ends_with("(MAD 0): z=+50.0"));
    }

    #[test]
    fn the_window_opens_lead_before_the_earliest_firing_alert() {
        // Samples from minute 20 only, so where the baseline ends decides whether it is
        // long enough (5 samples) to judge the series.
        let points: Vec<_> = (20..=35)
            .map(|m| {
                let level = if m < 27 { 1.0 } else { 5.0 };
                (m * MINUTE, level + 0.1 * ((m % 3) as f64 - 1.0))
            })
            .collect();
        let data = || {
            Input::builder()
                .now(NOW)
                .series(latency("a"), &points)
                .build()
        };
        // The resolved alert does not start the incident (from 10m there were no baseline).
        let alerts = [("resolved", 10 * MINUTE), ("firing", 28 * MINUTE)];
        // A 1m lead opens the window at 27m: 7 baseline samples, then the move.
        assert_eq!(instances(&localize("{}", data(), &alerts)), ["a"]);
        // A 5m lead (as a string or in milliseconds) opens it at 23m: 3 baseline samples.
        assert_eq!(localize(r#"{"lead": "5m"}"#, data(), &alerts), []);
        assert_eq!(localize(r#"{"lead": 300000}"#, data(), &alerts), []);
        assert_eq!(
            instances(&localize(r#"{"lead": "90s"}"#, data(), &alerts)),
            ["a"]
        );
        // With no alert firing, the earliest of all of them starts the incident.
        let resolved = [("resolved", 40 * MINUTE), ("resolved", 28 * MINUTE)];
        assert_eq!(instances(&localize("{}", data(), &resolved)), ["a"]);
    }

    #[test]
    fn short_series_and_staleness_markers_are_skipped() {
        let mut stale = samples(1.0, 5.0, 0.1);
        for (_, v) in stale.iter_mut().take(26) {
            *v = f64::NAN;
        }
        let data = Input::builder()
            .now(NOW)
            .series(latency("stale"), &stale) // 2 finite baseline samples
            .series(latency("young"), &samples(1.0, 5.0, 0.1)[24..]) // 5
            .build();
        let suspects = localize("{}", data, &[("firing", START)]);
        assert_eq!(instances(&suspects), ["young"]);
    }

    #[test]
    fn an_incident_without_alerts_is_an_error() {
        let mut rule = MetricDeviation::configure("{}").unwrap();
        let input = LocalizeInput::new(incident(&[]), Input::builder().build());
        assert!(rule.localize(&input).unwrap_err().contains("no alerts"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(1.9), "1.9");
        assert_eq!(number(0.21), "0.21");
        assert_eq!(number(0.02), "0.02");
        assert_eq!(number(-2.34567), "-2.35");
        assert_eq!(number(1234.6), "1235");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1e-7), "1.00e-7");
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| MetricDeviation::configure(params).unwrap_err();
        assert!(refused(r#"{"by": []}"#).starts_with("params: `by`"));
        assert!(refused(r#"{"by": ["instance", ""]}"#).starts_with("params: `by`"));
        assert_eq!(
            refused(r#"{"direction": "sideways"}"#),
            r#"params: `direction` must be "up", "down" or "both", not "sideways""#
        );
        assert!(refused(r#"{"min_z": 0}"#).starts_with("params: `min_z`"));
        assert!(refused(r#"{"max_suspects": 0}"#).starts_with("params: `max_suspects`"));
        assert!(refused(r#"{"min_baseline": 1}"#).starts_with("params: `min_baseline`"));
        assert!(refused(r#"{"lead": "soon"}"#).starts_with("params: `lead`"));
        assert!(refused(r#"{"window": "5m"}"#).starts_with("params: unknown field `window`"));
        // The crate doc's example.
        MetricDeviation::configure(
            r#"{"by": ["instance"], "lead": "2m", "direction": "up", "min_z": 3.0,
                "max_suspects": 3}"#,
        )
        .unwrap();
    }
}
