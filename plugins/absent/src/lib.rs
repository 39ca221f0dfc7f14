//! `absent`: a dead man's switch. Fires for every series the rule selected before that has
//! had no sample for `after`, and, like PromQL's `absent()`, once when the rule has never
//! selected anything.
//!
//! ```toml
//! [[group.rule]]
//! name = "HeartbeatMissing"
//! plugin = "absent"
//! select = 'heartbeat_timestamp_seconds{job="backup"}'
//! params = { after = "2m" }
//! ```
//!
//! An instant rule sees a series until its latest sample is older than the lookback (5m)
//! or a staleness marker; `after` can be shorter with a `range`, which hands over every
//! recent sample. A missing series fires with its own labels (`__name__` aside) until it
//! comes back, or until `forget` has passed since its last sample. The series seen are
//! kept in the rule's state store, so a reload or a restart does not forget them.

use std::collections::BTreeMap;

use faultline_sdk::detector::*;
use faultline_sdk::params::Duration;
use serde::{Deserialize, Serialize};

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How long a series may go without a sample (default: twice the group's interval).
    pub after: Option<Duration>,
    /// How long after its last sample a missing series stops firing (default 1d).
    pub forget: Option<Duration>,
}

/// What the state store keeps: the last sample time of each series seen, by labels.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Seen {
    last: BTreeMap<String, (Vec<(String, String)>, i64)>,
}

const STATE_KEY: &str = "seen";

/// The detector, built from validated [`Params`].
#[derive(Debug)]
pub struct Absent {
    after_ms: i64,
    forget_ms: i64,
    seen: Seen,
}

impl Detector for Absent {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let after_ms = p
            .after
            .map_or_else(|| 2 * ms(rule::settings().interval), |d| ms(*d));
        let forget_ms = p.forget.map_or(86_400_000, |d| ms(*d));
        if after_ms <= 0 || forget_ms <= after_ms {
            return Err(
                "params: `after` must be more than 0s and `forget` longer than `after`".into(),
            );
        }
        let seen = state::get(STATE_KEY)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Absent {
            after_ms,
            forget_ms,
            seen,
        })
    }

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
        let now = input.now();
        let mut changed = false;
        for s in input.series() {
            let latest = s.latest().timestamp;
            let key = s.labels().to_string();
            let entry = self.seen.last.entry(key).or_insert_with(|| {
                changed = true;
                let labels = s.labels().iter().filter(|(n, _)| *n != "__name__");
                (labels.map(|(n, v)| (n.into(), v.into())).collect(), latest)
            });
            entry.1 = entry.1.max(latest);
        }
        let before = self.seen.last.len();
        self.seen
            .last
            .retain(|_, (_, last)| now - *last < self.forget_ms);
        // Written when a series comes or goes, not on every sample: what matters after a
        // restart is which series to expect.
        if changed || self.seen.last.len() != before {
            state::set(STATE_KEY, &serde_json::to_vec(&self.seen)?);
        }
        if self.seen.last.is_empty() && input.series().next().is_none() {
            return Ok(vec![
                Finding::new().annotation("absent", "no series selected"),
            ]);
        }
        Ok(self
            .seen
            .last
            .values()
            .filter(|(_, last)| now - *last >= self.after_ms)
            .map(|(labels, last)| {
                labels
                    .iter()
                    .fold(Finding::new(), |f, (k, v)| f.label(k, v))
                    .value(((now - last) / 1000) as f64)
            })
            .collect())
    }
}

export_detector!(Absent);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;

    fn at(now: i64, series: &[(&str, i64)]) -> Input {
        series
            .iter()
            .fold(Input::builder().now(now), |b, (job, ts)| {
                b.series([("__name__", "heartbeat"), ("job", *job)], &[(*ts, 1.0)])
            })
            .build()
    }

    #[test]
    fn fires_for_a_series_that_stopped_until_it_returns() {
        let mut a = Absent::configure(r#"{"after": "1m"}"#).unwrap();
        assert!(
            a.evaluate(&at(10_000, &[("a", 10_000), ("b", 10_000)]))
                .unwrap()
                .is_empty()
        );
        // b stops; it is still in the input (within the lookback) but old.
        let findings = a
            .evaluate(&at(80_000, &[("a", 80_000), ("b", 10_000)]))
            .unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].labels.get("job"), Some("b"));
        assert_eq!(findings[0].labels.get("__name__"), None);
        assert_eq!(findings[0].value, Some(70.0));
        // Then it leaves the input altogether: still firing.
        assert_eq!(
            a.evaluate(&at(400_000, &[("a", 400_000)])).unwrap().len(),
            1
        );
        // A restart remembers it.
        let mut restarted = Absent::configure(r#"{"after": "1m"}"#).unwrap();
        assert_eq!(
            restarted
                .evaluate(&at(410_000, &[("a", 410_000)]))
                .unwrap()
                .len(),
            1
        );
        // It comes back.
        assert!(
            a.evaluate(&at(420_000, &[("a", 420_000), ("b", 420_000)]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn fires_once_when_nothing_was_ever_selected_and_forgets() {
        testing::reset();
        let mut a = Absent::configure(r#"{"after": "1m", "forget": "10m"}"#).unwrap();
        let findings = a.evaluate(&at(0, &[])).unwrap();
        assert_eq!(findings.len(), 1);
        assert!(findings[0].labels.is_empty());
        a.evaluate(&at(10_000, &[("a", 10_000)])).unwrap();
        assert_eq!(a.evaluate(&at(100_000, &[])).unwrap().len(), 1);
        assert!(
            a.evaluate(&at(700_000, &[])).unwrap().len() == 1,
            "forgotten: absent() again"
        );
        assert!(Absent::configure(r#"{"after": "1m", "forget": "1m"}"#).is_err());
    }
}
