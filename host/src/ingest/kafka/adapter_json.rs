//! prometheus-kafka-adapter's JSON samples, one object a line:
//!
//! ```json
//! {"timestamp": "2026-12-02T06:00:00Z", "value": "0.5", "name": "up",
//!  "labels": {"__name__": "up", "job": "node", "instance": "web1"}}
//! ```
//!
//! The adapter writes the value as text (`"NaN"`, `"+Inf"` included) and the time as RFC 3339;
//! a JSON number is taken for either too (the time then in ms since the epoch). `name` is
//! the series' `__name__` where `labels` has none.

use serde::Deserialize;

use crate::ingest::{IngestError, Limits, Location, build_labels, check_body_size, utf8};
use crate::model::{Sample, SeriesSamples};

#[derive(Deserialize)]
struct AdapterSample {
    timestamp: serde_json::Value,
    value: serde_json::Value,
    #[serde(default)]
    name: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
}

/// Parses a message of one or more samples (one JSON object a line), in order.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Vec<SeriesSamples>, IngestError> {
    check_body_size(body, limits)?;
    let mut out = Vec::new();
    for (i, line) in utf8(body)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::Line(i + 1);
        let s: AdapterSample = serde_json::from_str(line)
            .map_err(|e| IngestError::malformed(at, format!("JSON sample: {e}")))?;
        let ts = timestamp(&s.timestamp).ok_or_else(|| {
            IngestError::malformed(
                at,
                format!("timestamp {} is neither RFC 3339 nor ms", s.timestamp),
            )
        })?;
        let value = value(&s.value).ok_or_else(|| {
            IngestError::malformed(at, format!("value {} is not a number", s.value))
        })?;
        let mut pairs: Vec<(String, String)> = s.labels.into_iter().collect();
        if let Some(name) = s
            .name
            .filter(|_| !pairs.iter().any(|(n, _)| n == "__name__"))
        {
            pairs.push(("__name__".to_string(), name));
        }
        out.push(SeriesSamples {
            labels: build_labels(pairs, at, limits)?,
            samples: vec![Sample { ts, value }],
        });
    }
    Ok(out)
}

fn timestamp(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn value(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => match s.trim_start_matches('+') {
            t if t.eq_ignore_ascii_case("inf") => Some(f64::INFINITY),
            t if t.eq_ignore_ascii_case("-inf") => Some(f64::NEG_INFINITY),
            t if t.eq_ignore_ascii_case("nan") => Some(f64::NAN),
            t => t.parse().ok(),
        },
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_samples_become_series() {
        // As prometheus-kafka-adapter serializes them (its README's example), two lines.
        let body = br#"{"timestamp":"1970-01-01T00:00:00Z","value":"9876543210","name":"up","labels":{"__name__":"up","label1":"value1"}}
{"timestamp":1500,"value":"+Inf","name":"load","labels":{"job":"node"}}
"#;
        let got = parse(body, &Limits::default()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].labels.to_string(),
            r#"{__name__="up", label1="value1"}"#
        );
        assert_eq!(
            (got[0].samples[0].ts, got[0].samples[0].value),
            (0, 9876543210.0)
        );
        assert_eq!(
            got[1].labels.to_string(),
            r#"{__name__="load", job="node"}"#
        );
        assert_eq!(
            (got[1].samples[0].ts, got[1].samples[0].value),
            (1500, f64::INFINITY)
        );
    }

    #[test]
    fn bad_samples_name_their_line() {
        let e = |body: &str| {
            parse(body.as_bytes(), &Limits::default())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("\n{\"timestamp\":\"yesterday\",\"value\":\"1\",\"labels\":{}}"),
            "line 2: timestamp \"yesterday\" is neither RFC 3339 nor ms"
        );
        assert_eq!(
            e(r#"{"timestamp":1,"value":"x","labels":{}}"#),
            "line 1: value \"x\" is not a number"
        );
        assert!(e("{").starts_with("line 1: JSON sample: "));
        assert_eq!(
            e(r#"{"timestamp":1,"value":1,"labels":{"1a":"x"}}"#),
            "line 1: label name \"1a\" is invalid"
        );
    }
}
