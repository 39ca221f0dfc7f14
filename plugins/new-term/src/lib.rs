//! `new-term`: fires when a value of a stream label or structured field appears that was
//! never seen before (ElastAlert's `new_term` rule): a new error code, user agent, host.
//!
//! ```toml
//! [[group.rule]]
//! name = "NewErrorCode"
//! plugin = "new-term"
//! logs = '{app="api"} |= "error"'
//! range = "10m"
//! params = { field = "code", window = "5m" }
//! ```
//!
//! Each value is remembered with when it was first seen, in the rule's state store, so a
//! reload or restart does not make old values new. A value fires, labelled `term`, for
//! `window` (default: the group's interval) after it first appears; values already in the
//! logs of the first evaluation, older than `window`, are the baseline. At most
//! `max_terms` (default 10000) values are remembered, the oldest forgotten first.

use std::collections::BTreeMap;

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The stream label or structured field whose values are watched.
    pub field: String,
    /// How long a new value fires (default: the group's interval).
    pub window: Option<Duration>,
    /// How many values are remembered (default 10000).
    pub max_terms: Option<usize>,
}

const STATE_KEY: &str = "terms";

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct NewTerm {
    field: String,
    window_ms: i64,
    max_terms: usize,
    /// Each value seen, with when it was first seen.
    first_seen: BTreeMap<String, i64>,
}

impl Detector for NewTerm {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let window = p.window.map_or_else(|| rule::settings().interval, |w| *w);
        if window.is_zero() || p.field.is_empty() {
            return Err(
                "params: `field` must name a label or field and `window` be more than 0s".into(),
            );
        }
        let first_seen = state::get(STATE_KEY)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(NewTerm {
            field: p.field,
            window_ms: window.as_millis() as i64,
            max_terms: p.max_terms.unwrap_or(10_000).max(1),
            first_seen,
        })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let mut changed = false;
        for r in input.logs() {
            let Some(v) = r.labels().get(&self.field).or_else(|| r.field(&self.field)) else {
                continue;
            };
            if !self.first_seen.contains_key(v) {
                self.first_seen.insert(v.to_string(), r.timestamp());
                changed = true;
            }
        }
        while self.first_seen.len() > self.max_terms {
            let oldest = self
                .first_seen
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone());
            oldest.map(|k| self.first_seen.remove(&k));
        }
        if changed {
            state::set(STATE_KEY, &serde_json::to_vec(&self.first_seen)?);
        }
        let start = input.now() - self.window_ms;
        Ok(self
            .first_seen
            .iter()
            .filter(|(_, t)| **t > start)
            .map(|(term, _)| {
                Finding::new()
                    .label("term", term)
                    .annotation("field", &self.field)
            })
            .collect())
    }
}

export_detector!(NewTerm);

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(now: i64, records: &[(i64, &str)]) -> Input {
        records
            .iter()
            .fold(Input::builder().now(now), |b, (t, code)| {
                b.log_with_fields([("app", "api")], *t, "error", [("code", *code)])
            })
            .build()
    }

    #[test]
    fn a_value_never_seen_fires_for_its_window() {
        let mut n = NewTerm::configure(r#"{"field": "code", "window": "1m"}"#).unwrap();
        // The first evaluation's older values are the baseline.
        assert!(
            n.evaluate(&codes(600_000, &[(100_000, "E1")]))
                .unwrap()
                .is_empty()
        );
        let f = n
            .evaluate(&codes(660_000, &[(100_000, "E1"), (650_000, "E2")]))
            .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].labels.get("term"), Some("E2"));
        // A restart remembers both.
        let mut again = NewTerm::configure(r#"{"field": "code", "window": "1m"}"#).unwrap();
        assert!(
            again
                .evaluate(&codes(800_000, &[(790_000, "E2")]))
                .unwrap()
                .is_empty()
        );
    }
}
