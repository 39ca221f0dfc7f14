//! Durations written as in Prometheus (`1h30m`, `500ms`, `1d`, `0s`), for `for`,
//! `keep_firing_for`, ranges and intervals in rule files.
//!
//! Units run from largest to smallest, each at most once: `y` (365 days), `w`, `d`, `h`, `m`,
//! `s`, `ms`. There are no fractions and no signs; a bare `0` is allowed.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

const UNIT_LIST: &str = "y, w, d, h, m, s, ms";

/// The longest duration Prometheus accepts: `i64::MAX` nanoseconds (about 292 years).
const MAX_MS: u64 = i64::MAX as u64 / 1_000_000;

/// Why a duration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration string")]
    Empty,
    /// The text is not a Prometheus duration; `reason` says what is wrong.
    #[error("invalid duration {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    /// The duration is longer than Prometheus can hold (about 292 years).
    #[error("invalid duration {input:?}: out of range (at most 292y)")]
    OutOfRange { input: String },
}

/// Parses a Prometheus duration such as `1h30m` or `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = |reason: String| DurationError::Invalid {
        input: s.to_string(),
        reason,
    };
    let out_of_range = || DurationError::OutOfRange {
        input: s.to_string(),
    };
    if s.starts_with('-') {
        return Err(invalid("negative durations are not allowed".into()));
    }
    let mut rest = s;
    let mut last: Option<usize> = None;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            let c = rest.chars().next().unwrap_or_default();
            return Err(invalid(format!("unexpected {c:?}, expected a number")));
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        if rest.starts_with('.') {
            return Err(invalid(
                "fractions are not allowed; combine units instead, as in 1h30m".into(),
            ));
        }
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..letters];
        rest = &rest[letters..];
        if unit.is_empty() {
            return Err(match rest.chars().next() {
                None => invalid(format!("missing unit after {number} (use {UNIT_LIST})")),
                Some(c) => invalid(format!("unexpected {c:?}, expected a unit ({UNIT_LIST})")),
            });
        }
        let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(invalid(format!("unknown unit {unit:?} (use {UNIT_LIST})")));
        };
        match last {
            Some(prev) if prev == rank => {
                return Err(invalid(format!("unit {unit:?} appears twice")));
            }
            Some(prev) if prev > rank => {
                return Err(invalid(format!(
                    "units must go from largest to smallest, but {unit:?} follows {:?}",
                    UNITS[prev].0
                )));
            }
            _ => last = Some(rank),
        }
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[rank].1))
            .and_then(|ms| ms.checked_add(total))
            .filter(|ms| *ms <= MAX_MS)
            .ok_or_else(out_of_range)?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration as Prometheus does (`1h30m`, `0s`), truncated to whole milliseconds.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        let n = ms / u128::from(len);
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            ms -= n * u128::from(len);
        }
    }
    out
}

/// A [`Duration`] read and written in Prometheus notation, for config fields:
/// `#[serde(default)] for_: PromDuration` or `keep_firing_for: Option<PromDuration>`.
/// The default is zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(pub Duration);

impl From<PromDuration> for Duration {
    fn from(d: PromDuration) -> Duration {
        d.0
    }
}

impl From<Duration> for PromDuration {
    fn from(d: Duration) -> PromDuration {
        PromDuration(d)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(PromDuration)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a secret comes from: never inline in a rule file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretRef {
    /// An environment variable of the server.
    Env(String),
    /// A file (relative paths are relative to the rules directory); surrounding white space
    /// is trimmed.
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret; relative files are relative to `dir`. Errors say where it was
    /// looked for, never what it is.
    pub fn read(&self, dir: &std::path::Path) -> Result<Vec<u8>, String> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
                _ => Err(format!("environment variable {var} is not set")),
            },
            SecretRef::File(f) => {
                let f = if f.is_relative() {
                    dir.join(f)
                } else {
                    f.clone()
                };
                match std::fs::read_to_string(&f) {
                    Ok(v) if !v.trim().is_empty() => Ok(v.trim().as_bytes().to_vec()),
                    Ok(_) => Err(format!("secret file {} is empty", f.display())),
                    Err(e) => Err(format!("cannot read secret file {}: {e}", f.display())),
                }
            }
        }
    }
}

