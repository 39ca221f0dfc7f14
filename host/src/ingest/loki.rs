//! Loki push API (`POST /loki/api/v1/push`) into log records, in both of Loki's encodings:
//!
//! - JSON: `{"streams":[{"stream":{"app":"api"},"values":[["<unix ns>","line"],
//!   ["<unix ns>","line",{"trace_id":"..."}]]}]}`; the optional third element of a value is
//!   structured metadata and becomes the record's fields. The timestamp is a string (or a
//!   JSON integer) of nanoseconds.
//! - protobuf `logproto.PushRequest`, always snappy block-compressed, whose stream labels are a
//!   LogQL selector string (`{app="api", env="prod"}`).
//!
//! [`decode`] picks the encoding from the headers as Loki does. Timestamps become
//! milliseconds, rounded down.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::{IngestError, Limits, Location, Pairs, build_labels, check_log_entry};
use crate::model::{Labels, LogRecord};

/// The messages of Loki's `pkg/push/push.proto` that Faultline reads.
pub mod proto {
    /// `logproto.PushRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    /// `logproto.StreamAdapter`: `labels` is a LogQL selector, `{a="b", c="d"}`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
    }

    /// `logproto.EntryAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    /// `logproto.LabelPairAdapter`: one pair of structured metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// Decodes a Loki push body, choosing the decoder by Content-Type: `application/json` is
/// JSON (plain or `Content-Encoding: gzip`); `application/x-protobuf` is snappy-compressed
/// protobuf, whether or not `Content-Encoding: snappy` says so (winston-loki sends it without).
/// Loki reads any other type, or none, as protobuf; here those get 415, since a browser page
/// may send them. Other encodings get 415 too.
pub fn decode(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<LogRecord>, IngestError> {
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    if super::media_type(content_type) == "application/json" {
        if encoding.as_deref() == Some("snappy") {
            return Err(IngestError::UnsupportedMediaType(
                "Content-Encoding \"snappy\" is not supported for JSON Loki pushes: \
                 send the JSON plain or gzip-compressed"
                    .to_string(),
            ));
        }
        let body = super::decode_content_encoding(content_encoding, body, limits)?;
        return decode_json(&body, limits);
    }
    if super::media_type(content_type) != "application/x-protobuf" {
        let given = content_type.map_or("none".to_string(), |c| format!("{c:?}"));
        return Err(IngestError::UnsupportedMediaType(format!(
            "Content-Type {given} is not supported for Loki pushes: send application/json \
             or snappy-compressed application/x-protobuf"
        )));
    }
    match encoding.as_deref() {
        None | Some("") | Some("snappy") => decode_protobuf(body, limits),
        Some(other) => Err(IngestError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported for protobuf Loki pushes: \
             protobuf bodies are snappy-compressed"
        ))),
    }
}

/// Decodes a JSON push body.
pub fn decode_json(body: &[u8], limits: &Limits) -> Result<Vec<LogRecord>, IngestError> {
    let push: JsonPush = super::json_body(body, limits)?;
    let mut out = Vec::new();
    for (si, stream) in push.streams.into_iter().enumerate() {
        let labels = stream_labels(stream.stream.0, si + 1, limits)?;
        for (ei, entry) in stream.values.into_iter().enumerate() {
            let at = Location::Entry {
                stream: si + 1,
                entry: ei + 1,
            };
            let ns = match entry.ts {
                JsonTs::Number(n) => n,
                JsonTs::Text(s) => s.parse::<i64>().map_err(|_| {
                    IngestError::malformed(at, format!("timestamp {s:?} is not a number"))
                })?,
            };
            out.push(record(
                &labels,
                ns.div_euclid(1_000_000),
                entry.line,
                entry.metadata,
                at,
                limits,
            )?);
        }
    }
    Ok(out)
}

