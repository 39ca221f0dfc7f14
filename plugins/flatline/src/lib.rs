//! `flatline`: fires when fewer than `threshold` log records arrived in the last `window`
//! (ElastAlert's `flatline` rule): a service that stopped logging, a job that stopped
//! running.
//!
//! ```toml
//! [[group.rule]]
//! name = "OrdersStoppedLogging"
//! plugin = "flatline"
//! logs = '{app="orders"}'
//! range = "30m"
//! params = { threshold = 1, window = "10m", by = "instance" }
//! ```
//!
//! `window` defaults to the rule's `range`. Without `by`, one finding when the whole
//! selection is under `threshold`. With `by` (a stream label or structured field), one per
//! value seen in the `range` whose count in the window is under it: a value that logged
//! earlier in the range and went quiet.

use std::collections::BTreeMap;

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fire below this many records in the window.
    pub threshold: u64,
    /// How far back records count (default: the rule's `range`).
    pub window: Option<Duration>,
    /// A stream label or structured field to count per value of.
    pub by: Option<String>,
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Flatline {
    threshold: u64,
    window_ms: i64,
    by: Option<String>,
}

impl Detector for Flatline {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let window = rule::log_window(p.window.map(|w| *w))?;
        if p.threshold == 0 {
            return Err("params: `threshold` must be at least 1".into());
        }
        Ok(Flatline {
            threshold: p.threshold,
            window_ms: window.as_millis() as i64,
            by: p.by,
        })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let start = input.now() - self.window_ms;
        let Some(by) = &self.by else {
            let n = input.logs().filter(|r| r.timestamp() > start).count() as u64;
            return Ok(if n < self.threshold {
                vec![Finding::new().value(n as f64)]
            } else {
                vec![]
            });
        };
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for r in input.logs() {
            let Some(v) = r.labels().get(by).or_else(|| r.field(by)) else {
                continue;
            };
            *counts.entry(v).or_default() += u64::from(r.timestamp() > start);
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n < self.threshold)
            .map(|(v, n)| Finding::new().label(by, v).value(n as f64))
            .collect())
    }
}

export_detector!(Flatline);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    #[test]
    fn a_value_that_went_quiet_fires() {
        testing::set_rule(rule::Settings {
            range: Some(std::time::Duration::from_secs(1800)),
            ..Default::default()
        });
        let mut f =
            Flatline::configure(r#"{"threshold": 1, "window": "10m", "by": "instance"}"#).unwrap();
        let input = Input::builder()
            .now(1_800_000)
            .log([("app", "orders"), ("instance", "a")], 100_000, "ok")
            .log([("app", "orders"), ("instance", "b")], 100_000, "ok")
            .log([("app", "orders"), ("instance", "b")], 1_700_000, "ok")
            .build();
        let findings = f.evaluate(&input).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].labels.get("instance"), Some("a"));
        let mut all = Flatline::configure(r#"{"threshold": 2, "window": "10m"}"#).unwrap();
        assert_eq!(all.evaluate(&input).unwrap()[0].value, Some(1.0));
    }
}
