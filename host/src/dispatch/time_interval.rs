//! Time intervals, as Alertmanager's `time_intervals`: named sets of times of day, weekdays,
//! days of the month, months and years, in a time zone. A route's `mute_time_intervals`
//! silence it while one of them holds; its `active_time_intervals` silence it while none
//! does. The syntax, semantics and refusals are Alertmanager's:
//!
//! ```toml
//! [[time_interval]]
//! name = "out-of-hours"
//!
//!   [[time_interval.time_intervals]]              # one of these holds: the interval holds
//!   times = [{ start_time = "17:00", end_time = "24:00" }]  # [start, end), minutes
//!   weekdays = ["monday:friday"]                  # ranges are inclusive
//!   location = "Europe/Amsterdam"                 # default UTC; "Local" is the host's
//!
//!   [[time_interval.time_intervals]]
//!   weekdays = ["saturday", "sunday"]
//!   days_of_month = ["1:5", "-3:-1"]              # -1 is the month's last day
//!   months = ["december", "1:2"]
//!   years = ["2026:2030"]
//! ```
//!
//! Every field of one entry must hold (an empty field always does); a negative day of the
//! month counts from the month's end, and a range is clamped to the month.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A named time interval, as configured (`[[time_interval]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// Unique across the rules directory; routes name it in `mute_time_intervals` or
    /// `active_time_intervals`.
    pub name: String,
    /// The interval holds while any of these holds.
    #[serde(default)]
    pub time_intervals: Vec<TimeSpecConfig>,
}

/// One entry of a time interval: every field that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpecConfig {
    /// Times of day, `HH:MM` (`24:00` as an end), start included, end excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRangeConfig>,
    /// Weekday names or inclusive ranges of them (`monday:friday`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    /// Days 1 to 31, or -1 (the last) to -31, or inclusive ranges (`1:5`, `-3:-1`, `1:-1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<String>,
    /// Month names or numbers 1 to 12, or inclusive ranges (`january:march`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<String>,
    /// Years or inclusive ranges of them (`2026:2028`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<String>,
    /// The IANA time zone the fields are read in (default `UTC`; `Local`: the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A time-of-day range.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    /// `HH:MM`, included.
    pub start_time: String,
    /// `HH:MM` or `24:00`, excluded.
    pub end_time: String,
}

/// A validated time interval.
#[derive(Clone, Debug)]
pub struct TimeInterval {
    /// As configured, for `config.original`.
    pub config: TimeIntervalConfig,
    specs: Vec<TimeSpec>,
}

/// A validated entry; ranges are inclusive except `times` (minutes of the day, end excluded).
#[derive(Clone, Debug, Default)]
struct TimeSpec {
    times: Vec<(u32, u32)>,
    weekdays: Vec<(u32, u32)>,
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(u32, u32)>,
    years: Vec<(i32, i32)>,
    location: Location,
}

/// Where the fields are read.
#[derive(Clone, Copy, Debug, Default)]
enum Location {
    #[default]
    Utc,
    Local,
    Zone(chrono_tz::Tz),
}

/// A problem in a time interval: the field (`time_intervals[0].weekdays`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TimeIntervalError {
    pub field: String,
    pub message: String,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimeInterval {
    /// Validates a configured interval, with Alertmanager's messages.
    pub fn new(config: &TimeIntervalConfig) -> Result<TimeInterval, TimeIntervalError> {
        let mut specs = Vec::new();
        for (i, c) in config.time_intervals.iter().enumerate() {
            let at = |field: &str| format!("time_intervals[{i}].{field}");
            let fail = |field: &str, message: String| TimeIntervalError {
                field: at(field),
                message,
            };
            let mut spec = TimeSpec::default();
            for t in &c.times {
                let start = minutes(&t.start_time).map_err(|m| fail("times", m))?;
                let end = minutes(&t.end_time).map_err(|m| fail("times", m))?;
                if start >= end {
                    let m = "start time cannot be equal or greater than end time";
                    return Err(fail("times", m.into()));
                }
                spec.times.push((start, end));
            }
            for w in &c.weekdays {
                spec.weekdays
                    .push(weekdays(w).map_err(|m| fail("weekdays", m))?);
            }
            for d in &c.days_of_month {
                spec.days_of_month
                    .push(days_of_month(d).map_err(|m| fail("days_of_month", m))?);
            }
            for m in &c.months {
                spec.months.push(months(m).map_err(|e| fail("months", e))?);
            }
            for y in &c.years {
                spec.years.push(years(y).map_err(|m| fail("years", m))?);
            }
            spec.location = match c.location.as_deref() {
                None | Some("UTC") | Some("") => Location::Utc,
                Some("Local") => Location::Local,
                Some(name) => Location::Zone(
                    name.parse()
                        .map_err(|_| fail("location", format!("unknown time zone {name}")))?,
                ),
            };
            specs.push(spec);
        }
        Ok(TimeInterval {
            config: config.clone(),
            specs,
        })
    }

    /// Whether the interval holds at `ms` (since the epoch).
    pub fn contains(&self, ms: i64) -> bool {
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(ms) else {
            return false;
        };
        self.specs.iter().any(|s| match s.location {
            Location::Utc => s.contains(&utc),
            Location::Local => s.contains(&utc.with_timezone(&chrono::Local)),
            Location::Zone(tz) => s.contains(&utc.with_timezone(&tz)),
        })
    }
}

