//! Prometheus text exposition format 0.0.4, as exporters serve it and push scripts send it to a
//! Pushgateway, into series; and the Pushgateway's grouping labels from the push URL.
//!
//! Every sample line becomes one series holding one sample, named and labelled as Prometheus
//! stores it: a histogram gives `<name>_bucket{le=...}`, `<name>_sum` and `<name>_count`, a
//! summary `<name>{quantile=...}`, `<name>_sum` and `<name>_count`. Malformed lines are errors
//! naming the line, never skipped. As in Prometheus, an escape other than `\\`, `\"` and `\n`
//! in a label value is kept as written, and a line may end in `\r`.
//!
//! The parser is hand-written rather than prometheus-parse 0.2, which silently skips lines it
//! does not understand (so errors could not name them), truncates label values containing
//! `,` or `=`, keeps `\"` escaped, and drops every metric name containing `:` (recording rules).

use std::collections::HashSet;

use super::{IngestError, Limit, Limits, Location, build_labels, check_label};
use crate::model::{Sample, SeriesSamples};
use crate::model::{is_label_name, is_metric_name};

/// Parses a text exposition body. Samples without a timestamp get `default_ts` (ms).
/// `grouping` labels override labels of the same name in the body, as the Pushgateway's do;
/// an empty grouping value removes the label.
pub fn parse_text(
    body: &[u8],
    default_ts: i64,
    grouping: &[(String, String)],
    limits: &Limits,
) -> Result<Vec<SeriesSamples>, IngestError> {
    super::check_body_size(body, limits)?;
    for (name, value) in grouping {
        check_label(name, value, Location::Path, limits)?;
    }
    let text = super::utf8(body)?;
    let mut out = Vec::new();
    let mut typed = HashSet::new();
    // The family of the last TYPE line: the samples that follow it are checked against it.
    let mut family: Option<(&str, Kind)> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let at = Location::Line(i + 1);
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches(is_blank);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((name, kind)) =
                parse_comment(comment).map_err(|r| IngestError::malformed(at, r))?
            {
                if !typed.insert(name) {
                    return Err(IngestError::malformed(
                        at,
                        format!("second TYPE line for metric {name:?}"),
                    ));
                }
                family = Some((name, kind));
            }
            continue;
        }
        let mut pairs = Vec::with_capacity(8);
        let (name, value, ts) =
            parse_sample(line, &mut pairs).map_err(|r| IngestError::malformed(at, r))?;
        if let Some((fam, kind)) = family {
            check_family_label(fam, kind, name, &pairs)
                .map_err(|r| IngestError::malformed(at, r))?;
        }
        pairs.push(("__name__".to_string(), name.to_string()));
        let mut labels = build_labels(pairs, at, limits)?;
        if !grouping.is_empty() {
            for (k, v) in grouping {
                labels.set(k, v);
            }
            super::within(labels.len(), limits.max_labels_per_series, at, || {
                Limit::Labels
            })?;
        }
        out.push(SeriesSamples {
            labels,
            samples: vec![Sample {
                ts: ts.unwrap_or(default_ts),
                value,
            }],
        });
    }
    Ok(out)
}

/// Parses a Pushgateway-style push: `path` is the URL path (`/metrics/job/<job>/...`, see
/// [`grouping_labels`]), the body is text format, plain or gzip-compressed. The protobuf
/// format that Go's `push` package sends by default is refused with 415.
pub fn parse_push(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    path: &str,
    default_ts: i64,
    limits: &Limits,
) -> Result<Vec<SeriesSamples>, IngestError> {
    if super::media_type(content_type) == "application/vnd.google.protobuf" {
        return Err(IngestError::UnsupportedMediaType(
            "the protobuf exposition format is not supported: push the text format \
             (Content-Type: text/plain; version=0.0.4; in Go, push.New(...).Format(expfmt.FmtText))"
                .to_string(),
        ));
    }
    let grouping = grouping_labels(path)?;
    let body = super::decode_content_encoding(content_encoding, body, limits)?;
    parse_text(&body, default_ts, &grouping, limits)
}

