//! `log-count`: a detector that counts the log records its rule selects, per value of one
//! stream label, and fires for every value with more than a bound.
//!
//! ```toml
//! [[group.rule]]
//! name = "ErrorBurst"
//! plugin = "log-count"
//! logs = '{app="api"} |= "error"'   # which records count: stream matchers and line filters
//! range = "1m"                      # over which window
//! params = { above = 5, by = "instance" }
//! ```
//!
//! One finding per value of the `by` label (default `instance`) whose streams had more than
//! `above` records in the window, labelled `{<by>="<value>"}` and valued with the count.
//! Records of streams without the label are counted together, under no label.

use std::collections::BTreeMap;

use faultline_sdk::detector::*;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fire for a group with more records than this in the window.
    pub above: f64,
    /// The stream label records are grouped by. Default `instance`.
    #[serde(default = "default_by")]
    pub by: String,
}

fn default_by() -> String {
    "instance".to_string()
}

/// The detector.
#[derive(Debug)]
pub struct LogCount {
    p: Params,
}

impl Detector for LogCount {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if !p.above.is_finite() {
            return Err(format!("params: `above` ({}) must be a number", p.above).into());
        }
        if p.by.is_empty() {
            return Err("params: `by` must name a label".into());
        }
        Ok(Self { p })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let mut counts = BTreeMap::<&str, u64>::new();
        for record in input.logs() {
            let group = record.labels().get(&self.p.by).unwrap_or("");
            *counts.entry(group).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .filter(|&(_, n)| n as f64 > self.p.above)
            .map(|(group, n)| {
                let finding = Finding::new().value(n as f64);
                if group.is_empty() {
                    finding
                } else {
                    finding.label(&self.p.by, group)
                }
            })
            .collect())
    }
}

export_detector!(LogCount);

#[cfg(test)]
mod tests {
    use super::*;

    /// The findings as (labels, value).
    fn fired(rule: &mut LogCount, input: &Input) -> Vec<(String, f64)> {
        rule.evaluate(input)
            .unwrap()
            .into_iter()
            .map(|f| (f.labels.to_string(), f.value.unwrap()))
            .collect()
    }

    fn errors(records: &[(&str, &str, usize)]) -> Input {
        let mut b = Input::builder().now(60_000);
        for &(app, instance, n) in records {
            for i in 0..n {
                b = b.log(
                    [("app", app), ("instance", instance)],
                    i as i64,
                    "error: timeout",
                );
            }
        }
        b.build()
    }

    #[test]
    fn fires_per_instance_above_the_bound() {
        let mut rule = LogCount::configure(r#"{"above": 3}"#).unwrap();
        let input = errors(&[
            ("api", "web1", 5),
            ("api", "web2", 3),
            ("worker", "web2", 1),
        ]);
        // web2's streams together have 4 records: the count is per label value, not stream.
        assert_eq!(
            fired(&mut rule, &input),
            [
                (r#"{instance="web1"}"#.to_string(), 5.0),
                (r#"{instance="web2"}"#.to_string(), 4.0)
            ]
        );
    }

    #[test]
    fn groups_by_another_label() {
        let mut rule = LogCount::configure(r#"{"above": 2, "by": "app"}"#).unwrap();
        let input = errors(&[("api", "web1", 2), ("api", "web2", 1), ("worker", "w", 2)]);
        assert_eq!(
            fired(&mut rule, &input),
            [(r#"{app="api"}"#.to_string(), 3.0)]
        );
    }

    #[test]
    fn streams_without_the_label_count_together() {
        let mut rule = LogCount::configure(r#"{"above": 1}"#).unwrap();
        let input = Input::builder()
            .log([("app", "a")], 1, "x")
            .log([("app", "b")], 2, "y")
            .build();
        assert_eq!(fired(&mut rule, &input), [("{}".to_string(), 2.0)]);
    }

    #[test]
    fn nothing_fires_without_records() {
        let mut rule = LogCount::configure(r#"{"above": 0}"#).unwrap();
        assert_eq!(fired(&mut rule, &Input::builder().build()), []);
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |p: &str| LogCount::configure(p).unwrap_err();
        assert_eq!(refused("{}"), "params: missing field `above`");
        assert_eq!(
            refused(r#"{"above": 1, "by": ""}"#),
            "params: `by` must name a label"
        );
        assert_eq!(
            refused(r#"{"above": 1, "group": "x"}"#),
            "params: unknown field `group`, expected `above` or `by`"
        );
    }
}
