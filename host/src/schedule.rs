//! When a rule group evaluates. Alone, on a timer of its own that starts with the process,
//! each rule at the time it runs. In a cluster, on the wall clock's multiples of the
//! group's interval, shifted by a hash of the group's name (as Prometheus spreads its
//! groups), every rule of a pass at the pass's timestamp: every instance then evaluates a
//! group at the same timestamps, so the same data starts an alert at the same time on
//! every instance, and the actions planned for it get the same idempotency key.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::time::now_ms;

/// A group's evaluation times.
pub enum Schedule {
    /// Every interval from the start; each rule is evaluated at the time it runs.
    Local(tokio::time::Interval),
    /// At `offset + k * every` (ms since the epoch).
    Aligned { every: i64, offset: i64, last: i64 },
}

impl Schedule {
    /// The schedule of the group `name` evaluated every `interval`; `aligned` in a cluster.
    pub fn new(name: &str, interval: Duration, aligned: bool) -> Schedule {
        if !aligned {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            return Schedule::Local(tick);
        }
        let every = (interval.as_millis() as i64).max(1);
        let hash = Sha256::digest(name.as_bytes());
        let seed = u64::from_be_bytes(hash[..8].try_into().unwrap_or_default());
        Schedule::Aligned {
            every,
            offset: (seed % every as u64) as i64,
            last: i64::MIN,
        }
    }

    /// Waits for the next evaluation; returns its timestamp when the schedule fixes one
    /// (aligned), `None` when each rule takes the time it runs at.
    pub async fn tick(&mut self) -> Option<i64> {
        match self {
            Schedule::Local(tick) => {
                tick.tick().await;
                None
            }
            Schedule::Aligned {
                every,
                offset,
                last,
            } => {
                let now = now_ms();
                // The next slot strictly after now, and after the last one (a late tick
                // skips the slots it missed, like `MissedTickBehavior::Delay`).
                let next = next_slot(now, *every, *offset).max(last.saturating_add(*every));
                tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
                *last = next;
                Some(next)
            }
        }
    }
}

/// The first `offset + k * every` strictly after `now`.
fn next_slot(now: i64, every: i64, offset: i64) -> i64 {
    (now - offset).div_euclid(every) * every + offset + every
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_same_whenever_an_instance_asks() {
        assert_eq!(next_slot(10_000, 1_000, 250), 10_250);
        assert_eq!(next_slot(10_250, 1_000, 250), 11_250);
        assert_eq!(next_slot(10_999, 1_000, 250), 11_250);
        // Two instances started at different times share the offset of the group's name.
        let offset = |name| match Schedule::new(name, Duration::from_secs(15), true) {
            Schedule::Aligned { offset, .. } => offset,
            Schedule::Local(_) => panic!("not aligned"),
        };
        assert_eq!(offset("g"), offset("g"));
        assert!((0..15_000).contains(&offset("g")));
    }
}