impl TimeSpec {
    fn contains<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> bool {
        let minute = t.hour() * 60 + t.minute();
        let day = t.day() as i32;
        let in_month = days_in_month(t.year(), t.month());
        let any = |ranges: &[(u32, u32)], v: u32| {
            ranges.is_empty() || ranges.iter().any(|&(b, e)| b <= v && v <= e)
        };
        (self.times.is_empty() || self.times.iter().any(|&(b, e)| b <= minute && minute < e))
            && any(&self.weekdays, t.weekday().num_days_from_sunday())
            && any(&self.months, t.month())
            && (self.years.is_empty()
                || self
                    .years
                    .iter()
                    .any(|&(b, e)| b <= t.year() && t.year() <= e))
            && (self.days_of_month.is_empty()
                || self.days_of_month.iter().any(|&(b, e)| {
                    // Negative days count from the month's end; a range is clamped to the
                    // month, and one that starts past its end does not hold.
                    let from_end = |d: i32| if d < 0 { in_month + d + 1 } else { d };
                    let (b, e) = (from_end(b), from_end(e));
                    b <= in_month && b.max(1) <= day && day <= e.min(in_month)
                }))
    }
}

/// The number of days of a month.
fn days_in_month(year: i32, month: u32) -> i32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day() as i32)
}

/// Minutes of the day of `HH:MM` (`24:00` is 1440).
fn minutes(s: &str) -> Result<u32, String> {
    let invalid = || format!("couldn't parse timestamp {s}, invalid format");
    if s == "24:00" {
        return Ok(1440);
    }
    let b = s.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !s
            .chars()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return Err(invalid());
    }
    let (h, m): (u32, u32) = (
        s[..2].parse().map_err(|_| invalid())?,
        s[3..].parse().map_err(|_| invalid())?,
    );
    if h > 23 || m > 59 {
        return Err(invalid());
    }
    Ok(h * 60 + m)
}

/// `a` or `a:b`.
fn range(s: &str) -> (&str, &str) {
    s.split_once(':').unwrap_or((s, s))
}

fn weekdays(s: &str) -> Result<(u32, u32), String> {
    let day = |d: &str| {
        WEEKDAYS
            .iter()
            .position(|w| w.eq_ignore_ascii_case(d))
            .map(|i| i as u32)
            .ok_or_else(|| format!("{d} is not a valid weekday"))
    };
    let (b, e) = range(s);
    let (b, e) = (day(b)?, day(e)?);
    if b > e {
        return Err("start day cannot be before end day".into());
    }
    Ok((b, e))
}

fn days_of_month(s: &str) -> Result<(i32, i32), String> {
    let day = |d: &str| -> Result<i32, String> {
        let n: i32 = d
            .parse()
            .map_err(|_| format!("{d} is not a valid day of the month"))?;
        if n == 0 || !(-31..=31).contains(&n) {
            return Err(format!("{n} is not a valid day of the month: out of range"));
        }
        Ok(n)
    };
    let (b, e) = range(s);
    let (b, e) = (day(b)?, day(e)?);
    if b < 0 && e > 0 {
        return Err("end day must be negative if start day is negative".into());
    }
    // Whether the end can come before the start depends on the month; refuse what is
    // before it in every month (28 days at least), as Alertmanager does.
    let shortest = |d: i32| if d < 0 { 28 + d } else { d };
    if shortest(b) > shortest(e) {
        return Err(format!("end day {e} is always before start day {b}"));
    }
    Ok((b, e))
}

