//! `ratio`: a detector over two named inputs that fires when the first over the second
//! passes a threshold, such as errors over requests.
//!
//! ```toml
//! [[group.rule]]
//! name = "HighErrorRatio"
//! plugin = "ratio"
//! select = { errors = 'http_requests_total{code=~"5.."}', total = 'http_requests_total' }
//! range = "5m"
//! params = { window = "5m", by = ["service"], above = 0.05 }
//! ```
//!
//! With `window`, both inputs are counters and each side is the sum of their `increase`
//! over the window (the rule's `range` must cover it); without, each side is the sum of the
//! inputs' latest values (gauges). Sums are taken `by` the given labels, and one finding
//! per group whose ratio is above `above`, valued with the ratio. A group whose total is 0
//! has no ratio and does not fire.

use std::time::Duration as StdDuration;

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fire while the ratio is above this.
    pub above: f64,
    /// The input on top (default `errors`).
    #[serde(default = "errors")]
    pub numerator: String,
    /// The input below (default `total`).
    #[serde(default = "total")]
    pub denominator: String,
    /// Counters: compare their increase over this window. Unset: latest values.
    pub window: Option<Duration>,
    /// Labels the sums are taken by (default none: one ratio for everything).
    #[serde(default)]
    pub by: Vec<String>,
}

fn errors() -> String {
    "errors".into()
}

fn total() -> String {
    "total".into()
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Ratio {
    p: Params,
}

impl Detector for Ratio {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if !p.above.is_finite() {
            return Err("params: `above` must be a number".into());
        }
        let rule = rule::settings();
        for name in [&p.numerator, &p.denominator] {
            if !rule.inputs.contains(name) {
                return Err(format!(
                    "the rule has no `select` input named {name:?} (it has: {}): write \
                     select = {{ {} = '…', {} = '…' }}",
                    if rule.inputs.is_empty() {
                        "none".into()
                    } else {
                        rule.inputs.join(", ")
                    },
                    p.numerator,
                    p.denominator
                )
                .into());
            }
        }
        if let Some(window) = p.window
            && rule.range.is_none_or(|r| r < *window)
        {
            return Err(format!(
                "params: `window` {window} needs the rule's `range` to be at least {window}"
            )
            .into());
        }
        Ok(Ratio { p })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let by: Vec<&str> = self.p.by.iter().map(String::as_str).collect();
        let window: Option<StdDuration> = self.p.window.map(|w| *w);
        let value = |s: &Series| match window {
            Some(w) => s.increase(w),
            None => Some(s.latest().value),
        };
        let side = |name: &str| -> Result<Vec<(Labels, f64)>, Error> {
            let selection = input
                .selection(name)
                .ok_or_else(|| format!("no input named {name:?}"))?;
            Ok(selection.sum_by(&by, value))
        };
        let (top, bottom) = (side(&self.p.numerator)?, side(&self.p.denominator)?);
        let mut findings = Vec::new();
        for (labels, total) in bottom {
            if total <= 0.0 {
                continue;
            }
            // A group with no errors at all has a ratio of 0.
            let part = top
                .iter()
                .find(|(l, _)| *l == labels)
                .map_or(0.0, |(_, v)| *v);
            let ratio = part / total;
            if ratio > self.p.above {
                let finding = labels
                    .iter()
                    .fold(Finding::new(), |f, (k, v)| f.label(k, v));
                findings.push(finding.value(ratio));
            }
        }
        Ok(findings)
    }
}

export_detector!(Ratio);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    fn with_inputs(range: Option<u64>) {
        testing::set_rule(rule::Settings {
            range: range.map(StdDuration::from_secs),
            inputs: vec!["errors".into(), "total".into()],
            ..Default::default()
        });
    }

    #[test]
    fn fires_by_group_over_counters() {
        with_inputs(Some(300));
        let mut r =
            Ratio::configure(r#"{"above": 0.05, "window": "1m", "by": ["service"]}"#).unwrap();
        let input = Input::builder()
            .now(60_000)
            .input("errors")
            .series(
                [("service", "api"), ("code", "500")],
                &[(1_000, 0.0), (60_000, 10.0)],
            )
            .series(
                [("service", "db"), ("code", "500")],
                &[(1_000, 0.0), (60_000, 1.0)],
            )
            .input("total")
            .series([("service", "api")], &[(1_000, 0.0), (60_000, 100.0)])
            .series([("service", "db")], &[(1_000, 0.0), (60_000, 100.0)])
            .series([("service", "idle")], &[(1_000, 0.0), (60_000, 0.0)])
            .build();
        let findings = r.evaluate(&input).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].labels.get("service"), Some("api"));
        assert!((findings[0].value.unwrap() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn gauges_without_a_window() {
        with_inputs(None);
        let mut r = Ratio::configure(r#"{"above": 0.5}"#).unwrap();
        let input = Input::builder()
            .input("errors")
            .series([("a", "1")], &[(0, 3.0)])
            .input("total")
            .series([("a", "1")], &[(0, 4.0)])
            .build();
        assert_eq!(r.evaluate(&input).unwrap()[0].value, Some(0.75));
    }

    #[test]
    fn refuses_rules_it_cannot_serve() {
        testing::set_rule(rule::Settings::default());
        let err = Ratio::configure(r#"{"above": 0.05}"#).unwrap_err();
        assert!(
            err.starts_with(r#"the rule has no `select` input named "errors" (it has: none)"#),
            "{err:?}"
        );
        with_inputs(Some(60));
        let err = Ratio::configure(r#"{"above": 0.05, "window": "5m"}"#).unwrap_err();
        assert_eq!(
            err,
            "params: `window` 5m needs the rule's `range` to be at least 5m"
        );
        assert!(Ratio::configure(r#"{"above": 0.05, "numerator": "bad"}"#).is_err());
    }
}