/// A size in bytes, written `64MiB`, `512KiB`, `1GiB` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: usize = num.parse().map_err(|_| {
            format!("invalid size {s:?}: expected a number and a unit such as 64MiB")
        })?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "KB" => 1 << 10,
            "MiB" | "M" | "MB" => 1 << 20,
            "GiB" | "G" | "GB" => 1 << 30,
            u => {
                return Err(format!(
                    "invalid size {s:?}: unknown unit {u:?} (use B, KiB, MiB or GiB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

/// The largest unit that divides the size exactly: `1GiB`, `64MiB`, `1000B`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n as usize)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn err(s: &str) -> String {
        parse_duration(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("1h30m").unwrap(), secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), secs(30));
        assert_eq!(parse_duration("5m").unwrap(), secs(300));
        assert_eq!(parse_duration("1d").unwrap(), secs(86_400));
        assert_eq!(parse_duration("1w").unwrap(), secs(7 * 86_400));
        assert_eq!(parse_duration("1y").unwrap(), secs(365 * 86_400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms").unwrap(),
            Duration::from_millis(((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7)
        );
        assert_eq!(parse_duration("90m").unwrap(), secs(5400));
        assert_eq!(parse_duration("292y").unwrap(), secs(292 * 365 * 86_400));
    }

    #[test]
    fn refuses_with_a_clear_reason() {
        assert_eq!(err(""), "empty duration string");
        assert_eq!(
            err("1.5h"),
            r#"invalid duration "1.5h": fractions are not allowed; combine units instead, as in 1h30m"#
        );
        assert_eq!(
            err("-5m"),
            r#"invalid duration "-5m": negative durations are not allowed"#
        );
        assert_eq!(
            err("5x"),
            r#"invalid duration "5x": unknown unit "x" (use y, w, d, h, m, s, ms)"#
        );
        assert_eq!(
            err("5H"),
            r#"invalid duration "5H": unknown unit "H" (use y, w, d, h, m, s, ms)"#
        );
        assert_eq!(
            err("5"),
            r#"invalid duration "5": missing unit after 5 (use y, w, d, h, m, s, ms)"#
        );
        assert_eq!(
            err("1h30"),
            r#"invalid duration "1h30": missing unit after 30 (use y, w, d, h, m, s, ms)"#
        );
        assert_eq!(
            err("30s1m"),
            r#"invalid duration "30s1m": units must go from largest to smallest, but "m" follows "s""#
        );
        assert_eq!(
            err("1h1h"),
            r#"invalid duration "1h1h": unit "h" appears twice"#
        );
        assert_eq!(
            err("1h 30m"),
            r#"invalid duration "1h 30m": unexpected ' ', expected a number"#
        );
        assert_eq!(
            err("5 m"),
            r#"invalid duration "5 m": unexpected ' ', expected a unit (y, w, d, h, m, s, ms)"#
        );
        assert_eq!(
            err("h"),
            r#"invalid duration "h": unexpected 'h', expected a number"#
        );
        assert_eq!(
            err("293y"),
            r#"invalid duration "293y": out of range (at most 292y)"#
        );
        assert_eq!(
            err("99999999999999999999999s"),
            r#"invalid duration "99999999999999999999999s": out of range (at most 292y)"#
        );
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(secs(86_400 * 8)), "1w1d");
        assert_eq!(format_duration(secs(365 * 86_400 + 1)), "1y1s");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
        assert_eq!(format_duration(Duration::from_nanos(999)), "0s");
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        #[serde(default, rename = "for")]
        for_: PromDuration,
        keep_firing_for: Option<PromDuration>,
    }

    #[test]
    fn loads_and_saves_toml_fields() {
        let rule: Rule = toml::from_str("for = '5m'\nkeep_firing_for = '1h30m'").unwrap();
        assert_eq!(rule.for_, PromDuration(secs(300)));
        assert_eq!(rule.keep_firing_for, Some(PromDuration(secs(5400))));
        assert_eq!(
            toml::to_string(&rule).unwrap(),
            "for = \"5m\"\nkeep_firing_for = \"1h30m\"\n"
        );

        let rule: Rule = toml::from_str("").unwrap();
        assert_eq!(rule.for_, PromDuration::default());
        assert_eq!(rule.keep_firing_for, None);

        let bad = toml::from_str::<Rule>("for = '1.5h'")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains(r#"invalid duration "1.5h": fractions"#),
            "{bad}"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn canonical_form_round_trips(ms in 0..=MAX_MS) {
            let d = Duration::from_millis(ms);
            let text = format_duration(d);
            prop_assert_eq!(parse_duration(&text).unwrap(), d);
        }

        #[test]
        fn near_miss_input_never_panics(s in "[0-9ywdhms.+ -]{0,12}") {
            if let Ok(d) = parse_duration(&s) {
                prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
            }
        }
    }
}
