//! `rate`: a threshold on how fast counters grow, as PromQL's `rate(x[window]) > above`
//! (or `increase`), per series or summed by labels.
//!
//! ```toml
//! [[group.rule]]
//! name = "ManyRestarts"
//! plugin = "rate"
//! select = 'kube_pod_container_status_restarts_total'
//! range = "15m"
//! params = { function = "increase", window = "15m", above = 3 }
//! ```
//!
//! `function` is `rate` (per second, the default) or `increase`; counter resets are
//! handled and the growth is extrapolated to the window's edges, as PromQL does. Without
//! `by`, one finding per series beyond the bound; with `by`, one per group of the summed
//! values. Exactly one of `above` and `below`. The rule's `range` must cover `window`.

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `rate` (per second, default) or `increase` (over the window).
    #[serde(default)]
    pub function: Function,
    /// The window the growth is measured over.
    pub window: Duration,
    /// Fire while the value is above this.
    pub above: Option<f64>,
    /// Fire while the value is below this.
    pub below: Option<f64>,
    /// Sum by these labels (default: each series on its own).
    #[serde(default)]
    pub by: Vec<String>,
}

/// What is measured.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    #[default]
    Rate,
    Increase,
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Rate {
    p: Params,
}

impl Rate {
    fn measure(&self, s: &Series) -> Option<f64> {
        match self.p.function {
            Function::Rate => s.rate(*self.p.window),
            Function::Increase => s.increase(*self.p.window),
        }
    }

    fn beyond(&self, v: f64) -> bool {
        self.p.above.is_some_and(|a| v > a) || self.p.below.is_some_and(|b| v < b)
    }
}

impl Detector for Rate {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.above.is_some() == p.below.is_some() {
            return Err("params: give exactly one of `above` and `below`".into());
        }
        if p.window.is_zero() {
            return Err("params: `window` must be more than 0s".into());
        }
        if rule::settings().range.is_none_or(|r| r < *p.window) {
            return Err(format!(
                "needs the rule's `range` to be at least `window` ({})",
                p.window
            )
            .into());
        }
        Ok(Rate { p })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        if self.p.by.is_empty() {
            return Ok(input
                .series()
                .filter_map(|s| Some((self.measure(&s)?, s)))
                .filter(|(v, _)| self.beyond(*v))
                .map(|(v, s)| Finding::for_series(&s).value(v))
                .collect());
        }
        let by: Vec<&str> = self.p.by.iter().map(String::as_str).collect();
        let mut sums: Vec<(Labels, f64)> = Vec::new();
        for s in input.series() {
            let Some(v) = self.measure(&s) else { continue };
            let mut key = Labels::new();
            for &name in &by {
                if let Some(value) = s.labels().get(name) {
                    key.insert(name, value);
                }
            }
            match sums.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum += v,
                None => sums.push((key, v)),
            }
        }
        Ok(sums
            .into_iter()
            .filter(|(_, v)| self.beyond(*v))
            .map(|(labels, v)| {
                labels
                    .iter()
                    .fold(Finding::new(), |f, (k, l)| f.label(k, l))
                    .value(v)
            })
            .collect())
    }
}

export_detector!(Rate);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    fn range(secs: u64) {
        testing::set_rule(rule::Settings {
            range: Some(std::time::Duration::from_secs(secs)),
            ..Default::default()
        });
    }

    fn input() -> Input {
        let counter = |per_s: f64| -> Vec<(i64, f64)> {
            (1..=6)
                .map(|i| (i * 10_000, per_s * 10.0 * i as f64))
                .collect()
        };
        Input::builder()
            .now(60_000)
            .series([("pod", "a"), ("app", "x")], &counter(2.0))
            .series([("pod", "b"), ("app", "x")], &counter(0.5))
            .build()
    }

    #[test]
    fn per_series_rate_and_summed_increase() {
        range(60);
        let mut r = Rate::configure(r#"{"window": "1m", "above": 1}"#).unwrap();
        let f = r.evaluate(&input()).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].series_labels().unwrap().get("pod"), Some("a"));
        assert!((f[0].value.unwrap() - 2.0).abs() < 1e-9);

        let mut r = Rate::configure(
            r#"{"function": "increase", "window": "1m", "above": 100, "by": ["app"]}"#,
        )
        .unwrap();
        let f = r.evaluate(&input()).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].labels.get("app"), Some("x"));
        assert!((f[0].value.unwrap() - 150.0).abs() < 1e-9);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        range(60);
        assert!(Rate::configure(r#"{"window": "1m"}"#).is_err());
        assert!(Rate::configure(r#"{"window": "1m", "above": 1, "below": 0}"#).is_err());
        let err = Rate::configure(r#"{"window": "5m", "above": 1}"#).unwrap_err();
        assert_eq!(err, "needs the rule's `range` to be at least `window` (5m)");
    }
}
