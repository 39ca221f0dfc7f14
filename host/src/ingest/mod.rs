//! Ingestion parsers: turn the bodies that Prometheus, Alertmanager, Pushgateway-style push
//! scripts, Loki log shippers and Elasticsearch bulk clients send into Faultline's own types,
//! unchanged in meaning.
//!
//! Every parser is a pure function of the body (and of the request headers that select the
//! format), bounded by [`Limits`], and fails with an [`IngestError`] that names the place and
//! the problem and knows the HTTP status to answer with.

pub mod alerts;
pub mod elasticsearch;
pub mod exposition;
pub mod kafka;
pub mod loki;
pub mod ndjson;
pub mod remote_write;
pub mod scrape;

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::model::{Labels, is_label_name};

/// Bounds on what one request may carry. Bodies and decompressed sizes over them get 413;
/// label sets and log lines over them get 400 naming the limit. Nothing is truncated.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, as received (compressed or not). Default 16 MiB.
    pub max_body_bytes: usize,
    /// Largest body after snappy or gzip decompression. Default 64 MiB.
    pub max_decompressed_bytes: usize,
    /// Most labels in one series, stream or alert, `__name__` included. Default 30
    /// (Mimir's `max_label_names_per_series`).
    pub max_labels_per_series: usize,
    /// Longest label name in bytes. Default 1024 (Mimir and Loki).
    pub max_label_name_bytes: usize,
    /// Longest label value in bytes. Default 2048 (Mimir and Loki).
    pub max_label_value_bytes: usize,
    /// Longest log line, and longest log field value, in bytes. Default 256 KiB (Loki's
    /// `max_line_size`).
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_labels_per_series: 30,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_line_bytes: 256 << 10,
        }
    }
}

/// Where in a body an error was found; counted from 1, as people count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// The body as a whole.
    Body,
    /// A line of a text body (exposition text, NDJSON).
    Line(usize),
    /// A series of a remote_write request.
    Series(usize),
    /// A stream of a Loki push.
    Stream(usize),
    /// An entry of a stream of a Loki push.
    Entry { stream: usize, entry: usize },
    /// An alert of an Alertmanager body.
    Alert(usize),
    /// The Pushgateway-style grouping path.
    Path,
}

impl fmt::Display for Location {
    /// The prefix of a message: `line 3: `, `stream 2 entry 5: `, or nothing for the body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Body => Ok(()),
            Location::Line(n) => write!(f, "line {n}: "),
            Location::Series(n) => write!(f, "series {n}: "),
            Location::Stream(n) => write!(f, "stream {n}: "),
            Location::Entry { stream, entry } => write!(f, "stream {stream} entry {entry}: "),
            Location::Alert(n) => write!(f, "alert {n}: "),
            Location::Path => f.write_str("grouping path: "),
        }
    }
}

/// Which of the [`Limits`] a body broke, named as in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `max_labels_per_series`.
    Labels,
    /// `max_labels_per_series`, applied to an alert's annotations.
    Annotations,
    /// `max_label_name_bytes`; holds the start of the name.
    LabelName(String),
    /// `max_label_value_bytes`; holds the label name.
    LabelValue(String),
    /// `max_line_bytes`, for a log line.
    LogLine,
    /// `max_line_bytes`, for a log field; holds the field name.
    FieldValue(String),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Labels => f.write_str("label count is over max_labels_per_series"),
            Limit::Annotations => f.write_str("annotation count is over max_labels_per_series"),
            Limit::LabelName(start) => {
                write!(f, "label name {start:?}... is over max_label_name_bytes")
            }
            Limit::LabelValue(name) => {
                write!(f, "value of label {name:?} is over max_label_value_bytes")
            }
            Limit::LogLine => f.write_str("log line is over max_line_bytes"),
            Limit::FieldValue(name) => {
                write!(f, "value of field {name:?} is over max_line_bytes")
            }
        }
    }
}

