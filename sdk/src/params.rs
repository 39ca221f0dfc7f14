//! Rule parameters: the JSON the host passes to `configure`, into the plugin's `Params`,
//! and the helpers for the kinds of value that several plugins take.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// The JSON value type [`duration_ms`] takes, re-exported so a plugin needs no
/// `serde_json` dependency of its own.
pub use serde_json::Value;

/// Parses `params`, with errors worded for the rule's author: `params: missing field
/// `above``. serde_json's position suffix is dropped: it points into JSON the host made
/// from the rule file, which the author never saw.
pub(crate) fn parse<P: DeserializeOwned>(params: &str) -> Result<P, String> {
    serde_json::from_str(params).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(end) if e.line() > 0 => &message[..end],
            _ => &message,
        };
        format!("params: {message}")
    })
}

/// Parameter `param`'s `value`, a duration, in milliseconds: a whole number of
/// milliseconds, or a string of numbers each followed by a unit (`ms`, `s`, `m`, `h`, `d`,
/// `w`), such as `"90s"`, `"5m"` or `"1h30m"`. Keep the param a [`Value`] in `Params` and
/// call this in `new`: the error names the param and its value, for the rule's author.
///
/// ```
/// use faultline_sdk::params::duration_ms;
/// use serde_json::json;
///
/// assert_eq!(duration_ms("lead", &json!("1h30m")), Ok(5_400_000));
/// assert_eq!(duration_ms("lead", &json!(1500)), Ok(1500));
/// assert_eq!(
///     duration_ms("lead", &json!("soon")).unwrap_err(),
///     r#"params: `lead` must be milliseconds or a duration such as "90s", "5m" or "1h", not "soon""#
/// );
/// ```
pub fn duration_ms(param: &str, value: &Value) -> Result<i64, String> {
    let ms = match value {
        Value::Number(n) => n.as_i64().filter(|&ms| ms >= 0),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    ms.ok_or_else(|| {
        format!(
            "params: `{param}` must be milliseconds or a duration such as \"90s\", \"5m\" or \
             \"1h\", not {value}"
        )
    })
}

/// A duration param: deserializes from `"5m"`, `"1h30m"` (units `ms`, `s`, `m`, `h`, `d`,
/// `w`) or a whole number of milliseconds; dereferences to [`std::time::Duration`] and
/// displays as written in the rule (`5m`).
///
/// ```
/// use faultline_sdk::params::Duration;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Params {
///     window: Duration,
/// }
///
/// let p: Params = serde_json::from_str(r#"{"window": "5m"}"#).unwrap();
/// assert_eq!(p.window.as_secs(), 300);
/// assert_eq!(p.window.to_string(), "5m");
/// let bad = serde_json::from_str::<Params>(r#"{"window": "soon"}"#).err().unwrap();
/// assert!(bad.to_string().starts_with(r#"a duration such as "90s", "5m" or "1h", or milliseconds, not "soon""#));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl std::ops::Deref for Duration {
    type Target = std::time::Duration;

    fn deref(&self) -> &std::time::Duration {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let ms = match &value {
            Value::Number(n) => n.as_i64().filter(|&ms| ms >= 0),
            Value::String(s) => parse_duration(s),
            _ => None,
        };
        match ms {
            Some(ms) => Ok(Duration(std::time::Duration::from_millis(ms as u64))),
            None => Err(serde::de::Error::custom(format!(
                "a duration such as \"90s\", \"5m\" or \"1h\", or milliseconds, not {value}"
            ))),
        }
    }
}

/// The largest units that divide the duration exactly: `5m`, `1h30m`, `250ms`, `0s`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("w", 604_800_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// `text` such as `"1h30m"` in milliseconds; `None` unless it is one or more numbers each
/// with a unit, or when it overflows.
fn parse_duration(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total = 0i64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[unit_end..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        above: f64,
    }

    #[test]
    fn errors_name_the_field_without_json_positions() {
        let err = parse::<Params>("{}").unwrap_err();
        assert_eq!(err, "params: missing field `above`");
        let err = parse::<Params>(r#"{"above": 1, "blow": 2}"#).unwrap_err();
        assert_eq!(err, "params: unknown field `blow`, expected `above`");
        let err = parse::<Params>(r#"{"above": "high"}"#).unwrap_err();
        assert_eq!(err, r#"params: invalid type: string "high", expected f64"#);
        assert!(parse::<Params>(r#"{"above": 1}"#).is_ok());
    }

    #[test]
    fn durations_in_milliseconds_or_with_units() {
        let ms = |v: Value| duration_ms("lead", &v);
        for (value, expected) in [
            (Value::from(1500), 1500),
            (Value::from(0), 0),
            (Value::from("90s"), 90_000),
            (Value::from("5m"), 300_000),
            (Value::from("1h30m"), 5_400_000),
            (Value::from("250ms"), 250),
            (Value::from("1d"), 86_400_000),
            (Value::from("2w"), 1_209_600_000),
        ] {
            assert_eq!(ms(value.clone()), Ok(expected), "{value}");
        }
    }

    #[test]
    fn bad_durations_name_the_param_and_value() {
        for bad in [
            Value::from("5"),
            Value::from("m"),
            Value::from("1.5h"),
            Value::from("5x"),
            Value::from("-5m"),
            Value::from(""),
            Value::from("99999999999999999d"),
            Value::from(-1),
            Value::from(1.5),
            Value::from(u64::MAX),
            Value::Bool(true),
        ] {
            assert_eq!(
                duration_ms("lead", &bad),
                Err(format!(
                    "params: `lead` must be milliseconds or a duration such as \"90s\", \"5m\" \
                     or \"1h\", not {bad}"
                ))
            );
        }
    }
}
