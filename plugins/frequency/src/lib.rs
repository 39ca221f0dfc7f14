//! `frequency`: fires when at least `num_events` log records arrived in the last `window`
//! (ElastAlert's `frequency` rule), overall or per value of a label or field (`by`).
//!
//! ```toml
//! [[group.rule]]
//! name = "LoginFailures"
//! plugin = "frequency"
//! logs = '{app="auth"} |= "login failed"'
//! range = "5m"
//! params = { num_events = 50, window = "5m", by = "user" }
//! ```
//!
//! `window` defaults to the rule's `range` and may not exceed it. `by` names a stream label
//! or a structured field; records without it are left out. One finding per group at or over
//! `num_events`, labelled with the group's value, valued with the count.

use std::collections::BTreeMap;

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fire at this many records in the window.
    pub num_events: u64,
    /// How far back records count (default: the rule's `range`).
    pub window: Option<Duration>,
    /// A stream label or structured field to count per value of.
    pub by: Option<String>,
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Frequency {
    num_events: u64,
    window_ms: i64,
    by: Option<String>,
}

impl Detector for Frequency {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let window = rule::log_window(p.window.map(|w| *w))?;
        if p.num_events == 0 {
            return Err("params: `num_events` must be at least 1".into());
        }
        Ok(Frequency {
            num_events: p.num_events,
            window_ms: window.as_millis() as i64,
            by: p.by,
        })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let start = input.now() - self.window_ms;
        let mut counts: BTreeMap<Option<&str>, u64> = BTreeMap::new();
        for r in input.logs().filter(|r| r.timestamp() > start) {
            let key = match &self.by {
                Some(by) => match r.labels().get(by).or_else(|| r.field(by)) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            *counts.entry(key).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n >= self.num_events)
            .map(|(key, n)| {
                let f = Finding::new().value(n as f64);
                match (key, &self.by) {
                    (Some(v), Some(by)) => f.label(by, v),
                    _ => f,
                }
            })
            .collect())
    }
}

export_detector!(Frequency);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    #[test]
    fn counts_per_value_in_the_window() {
        testing::set_rule(rule::Settings {
            range: Some(std::time::Duration::from_secs(600)),
            ..Default::default()
        });
        let mut f =
            Frequency::configure(r#"{"num_events": 2, "window": "1m", "by": "user"}"#).unwrap();
        let input = Input::builder()
            .now(600_000)
            .log_with_fields(
                [("app", "auth")],
                100_000,
                "login failed",
                [("user", "bob")],
            )
            .log_with_fields(
                [("app", "auth")],
                550_000,
                "login failed",
                [("user", "ann")],
            )
            .log_with_fields(
                [("app", "auth")],
                560_000,
                "login failed",
                [("user", "ann")],
            )
            .log_with_fields(
                [("app", "auth")],
                570_000,
                "login failed",
                [("user", "bob")],
            )
            .log([("app", "auth")], 580_000, "login failed")
            .build();
        let findings = f.evaluate(&input).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].labels.get("user"), Some("ann"));
        assert_eq!(findings[0].value, Some(2.0));
        assert!(Frequency::configure(r#"{"num_events": 2, "window": "1h"}"#).is_err());
    }
}