/// Decodes a snappy-compressed protobuf push body.
pub fn decode_protobuf(body: &[u8], limits: &Limits) -> Result<Vec<LogRecord>, IngestError> {
    let raw = super::unsnappy(body, limits)?;
    let push = <proto::PushRequest as prost::Message>::decode(raw.as_slice()).map_err(|e| {
        IngestError::malformed(
            Location::Body,
            format!("protobuf logproto.PushRequest: {e}"),
        )
    })?;
    let mut out = Vec::new();
    for (si, stream) in push.streams.into_iter().enumerate() {
        let pairs = parse_selector(&stream.labels).map_err(|r| {
            IngestError::malformed(
                Location::Stream(si + 1),
                format!("labels {:?}: {r}", stream.labels),
            )
        })?;
        let labels = stream_labels(pairs, si + 1, limits)?;
        for (ei, entry) in stream.entries.into_iter().enumerate() {
            let at = Location::Entry {
                stream: si + 1,
                entry: ei + 1,
            };
            let ts = entry
                .timestamp
                .ok_or_else(|| IngestError::malformed(at, "timestamp is missing"))?;
            if !(0..1_000_000_000).contains(&ts.nanos) {
                return Err(IngestError::malformed(
                    at,
                    format!("timestamp nanos {} is out of range", ts.nanos),
                ));
            }
            let ms = ts
                .seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(ts.nanos / 1_000_000)))
                .ok_or_else(|| {
                    IngestError::malformed(
                        at,
                        format!("timestamp of {} seconds is out of range", ts.seconds),
                    )
                })?;
            let fields = entry
                .structured_metadata
                .into_iter()
                .map(|p| (p.name, p.value))
                .collect();
            out.push(record(&labels, ms, entry.line, fields, at, limits)?);
        }
    }
    Ok(out)
}

fn stream_labels(
    pairs: Vec<(String, String)>,
    stream: usize,
    limits: &Limits,
) -> Result<Labels, IngestError> {
    let at = Location::Stream(stream);
    let labels = build_labels(pairs, at, limits)?;
    if labels.is_empty() {
        // Loki's wording.
        return Err(IngestError::malformed(
            at,
            "at least one label pair is required per stream",
        ));
    }
    Ok(labels)
}

fn record(
    labels: &Labels,
    ts: i64,
    line: String,
    fields: Vec<(String, String)>,
    at: Location,
    limits: &Limits,
) -> Result<LogRecord, IngestError> {
    check_log_entry(&line, &fields, at, limits)?;
    Ok(LogRecord {
        labels: labels.clone(),
        ts,
        line,
        fields,
    })
}

/// Parses a stream selector as Loki's protobuf push carries it: `{name="value", ...}` with
/// only `=` matchers; values are quoted with `"` (Go escapes), `'` or backticks (raw).
pub fn parse_selector(s: &str) -> Result<Vec<(String, String)>, String> {
    let ws = |c: char| c.is_ascii_whitespace();
    let mut s = s
        .trim_matches(ws)
        .strip_prefix('{')
        .ok_or("expected '{' at the start")?;
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(ws);
        if let Some(rest) = s.strip_prefix('}') {
            if !rest.trim_matches(ws).is_empty() {
                return Err(format!(
                    "unexpected text {:?} after '}}'",
                    rest.trim_matches(ws)
                ));
            }
            return Ok(out);
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let name = &s[..end];
        if name.is_empty() {
            return Err(match s.chars().next() {
                None => "expected '}' at the end".to_string(),
                Some(c) => format!("expected a label name, found {c:?}"),
            });
        }
        s = s[end..].trim_start_matches(ws);
        if s.starts_with("=~") || s.starts_with("!=") || s.starts_with("!~") {
            return Err(format!(
                "label {name:?}: only '=' matchers may name a stream"
            ));
        }
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label name {name:?}"))?
            .trim_start_matches(ws);
        let (value, rest) = unquote_go(s).map_err(|r| format!("label {name:?}: {r}"))?;
        out.push((name.to_string(), value));
        s = rest.trim_start_matches(ws);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!(
                "expected ',' or '}}' after the value of label {name:?}"
            ));
        }
    }
}

