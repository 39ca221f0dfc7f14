//! Newline-delimited JSON logs: one object per line,
//! `{"timestamp": ..., "labels": {"app": "api"}, "message": "text", "fields": {...}}`.
//!
//! - `labels` (required, at least one): an object of strings, the stream's labels.
//! - `message` (required): a string, the log line.
//! - `timestamp` (optional; missing or `null` means the receive time passed in):
//!   an RFC 3339 string, or a number (or a string of digits) read by its magnitude:
//!   below 10^11 it is seconds (fractions kept to the millisecond), below 10^14
//!   milliseconds, otherwise nanoseconds. Any date after 1973 is read right in all three
//!   units; zap's and Python's float seconds are the reason seconds are accepted.
//! - `fields` (optional): an object; every other top-level key is a field too. String
//!   values are kept as they are, other values as their JSON text.
//!
//! Blank lines are skipped; an error names its line.

use serde_json::Value;

use super::{IngestError, Limits, Location, build_labels, check_log_entry};
use crate::model::LogRecord;

/// Parses an NDJSON body; records without a timestamp get `default_ts` (ms).
pub fn parse(body: &[u8], default_ts: i64, limits: &Limits) -> Result<Vec<LogRecord>, IngestError> {
    super::check_body_size(body, limits)?;
    let text = super::utf8(body)?;
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = Location::Line(i + 1);
        out.push(parse_line(line, default_ts, at, limits)?);
    }
    Ok(out)
}

fn parse_line(
    line: &str,
    default_ts: i64,
    at: Location,
    limits: &Limits,
) -> Result<LogRecord, IngestError> {
    let bad = |reason: String| IngestError::malformed(at, reason);
    let mut obj = super::json_object_line(line, at)?;
    let line = match obj.remove("message") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad("\"message\" must be a string".to_string())),
        None => return Err(bad("missing \"message\"".to_string())),
    };
    let pairs = match obj.remove("labels") {
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(bad(format!("label {k:?} must be a string"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("\"labels\" must be an object of strings".to_string())),
        None => return Err(bad("missing \"labels\"".to_string())),
    };
    let labels = build_labels(pairs, at, limits)?;
    if labels.is_empty() {
        return Err(bad("at least one label pair is required".to_string()));
    }
    let ts = match obj.remove("timestamp") {
        None | Some(Value::Null) => default_ts,
        Some(v) => timestamp_ms(&v).map_err(bad)?,
    };
    let mut fields = Vec::new();
    match obj.remove("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => fields.extend(m.into_iter().map(field)),
        Some(_) => return Err(bad("\"fields\" must be an object".to_string())),
    }
    fields.extend(obj.into_iter().map(field));
    check_log_entry(&line, &fields, at, limits)?;
    Ok(LogRecord {
        labels,
        ts,
        line,
        fields,
    })
}

fn field((name, value): (String, Value)) -> (String, String) {
    match value {
        Value::String(s) => (name, s),
        other => (name, other.to_string()),
    }
}

/// A timestamp in milliseconds, by the rule in the module header.
fn timestamp_ms(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => {
            if let Some(ms) = super::rfc3339_ms(s) {
                return Ok(ms);
            }
            s.parse::<i64>()
                .ok()
                .and_then(int_ms)
                .ok_or_else(|| format!("timestamp {s:?} is neither RFC 3339 nor a number"))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => int_ms(i),
            None => n.as_f64().and_then(float_ms),
        }
        .ok_or_else(|| format!("timestamp {n} is out of range")),
        _ => Err("\"timestamp\" must be a string or a number".to_string()),
    }
}

const SECONDS_BELOW: i64 = 100_000_000_000;
const MILLIS_BELOW: i64 = 100_000_000_000_000;

fn int_ms(n: i64) -> Option<i64> {
    let a = n.unsigned_abs();
    if a < SECONDS_BELOW as u64 {
        Some(n * 1000)
    } else if a < MILLIS_BELOW as u64 {
        Some(n)
    } else {
        Some(n.div_euclid(1_000_000))
    }
}

