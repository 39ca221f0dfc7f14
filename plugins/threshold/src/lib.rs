//! `threshold`: a detector that fires for every series whose latest sample is beyond a bound.
//!
//! ```toml
//! [params]
//! above = 90.0   # or `below = 10.0`: exactly one of the two
//! clear = 80.0   # optional: keep firing until the value falls to 80
//! ```
//!
//! One finding per series currently beyond the bound, valued with its latest sample. With
//! `clear`, a series that crossed the bound keeps firing until it crosses `clear`, so a value
//! hovering around the bound does not flap. Which series are latched is kept in the rule's
//! state store, keyed by label fingerprint, so it survives reloads and restarts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};

use faultline_sdk::detector::*;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fire while the latest sample is above this.
    pub above: Option<f64>,
    /// Fire while the latest sample is below this.
    pub below: Option<f64>,
    /// Hysteresis: once a series fired, it keeps firing until its latest sample crosses
    /// this (lower than `above`, or higher than `below`). Without it, a series fires exactly
    /// while it is beyond the bound.
    pub clear: Option<f64>,
}

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Threshold {
    side: Side,
    bound: f64,
    clear: Option<f64>,
    /// Whether each series (by label fingerprint) is latched, as far as this instance knows:
    /// the state store is read once per series, and written only when a latch changes.
    /// Fingerprints are hashes already; the fixed-key hasher needs no random seed.
    latched: HashMap<u64, bool, BuildHasherDefault<DefaultHasher>>,
}

/// Which side of the bound fires.
#[derive(Debug, Clone, Copy)]
enum Side {
    Above,
    Below,
}

impl Side {
    /// Whether `value` is beyond `limit` on this side (never for NaN, so a Prometheus
    /// staleness marker does not fire and releases a latch).
    fn beyond(self, value: f64, limit: f64) -> bool {
        match self {
            Side::Above => value > limit,
            Side::Below => value < limit,
        }
    }
}

impl Detector for Threshold {
    type Params = Params;

    fn new(params: Params) -> Result<Self, Error> {
        let (side, bound) = match (params.above, params.below) {
            (Some(above), None) => (Side::Above, above),
            (None, Some(below)) => (Side::Below, below),
            (Some(_), Some(_)) => {
                return Err("params: give one of `above` or `below`, not both"
                    .to_string()
                    .into());
            }
            (None, None) => {
                return Err("params: `above` or `below` is required".to_string().into());
            }
        };
        if let Some(clear) = params.clear
            && !side.beyond(bound, clear)
        {
            let (name, must_be) = match side {
                Side::Above => ("above", "lower"),
                Side::Below => ("below", "higher"),
            };
            return Err(format!(
                "params: `clear` ({clear}) must be {must_be} than `{name}` ({bound}): \
                 a firing series stops firing when it crosses `clear`"
            )
            .into());
        }
        Ok(Self {
            side,
            bound,
            clear: params.clear,
            latched: HashMap::default(),
        })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let mut findings = Vec::new();
        for series in input.series() {
            let value = series.latest().value;
            let firing = match self.clear {
                None => self.side.beyond(value, self.bound),
                Some(clear) => self.hysteresis(series.labels(), value, clear),
            };
            if firing {
                findings.push(Finding::for_series(&series).value(value));
            }
        }
        Ok(findings)
    }
}

impl Threshold {
    /// Whether a series fires with hysteresis: a latched series fires until it crosses
    /// `clear`, another fires (and latches) once beyond the bound.
    fn hysteresis(&mut self, labels: &Labels, value: f64, clear: f64) -> bool {
        let fingerprint = labels.fingerprint();
        let latched = *self
            .latched
            .entry(fingerprint)
            .or_insert_with(|| state::get(&state_key(fingerprint)).is_some());
        let limit = if latched { clear } else { self.bound };
        let firing = self.side.beyond(value, limit);
        if firing != latched {
            let key = state_key(fingerprint);
            if firing {
                state::set(&key, b"1");
            } else {
                state::delete(&key);
            }
            self.latched.insert(fingerprint, firing);
        }
        firing
    }
}

/// The state store key marking a latched series.
fn state_key(fingerprint: u64) -> String {
    format!("latched/{fingerprint:016x}")
}