/// Why a body was refused. [`IngestError::status`] gives the HTTP status to answer with and
/// `Display` the message for the client.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// The body as received is larger than `max_body_bytes`.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    /// The body decompresses to more than `max_decompressed_bytes`. `size` is what the
    /// snappy header claims; gzip has no such header, so it is `None` there.
    #[error("{codec}: decompressed length {}exceeds the limit of {limit} bytes", size_prefix(.size))]
    DecompressedTooLarge {
        codec: &'static str,
        size: Option<u64>,
        limit: usize,
    },
    /// The Content-Type or Content-Encoding is not one this endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is malformed: syntax, encoding, type or value errors.
    #[error("{at}{reason}")]
    Malformed { at: Location, reason: String },
    /// A label set or log line is over one of the [`Limits`].
    #[error("{at}{limit} ({size} > {max})")]
    OverLimit {
        at: Location,
        limit: Limit,
        size: usize,
        max: usize,
    },
    /// Alerts that Alertmanager's validation refuses, with its messages joined by `"; "` as
    /// Alertmanager answers them.
    #[error("{}", .0.join("; "))]
    InvalidAlerts(Vec<String>),
    /// An alert without a `labels` object; Alertmanager's OpenAPI layer answers 422 with
    /// this text (the index counts from 0 there).
    #[error("{index}.labels in body is required")]
    AlertLabelsMissing { index: usize },
}

fn size_prefix(size: &Option<u64>) -> String {
    size.map(|s| format!("{s} ")).unwrap_or_default()
}

impl IngestError {
    /// The HTTP status this error maps to: 413 for sizes over the limits, 415 for an
    /// unsupported content type or encoding, 422 where Alertmanager answers 422, else 400.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::BodyTooLarge { .. } | IngestError::DecompressedTooLarge { .. } => 413,
            IngestError::UnsupportedMediaType(_) => 415,
            IngestError::AlertLabelsMissing { .. } => 422,
            IngestError::Malformed { .. }
            | IngestError::OverLimit { .. }
            | IngestError::InvalidAlerts(_) => 400,
        }
    }

    pub(crate) fn malformed(at: Location, reason: impl Into<String>) -> Self {
        IngestError::Malformed {
            at,
            reason: reason.into(),
        }
    }
}

/// Refuses a body over `max_body_bytes`.
pub(crate) fn check_body_size(body: &[u8], limits: &Limits) -> Result<(), IngestError> {
    if body.len() > limits.max_body_bytes {
        return Err(IngestError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    Ok(())
}

/// The body as UTF-8 text, or an error giving the line and byte of the first invalid byte.
pub(crate) fn utf8(body: &[u8]) -> Result<&str, IngestError> {
    std::str::from_utf8(body).map_err(|e| {
        let bad = e.valid_up_to();
        let line = 1 + body[..bad].iter().filter(|&&b| b == b'\n').count();
        let col = bad
            - body[..bad]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
        IngestError::malformed(
            Location::Line(line),
            format!("invalid UTF-8 at byte {} of the line", col + 1),
        )
    })
}

/// A JSON body within `max_body_bytes`, as UTF-8, decoded; a syntax or shape error refuses
/// the body as a whole.
pub(crate) fn json_body<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    limits: &Limits,
) -> Result<T, IngestError> {
    check_body_size(body, limits)?;
    serde_json::from_str(utf8(body)?)
        .map_err(|e| IngestError::malformed(Location::Body, format!("JSON: {e}")))
}

/// One line of an NDJSON body as a JSON object; a syntax error names the column.
pub(crate) fn json_object_line(
    line: &str,
    at: Location,
) -> Result<serde_json::Map<String, serde_json::Value>, IngestError> {
    serde_json::from_str(line).map_err(|e| {
        // serde_json ends its message with the position; the line is ours, the column its.
        let msg = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
        if e.is_data() {
            IngestError::malformed(at, format!("expected a JSON object: {msg}"))
        } else {
            IngestError::malformed(at, format!("invalid JSON at column {}: {msg}", e.column()))
        }
    })
}

/// The media type of a Content-Type header, lowercased, without parameters.
pub(crate) fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Undoes a `Content-Encoding` of `identity` (or none) or `gzip`, within
/// `max_decompressed_bytes`; anything else is refused with 415. Used for the JSON and text
/// bodies; snappy is handled where a protocol mandates it.
pub fn decode_content_encoding<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limits: &Limits,
) -> Result<std::borrow::Cow<'a, [u8]>, IngestError> {
    check_body_size(body, limits)?;
    match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => Ok(std::borrow::Cow::Borrowed(body)),
        Some("gzip") | Some("x-gzip") => gunzip(body, limits).map(std::borrow::Cow::Owned),
        Some(other) => Err(IngestError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported here: send the body plain or gzip-compressed"
        ))),
    }
}

