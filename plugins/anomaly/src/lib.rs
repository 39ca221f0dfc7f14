//! `anomaly`: fires for a series whose latest value is far from its own recent baseline,
//! by a robust z-score: `0.6745 × (x − median) / MAD` over the baseline's samples, so a few
//! outliers in the baseline do not move it.
//!
//! ```toml
//! [[group.rule]]
//! name = "LatencyAnomaly"
//! plugin = "anomaly"
//! select = 'http_request_duration_seconds:p99'
//! range = "1h"
//! params = { threshold = 3.5, direction = "up" }
//! ```
//!
//! The baseline is every sample of the `range` before the latest one. With `seasonal =
//! true`, only the samples of the same hour of the week (in UTC) in earlier weeks: a
//! Monday-morning peak is compared with Monday mornings, so the `range` needs several
//! weeks. A series with fewer than `min_samples` (default 10) baseline samples is not
//! judged. A baseline whose MAD is 0 (constant) falls back to its mean absolute deviation;
//! if that is 0 too, any other value is an anomaly. Valued with the z-score.

use faultline_sdk::detector::*;
use faultline_sdk::stats::median;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fire beyond this robust z-score (default 3.5, Iglewicz and Hoaglin's).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// `up`, `down` or `both` (default).
    #[serde(default)]
    pub direction: Direction,
    /// Compare with the same hour of the week in earlier weeks only.
    #[serde(default)]
    pub seasonal: bool,
    /// The fewest baseline samples a series needs to be judged (default 10).
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
}

fn default_threshold() -> f64 {
    3.5
}

fn default_min_samples() -> usize {
    10
}

/// Which deviations count.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
    #[default]
    Both,
}

const HOUR_MS: i64 = 3_600_000;
const WEEK_MS: i64 = 7 * 24 * HOUR_MS;

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Anomaly {
    p: Params,
}

impl Anomaly {
    /// The robust z-score of `x` against `baseline`, if there is enough of it.
    fn score(&self, x: f64, baseline: &mut [f64]) -> Option<f64> {
        if baseline.len() < self.p.min_samples {
            return None;
        }
        let m = median(baseline);
        let mut deviations: Vec<f64> = baseline.iter().map(|v| (v - m).abs()).collect();
        let mad = median(&mut deviations);
        let spread = if mad > 0.0 {
            mad / 0.6745
        } else {
            // Constant but for a few values: the mean absolute deviation, scaled as the MAD.
            deviations.iter().sum::<f64>() / deviations.len() as f64 * 1.2533
        };
        Some(if spread > 0.0 {
            (x - m) / spread
        } else if x == m {
            0.0
        } else {
            f64::INFINITY.copysign(x - m)
        })
    }
}

impl Detector for Anomaly {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if !p.threshold.is_finite() || p.threshold <= 0.0 {
            return Err("params: `threshold` must be a number above 0".into());
        }
        let range = rule::settings()
            .range
            .ok_or("needs a `range`: the baseline is the samples in it")?;
        if p.seasonal && range.as_millis() < 2 * WEEK_MS as u128 {
            return Err("params: `seasonal` needs the rule's `range` to be at least 2w, to hold earlier weeks".into());
        }
        Ok(Anomaly { p })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let mut findings = Vec::new();
        for s in input.series() {
            let latest = s.latest();
            if latest.value.is_nan() {
                continue;
            }
            let hour_of_week = |ts: i64| ts.rem_euclid(WEEK_MS) / HOUR_MS;
            let mut baseline: Vec<f64> = s
                .samples()
                .take(s.len() - 1)
                .filter(|x| !x.value.is_nan())
                .filter(|x| {
                    !self.p.seasonal
                        || (hour_of_week(x.timestamp) == hour_of_week(latest.timestamp)
                            && latest.timestamp - x.timestamp > HOUR_MS)
                })
                .map(|x| x.value)
                .collect();
            let Some(z) = self.score(latest.value, &mut baseline) else {
                continue;
            };
            let beyond = match self.p.direction {
                Direction::Up => z > self.p.threshold,
                Direction::Down => z < -self.p.threshold,
                Direction::Both => z.abs() > self.p.threshold,
            };
            if beyond {
                let z = if z.is_finite() {
                    z
                } else {
                    f64::MAX.copysign(z)
                };
                findings.push(Finding::for_series(&s).value(z));
            }
        }
        Ok(findings)
    }
}

export_detector!(Anomaly);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    fn range(ms: i64) {
        testing::set_rule(rule::Settings {
            range: Some(std::time::Duration::from_millis(ms as u64)),
            ..Default::default()
        });
    }

    #[test]
    fn a_value_far_from_its_own_baseline_fires() {
        range(HOUR_MS);
        let mut a = Anomaly::configure(r#"{"direction": "up"}"#).unwrap();
        let noisy: Vec<(i64, f64)> = (0..30)
            .map(|i| (i * 60_000, 100.0 + (i % 5) as f64))
            .collect();
        let mut spiking = noisy.clone();
        spiking.push((30 * 60_000, 140.0));
        let mut normal = noisy.clone();
        normal.push((30 * 60_000, 103.0));
        let input = Input::builder()
            .now(30 * 60_000)
            .series([("svc", "a")], &spiking)
            .series([("svc", "b")], &normal)
            .build();
        let f = a.evaluate(&input).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].series_labels().unwrap().get("svc"), Some("a"));
        assert!(f[0].value.unwrap() > 3.5);
        let mut down = Anomaly::configure(r#"{"direction": "down"}"#).unwrap();
        assert!(down.evaluate(&input).unwrap().is_empty());
    }

    #[test]
    fn seasonal_compares_the_same_hour_of_earlier_weeks() {
        range(3 * WEEK_MS);
        let mut a = Anomaly::configure(r#"{"seasonal": true, "min_samples": 2}"#).unwrap();
        // Hourly samples for three weeks: 500 at this hour of every week, 100 otherwise.
        let now = 3 * WEEK_MS;
        let samples: Vec<(i64, f64)> = (0..=(3 * WEEK_MS / HOUR_MS))
            .map(|h| h * HOUR_MS)
            .map(|t| {
                (
                    t,
                    if t.rem_euclid(WEEK_MS) / HOUR_MS == 0 {
                        500.0 + (t / WEEK_MS) as f64
                    } else {
                        100.0
                    },
                )
            })
            .collect();
        let input = Input::builder()
            .now(now)
            .series([("svc", "a")], &samples)
            .build();
        assert!(
            a.evaluate(&input).unwrap().is_empty(),
            "as usual for this hour"
        );
        let mut plain = Anomaly::configure(r#"{}"#).unwrap();
        assert_eq!(
            plain.evaluate(&input).unwrap().len(),
            1,
            "unusual against every hour"
        );
        assert!(Anomaly::configure(r#"{"seasonal": true}"#).is_ok());
        range(HOUR_MS);
        assert!(Anomaly::configure(r#"{"seasonal": true}"#).is_err());
    }
}
