//! Counter helpers on a [`Series`], as PromQL computes them: [`increase`](Series::increase)
//! and [`rate`](Series::rate) over a window ending at the evaluation time, across counter
//! resets and extrapolated to the window's edges; [`value_at`](Series::value_at), the value
//! an instant query would see. NaN samples (Prometheus staleness markers) are gaps.
//!
//! The window must fit in the rule's `range`: the host hands over only the samples in it.
//!
//! ```
//! use std::time::Duration;
//! use faultline_sdk::Input;
//!
//! // A counter scraped every 15s, reset (a restart) between 60s and 75s.
//! let input = Input::builder()
//!     .now(90_000)
//!     .series([("job", "api")], &[(30_000, 10.0), (45_000, 20.0), (60_000, 30.0), (75_000, 5.0), (90_000, 15.0)])
//!     .build();
//! let s = input.series().next().unwrap();
//! // 10 + 10 + 5 (after the reset) + 10 = 35 over the 60s sampled, extrapolated to 75s.
//! assert_eq!(s.increase(Duration::from_secs(75)), Some(43.75));
//! assert_eq!(s.rate(Duration::from_secs(75)), Some(43.75 / 75.0));
//! assert_eq!(s.resets(Duration::from_secs(75)), 1);
//! assert_eq!(s.value_at(50_000), Some(20.0));
//! assert_eq!(s.value_at(1_000), None);
//! ```

use std::time::Duration;

use crate::input::{Sample, Series};

/// How long a sample stays the current value of its series, as Prometheus's default
/// lookback delta.
pub const LOOKBACK: Duration = Duration::from_secs(300);

impl Series<'_> {
    /// The value at `time` (milliseconds since the Unix epoch): the latest sample at or
    /// before it, unless that sample is older than [`LOOKBACK`] or a staleness marker.
    pub fn value_at(&self, time: i64) -> Option<f64> {
        let end = self.timestamps.partition_point(|&t| t <= time);
        let i = end.checked_sub(1)?;
        let (t, v) = (self.timestamps[i], self.values[i]);
        (time - t < LOOKBACK.as_millis() as i64 && !v.is_nan()).then_some(v)
    }

    /// How much the counter grew in the `window` before the evaluation time, as PromQL's
    /// `increase(x[window])`: resets count as starting again from 0, and the growth seen
    /// between the first and last samples is extrapolated towards the window's edges.
    /// `None` with fewer than two samples in the window.
    pub fn increase(&self, window: Duration) -> Option<f64> {
        let window_ms = window.as_millis() as f64;
        let samples: Vec<Sample> = self.in_window(window).collect();
        let (first, last) = (samples.first()?, samples.last()?);
        if samples.len() < 2 {
            return None;
        }
        let mut grown = last.value - first.value;
        for pair in samples.windows(2) {
            if pair[1].value < pair[0].value {
                grown += pair[0].value;
            }
        }
        // Prometheus's extrapolation (promql/functions.go, extrapolatedRate).
        let sampled = (last.timestamp - first.timestamp) as f64;
        let average_gap = sampled / (samples.len() - 1) as f64;
        let threshold = average_gap * 1.1;
        let mut to_start = (first.timestamp - (self.now - window_ms as i64)) as f64;
        let mut to_end = (self.now - last.timestamp) as f64;
        if to_start >= threshold {
            to_start = average_gap / 2.0;
        }
        if grown > 0.0 && first.value >= 0.0 {
            // A counter does not go below zero: do not extrapolate past where it was 0.
            to_start = to_start.min(sampled * (first.value / grown));
        }
        if to_end >= threshold {
            to_end = average_gap / 2.0;
        }
        Some(grown * (sampled + to_start + to_end) / sampled)
    }

    /// Per-second [`increase`](Self::increase), as PromQL's `rate(x[window])`.
    pub fn rate(&self, window: Duration) -> Option<f64> {
        Some(self.increase(window)? / window.as_secs_f64())
    }

    /// How many times the counter went down (was reset) in the `window`.
    pub fn resets(&self, window: Duration) -> usize {
        let samples: Vec<Sample> = self.in_window(window).collect();
        samples
            .windows(2)
            .filter(|p| p[1].value < p[0].value)
            .count()
    }

    /// The samples in `(now - window, now]`, staleness markers left out.
    fn in_window(&self, window: Duration) -> impl Iterator<Item = Sample> + '_ {
        let start = self.now - window.as_millis() as i64;
        self.samples()
            .filter(move |s| s.timestamp > start && s.timestamp <= self.now && !s.value.is_nan())
    }
}

#[cfg(test)]
mod tests {
    use crate::Input;
    use std::time::Duration;

    fn series(now: i64, samples: &[(i64, f64)]) -> Input {
        Input::builder()
            .now(now)
            .series([("a", "b")], samples)
            .build()
    }

    #[test]
    fn increase_matches_prometheus() {
        // Samples every 10s covering the whole 60s window: growth of 50 in 50s sampled,
        // extrapolated by 5s each side = 60 (Prometheus answers 60 here too).
        let input = series(
            60_000,
            &[
                (5_000, 100.0),
                (15_000, 110.0),
                (25_000, 120.0),
                (35_000, 130.0),
                (45_000, 140.0),
                (55_000, 150.0),
            ],
        );
        let s = input.series().next().unwrap();
        assert_eq!(s.increase(Duration::from_secs(60)), Some(60.0));
        assert_eq!(s.rate(Duration::from_secs(60)), Some(1.0));
    }

    #[test]
    fn staleness_and_short_windows() {
        let input = series(100_000, &[(10_000, 1.0), (20_000, f64::NAN), (90_000, 3.0)]);
        let s = input.series().next().unwrap();
        assert_eq!(
            s.value_at(25_000),
            None,
            "a staleness marker ends the series"
        );
        assert_eq!(s.value_at(95_000), Some(3.0));
        assert_eq!(s.value_at(400_000), None, "older than the lookback");
        assert_eq!(s.increase(Duration::from_secs(30)), None, "one sample only");
        assert_eq!(s.resets(Duration::from_secs(100)), 0);
    }

    #[test]
    fn increase_does_not_extrapolate_below_zero() {
        // A counter that started at 0 just before the window: no growth invented before it.
        let input = series(
            60_000,
            &[
                (30_000, 1.0),
                (40_000, 11.0),
                (50_000, 21.0),
                (60_000, 31.0),
            ],
        );
        let s = input.series().next().unwrap();
        let increase = s.increase(Duration::from_secs(60)).unwrap();
        assert!((increase - 31.0).abs() < 1e-9, "{increase}");
    }
}