fn gunzip(body: &[u8], limits: &Limits) -> Result<Vec<u8>, IngestError> {
    let limit = limits.max_decompressed_bytes;
    let mut out = Vec::new();
    // Reading one byte past the limit tells "exactly at the limit" from "over it" without
    // ever holding more than the limit plus one byte.
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::malformed(Location::Body, format!("gzip: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::DecompressedTooLarge {
            codec: "gzip",
            size: None,
            limit,
        });
    }
    Ok(out)
}

/// Decompresses a snappy block-format body, checking the length its header claims against
/// `max_decompressed_bytes` before allocating anything.
pub fn unsnappy(body: &[u8], limits: &Limits) -> Result<Vec<u8>, IngestError> {
    check_body_size(body, limits)?;
    let corrupt = |e: snap::Error| IngestError::malformed(Location::Body, format!("snappy: {e}"));
    let len = snap::raw::decompress_len(body).map_err(corrupt)?;
    if len > limits.max_decompressed_bytes {
        return Err(IngestError::DecompressedTooLarge {
            codec: "snappy",
            size: Some(len as u64),
            limit: limits.max_decompressed_bytes,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(corrupt)
}

/// Builds a label set from received pairs after checking the names, the limits and that no
/// name repeats. Pairs with an empty value are dropped, as in Prometheus, and do not count.
pub(crate) fn build_labels(
    mut pairs: Vec<(String, String)>,
    at: Location,
    limits: &Limits,
) -> Result<Labels, IngestError> {
    check_pairs(&mut pairs, at, limits)?;
    Ok(Labels::from_pairs(pairs))
}

/// What [`build_labels`] checks, on pairs of any strings (borrowed ones too): on success
/// they are sorted by name, names unique, and the pairs with an empty value are gone.
pub(crate) fn check_pairs<N: AsRef<str>, V: AsRef<str>>(
    pairs: &mut Vec<(N, V)>,
    at: Location,
    limits: &Limits,
) -> Result<(), IngestError> {
    check_label_count(pairs, Limit::Labels, at, limits)?;
    for (name, value) in pairs.iter() {
        check_label(name.as_ref(), value.as_ref(), at, limits)?;
    }
    pairs.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    if let Some(w) = pairs
        .windows(2)
        .find(|w| w[0].0.as_ref() == w[1].0.as_ref())
    {
        return Err(IngestError::malformed(
            at,
            format!("label name {:?} appears more than once", w[0].0.as_ref()),
        ));
    }
    pairs.retain(|(_, v)| !v.as_ref().is_empty());
    Ok(())
}

/// Refuses more than `max_labels_per_series` pairs with a value. This comes before
/// anything else is done with the pairs, so a huge label set costs no sorting.
pub(crate) fn check_label_count<N, V: AsRef<str>>(
    pairs: &[(N, V)],
    limit: Limit,
    at: Location,
    limits: &Limits,
) -> Result<(), IngestError> {
    let count = pairs.iter().filter(|(_, v)| !v.as_ref().is_empty()).count();
    within(count, limits.max_labels_per_series, at, || limit)
}

/// [`Labels::from_pairs`] of pairs already counted by [`check_label_count`]: the empty
/// values, which were not counted, are dropped first so that it stays within the limit.
pub(crate) fn bounded_labels(mut pairs: Vec<(String, String)>) -> Labels {
    pairs.retain(|(_, v)| !v.is_empty());
    Labels::from_pairs(pairs)
}

/// Checks one label: a valid name within the name limit, a value within the value limit.
pub(crate) fn check_label(
    name: &str,
    value: &str,
    at: Location,
    limits: &Limits,
) -> Result<(), IngestError> {
    within(name.len(), limits.max_label_name_bytes, at, || {
        Limit::LabelName(name.chars().take(32).collect())
    })?;
    if name.is_empty() {
        return Err(IngestError::malformed(at, "label name is empty"));
    }
    if !is_label_name(name) {
        return Err(IngestError::malformed(
            at,
            format!("label name {name:?} is invalid"),
        ));
    }
    within(value.len(), limits.max_label_value_bytes, at, || {
        Limit::LabelValue(name.to_string())
    })?;
    Ok(())
}

/// `Ok` if `size` is within `max`, else the over-limit error naming what is over.
pub(crate) fn within(
    size: usize,
    max: usize,
    at: Location,
    limit: impl FnOnce() -> Limit,
) -> Result<(), IngestError> {
    if size > max {
        return Err(IngestError::OverLimit {
            at,
            limit: limit(),
            size,
            max,
        });
    }
    Ok(())
}

/// Checks a log line and its fields against `max_line_bytes`; field names must be non-empty
/// but need not be label names (`http.status` is a common field).
pub(crate) fn check_log_entry(
    line: &str,
    fields: &[(String, String)],
    at: Location,
    limits: &Limits,
) -> Result<(), IngestError> {
    within(line.len(), limits.max_line_bytes, at, || Limit::LogLine)?;
    for (name, value) in fields {
        if name.is_empty() {
            return Err(IngestError::malformed(at, "field name is empty"));
        }
        within(name.len(), limits.max_label_name_bytes, at, || {
            Limit::LabelName(name.chars().take(32).collect())
        })?;
        within(value.len(), limits.max_line_bytes, at, || {
            Limit::FieldValue(name.clone())
        })?;
    }
    Ok(())
}

/// A JSON object of strings, in order, duplicates kept: label sets refuse them, alerts keep
/// the last one as Go's JSON decoding does.
pub(crate) struct Pairs(pub(crate) Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    v.push(pair);
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses an RFC 3339 time to milliseconds since the Unix epoch.
pub(crate) fn rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
pub(crate) mod testing {
    //! What the tests of every parser share.

    /// A captured body from the fixtures directory (`tests/fixtures` of the host repository).
    pub fn fixture(path: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    /// The Content-Type and Content-Encoding of a captured request (`*.headers.txt`).
    pub fn headers(path: &str) -> (Option<String>, Option<String>) {
        let text = String::from_utf8(fixture(path)).unwrap();
        let get = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        (get("Content-Type"), get("Content-Encoding"))
    }

    /// Snappy block-compresses a body.
    pub fn snappy(raw: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(raw).unwrap()
    }

    /// A series of a test request: label pairs and (value, timestamp) samples.
    pub type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(f64, i64)]);

    /// A snappy-compressed remote_write request of these series.
    pub fn remote_write_request(series: &[TestSeries]) -> Vec<u8> {
        use super::remote_write::proto;
        use prost::Message;
        let req = proto::WriteRequest {
            timeseries: series
                .iter()
                .map(|(labels, samples)| proto::TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| proto::Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    samples: samples
                        .iter()
                        .map(|&(value, timestamp)| proto::Sample { value, timestamp })
                        .collect(),
                })
                .collect(),
            metadata: vec![],
        };
        snappy(&req.encode_to_vec())
    }

    /// A snappy body whose header claims `len` bytes but which holds almost nothing.
    pub fn snappy_bomb(len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut v = len;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out.extend_from_slice(&[0x00, 0x41]); // one literal byte: "A"
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_deserialize_with_defaults_and_refuse_unknown_fields() {
        let l: Limits = serde_json::from_str(r#"{"max_labels_per_series": 10}"#).unwrap();
        assert_eq!(l.max_labels_per_series, 10);
        assert_eq!(l.max_decompressed_bytes, 64 << 20);
        let e = serde_json::from_str::<Limits>(r#"{"max_lables": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `max_lables`"), "{e}");
    }

    #[test]
    fn statuses() {
        let cases: Vec<(IngestError, u16)> = vec![
            (IngestError::BodyTooLarge { size: 2, limit: 1 }, 413),
            (
                IngestError::DecompressedTooLarge {
                    codec: "gzip",
                    size: None,
                    limit: 1,
                },
                413,
            ),
            (IngestError::UnsupportedMediaType("x".into()), 415),
            (IngestError::malformed(Location::Body, "x"), 400),
            (
                IngestError::OverLimit {
                    at: Location::Body,
                    limit: Limit::Labels,
                    size: 2,
                    max: 1,
                },
                400,
            ),
            (IngestError::InvalidAlerts(vec!["x".into()]), 400),
            (IngestError::AlertLabelsMissing { index: 0 }, 422),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e}");
        }
    }

    #[test]
    fn body_over_the_limit_is_413() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let e = decode_content_encoding(None, b"12345", &limits).unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(
            e.to_string(),
            "body of 5 bytes exceeds the limit of 4 bytes"
        );
    }

    #[test]
    fn snappy_bomb_is_refused_before_decompressing() {
        let e = unsnappy(&testing::snappy_bomb(300_000_000), &Limits::default()).unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(
            e.to_string(),
            "snappy: decompressed length 300000000 exceeds the limit of 67108864 bytes"
        );
    }

    #[test]
    fn corrupt_snappy_is_400() {
        let e = unsnappy(&[0x05, 0xff, 0xff], &Limits::default()).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().starts_with("snappy: "), "{e}");
    }

    #[test]
    fn gzip_is_undone_within_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[b'a'; 1000]).unwrap();
        let body = gz.finish().unwrap();
        let out = decode_content_encoding(Some("gzip"), &body, &Limits::default()).unwrap();
        assert_eq!(out.len(), 1000);
        let small = Limits {
            max_decompressed_bytes: 999,
            ..Limits::default()
        };
        let e = decode_content_encoding(Some("gzip"), &body, &small).unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(
            e.to_string(),
            "gzip: decompressed length exceeds the limit of 999 bytes"
        );
        let e = decode_content_encoding(Some("gzip"), b"not gzip", &small).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().starts_with("gzip: "), "{e}");
    }

    #[test]
    fn unknown_content_encoding_is_415() {
        let e = decode_content_encoding(Some("br"), b"x", &Limits::default()).unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.to_string().contains("\"br\""), "{e}");
    }

    #[test]
    fn invalid_utf8_names_line_and_byte() {
        let e = utf8(b"ok\nab\xffc").unwrap_err();
        assert_eq!(e.to_string(), "line 2: invalid UTF-8 at byte 3 of the line");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn empty_values_neither_count_nor_stay() {
        let l = Limits {
            max_labels_per_series: 1,
            ..Limits::default()
        };
        let mut pairs = vec![("a".to_string(), "1".to_string())];
        pairs.extend((0..100_000).map(|i| (format!("e{i}"), String::new())));
        let labels = build_labels(pairs, Location::Body, &l).unwrap();
        assert_eq!(labels.to_string(), r#"{a="1"}"#);
    }

    #[test]
    fn label_checks() {
        let l = Limits {
            max_labels_per_series: 2,
            max_label_name_bytes: 4,
            max_label_value_bytes: 3,
            ..Limits::default()
        };
        let at = Location::Series(4);
        let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let msg = |v: &[(&str, &str)]| build_labels(p(v), at, &l).unwrap_err().to_string();
        assert_eq!(
            msg(&[("1abc", "x")]),
            "series 4: label name \"1abc\" is invalid"
        );
        assert_eq!(msg(&[("", "x")]), "series 4: label name is empty");
        assert_eq!(
            msg(&[("a", "1"), ("a", "2")]),
            "series 4: label name \"a\" appears more than once"
        );
        assert_eq!(
            msg(&[("a", "1"), ("b", "2"), ("c", "3")]),
            "series 4: label count is over max_labels_per_series (3 > 2)"
        );
        assert_eq!(
            msg(&[("abcde", "1")]),
            "series 4: label name \"abcde\"... is over max_label_name_bytes (5 > 4)"
        );
        assert_eq!(
            msg(&[("a", "1234")]),
            "series 4: value of label \"a\" is over max_label_value_bytes (4 > 3)"
        );
        let ok = build_labels(p(&[("b", "2"), ("a", ""), ("c", "3")]), at, &l).unwrap();
        assert_eq!(ok.to_string(), r#"{b="2", c="3"}"#);
    }
}