fn months(s: &str) -> Result<(u32, u32), String> {
    let s = s.to_lowercase();
    let month = |m: &str| -> Result<u32, String> {
        if let Some(i) = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m)) {
            return Ok(i as u32 + 1);
        }
        match m.parse::<u32>() {
            Ok(n @ 1..=12) => Ok(n),
            _ => Err(format!("{m} is not a valid month")),
        }
    };
    let (b, e) = range(&s);
    let (bn, en) = (month(b)?, month(e)?);
    if bn > en {
        return Err(format!("end month {e} is before start month {b}"));
    }
    Ok((bn, en))
}

fn years(s: &str) -> Result<(i32, i32), String> {
    let year = |y: &str| {
        y.parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{y} is not a valid year"))
    };
    let (b, e) = range(s);
    let (bn, en) = (year(b)?, year(e)?);
    if bn > en {
        return Err(format!("end year {e} is before start year {b}"));
    }
    Ok((bn, en))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Offset;

    fn interval(toml_text: &str) -> TimeInterval {
        let c: TimeIntervalConfig = toml::from_str(&format!("name = \"t\"\n{toml_text}")).unwrap();
        TimeInterval::new(&c).unwrap()
    }

    fn refused(toml_text: &str) -> String {
        let c: TimeIntervalConfig = toml::from_str(&format!("name = \"t\"\n{toml_text}")).unwrap();
        TimeInterval::new(&c).unwrap_err().to_string()
    }

    /// ms of a UTC time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn weekday_ranges_are_inclusive() {
        let t = interval("[[time_intervals]]\nweekdays = [\"monday:friday\"]");
        // 2026-12-04 is a Friday, 2026-12-05 a Saturday, 2026-11-30 a Monday.
        assert!(t.contains(at(2026, 11, 30, 0, 0)));
        assert!(t.contains(at(2026, 12, 4, 23, 59)));
        assert!(!t.contains(at(2026, 12, 5, 0, 0)));
        assert!(!t.contains(at(2026, 12, 6, 12, 0)));
        let t = interval("[[time_intervals]]\nweekdays = [\"Saturday\", \"sunday\"]");
        assert!(t.contains(at(2026, 12, 6, 12, 0)));
    }

    #[test]
    fn times_include_the_start_and_exclude_the_end_and_24_00_ends_the_day() {
        let t = interval(
            "[[time_intervals]]\ntimes = [{ start_time = \"17:00\", end_time = \"24:00\" }]",
        );
        assert!(!t.contains(at(2026, 12, 2, 16, 59)));
        assert!(t.contains(at(2026, 12, 2, 17, 0)));
        assert!(t.contains(at(2026, 12, 2, 23, 59)));
        assert!(!t.contains(at(2026, 12, 3, 0, 0)));
    }

    #[test]
    fn negative_days_count_from_the_end_of_each_month() {
        let t = interval("[[time_intervals]]\ndays_of_month = [\"-1\"]");
        assert!(t.contains(at(2026, 2, 28, 12, 0)));
        assert!(!t.contains(at(2026, 2, 27, 12, 0)));
        assert!(t.contains(at(2028, 2, 29, 12, 0)), "a leap year");
        assert!(t.contains(at(2026, 12, 31, 12, 0)));
        assert!(!t.contains(at(2026, 12, 30, 12, 0)));
        let t = interval("[[time_intervals]]\ndays_of_month = [\"-3:-1\", \"1:2\"]");
        assert!(t.contains(at(2026, 4, 28, 0, 0)));
        assert!(!t.contains(at(2026, 4, 27, 0, 0)));
        assert!(t.contains(at(2026, 4, 2, 0, 0)));
        // `1:-1` is the whole month; a range past the month's end is clamped to it.
        let t = interval("[[time_intervals]]\ndays_of_month = [\"1:-1\"]");
        assert!(t.contains(at(2026, 2, 28, 0, 0)));
        let t = interval("[[time_intervals]]\ndays_of_month = [\"25:31\"]");
        assert!(t.contains(at(2026, 2, 28, 0, 0)));
        let t = interval("[[time_intervals]]\ndays_of_month = [\"30:31\"]");
        assert!(
            !t.contains(at(2026, 2, 28, 0, 0)),
            "starts past February's end"
        );
    }

    #[test]
    fn months_and_years() {
        let t = interval(
            "[[time_intervals]]\nmonths = [\"december\", \"1:february\"]\nyears = [\"2026:2027\"]",
        );
        assert!(t.contains(at(2026, 12, 2, 0, 0)));
        assert!(t.contains(at(2027, 2, 2, 0, 0)));
        assert!(!t.contains(at(2027, 3, 2, 0, 0)));
        assert!(!t.contains(at(2028, 1, 2, 0, 0)));
    }

    #[test]
    fn every_field_of_an_entry_must_hold_and_any_entry_may() {
        let t = interval(
            "[[time_intervals]]\nweekdays = [\"wednesday\"]\ntimes = [{ start_time = \"09:00\", end_time = \"10:00\" }]\n\
             [[time_intervals]]\nyears = [\"1999\"]",
        );
        assert!(t.contains(at(2026, 12, 2, 9, 30)), "a Wednesday");
        assert!(!t.contains(at(2026, 12, 2, 10, 30)));
        assert!(!t.contains(at(2026, 12, 3, 9, 30)));
        assert!(t.contains(at(1999, 6, 1, 0, 0)));
        assert!(
            !interval("").contains(at(2026, 1, 1, 0, 0)),
            "no entry: never"
        );
        assert!(
            interval("[[time_intervals]]").contains(at(2026, 1, 1, 0, 0)),
            "empty: always"
        );
    }

    #[test]
    fn a_location_reads_the_fields_in_its_zone() {
        let t = interval(
            "[[time_intervals]]\ntimes = [{ start_time = \"09:00\", end_time = \"17:00\" }]\nweekdays = [\"monday:friday\"]\nlocation = \"Australia/Sydney\"",
        );
        // 2026-12-01 22:30 UTC is Wednesday 09:30 in Sydney (UTC+11 in summer).
        let utc = at(2026, 12, 1, 22, 30);
        let sydney = DateTime::<Utc>::from_timestamp_millis(utc)
            .unwrap()
            .with_timezone(&chrono_tz::Australia::Sydney);
        assert_eq!(sydney.offset().fix().local_minus_utc(), 11 * 3600);
        assert!(t.contains(utc));
        assert!(
            !t.contains(at(2026, 12, 2, 9, 30)),
            "09:30 UTC is 20:30 there"
        );
        // Friday 16:00 in Sydney is a weekday there; Saturday 08:00 is not.
        assert!(t.contains(at(2026, 12, 4, 5, 0)));
        assert!(!t.contains(at(2026, 12, 4, 21, 0)));
    }

    #[test]
    fn what_alertmanager_refuses_is_refused_with_its_message() {
        for (text, want) in [
            (
                "times = [{ start_time = \"10:00\", end_time = \"10:00\" }]",
                "time_intervals[0].times: start time cannot be equal or greater than end time",
            ),
            (
                "times = [{ start_time = \"9:00\", end_time = \"10:00\" }]",
                "time_intervals[0].times: couldn't parse timestamp 9:00, invalid format",
            ),
            (
                "times = [{ start_time = \"23:00\", end_time = \"24:01\" }]",
                "time_intervals[0].times: couldn't parse timestamp 24:01, invalid format",
            ),
            (
                "weekdays = [\"friday:monday\"]",
                "time_intervals[0].weekdays: start day cannot be before end day",
            ),
            (
                "weekdays = [\"mon\"]",
                "time_intervals[0].weekdays: mon is not a valid weekday",
            ),
            (
                "days_of_month = [\"-1:1\"]",
                "time_intervals[0].days_of_month: end day must be negative if start day is negative",
            ),
            (
                "days_of_month = [\"28:-1\"]",
                "time_intervals[0].days_of_month: end day -1 is always before start day 28",
            ),
            (
                "days_of_month = [\"0\"]",
                "time_intervals[0].days_of_month: 0 is not a valid day of the month: out of range",
            ),
            (
                "months = [\"December:january\"]",
                "time_intervals[0].months: end month january is before start month december",
            ),
            (
                "months = [\"13\"]",
                "time_intervals[0].months: 13 is not a valid month",
            ),
            (
                "years = [\"2022:2020\"]",
                "time_intervals[0].years: end year 2020 is before start year 2022",
            ),
            (
                "location = \"Foo/Bar\"",
                "time_intervals[0].location: unknown time zone Foo/Bar",
            ),
        ] {
            assert_eq!(
                refused(&format!("[[time_intervals]]\n{text}")),
                want,
                "{text}"
            );
        }
        assert!(
            toml::from_str::<TimeIntervalConfig>("name = \"t\"\nweekday = []").is_err(),
            "unknown fields are refused"
        );
    }
}