/// The grouping labels of a Pushgateway push URL: `/metrics/job/<job>{/<label>/<value>}`,
/// where `<label>@base64/<value>` carries a value in URL-safe base64 (padding optional; `=`
/// alone is the empty value). The leading `/metrics/` may be left out. Each segment is
/// percent-decoded after splitting, so `%2F` is a `/` inside a value. Later pairs win; `job`
/// always comes from its own segment. Returned sorted by name; empty values are kept, since
/// they remove the label from the pushed series.
pub fn grouping_labels(path: &str) -> Result<Vec<(String, String)>, IngestError> {
    let err = |reason: String| IngestError::malformed(Location::Path, reason);
    let rest = path.trim_start_matches('/');
    let rest = rest.strip_prefix("metrics/").unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut parts = rest.split('/');
    let job_key = parts.next().unwrap_or("");
    let job_raw = parts.next().unwrap_or("");
    let job = match job_key {
        "job" => percent_decode(job_raw).map_err(err)?,
        "job@base64" => decode_base64(job_raw).map_err(|e| {
            err(format!(
                "invalid base64 encoding in job name {job_raw:?}: {e}"
            ))
        })?,
        _ => return Err(err(format!("expected /metrics/job/<job>..., got {path:?}"))),
    };
    if job.is_empty() {
        return Err(err("job name is required".to_string()));
    }
    let components: Vec<&str> = parts.collect();
    if !components.len().is_multiple_of(2) {
        return Err(err(format!(
            "odd number of components in label string {:?}",
            components.join("/")
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in components.chunks(2) {
        let name = percent_decode(pair[0]).map_err(err)?;
        let (name, base64) = match name.strip_suffix("@base64") {
            Some(n) => (n.to_string(), true),
            None => (name, false),
        };
        if !is_label_name(&name) || name.starts_with("__") {
            return Err(err(format!("improper label name {name:?}")));
        }
        let value = if base64 {
            decode_base64(pair[1]).map_err(|e| {
                err(format!(
                    "invalid base64 encoding for label {name}={:?}: {e}",
                    pair[1]
                ))
            })?
        } else {
            percent_decode(pair[1]).map_err(err)?
        };
        out.retain(|(n, _)| *n != name);
        out.push((name, value));
    }
    out.retain(|(n, _)| n != "job");
    out.push(("job".to_string(), job));
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The next run of non-blank characters and what follows it.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(is_blank);
    let end = s.find(is_blank).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// A comment line (after its `#`). Returns the family of a TYPE line; HELP lines and other
/// comments give `None`.
fn parse_comment(comment: &str) -> Result<Option<(&str, Kind)>, String> {
    let (keyword, rest) = token(comment);
    match keyword {
        "TYPE" => {
            let (name, rest) = token(rest);
            if name.is_empty() {
                return Err("TYPE line without a metric name".to_string());
            }
            if !is_metric_name(name) {
                return Err(format!("TYPE line: metric name {name:?} is invalid"));
            }
            let kind = match token(rest).0 {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                "summary" => Kind::Summary,
                "untyped" => Kind::Untyped,
                "" => return Err(format!("TYPE line for {name:?} without a type")),
                other => return Err(format!("TYPE line for {name:?}: unknown type {other:?}")),
            };
            Ok(Some((name, kind)))
        }
        "HELP" => {
            let name = token(rest).0;
            if name.is_empty() {
                return Err("HELP line without a metric name".to_string());
            }
            if !is_metric_name(name) {
                return Err(format!("HELP line: metric name {name:?} is invalid"));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Parses `name{labels} value [timestamp]`, appending the labels to `pairs`.
fn parse_sample<'a>(
    line: &'a str,
    pairs: &mut Vec<(String, String)>,
) -> Result<(&'a str, f64, Option<i64>), String> {
    let b = line.as_bytes();
    let end = b
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':'))
        .unwrap_or(b.len());
    let name = &line[..end];
    if name.is_empty() {
        let c = line.chars().next().unwrap_or(' ');
        return Err(format!("expected a metric name, found {c:?}"));
    }
    if !is_metric_name(name) {
        return Err(format!("metric name {name:?} is invalid"));
    }
    let mut rest = &line[end..];
    let mut after = "the metric name";
    if let Some(labels) = rest.strip_prefix('{') {
        rest = parse_labels(labels, pairs)?;
        after = "the labels";
    }
    match rest.chars().next() {
        None => return Err(format!("expected a value after {after}")),
        Some(c) if !is_blank(c) => {
            return Err(format!("unexpected character {c:?} after {after}"));
        }
        Some(_) => {}
    }
    let (value, rest) = token(rest);
    if value.is_empty() {
        return Err(format!("expected a value after {after}"));
    }
    let value = parse_float(value).ok_or_else(|| format!("value {value:?} is not a number"))?;
    let (ts, rest) = token(rest);
    let ts = if ts.is_empty() {
        None
    } else {
        Some(
            ts.parse::<i64>()
                .map_err(|_| format!("timestamp {ts:?} is not an integer of milliseconds"))?,
        )
    };
    let extra = rest.trim_matches(is_blank);
    if !extra.is_empty() {
        return Err(format!("unexpected text {extra:?} after the timestamp"));
    }
    Ok((name, value, ts))
}

/// Parses the labels after `{` up to and including `}`; returns what follows.
fn parse_labels<'a>(mut s: &'a str, pairs: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches(is_blank);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let b = s.as_bytes();
        let end = b
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .unwrap_or(b.len());
        let name = &s[..end];
        if name.is_empty() {
            return Err(match s.chars().next() {
                None => "unexpected end of line in the labels".to_string(),
                Some(c) => format!("expected a label name, found {c:?}"),
            });
        }
        if !is_label_name(name) {
            return Err(format!("label name {name:?} is invalid"));
        }
        s = s[end..].trim_start_matches(is_blank);
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label name {name:?}"))?
            .trim_start_matches(is_blank);
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("expected a quoted value for label {name:?}"))?;
        let (value, rest) =
            unquote(s).ok_or_else(|| format!("unterminated value for label {name:?}"))?;
        pairs.push((name.to_string(), value));
        s = rest.trim_start_matches(is_blank);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!(
                "expected ',' or '}}' after the value of label {name:?}"
            ));
        }
    }
}

/// Reads a label value up to its closing quote (the opening one already consumed), undoing
/// `\\`, `\"` and `\n`. Returns the value and what follows the closing quote.
fn unquote(s: &str) -> Option<(String, &str)> {
    let b = s.as_bytes();
    let first = b.iter().position(|c| *c == b'"' || *c == b'\\')?;
    if b[first] == b'"' {
        return Some((s[..first].to_string(), &s[first + 1..]));
    }
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut i = first;
    while i < b.len() {
        match b[i] {
            b'"' => return Some((out, &s[i + 1..])),
            b'\\' => {
                match b.get(i + 1)? {
                    b'n' => out.push('\n'),
                    b'\\' => out.push('\\'),
                    b'"' => out.push('"'),
                    // Prometheus keeps an unknown escape as written: only the backslash is
                    // copied here, the next character is copied by the loop.
                    _ => {
                        out.push('\\');
                        i += 1;
                        continue;
                    }
                }
                i += 2;
            }
            _ => {
                // Copy the run up to the next quote or backslash in one go (they are ASCII,
                // so the cut is on a character boundary).
                let run = b[i..]
                    .iter()
                    .position(|c| *c == b'"' || *c == b'\\')
                    .map_or(b.len(), |p| i + p);
                out.push_str(&s[i..run]);
                i = run;
            }
        }
    }
    None
}

/// Go's `ParseFloat` as the text format uses it: `NaN`, `+Inf`, `-Inf` and decimals.
fn parse_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// A histogram bucket needs a numeric `le`, a summary quantile a numeric `quantile`.
fn check_family_label(
    family: &str,
    kind: Kind,
    name: &str,
    pairs: &[(String, String)],
) -> Result<(), String> {
    let label = match kind {
        Kind::Histogram if name.strip_prefix(family) == Some("_bucket") => "le",
        Kind::Summary if name == family => "quantile",
        _ => return Ok(()),
    };
    match pairs.iter().find(|(n, _)| n == label) {
        None => Err(format!("{name:?} has no {label:?} label")),
        Some((_, v)) if parse_float(v).is_none() => {
            Err(format!("{label:?} label value {v:?} is not a number"))
        }
        Some(_) => Ok(()),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} decodes to invalid UTF-8"))
}

/// URL-safe base64 without padding (trailing `=` ignored), as the Pushgateway decodes it.
fn decode_base64(s: &str) -> Result<String, String> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return Err(format!("illegal base64 data at input byte {}", s.len() - 1));
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in s.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return Err(format!("illegal base64 data at input byte {i}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).map_err(|_| "decoded value is not valid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use proptest::prelude::*;

    const TS: i64 = 1_700_000_000_000;

    fn parse(text: &str) -> Result<Vec<SeriesSamples>, IngestError> {
        parse_text(text.as_bytes(), TS, &[], &Limits::default())
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        e.to_string()
    }

    fn series(out: &[SeriesSamples]) -> Vec<String> {
        out.iter()
            .map(|s| format!("{} {} {}", s.labels, s.samples[0].value, s.samples[0].ts))
            .collect()
    }

    /// A node_exporter-like body with every construct the format has.
    const NODE: &str = r#"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1e-05
go_gc_duration_seconds{quantile="0.5"} 3.3e-05
go_gc_duration_seconds{quantile="1"} 0.000151
go_gc_duration_seconds_sum 0.0123
go_gc_duration_seconds_count 312
# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{handler="/api",le="0.1"} 10
http_request_duration_seconds_bucket{handler="/api",le="+Inf"} 12
http_request_duration_seconds_sum{handler="/api"} 1.5
http_request_duration_seconds_count{handler="/api"} 12
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1.2e+10 1700000001000
job:http_requests:rate5m{path="/q?a=b,c",msg="say \"hi\"\\n\nok"} 6
	 empty_value{a=""} NaN
up +Inf
"#;

    #[test]
    fn node_exporter_like_body_gives_the_series_prometheus_stores() {
        let out = parse(NODE).unwrap();
        assert_eq!(
            series(&out),
            vec![
                r#"{__name__="go_gc_duration_seconds", quantile="0"} 0.000021 1700000000000"#,
                r#"{__name__="go_gc_duration_seconds", quantile="0.5"} 0.000033 1700000000000"#,
                r#"{__name__="go_gc_duration_seconds", quantile="1"} 0.000151 1700000000000"#,
                r#"{__name__="go_gc_duration_seconds_sum"} 0.0123 1700000000000"#,
                r#"{__name__="go_gc_duration_seconds_count"} 312 1700000000000"#,
                r#"{__name__="http_request_duration_seconds_bucket", handler="/api", le="0.1"} 10 1700000000000"#,
                r#"{__name__="http_request_duration_seconds_bucket", handler="/api", le="+Inf"} 12 1700000000000"#,
                r#"{__name__="http_request_duration_seconds_sum", handler="/api"} 1.5 1700000000000"#,
                r#"{__name__="http_request_duration_seconds_count", handler="/api"} 12 1700000000000"#,
                r#"{__name__="node_filesystem_avail_bytes", device="/dev/sda1", fstype="ext4", mountpoint="/"} 12000000000 1700000001000"#,
                r#"{__name__="job:http_requests:rate5m", msg="say \"hi\"\\n\nok", path="/q?a=b,c"} 6 1700000000000"#,
                r#"{__name__="empty_value"} NaN 1700000000000"#,
                r#"{__name__="up"} inf 1700000000000"#,
            ]
        );
    }

    #[test]
    fn syntax_variants_that_prometheus_accepts() {
        let out = parse(
            "a{ x = \"1\" , y=\"2\", } 1\r\nb{} 2 -5\n\n# a plain comment\nc{p=\"C:\\temp\"} 3\n",
        )
        .unwrap();
        assert_eq!(
            series(&out),
            vec![
                r#"{__name__="a", x="1", y="2"} 1 1700000000000"#,
                r#"{__name__="b"} 2 -5"#,
                r#"{__name__="c", p="C:\\temp"} 3 1700000000000"#,
            ]
        );
    }

    #[test]
    fn empty_body_gives_no_series() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# only comments\n\n").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        let cases = [
            (
                "ok 1\nfoo\n",
                "line 2: expected a value after the metric name",
            ),
            (
                "foo{a=\"1\"}\n",
                "line 1: expected a value after the labels",
            ),
            ("foo abc\n", "line 1: value \"abc\" is not a number"),
            (
                "foo 1 2.5\n",
                "line 1: timestamp \"2.5\" is not an integer of milliseconds",
            ),
            (
                "foo 1 2 3\n",
                "line 1: unexpected text \"3\" after the timestamp",
            ),
            (
                "foo-bar 1\n",
                "line 1: unexpected character '-' after the metric name",
            ),
            ("1abc 1\n", "line 1: metric name \"1abc\" is invalid"),
            ("{a=\"1\"} 1\n", "line 1: expected a metric name, found '{'"),
            (
                "foo{1abc=\"x\"} 1\n",
                "line 1: label name \"1abc\" is invalid",
            ),
            (
                "foo{a-b=\"x\"} 1\n",
                "line 1: expected '=' after label name \"a\"",
            ),
            (
                "foo{a=x} 1\n",
                "line 1: expected a quoted value for label \"a\"",
            ),
            (
                "foo{a=\"x} 1\n",
                "line 1: unterminated value for label \"a\"",
            ),
            (
                "foo{a=\"x\" b=\"y\"} 1\n",
                "line 1: expected ',' or '}' after the value of label \"a\"",
            ),
            (
                "foo{a=\"x\",\n",
                "line 1: unexpected end of line in the labels",
            ),
            (
                "foo{a=\"1\",a=\"2\"} 1\n",
                "line 1: label name \"a\" appears more than once",
            ),
            (
                "# TYPE foo\n",
                "line 1: TYPE line for \"foo\" without a type",
            ),
            (
                "# TYPE foo countr\n",
                "line 1: TYPE line for \"foo\": unknown type \"countr\"",
            ),
            ("# TYPE\n", "line 1: TYPE line without a metric name"),
            (
                "# TYPE foo-bar gauge\n",
                "line 1: TYPE line: metric name \"foo-bar\" is invalid",
            ),
            ("# HELP\n", "line 1: HELP line without a metric name"),
            (
                "# TYPE foo gauge\n# TYPE foo gauge\n",
                "line 2: second TYPE line for metric \"foo\"",
            ),
            (
                "# TYPE h histogram\nh_bucket{x=\"1\"} 1\n",
                "line 2: \"h_bucket\" has no \"le\" label",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
                "line 2: \"le\" label value \"x\" is not a number",
            ),
            (
                "# TYPE s summary\ns{x=\"1\"} 1\n",
                "line 2: \"s\" has no \"quantile\" label",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "for {text:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let e = parse_text(
            b"ok 1\nfoo{a=\"\xc3\x28\"} 1\n",
            TS,
            &[],
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.to_string(), "line 2: invalid UTF-8 at byte 8 of the line");
    }

    #[test]
    fn label_limits_are_enforced_not_truncated() {
        let limits = Limits {
            max_labels_per_series: 2,
            max_label_value_bytes: 3,
            ..Limits::default()
        };
        let e = parse_text(b"a{x=\"1\",y=\"2\"} 1\n", TS, &[], &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: label count is over max_labels_per_series (3 > 2)"
        );
        let e = parse_text(b"a{x=\"1234\"} 1\n", TS, &[], &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: value of label \"x\" is over max_label_value_bytes (4 > 3)"
        );
    }

    #[test]
    fn grouping_labels_from_the_path() {
        let g = grouping_labels("/metrics/job/backup/instance/db1/env@base64/cHJvZA==").unwrap();
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            g,
            s(&[("env", "prod"), ("instance", "db1"), ("job", "backup")])
        );
        // job@base64, a '/' inside a base64 value, '=' for the empty value, percent-decoding.
        let g = grouping_labels(
            "job@base64/bXkvam9i/path@base64/L3Zhci90bXA/instance@base64/=/x/a%20b/",
        )
        .unwrap();
        assert_eq!(
            g,
            s(&[
                ("instance", ""),
                ("job", "my/job"),
                ("path", "/var/tmp"),
                ("x", "a b")
            ])
        );
    }

    #[test]
    fn grouping_path_errors() {
        let cases = [
            (
                "/metrics/jobs/x",
                "grouping path: expected /metrics/job/<job>..., got \"/metrics/jobs/x\"",
            ),
            ("/metrics/job/", "grouping path: job name is required"),
            (
                "/metrics/job/x/instance",
                "grouping path: odd number of components in label string \"instance\"",
            ),
            (
                "/metrics/job/x/1abc/v",
                "grouping path: improper label name \"1abc\"",
            ),
            (
                "/metrics/job/x/__name__/v",
                "grouping path: improper label name \"__name__\"",
            ),
            (
                "/metrics/job/x/a@base64/!!",
                "grouping path: invalid base64 encoding for label a=\"!!\": illegal base64 data at input byte 0",
            ),
            (
                "/metrics/job@base64/a",
                "grouping path: invalid base64 encoding in job name \"a\": illegal base64 data at input byte 0",
            ),
            (
                "/metrics/job/x/a/%zz",
                "grouping path: invalid percent-encoding in \"%zz\"",
            ),
            (
                "/metrics/job/x/a/%ff",
                "grouping path: \"%ff\" decodes to invalid UTF-8",
            ),
        ];
        for (path, want) in cases {
            let e = grouping_labels(path).unwrap_err();
            assert_eq!(e.status(), 400);
            assert_eq!(e.to_string(), want, "for {path}");
        }
    }

    #[test]
    fn push_grouping_labels_override_the_body() {
        let body =
            b"# TYPE backup_ok gauge\nbackup_ok{job=\"other\",instance=\"x\",disk=\"a\"} 1\n";
        let out = parse_push(
            Some("text/plain; version=0.0.4"),
            None,
            body,
            "/metrics/job/backup/instance@base64/=",
            TS,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            out[0].labels,
            Labels::from_pairs([("__name__", "backup_ok"), ("disk", "a"), ("job", "backup")])
        );
    }

    #[test]
    fn grouping_labels_count_against_the_limit() {
        let limits = Limits {
            max_labels_per_series: 2,
            max_label_value_bytes: 4,
            ..Limits::default()
        };
        let e = parse_push(None, None, b"a 1\n", "/metrics/job/j/x/1", TS, &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: label count is over max_labels_per_series (3 > 2)"
        );
        let e = parse_push(None, None, b"a 1\n", "/metrics/job/toolong", TS, &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "grouping path: value of label \"job\" is over max_label_value_bytes (7 > 4)"
        );
    }

    #[test]
    fn push_refuses_protobuf_with_415_and_accepts_gzip() {
        let ct = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        let e = parse_push(
            Some(ct),
            None,
            b"",
            "/metrics/job/x",
            TS,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.to_string().contains("expfmt.FmtText"), "{e}");

        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"a 1\nb 2\n").unwrap();
        let body = gz.finish().unwrap();
        let out = parse_push(
            None,
            Some("gzip"),
            &body,
            "/metrics/job/x",
            TS,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].labels.get("job"), Some("x"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_text(&body, TS, &[], &Limits::default());
        }

        #[test]
        fn mutated_valid_bodies_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
        ) {
            let mut body = NODE.as_bytes().to_vec();
            for (pos, byte) in edits {
                let i = pos % body.len();
                body[i] = byte;
            }
            match parse_text(&body, TS, &[], &Limits::default()) {
                Ok(out) => prop_assert!(out.len() <= 13),
                Err(e) => prop_assert_eq!(e.status(), 400),
            }
        }

        #[test]
        fn label_values_round_trip(v in "\\PC*") {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let out = parse(&format!("m{{l=\"{escaped}\"}} 1\n")).unwrap();
            prop_assert_eq!(out[0].labels.get("l").unwrap_or(""), v.as_str());
        }

        #[test]
        fn grouping_paths_never_panic(path in "[a-zA-Z0-9_@=%/-]{0,64}") {
            let _ = grouping_labels(&path);
        }
    }
}