fn float_ms(f: f64) -> Option<i64> {
    if !f.is_finite() {
        return None;
    }
    let a = f.abs();
    let ms = if a < SECONDS_BELOW as f64 {
        (f * 1000.0).floor()
    } else if a < MILLIS_BELOW as f64 {
        f.floor()
    } else {
        (f / 1e6).floor()
    };
    // Beyond ±2^63 ms the cast would saturate silently.
    (ms.abs() < 9.2e18).then_some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_795_000_000_000;

    fn one(line: &str) -> LogRecord {
        let mut v = parse(line.as_bytes(), NOW, &Limits::default()).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn err(body: &str) -> String {
        let e = parse(body.as_bytes(), NOW, &Limits::default()).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        e.to_string()
    }

    #[test]
    fn records_with_fields_and_extra_keys() {
        let body = "\n{\"timestamp\":\"2026-11-26T09:23:19.484Z\",\"labels\":{\"app\":\"api\",\"pod\":\"\"},\"message\":\"boom\",\"fields\":{\"code\":500,\"user\":\"u1\",\"tags\":[\"a\"]},\"level\":\"error\"}\r\n   \n{\"labels\":{\"app\":\"api\"},\"message\":\"no time\"}\n";
        let out = parse(body.as_bytes(), NOW, &Limits::default()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].ts, 1_795_684_999_484);
        assert_eq!(out[0].labels.to_string(), r#"{app="api"}"#);
        assert_eq!(out[0].line, "boom");
        let f = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            out[0].fields,
            f(&[
                ("code", "500"),
                ("tags", "[\"a\"]"),
                ("user", "u1"),
                ("level", "error")
            ])
        );
        assert_eq!(out[1].ts, NOW);
        assert!(out[1].fields.is_empty());
    }

    #[test]
    fn timestamp_units_by_magnitude() {
        let ts = |t: &str| {
            one(&format!(
                r#"{{"timestamp":{t},"labels":{{"a":"1"}},"message":"m"}}"#
            ))
            .ts
        };
        assert_eq!(ts("1700000000"), 1_700_000_000_000);
        assert_eq!(ts("1700000000.1234"), 1_700_000_000_123);
        assert_eq!(ts("1700000000123"), 1_700_000_000_123);
        assert_eq!(ts("1700000000123.9"), 1_700_000_000_123);
        assert_eq!(ts("1700000000123456789"), 1_700_000_000_123);
        assert_eq!(ts("\"1700000000123456789\""), 1_700_000_000_123);
        assert_eq!(ts("\"2023-11-14T22:13:20.123+01:00\""), 1_699_996_400_123);
        assert_eq!(ts("null"), NOW);
    }

    #[test]
    fn errors_name_the_line() {
        let ok = r#"{"labels":{"a":"1"},"message":"m"}"#;
        let cases = [
            (
                format!("{ok}\n{{\"labels\":{{\"a\":\"1\"}},\"message\":5}}"),
                "line 2: \"message\" must be a string",
            ),
            (
                format!("{ok}\n\n{{\"labels\":{{\"a\":\"1\"}}}}"),
                "line 3: missing \"message\"",
            ),
            (
                r#"{"message":"m"}"#.to_string(),
                "line 1: missing \"labels\"",
            ),
            (
                r#"{"labels":[],"message":"m"}"#.to_string(),
                "line 1: \"labels\" must be an object of strings",
            ),
            (
                r#"{"labels":{"a":1},"message":"m"}"#.to_string(),
                "line 1: label \"a\" must be a string",
            ),
            (
                r#"{"labels":{},"message":"m"}"#.to_string(),
                "line 1: at least one label pair is required",
            ),
            (
                r#"{"labels":{"a.b":"1"},"message":"m"}"#.to_string(),
                "line 1: label name \"a.b\" is invalid",
            ),
            (
                r#"{"labels":{"a":"1"},"message":"m","timestamp":"yesterday"}"#.to_string(),
                "line 1: timestamp \"yesterday\" is neither RFC 3339 nor a number",
            ),
            (
                r#"{"labels":{"a":"1"},"message":"m","timestamp":true}"#.to_string(),
                "line 1: \"timestamp\" must be a string or a number",
            ),
            (
                r#"{"labels":{"a":"1"},"message":"m","timestamp":1e300}"#.to_string(),
                "line 1: timestamp 1e+300 is out of range",
            ),
            (
                r#"{"labels":{"a":"1"},"message":"m","fields":3}"#.to_string(),
                "line 1: \"fields\" must be an object",
            ),
            (
                r#"{"labels":{"a":"1"},"message":"m","fields":{"":"x"}}"#.to_string(),
                "line 1: field name is empty",
            ),
            (
                r#"{"labels":{"a":"1"},"message":"m""#.to_string(),
                "line 1: invalid JSON at column 33: EOF while parsing an object",
            ),
            (
                "[1]".to_string(),
                "line 1: expected a JSON object: invalid type: sequence, expected a map",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(err(&body), want, "for {body}");
        }
    }

    #[test]
    fn invalid_utf8_and_limits() {
        let e = parse(
            b"{\"labels\":{\"a\":\"\xff\"},\"message\":\"m\"}",
            NOW,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: invalid UTF-8 at byte 17 of the line"
        );
        let limits = Limits {
            max_line_bytes: 3,
            ..Limits::default()
        };
        let e = parse(br#"{"labels":{"a":"1"},"message":"long"}"#, NOW, &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: log line is over max_line_bytes (4 > 3)"
        );
        let limits = Limits {
            max_body_bytes: 3,
            ..Limits::default()
        };
        let e = parse(br#"{"labels":{"a":"1"},"message":"long"}"#, NOW, &limits).unwrap_err();
        assert_eq!(e.status(), 413);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body, NOW, &Limits::default());
        }

        #[test]
        fn mutated_lines_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut body = br#"{"timestamp":1700000000.5,"labels":{"app":"api"},"message":"x","fields":{"n":1}}"#.to_vec();
            for (pos, byte) in edits {
                let i = pos % body.len();
                body[i] = byte;
            }
            if let Err(e) = parse(&body, NOW, &Limits::default()) {
                prop_assert_eq!(e.status(), 400);
            }
        }

        #[test]
        fn any_integer_timestamp_is_handled(n in any::<i64>()) {
            let line = format!(r#"{{"timestamp":{n},"labels":{{"a":"1"}},"message":"m"}}"#);
            let _ = parse(line.as_bytes(), NOW, &Limits::default());
        }
    }
}