/// Reads a Go string literal at the start of `s`; returns its value and what follows it.
fn unquote_go(s: &str) -> Result<(String, &str), String> {
    let quote = s.chars().next().ok_or("expected a quoted value")?;
    if quote == '`' {
        let end = s[1..].find('`').ok_or("unterminated raw string")?;
        return Ok((s[1..1 + end].to_string(), &s[end + 2..]));
    }
    if quote != '"' && quote != '\'' {
        return Err("expected a quoted value".to_string());
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut i = 1;
    let hex = |h: &[u8]| -> Result<u32, String> {
        std::str::from_utf8(h)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| "invalid escape sequence".to_string())
    };
    while i < b.len() {
        let c = b[i];
        if c == quote as u8 {
            let value = String::from_utf8(out).map_err(|_| "value is not valid UTF-8")?;
            return Ok((value, &s[i + 1..]));
        }
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *b.get(i + 1).ok_or("unterminated string")?;
        let simple = match e {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'"' | b'\'' => Some(e),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        let (len, value) = match e {
            b'x' => (
                4,
                hex(b.get(i + 2..i + 4).ok_or("invalid escape sequence")?)?,
            ),
            b'u' => (
                6,
                hex(b.get(i + 2..i + 6).ok_or("invalid escape sequence")?)?,
            ),
            b'U' => (
                10,
                hex(b.get(i + 2..i + 10).ok_or("invalid escape sequence")?)?,
            ),
            b'0'..=b'7' => {
                let o = b.get(i + 1..i + 4).ok_or("invalid escape sequence")?;
                let v = std::str::from_utf8(o)
                    .ok()
                    .and_then(|o| u32::from_str_radix(o, 8).ok())
                    .filter(|v| *v <= 255)
                    .ok_or("invalid escape sequence")?;
                (4, v)
            }
            _ => return Err("invalid escape sequence".to_string()),
        };
        if matches!(e, b'x' | b'0'..=b'7') {
            out.push(value as u8);
        } else {
            let ch = char::from_u32(value).ok_or("invalid escape sequence")?;
            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        }
        i += len;
    }
    Err("unterminated string".to_string())
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    stream: Pairs,
    #[serde(default)]
    values: Vec<JsonEntry>,
}

enum JsonTs {
    Text(String),
    Number(i64),
}

struct JsonEntry {
    ts: JsonTs,
    line: String,
    metadata: Vec<(String, String)>,
}

impl<'de> Deserialize<'de> for JsonTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonTs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp in nanoseconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<JsonTs, E> {
                Ok(JsonTs::Text(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<JsonTs, E> {
                Ok(JsonTs::Number(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<JsonTs, E> {
                i64::try_from(n)
                    .map(JsonTs::Number)
                    .map_err(|_| E::custom(format!("timestamp {n} is out of range")))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for JsonEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("[timestamp, line] or [timestamp, line, {structured metadata}]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry, A::Error> {
                let ts = seq
                    .next_element::<JsonTs>()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line = seq
                    .next_element::<String>()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let metadata = seq
                    .next_element::<Pairs>()?
                    .map(|p| p.0)
                    .unwrap_or_default();
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(JsonEntry { ts, line, metadata })
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use crate::ingest::testing::{fixture, headers, snappy, snappy_bomb};
    use proptest::prelude::*;
    use prost::Message;

    const JSON: Option<&str> = Some("application/json");
    const PB: Option<&str> = Some("application/x-protobuf");

    fn fields(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn winston_protobuf_without_content_encoding() {
        let (ct, ce) = headers("loki-clients/winston-loki-6.1.7-push.headers.txt");
        assert_eq!((ct.as_deref(), ce.as_deref()), (PB, None));
        let out = decode(
            ct.as_deref(),
            ce.as_deref(),
            &fixture("loki-clients/winston-loki-6.1.7-push.snappy.pb"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].labels.to_string(),
            r#"{app="winston-peer", env="peertest", level="error", severity="error"}"#
        );
        assert_eq!(
            out[0].line,
            r#"payment failed for order 42 {"level":"error"}"#
        );
        assert_eq!(out[0].ts, 1795685139889);
        assert!(out[0].fields.is_empty());
        assert_eq!(out[1].labels.get("level"), Some("info"));
        assert_eq!(out[1].line, r#"cpu=97.5 host=web-1 {"level":"info"}"#);
    }

    #[test]
    fn winston_json_keeps_structured_metadata_as_fields() {
        let out = decode(
            JSON,
            None,
            &fixture("loki-clients/winston-loki-6.1.7-push-json.json"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].fields, fields(&[("level", "error")]));
        assert_eq!(out[0].ts, 1795685142571);
        assert_eq!(out[0].labels.get("severity"), Some("error"));
        assert_eq!(out[1].fields, fields(&[("level", "info")]));
        assert_eq!(out[1].line, r#"cpu=97.5 host=web-1 {"level":"info"}"#);
    }

    #[test]
    fn syslog_ng_json_with_escapes() {
        let (ct, ce) = headers("loki-clients/syslog-ng-3.38-push.headers.txt");
        let out = decode(
            ct.as_deref(),
            ce.as_deref(),
            &fixture("loki-clients/syslog-ng-3.38-push.json"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].line,
            r#"CPU high on "web-1": value=97.5 \ backslash"#
        );
        assert_eq!(out[0].ts, 1795685119533);
        assert_eq!(out[0].labels.get("program"), Some("alertsrc"));
        assert_eq!(out[1].labels.get("severity"), Some("err"));
        assert_eq!(out[1].line, "disk full on db-2");
        assert!(out[1].fields.is_empty());
    }

    #[test]
    fn python_logging_loki_json() {
        let out = decode_json(
            &fixture("loki-clients/python-logging-loki-0.3.1-push.json"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels.to_string(),
            r#"{app="pylogging", logger="peer", service="db", severity="error"}"#
        );
        assert_eq!(out[0].line, "db latency high");
        assert_eq!(out[0].ts, 1795685309087);
    }

    #[test]
    fn protobuf_structured_metadata_and_timestamps() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{app="api", msg="a \"q\" \\ \x41\u00e9\101", raw=`x\y`, single='s'}"#
                    .to_string(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 999_999_999,
                    }),
                    line: "hello".to_string(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "trace_id".into(),
                        value: "abc".into(),
                    }],
                }],
            }],
        };
        let out = decode(
            PB,
            Some("snappy"),
            &snappy(&req.encode_to_vec()),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out[0].ts, 1_700_000_000_999);
        assert_eq!(out[0].labels.get("msg"), Some("a \"q\" \\ AéA"));
        assert_eq!(out[0].labels.get("raw"), Some("x\\y"));
        assert_eq!(out[0].labels.get("single"), Some("s"));
        assert_eq!(out[0].fields, fields(&[("trace_id", "abc")]));
    }

    #[test]
    fn selector_errors() {
        let cases = [
            ("app=\"x\"", "expected '{' at the start"),
            (
                "{app=\"x\"",
                "expected ',' or '}' after the value of label \"app\"",
            ),
            ("{app=\"x\",", "expected '}' at the end"),
            ("{app=x}", "label \"app\": expected a quoted value"),
            (
                "{app!=\"x\"}",
                "label \"app\": only '=' matchers may name a stream",
            ),
            ("{app=\"x\\q\"}", "label \"app\": invalid escape sequence"),
            ("{app=\"x}", "label \"app\": unterminated string"),
            ("{app=\"x\"} y", "unexpected text \"y\" after '}'"),
            ("{.a=\"x\"}", "expected a label name, found '.'"),
        ];
        for (sel, want) in cases {
            assert_eq!(parse_selector(sel).unwrap_err(), want, "for {sel}");
        }
        assert_eq!(parse_selector(" { } ").unwrap(), vec![]);
    }

    fn json_err(body: &str) -> (u16, String) {
        let e = decode(JSON, None, body.as_bytes(), &Limits::default()).unwrap_err();
        (e.status(), e.to_string())
    }

    #[test]
    fn json_errors_name_stream_and_entry() {
        let s = |values: &str| {
            format!(
                r#"{{"streams":[{{"stream":{{"a":"1"}},"values":[["1","ok"]]}},{{"stream":{{"a":"1"}},"values":{values}}}]}}"#
            )
        };
        assert_eq!(
            json_err(&s(r#"[["1","a"],["abc","b"]]"#)),
            (
                400,
                "stream 2 entry 2: timestamp \"abc\" is not a number".to_string()
            )
        );
        let (status, msg) = json_err(&s(r#"[["1"]]"#));
        assert_eq!(status, 400);
        assert!(
            msg.starts_with("JSON: invalid length 1, expected [timestamp, line]"),
            "{msg}"
        );
        let (_, msg) = json_err(&s(r#"[["1","a",{},"x"]]"#));
        assert!(msg.starts_with("JSON: invalid length 4"), "{msg}");
        let (_, msg) = json_err(&s(r#"[["1","a",{"k":1}]]"#));
        assert!(
            msg.starts_with("JSON: invalid type: integer `1`, expected a string"),
            "{msg}"
        );
        let (_, msg) = json_err(r#"{"streams":[{"stream":{},"values":[]}]}"#);
        assert_eq!(
            msg,
            "stream 1: at least one label pair is required per stream"
        );
        let (_, msg) = json_err(r#"{"streams":[{"stream":{"a-b":"1"},"values":[]}]}"#);
        assert_eq!(msg, "stream 1: label name \"a-b\" is invalid");
        let (_, msg) = json_err(r#"{"streams":[{"stream":{"a":"1","a":"2"},"values":[]}]}"#);
        assert_eq!(msg, "stream 1: label name \"a\" appears more than once");
        let (_, msg) = json_err("{\"streams\":[");
        assert!(msg.starts_with("JSON: EOF while parsing"), "{msg}");
    }

    #[test]
    fn long_lines_are_refused_naming_the_limit() {
        let limits = Limits {
            max_line_bytes: 4,
            ..Limits::default()
        };
        let body = r#"{"streams":[{"stream":{"a":"1"},"values":[["1","12345"]]}]}"#;
        let e = decode(JSON, None, body.as_bytes(), &limits).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "stream 1 entry 1: log line is over max_line_bytes (5 > 4)"
        );
        let body = r#"{"streams":[{"stream":{"a":"1"},"values":[["1","1",{"k":"12345"}]]}]}"#;
        let e = decode(JSON, None, body.as_bytes(), &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stream 1 entry 1: value of field \"k\" is over max_line_bytes (5 > 4)"
        );
    }

    #[test]
    fn protobuf_errors() {
        let l = Limits::default();
        let e = decode(PB, None, &snappy_bomb(300_000_000), &l).unwrap_err();
        assert_eq!(e.status(), 413);
        let e = decode(PB, None, b"{\"streams\":[]}", &l).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().starts_with("snappy: "), "{e}");
        let entry = |ts: Option<Timestamp>| PushRequest {
            streams: vec![StreamAdapter {
                labels: "{a=\"1\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: ts,
                    line: "x".into(),
                    structured_metadata: vec![],
                }],
            }],
        };
        let msg = |req: PushRequest| {
            decode(PB, None, &snappy(&req.encode_to_vec()), &l)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(msg(entry(None)), "stream 1 entry 1: timestamp is missing");
        assert_eq!(
            msg(entry(Some(Timestamp {
                seconds: 1,
                nanos: -1
            }))),
            "stream 1 entry 1: timestamp nanos -1 is out of range"
        );
        assert_eq!(
            msg(entry(Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }))),
            format!(
                "stream 1 entry 1: timestamp of {} seconds is out of range",
                i64::MAX
            )
        );
        let mut bad = entry(Some(Timestamp::default()));
        bad.streams[0].labels = "{a=1}".into();
        assert_eq!(
            msg(bad),
            "stream 1: labels \"{a=1}\": label \"a\": expected a quoted value"
        );
        // A line that is not UTF-8.
        let raw = b"\x0a\x0b\x0a\x00\x12\x07\x0a\x00\x12\x03\xff\xfe\xfd";
        let e = decode(PB, None, &snappy(raw), &l).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn encodings_are_chosen_from_the_headers() {
        use std::io::Write;
        let body = fixture("loki-clients/syslog-ng-3.38-push.json");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        let l = Limits::default();
        let ct = Some("application/json; charset=utf-8");
        assert_eq!(decode(ct, Some("gzip"), &gz, &l).unwrap().len(), 2);
        let e = decode(JSON, Some("snappy"), &body, &l).unwrap_err();
        assert_eq!(e.status(), 415);
        let e = decode(JSON, Some("deflate"), &body, &l).unwrap_err();
        assert_eq!(e.status(), 415);
        // Loki reads any other type as protobuf; a browser page may send those.
        for forgeable in [
            None,
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let e = decode(forgeable, None, &body, &l).unwrap_err();
            assert_eq!(e.status(), 415, "{forgeable:?}");
            assert!(e.to_string().contains("send application/json"), "{e}");
        }
        let e = decode(PB, Some("gzip"), &body, &l).unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.to_string().contains("snappy-compressed"), "{e}");
        let e = decode(JSON, None, b"{\"streams\":[]}\xff", &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: invalid UTF-8 at byte 15 of the line"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let l = Limits::default();
            let _ = decode(JSON, None, &body, &l);
            let _ = decode(PB, None, &body, &l);
            let _ = decode(PB, None, &snappy(&body), &l);
        }

        #[test]
        fn mutated_json_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut body = fixture("loki-clients/winston-loki-6.1.7-push-json.json");
            for (pos, byte) in edits {
                let i = pos % body.len();
                body[i] = byte;
            }
            if let Err(e) = decode(JSON, None, &body, &Limits::default()) {
                prop_assert_eq!(e.status(), 400);
            }
        }

        #[test]
        fn mutated_protobuf_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let body = fixture("loki-clients/winston-loki-6.1.7-push.snappy.pb");
            let mut raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            for (pos, byte) in edits {
                let i = pos % raw.len();
                raw[i] = byte;
            }
            if let Err(e) = decode(PB, None, &snappy(&raw), &Limits::default()) {
                prop_assert_eq!(e.status(), 400);
            }
        }

        #[test]
        fn selectors_never_panic(s in "\\PC{0,40}") {
            let _ = parse_selector(&s);
        }
    }
}
