//! `burn-rate`: SLO alerts as the Google SRE workbook recommends them ("Alerting on SLOs",
//! multiwindow, multi-burn-rate): over two counters, errors and total, fire when the error
//! budget burns fast over both a long and a short window.
//!
//! ```toml
//! [[group.rule]]
//! name = "ErrorBudgetBurn"
//! plugin = "burn-rate"
//! select = { errors = 'http_requests_total{code=~"5.."}', total = 'http_requests_total' }
//! range = "3d"
//! params = { objective = "99.9%", by = ["service"] }
//! ```
//!
//! The budget is `1 - objective` (0.1% of requests for 99.9%). A pair of windows fires when
//! the error ratio over the long window and over the short one are both above `factor` ×
//! budget. The standard pairs: 14.4 × (1h, 5m) and 6 × (6h, 30m) page, 1 × (3d, 6h) makes
//! a ticket; `windows` replaces them. One finding per group (`by`) and severity, for its
//! fastest firing pair, labelled `severity`, valued with the burn rate over the long window.
//! The rule's `range` must cover the longest window.

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use faultline_sdk::text;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The SLO: `"99.9%"`, or 99.9 (a percentage).
    pub objective: Objective,
    /// The input of failed events (default `errors`).
    #[serde(default = "errors")]
    pub numerator: String,
    /// The input of all events (default `total`).
    #[serde(default = "total")]
    pub denominator: String,
    /// Labels the ratios are taken by (default none: one SLO for everything).
    #[serde(default)]
    pub by: Vec<String>,
    /// The window pairs, fastest first (default the workbook's three).
    #[serde(default = "standard")]
    pub windows: Vec<Window>,
}

/// One pair of windows and the burn rate that fires it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Fire when the budget burns this many times faster than it may.
    pub factor: f64,
    pub long: Duration,
    pub short: Duration,
    /// The `severity` label of the finding (default `page`).
    #[serde(default = "page")]
    pub severity: String,
}

/// An objective as a percentage, from `"99.9%"` or `99.9`.
#[derive(Debug, Clone, Copy)]
pub struct Objective(f64);

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let percent = match Raw::deserialize(d)? {
            Raw::Number(n) => Some(n),
            Raw::Text(t) => t
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse().ok()),
        };
        match percent {
            Some(p) if p > 0.0 && p < 100.0 => Ok(Objective(p)),
            _ => Err(serde::de::Error::custom(
                "`objective` must be a percentage between 0 and 100, such as \"99.9%\"",
            )),
        }
    }
}

fn errors() -> String {
    "errors".into()
}

fn total() -> String {
    "total".into()
}

fn page() -> String {
    "page".into()
}

/// The workbook's pairs: 2% of a 30-day budget in an hour, 5% in six hours, 10% in three days.
fn standard() -> Vec<Window> {
    let pair = |factor, long: u64, short: u64, severity: &str| Window {
        factor,
        long: Duration(std::time::Duration::from_secs(long)),
        short: Duration(std::time::Duration::from_secs(short)),
        severity: severity.into(),
    };
    vec![
        pair(14.4, 3600, 300, "page"),
        pair(6.0, 6 * 3600, 1800, "page"),
        pair(1.0, 3 * 86400, 6 * 3600, "ticket"),
    ]
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct BurnRate {
    p: Params,
    budget: f64,
}

impl Detector for BurnRate {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let rule = rule::settings();
        for name in [&p.numerator, &p.denominator] {
            if !rule.inputs.contains(name) {
                return Err(format!(
                    "the rule has no `select` input named {name:?}: write select = {{ {} = '…', {} = '…' }}",
                    p.numerator, p.denominator
                )
                .into());
            }
        }
        if p.windows.is_empty() {
            return Err("params: `windows` is empty".into());
        }
        for w in &p.windows {
            if !w.factor.is_finite() || w.factor <= 0.0 || w.short.is_zero() || w.short > w.long {
                return Err(format!(
                    "params: window {}/{}: the factor must be above 0 and the short window no longer than the long one",
                    w.long, w.short
                )
                .into());
            }
        }
        let longest = p.windows.iter().map(|w| w.long).max().unwrap_or_default();
        if rule.range.is_none_or(|r| r < *longest) {
            return Err(format!(
                "needs the rule's `range` to be at least {longest}, its longest window"
            )
            .into());
        }
        let budget = 1.0 - p.objective.0 / 100.0;
        Ok(BurnRate { p, budget })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let by: Vec<&str> = self.p.by.iter().map(String::as_str).collect();
        let (errors, total) = (
            input
                .selection(&self.p.numerator)
                .ok_or("no errors input")?,
            input
                .selection(&self.p.denominator)
                .ok_or("no total input")?,
        );
        // Error ratio per group over a window.
        let ratios = |w: &Duration| -> Vec<(Labels, f64)> {
            let bad = errors.sum_by(&by, |s| s.increase(**w));
            total
                .sum_by(&by, |s| s.increase(**w))
                .into_iter()
                .filter(|(_, all)| *all > 0.0)
                .map(|(labels, all)| {
                    let part = bad
                        .iter()
                        .find(|(l, _)| *l == labels)
                        .map_or(0.0, |(_, v)| *v);
                    (labels, part / all)
                })
                .collect()
        };
        let mut findings: Vec<Finding> = Vec::new();
        for w in &self.p.windows {
            let threshold = w.factor * self.budget;
            let short = ratios(&w.short);
            for (labels, long) in ratios(&w.long) {
                let short = short.iter().find(|(l, _)| *l == labels).map(|(_, r)| *r);
                if long <= threshold || short.is_none_or(|s| s <= threshold) {
                    continue;
                }
                let finding = labels
                    .iter()
                    .fold(Finding::new(), |f, (k, v)| f.label(k, v))
                    .label("severity", &w.severity);
                // A faster pair of the same severity already fired for this group.
                if findings.iter().any(|f| f.labels == finding.labels) {
                    continue;
                }
                let burn = long / self.budget;
                findings.push(
                    finding
                        .value(burn)
                        .annotation("burn_rate", text::number(burn))
                        .annotation("burn_windows", format!("{}/{}", w.long, w.short)),
                );
            }
        }
        Ok(findings)
    }
}

