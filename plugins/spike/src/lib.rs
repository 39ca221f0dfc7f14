//! `spike`: fires when the log records of the last `window` spike against the window
//! before it (ElastAlert's `spike` rule): `spike_height` times as many (`up`), as few
//! (`down`), or either (`both`).
//!
//! ```toml
//! [[group.rule]]
//! name = "ErrorSpike"
//! plugin = "spike"
//! logs = '{app="api"} |= "error"'
//! range = "20m"
//! params = { window = "10m", spike_height = 3, threshold_cur = 10 }
//! ```
//!
//! The rule's `range` must cover both windows (twice `window`). `threshold_cur` and
//! `threshold_ref` are the fewest records the current and the reference window need for a
//! spike to count (default 0 and 1, so a first record after silence is not infinitely
//! many times more). `by` counts per value of a stream label or structured field. Valued
//! with the current count; the reference count is in the `reference` annotation.

use std::collections::BTreeMap;

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The current window; the reference is the one before it.
    pub window: Duration,
    /// How many times more (or fewer) records make a spike.
    pub spike_height: f64,
    /// `up` (default), `down` or `both`.
    #[serde(default)]
    pub spike_type: SpikeType,
    /// The fewest records in the current window for a spike (default 0).
    #[serde(default)]
    pub threshold_cur: u64,
    /// The fewest records in the reference window for a spike (default 1).
    #[serde(default = "one")]
    pub threshold_ref: u64,
    /// A stream label or structured field to count per value of.
    pub by: Option<String>,
}

fn one() -> u64 {
    1
}

/// Which way counts.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum SpikeType {
    #[default]
    Up,
    Down,
    Both,
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Spike {
    p: Params,
    window_ms: i64,
}

impl Detector for Spike {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let range = rule::settings()
            .range
            .ok_or("needs a rule with `logs` and `range`")?;
        if p.window.is_zero() || range < *p.window * 2 {
            return Err(format!(
                "needs the rule's `range` to be at least twice `window` ({})",
                p.window
            )
            .into());
        }
        if !p.spike_height.is_finite() || p.spike_height <= 1.0 {
            return Err("params: `spike_height` must be a number above 1".into());
        }
        let window_ms = p.window.as_millis() as i64;
        Ok(Spike { p, window_ms })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let (cur_start, ref_start) = (
            input.now() - self.window_ms,
            input.now() - 2 * self.window_ms,
        );
        // Per group: (reference count, current count).
        let mut counts: BTreeMap<Option<&str>, (u64, u64)> = BTreeMap::new();
        for r in input.logs().filter(|r| r.timestamp() > ref_start) {
            let key = match &self.p.by {
                Some(by) => match r.labels().get(by).or_else(|| r.field(by)) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            let c = counts.entry(key).or_default();
            if r.timestamp() > cur_start {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
        }
        let h = self.p.spike_height;
        let mut findings = Vec::new();
        for (key, (reference, current)) in counts {
            if current < self.p.threshold_cur || reference < self.p.threshold_ref {
                continue;
            }
            let (r, c) = (reference as f64, current as f64);
            let up = c >= r * h;
            let down = c * h <= r;
            let spiked = match self.p.spike_type {
                SpikeType::Up => up,
                SpikeType::Down => down,
                SpikeType::Both => up || down,
            };
            if spiked {
                let mut f = Finding::new()
                    .value(c)
                    .annotation("reference", reference.to_string());
                if let (Some(v), Some(by)) = (key, &self.p.by) {
                    f = f.label(by, v);
                }
                findings.push(f);
            }
        }
        Ok(findings)
    }
}

export_detector!(Spike);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    fn logs(times: &[i64]) -> Input {
        times
            .iter()
            .fold(Input::builder().now(1_200_000), |b, &t| {
                b.log([("app", "api")], t, "error")
            })
            .build()
    }

    #[test]
    fn up_and_down_against_the_window_before() {
        testing::set_rule(rule::Settings {
            range: Some(std::time::Duration::from_secs(1200)),
            ..Default::default()
        });
        let mut up = Spike::configure(r#"{"window": "10m", "spike_height": 3}"#).unwrap();
        // 1 in the reference window, 3 in the current one.
        let spiking = logs(&[300_000, 700_000, 800_000, 900_000]);
        let f = up.evaluate(&spiking).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, Some(3.0));
        assert_eq!(f[0].annotations.get("reference"), Some("1"));
        assert!(up.evaluate(&logs(&[300_000, 700_000])).unwrap().is_empty());
        let mut down =
            Spike::configure(r#"{"window": "10m", "spike_height": 3, "spike_type": "down"}"#)
                .unwrap();
        assert_eq!(
            down.evaluate(&logs(&[100_000, 200_000, 300_000]))
                .unwrap()
                .len(),
            1
        );
        assert!(Spike::configure(r#"{"window": "15m", "spike_height": 3}"#).is_err());
    }
}