export_detector!(Threshold);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    /// One evaluation over series `{instance=<name>}` with one sample each; returns the
    /// firing instances and their values.
    fn evaluate(rule: &mut Threshold, latest: &[(&str, f64)]) -> Vec<(String, f64)> {
        let input = latest
            .iter()
            .fold(Input::builder().now(1_000), |b, &(instance, value)| {
                b.series([("instance", instance)], &[(1_000, value)])
            })
            .build();
        rule.evaluate(&input)
            .unwrap()
            .into_iter()
            .map(|f| {
                let labels = f.series_labels().unwrap();
                (
                    labels.get("instance").unwrap().to_string(),
                    f.value.unwrap(),
                )
            })
            .collect()
    }

    fn fired(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|&(i, v)| (i.to_string(), v)).collect()
    }

    #[test]
    fn above_fires_for_series_over_the_bound() {
        let mut rule = Threshold::configure(r#"{"above": 90}"#).unwrap();
        let got = evaluate(&mut rule, &[("a", 95.0), ("b", 90.0), ("c", 12.0)]);
        assert_eq!(got, fired(&[("a", 95.0)]));
    }

    #[test]
    fn below_fires_for_series_under_the_bound() {
        let mut rule = Threshold::configure(r#"{"below": 10}"#).unwrap();
        let got = evaluate(&mut rule, &[("a", 9.5), ("b", 10.0), ("c", f64::NAN)]);
        assert_eq!(got, fired(&[("a", 9.5)]));
    }

    #[test]
    fn judges_the_latest_sample_of_a_range() {
        let mut rule = Threshold::configure(r#"{"above": 90}"#).unwrap();
        let input = Input::builder()
            .series([("instance", "a")], &[(0, 99.0), (15, 80.0)])
            .series([("instance", "b")], &[(0, 10.0), (15, 91.0)])
            .build();
        let findings = rule.evaluate(&input).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].value, Some(91.0));
        assert_eq!(
            findings[0].series_labels().unwrap().get("instance"),
            Some("b")
        );
    }

    #[test]
    fn without_clear_no_state_is_kept() {
        let mut rule = Threshold::configure(r#"{"above": 90}"#).unwrap();
        evaluate(&mut rule, &[("a", 95.0)]);
        assert!(testing::state().is_empty());
    }

    #[test]
    fn hysteresis_holds_until_clear() {
        let mut rule = Threshold::configure(r#"{"above": 90, "clear": 80}"#).unwrap();
        assert_eq!(evaluate(&mut rule, &[("a", 85.0)]), fired(&[]));
        assert_eq!(evaluate(&mut rule, &[("a", 95.0)]), fired(&[("a", 95.0)]));
        // Back under the bound but not under `clear`: still firing.
        assert_eq!(evaluate(&mut rule, &[("a", 85.0)]), fired(&[("a", 85.0)]));
        assert_eq!(evaluate(&mut rule, &[("a", 80.0)]), fired(&[]));
        // Cleared: 85 no longer fires until the bound is crossed again.
        assert_eq!(evaluate(&mut rule, &[("a", 85.0)]), fired(&[]));
        assert!(testing::state().is_empty());
    }

    #[test]
    fn hysteresis_below() {
        let mut rule = Threshold::configure(r#"{"below": 10, "clear": 20}"#).unwrap();
        assert_eq!(evaluate(&mut rule, &[("a", 5.0)]), fired(&[("a", 5.0)]));
        assert_eq!(evaluate(&mut rule, &[("a", 15.0)]), fired(&[("a", 15.0)]));
        assert_eq!(evaluate(&mut rule, &[("a", 25.0)]), fired(&[]));
    }

    #[test]
    fn latches_survive_a_restart_and_are_per_series() {
        let params = r#"{"above": 90, "clear": 80}"#;
        let mut rule = Threshold::configure(params).unwrap();
        evaluate(&mut rule, &[("a", 95.0), ("b", 50.0)]);
        let fingerprint = Labels::from([("instance", "a")]).fingerprint();
        let keys: Vec<String> = testing::state().into_keys().collect();
        assert_eq!(keys, [format!("latched/{fingerprint:016x}")]);

        // A new instance, as after a reload or restart, with the same state store.
        let mut rule = Threshold::configure(params).unwrap();
        let got = evaluate(&mut rule, &[("a", 85.0), ("b", 85.0)]);
        assert_eq!(got, fired(&[("a", 85.0)]));
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| Threshold::configure(params).unwrap_err();
        assert_eq!(refused("{}"), "params: `above` or `below` is required");
        assert_eq!(
            refused(r#"{"above": 1, "below": 0}"#),
            "params: give one of `above` or `below`, not both"
        );
        assert_eq!(
            refused(r#"{"above": 90, "clear": 95}"#),
            "params: `clear` (95) must be lower than `above` (90): \
             a firing series stops firing when it crosses `clear`"
        );
        assert!(refused(r#"{"below": 10, "clear": 10}"#).starts_with("params: `clear` (10)"));
        assert_eq!(
            refused(r#"{"above": "90"}"#),
            r#"params: invalid type: string "90", expected f64"#
        );
        assert_eq!(
            refused(r#"{"abov": 90}"#),
            "params: unknown field `abov`, expected one of `above`, `below`, `clear`"
        );
    }
}