export_detector!(BurnRate);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    fn rule(range_secs: u64) {
        testing::set_rule(rule::Settings {
            range: Some(std::time::Duration::from_secs(range_secs)),
            inputs: vec!["errors".into(), "total".into()],
            ..Default::default()
        });
    }

    /// Counters growing linearly for an hour: `errors_per_s` of `total_per_s` fail.
    fn input(errors_per_s: f64, total_per_s: f64) -> Input {
        let series = |rate: f64| -> Vec<(i64, f64)> {
            (0..=360)
                .map(|i| (i * 10_000, rate * 10.0 * i as f64))
                .collect()
        };
        Input::builder()
            .now(3_600_000)
            .input("errors")
            .series([("service", "api")], &series(errors_per_s))
            .input("total")
            .series([("service", "api")], &series(total_per_s))
            .build()
    }

    const FAST: &str = r#"{"objective": "99%", "windows": [{"factor": 14.4, "long": "1h", "short": "5m"}, {"factor": 1, "long": "1h", "short": "5m", "severity": "ticket"}]}"#;

    #[test]
    fn a_fast_burn_pages() {
        rule(3600);
        let mut b = BurnRate::configure(FAST).unwrap();
        // 20% errors against a 1% budget: burning 20 times too fast.
        let findings = b.evaluate(&input(2.0, 10.0)).unwrap();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].labels.get("severity"), Some("page"));
        assert!((findings[0].value.unwrap() - 20.0).abs() < 1e-6);
        assert_eq!(findings[0].annotations.get("burn_windows"), Some("1h/5m"));
        assert_eq!(findings[1].labels.get("severity"), Some("ticket"));
    }

    #[test]
    fn a_slow_burn_only_makes_a_ticket() {
        rule(3600);
        let mut b = BurnRate::configure(FAST).unwrap();
        // 2% errors: twice the budget, under the paging factor.
        let findings = b.evaluate(&input(0.2, 10.0)).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].labels.get("severity"), Some("ticket"));
        assert!(b.evaluate(&input(0.05, 10.0)).unwrap().is_empty());
    }

    #[test]
    fn standard_windows_need_three_days() {
        rule(3600);
        let err = BurnRate::configure(r#"{"objective": 99.9}"#).unwrap_err();
        assert_eq!(
            err,
            "needs the rule's `range` to be at least 3d, its longest window"
        );
        rule(3 * 86400);
        let b = BurnRate::configure(r#"{"objective": 99.9}"#).unwrap();
        assert!((b.budget - 0.001).abs() < 1e-12);
        assert_eq!(b.p.windows.len(), 3);
        let err = BurnRate::configure(r#"{"objective": "100%"}"#).unwrap_err();
        assert!(err.contains("between 0 and 100"), "{err:?}");
    }
}
