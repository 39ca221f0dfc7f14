//! How far behind the service is: each rule group's evaluation against its interval, and
//! each receiver's due actions against the time they fell due. `/metrics` shows both
//! (`faultline_evaluation_lag_seconds{group}`, `faultline_delivery_lag_seconds{receiver}`)
//! and `/-/ready` answers 503 while either is beyond `ready_max_lag`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Lags by name (of a rule group or a receiver).
pub type Lags = Vec<(String, Duration)>;

/// When each rule group last started an evaluation, and how often it should.
#[derive(Default)]
pub struct Lag {
    groups: Mutex<HashMap<String, Started>>,
}

#[derive(Clone, Copy)]
struct Started {
    at: i64,
    interval: Duration,
}

impl Lag {
    /// A group's loop started an evaluation at `at` (ms); a new group starts the clock.
    pub fn started(&self, group: &str, interval: Duration, at: i64) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.insert(group.to_string(), Started { at, interval });
    }

    /// Keeps only these groups (after a reload): a removed group is not behind.
    pub fn keep<'a>(&self, groups: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = groups.into_iter().collect();
        let mut all = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|name, _| keep.contains(name.as_str()));
    }

    /// Each group's lag at `now`: how long past its next due evaluation it is, by name.
    pub fn evaluation(&self, now: i64) -> Lags {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut lags: Lags = groups
            .iter()
            .map(|(name, s)| {
                let due = s.at + s.interval.as_millis() as i64;
                (name.clone(), millis(now - due))
            })
            .collect();
        lags.sort();
        lags
    }
}

/// A lag in milliseconds as a duration, none when negative (not yet due).
pub fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// What `/-/ready` says when something is behind by more than `max`: the worst evaluation
/// lag and the worst delivery lag, by name.
pub fn behind(
    evaluation: &[(String, Duration)],
    delivery: &[(String, Duration)],
    max: Duration,
) -> Option<String> {
    let worst = |lags: &[(String, Duration)]| lags.iter().max_by_key(|(_, d)| *d).cloned();
    let mut why = Vec::new();
    if let Some((group, d)) = worst(evaluation).filter(|(_, d)| *d > max) {
        why.push(format!(
            "rule group {group:?} is {}s behind its evaluation interval",
            d.as_secs()
        ));
    }
    if let Some((receiver, d)) = worst(delivery).filter(|(_, d)| *d > max) {
        why.push(format!(
            "receiver {receiver:?} has actions due for {}s",
            d.as_secs()
        ));
    }
    (!why.is_empty()).then(|| format!("{} (ready_max_lag {}s)", why.join("; "), max.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_behind_once_past_its_next_evaluation() {
        let lag = Lag::default();
        lag.started("fast", Duration::from_secs(1), 10_000);
        lag.started("gone", Duration::from_secs(1), 0);
        assert_eq!(
            lag.evaluation(10_500),
            [
                ("fast".to_string(), Duration::ZERO),
                ("gone".to_string(), Duration::from_millis(9_500))
            ]
        );
        lag.keep(["fast"]);
        assert_eq!(
            lag.evaluation(14_000),
            [("fast".to_string(), Duration::from_secs(3))]
        );
    }

    #[test]
    fn behind_names_the_worst_of_each_beyond_the_bound() {
        let max = Duration::from_secs(60);
        let eval = [
            ("a".to_string(), Duration::from_secs(5)),
            ("b".to_string(), Duration::from_secs(90)),
        ];
        let delivery = [("hook".to_string(), Duration::from_secs(30))];
        assert_eq!(behind(&eval[..1], &delivery, max), None);
        let why = behind(&eval, &delivery, max).unwrap();
        assert!(why.contains(r#"rule group "b" is 90s behind"#), "{why}");
        assert!(!why.contains("hook"), "{why}");
    }
}
