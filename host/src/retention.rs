//! How long the database keeps what only history needs: finished recovery actions, the
//! decision log and the notification log. The housekeeping loop deletes older rows in
//! small batches, so intake and delivery are never held up for long. Pending actions are
//! never deleted, and nothing is deleted sooner than the rules still read it: a cooldown or
//! rate limit counts past actions, and a `repeat_interval` reads the notification log.

use std::time::Duration;

use serde::Deserialize;

use crate::dispatch::route::REPEAT_INTERVAL;
use crate::model::units::PromDuration;
use crate::rules::RuleSet;

/// Rows deleted per statement.
pub const BATCH: usize = 1000;

/// `[retention]` of the server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Done, dead-lettered and dry-run actions are deleted this long after their last
    /// change (a dead action can be retried until then).
    pub outbox: PromDuration,
    /// Recorded decisions are deleted this long after they were made.
    pub decisions: PromDuration,
    /// Notification log entries are deleted this long after their group last notified
    /// (Alertmanager's `--data.retention`). Never less than the longest `repeat_interval`.
    pub nflog: PromDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        RetentionConfig {
            outbox: PromDuration(Duration::from_secs(7 * DAY)),
            decisions: PromDuration(Duration::from_secs(7 * DAY)),
            nflog: PromDuration(Duration::from_secs(5 * DAY)),
        }
    }
}

/// The times (ms) before which rows are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizons {
    /// Finished actions last changed before this.
    pub outbox: i64,
    /// Decisions made before this.
    pub decisions: i64,
    /// Notification log entries notified before this.
    pub nflog: i64,
}

impl RetentionConfig {
    /// The horizons at `now`, pushed back so that `rules` still find what they read.
    pub fn horizons(&self, rules: &RuleSet, now: i64) -> Horizons {
        let rails = rules
            .receivers
            .values()
            .flat_map(|r| {
                let rails = &r.rails;
                rails
                    .cooldown
                    .map(|c| c.0)
                    .into_iter()
                    .chain(rails.rate_limit.map(|l| l.per))
            })
            .fold(Duration::ZERO, Duration::max);
        let repeat = rules.tree.as_ref().map_or(REPEAT_INTERVAL, |t| {
            t.longest_repeat_interval().max(REPEAT_INTERVAL)
        });
        self.horizons_for(rails, repeat, now)
    }

    /// The horizons at `now` when past actions are read back `rails` and the notification
    /// log `repeat`.
    fn horizons_for(&self, rails: Duration, repeat: Duration, now: i64) -> Horizons {
        let before = |keep: Duration| now.saturating_sub(keep.as_millis() as i64);
        Horizons {
            outbox: before(self.outbox.0.max(rails)),
            decisions: before(self.decisions.0),
            // A group that still fires re-notifies (and is logged anew) every repeat
            // interval; a margin covers a pass that comes a little late.
            nflog: before(self.nflog.0.max(repeat * 2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn the_rules_needs_push_the_horizons_back() {
        let c: Config = toml::from_str("[retention]\noutbox = \"1h\"\nnflog = \"2h\"\n").unwrap();
        let r = &c.retention;
        let now = 100 * HOUR;
        let hour = Duration::from_secs(3600);
        assert_eq!(
            r.horizons_for(Duration::ZERO, hour, now),
            Horizons {
                outbox: 99 * HOUR,
                decisions: now - 7 * 24 * HOUR,
                nflog: 98 * HOUR,
            }
        );
        // A 3h cooldown reads 3h of actions; a 4h repeat_interval needs the log for 8h.
        let h = r.horizons_for(3 * hour, 4 * hour, now);
        assert_eq!((h.outbox, h.nflog), (97 * HOUR, 92 * HOUR));
        let e = toml::from_str::<Config>("[retention]\noutbx = \"1h\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
