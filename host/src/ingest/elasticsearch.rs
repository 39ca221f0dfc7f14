//! Elasticsearch's bulk API (`POST /_bulk`, `POST /<index>/_bulk`) into log records, so that
//! shippers that speak it (Filebeat, Fluent Bit's `es` output, Vector, Logstash, rsyslog's
//! omelasticsearch, the official clients' bulk helpers) can send logs unchanged.
//!
//! A body is NDJSON: an action line (`{"index": {"_index": "app", "_id": "1"}}`), then for
//! `index` and `create` the document. A document becomes one record:
//!
//! - its line is the `message_field` (default `message`);
//! - its time is `@timestamp`: RFC 3339 (with or without fraction, with or without zone, UTC
//!   when none), a date, or epoch milliseconds as a number or a string; missing means the
//!   time of receipt;
//! - its stream labels are `index` (the action's `_index`, else the path's) and the
//!   `label_fields`, named by their path with every character outside `[A-Za-z0-9_]` made `_`
//!   (`host.name` becomes `host_name`);
//! - every other leaf is a field, named by its dotted path (`http.response.status_code`):
//!   strings as they are, other values as their JSON text.
//!
//! A field path finds a value whether the document nests it (`{"host": {"name": "a"}}`) or
//! spells it flat (`{"host.name": "a"}`), as Elasticsearch reads both. A label field ending in
//! `.*` takes every scalar leaf under it (`kubernetes.*`: `kubernetes_pod_name`,
//! `kubernetes_labels_app`...), bounded: leaves under a map whose name ends in `annotations`
//! stay fields (they hold long values that change with every rollout), and a leaf whose label
//! would break a limit (the label count, a value's length) or repeat a name stays a field too,
//! so a pod with many labels still has its records stored.
//!
//! As in Elasticsearch, an action that fails does not fail the others: its item in the answer
//! carries a status and an error, and every valid document is stored. `delete` and `update`
//! are answered per item with 400: records are kept as they arrived. Only a body that cannot be
//! split into actions (an action line that is not an action, an action missing its document,
//! invalid UTF-8) is refused as a whole.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{IngestError, Limits, Location, build_labels, check_log_entry};
use crate::model::{LogRecord, is_label_name};

/// `[elasticsearch]` in the server configuration: how bulk documents become log records.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// The document field holding the log line, as a dotted path. Default `message`.
    pub message_field: String,
    /// The document fields that become stream labels, as dotted paths, or a path ending in
    /// `.*` for every scalar leaf under it. Default `host.name`, `service.name`, `log.level`
    /// and `kubernetes.*`.
    pub label_fields: Vec<String>,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            message_field: "message".to_string(),
            label_fields: ["host.name", "service.name", "log.level", "kubernetes.*"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The stream label holding a document's index.
pub const INDEX_LABEL: &str = "index";

/// The field holding a document's time.
const TIMESTAMP_FIELD: &str = "@timestamp";

/// An [`ElasticsearchConfig`], checked, with its label names worked out.
#[derive(Clone, Debug)]
pub struct Mapping {
    message: String,
    labels: Vec<LabelField>,
}

#[derive(Clone, Debug)]
enum LabelField {
    /// One field: its path and its label name.
    One { path: String, label: String },
    /// Every scalar leaf whose path starts with `prefix` (which ends in `.`).
    Under { prefix: String },
}

impl Mapping {
    /// Checks the configuration: paths without empty segments, `*` only as a last segment,
    /// and label names that are valid and distinct (`index` is taken).
    pub fn new(c: &ElasticsearchConfig) -> Result<Mapping, String> {
        check_path(&c.message_field).map_err(|e| format!("elasticsearch.message_field: {e}"))?;
        let mut taken = vec![INDEX_LABEL.to_string()];
        let mut labels = Vec::new();
        for f in &c.label_fields {
            let bad = |e: String| format!("elasticsearch.label_fields: {f:?} {e}");
            let (path, under) = match f.strip_suffix(".*") {
                Some(p) => (p, true),
                None => (f.as_str(), false),
            };
            check_path(path).map_err(bad)?;
            let label = label_name(path);
            if !is_label_name(&label) {
                return Err(bad(format!("makes the invalid label name {label:?}")));
            }
            if under {
                labels.push(LabelField::Under {
                    prefix: format!("{path}."),
                });
            } else {
                if taken.contains(&label) {
                    return Err(bad(format!(
                        "makes the label name {label:?}, which is taken"
                    )));
                }
                taken.push(label.clone());
                labels.push(LabelField::One {
                    path: path.to_string(),
                    label,
                });
            }
        }
        Ok(Mapping {
            message: c.message_field.clone(),
            labels,
        })
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".to_string());
    }
    if path.split('.').any(str::is_empty) {
        return Err("has an empty segment".to_string());
    }
    if path.contains('*') {
        return Err("may have `*` only as its last segment, after a dot".to_string());
    }
    Ok(())
}

/// A field path as a Prometheus label name: `host.name` -> `host_name`,
/// `@metadata.beat` -> `_metadata_beat`.
pub fn label_name(path: &str) -> String {
    let mut out: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Checks an index name as Elasticsearch does, with its messages: lowercase, not `.` or
/// `..`, not starting with `_`, `-` or `+`, none of `\ / * ? " < > | , # :` or a space, at
/// most 255 bytes.
pub fn check_index_name(name: &str) -> Result<(), String> {
    const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];
    let invalid = |why: &str| Err(format!("Invalid index name [{name}], {why}"));
    if name.is_empty() {
        return invalid("must not be empty");
    }
    if name == "." || name == ".." {
        return invalid("must not be '.' or '..'");
    }
    if name.starts_with(['_', '-', '+']) {
        return invalid("must not start with '_', '-', or '+'");
    }
    if name.contains(FORBIDDEN) {
        return invalid(
            "must not contain the following characters [\\, /, *, ?, \", <, >, |, ' ', ',', #, :]",
        );
    }
    if name.chars().any(char::is_uppercase) {
        return invalid("must be lowercase");
    }
    if name.len() > 255 {
        return Err(format!("index name is too long, ({} > 255)", name.len()));
    }
    Ok(())
}

/// Refuses a Content-Type that is not JSON: `application/x-ndjson`, `application/json`, and
/// the official clients' `application/vnd.elasticsearch+x-ndjson; compatible-with=9` (or 7,
/// 8; also `+json`) are read. None at all is refused, as Elasticsearch does (a browser
/// page could send a body without one).
pub fn check_content_type(content_type: Option<&str>) -> Result<(), IngestError> {
    let Some(ct) = content_type else {
        return Err(IngestError::UnsupportedMediaType(
            "a Content-Type is required: send application/x-ndjson".to_string(),
        ));
    };
    let refused = || {
        IngestError::UnsupportedMediaType(format!(
            "Content-Type {ct:?} is not supported: send application/x-ndjson"
        ))
    };
    match super::media_type(content_type).as_str() {
        "application/x-ndjson" | "application/json" => Ok(()),
        "application/vnd.elasticsearch+x-ndjson" | "application/vnd.elasticsearch+json" => {
            let compatible = ct.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("compatible-with")
                    .then(|| v.trim().trim_matches('"'))
            });
            match compatible {
                Some("7" | "8" | "9") => Ok(()),
                Some(v) => Err(IngestError::UnsupportedMediaType(format!(
                    "Content-Type {ct:?}: compatible-with={v} is not supported: \
                     Faultline answers as Elasticsearch 9 and reads 7, 8 and 9"
                ))),
                None => Err(refused()),
            }
        }
        _ => Err(refused()),
    }
}

/// What a bulk body asked for: the records to store and one item per action, in order.
#[derive(Debug)]
pub struct Bulk {
    pub records: Vec<LogRecord>,
    pub items: Vec<Item>,
}

/// One action of a bulk body and its outcome.
#[derive(Debug, PartialEq)]
pub struct Item {
    pub action: Action,
    /// The action's `_index`, else the path's.
    pub index: Option<String>,
    /// The action's `_id`, else (for a stored document) a generated one.
    pub id: Option<String>,
    /// Why it failed; `None` when its record is stored.
    pub error: Option<ItemError>,
}

/// A bulk action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Index,
    Create,
    Delete,
    Update,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "index" => Action::Index,
            "create" => Action::Create,
            "delete" => Action::Delete,
            "update" => Action::Update,
            _ => return None,
        })
    }

    /// The name of the action, as in the body and the answer.
    pub fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Update => "update",
        }
    }
}

/// An action's failure, as Elasticsearch reports it in the item.
#[derive(Debug, PartialEq)]
pub struct ItemError {
    pub status: u16,
    /// Elasticsearch's exception type (`mapper_parsing_exception`...).
    pub kind: &'static str,
    /// What is wrong, starting with the line of the body.
    pub reason: String,
}

impl ItemError {
    fn document(e: IngestError) -> ItemError {
        ItemError {
            status: 400,
            kind: "mapper_parsing_exception",
            reason: e.to_string(),
        }
    }
}

impl Bulk {
    /// How many actions failed.
    pub fn failed(&self) -> usize {
        self.items.iter().filter(|i| i.error.is_some()).count()
    }

    /// The answer Elasticsearch gives: `{"took", "errors", "items": [{"index": {...}}]}`,
    /// stored documents with 201 `created`, failed ones with their status and error.
    pub fn response(&self, took_ms: u64) -> Value {
        let mut seq_no = 0u64;
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|item| {
                let mut v = json!({"_index": item.index, "_id": item.id});
                let body = v.as_object_mut().expect("an object");
                match &item.error {
                    None => {
                        body.extend([
                            ("_version".to_string(), json!(1)),
                            ("result".to_string(), json!("created")),
                            (
                                "_shards".to_string(),
                                json!({"total": 1, "successful": 1, "failed": 0}),
                            ),
                            ("_seq_no".to_string(), json!(seq_no)),
                            ("_primary_term".to_string(), json!(1)),
                            ("status".to_string(), json!(201)),
                        ]);
                        seq_no += 1;
                    }
                    Some(e) => {
                        body.insert("status".to_string(), json!(e.status));
                        body.insert(
                            "error".to_string(),
                            json!({"type": e.kind, "reason": e.reason}),
                        );
                    }
                }
                json!({ item.action.name(): v })
            })
            .collect();
        json!({"took": took_ms, "errors": self.failed() > 0, "items": items})
    }
}

/// The metadata of an action line that Faultline reads; the rest (`routing`, `pipeline`,
/// `_type`...) is ignored.
#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "_index")]
    index: Option<String>,
    #[serde(rename = "_id")]
    id: Option<IdValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

/// Parses a bulk body. `path_index` is the index of `/<index>/_bulk`; documents without a
/// `@timestamp` get `now_ms`; `new_id` names documents whose action has no `_id`.
pub fn parse(
    body: &[u8],
    path_index: Option<&str>,
    mapping: &Mapping,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
    limits: &Limits,
) -> Result<Bulk, IngestError> {
    super::check_body_size(body, limits)?;
    let text = super::utf8(body)?;
    // Blank lines are skipped anywhere: rsyslog ends each document with one.
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let mut bulk = Bulk {
        records: Vec::new(),
        items: Vec::new(),
    };
    while let Some((n, line)) = lines.next() {
        let at = Location::Line(n);
        let (action, meta) = action_line(line, at)?;
        let doc_line = match action {
            Action::Delete => None,
            _ => Some(lines.next().ok_or_else(|| {
                IngestError::malformed(
                    at,
                    format!("the {} action has no document line after it", action.name()),
                )
            })?),
        };
        let index = meta.index.or_else(|| path_index.map(str::to_string));
        let mut item = Item {
            action,
            index: index.clone(),
            id: meta.id.map(|id| match id {
                IdValue::Text(s) => s,
                IdValue::Number(n) => n.to_string(),
            }),
            error: None,
        };
        let outcome = match (action, index, doc_line) {
            (Action::Index | Action::Create, Some(index), Some((dn, doc))) => {
                match check_index_name(&index) {
                    Ok(()) => document(doc, Location::Line(dn), index, mapping, now_ms, limits)
                        .map_err(ItemError::document),
                    Err(reason) => Err(ItemError {
                        status: 400,
                        kind: "invalid_index_name_exception",
                        reason: format!("{at}{reason}"),
                    }),
                }
            }
            (Action::Index | Action::Create, None, _) => Err(ItemError {
                status: 400,
                kind: "action_request_validation_exception",
                reason: format!(
                    "{at}Validation Failed: 1: index is missing: name it in the action's \
                     _index or the path (/<index>/_bulk);"
                ),
            }),
            _ => Err(ItemError {
                status: 400,
                kind: "illegal_argument_exception",
                reason: format!(
                    "{at}{} is not supported: log records are kept as they arrived; \
                     send index or create",
                    action.name()
                ),
            }),
        };
        match outcome {
            Ok(record) => {
                if item.id.is_none() {
                    item.id = Some(new_id());
                }
                bulk.records.push(record);
            }
            Err(e) => item.error = Some(e),
        }
        bulk.items.push(item);
    }
    if bulk.items.is_empty() {
        return Err(IngestError::malformed(
            Location::Body,
            "Validation Failed: 1: no requests added: a bulk body is action lines, \
             each but delete followed by its document",
        ));
    }
    Ok(bulk)
}

/// An action line: `{"<action>": {<metadata>}}`.
fn action_line(line: &str, at: Location) -> Result<(Action, Meta), IngestError> {
    let bad = |reason: String| IngestError::malformed(at, reason);
    let obj = super::json_object_line(line, at).map_err(|e| match e {
        IngestError::Malformed { reason, .. } => bad(format!("malformed action line: {reason}")),
        other => other,
    })?;
    let mut entries = obj.into_iter();
    let (Some((name, meta)), None) = (entries.next(), entries.next()) else {
        return Err(bad(
            "malformed action line: expected one key, the action (index, create, delete \
             or update)"
                .to_string(),
        ));
    };
    let action = Action::parse(&name).ok_or_else(|| {
        bad(format!(
            "malformed action line: unknown action {name:?}: expected index, create, delete \
             or update"
        ))
    })?;
    let meta: Meta = serde_json::from_value(meta).map_err(|e| {
        bad(format!(
            "malformed action line: the metadata of {name:?} must be an object with string \
             _index and _id: {e}"
        ))
    })?;
    Ok((action, meta))
}

/// One document as a record of stream `{index="<index>", ...}`.
fn document(
    line: &str,
    at: Location,
    index: String,
    mapping: &Mapping,
    now_ms: i64,
    limits: &Limits,
) -> Result<LogRecord, IngestError> {
    let bad = |reason: String| IngestError::malformed(at, reason);
    let mut leaves = Vec::new();
    flatten("", super::json_object_line(line, at)?, &mut leaves);
    let field = &mapping.message;
    let text = match take(&mut leaves, field) {
        Some(Value::String(s)) => s,
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(_) => {
            return Err(bad(format!(
                "field [{field}], the log line, must be a string"
            )));
        }
        None => {
            return Err(bad(format!(
                "the document has no field [{field}], the log line \
                 (elasticsearch.message_field)"
            )));
        }
    };
    let ts = match take(&mut leaves, TIMESTAMP_FIELD) {
        None => now_ms,
        Some(v) => timestamp_ms(&v).ok_or_else(|| {
            bad(format!(
                "failed to parse field [{TIMESTAMP_FIELD}] of type [date]: {v} is neither \
                 RFC 3339 nor epoch milliseconds"
            ))
        })?,
    };
    let mut pairs = vec![(INDEX_LABEL.to_string(), index)];
    for f in &mapping.labels {
        if let LabelField::One { path, label } = f
            && let Some(v) = take(&mut leaves, path)
        {
            pairs.push((label.clone(), value_text(v)));
        }
    }
    // The wildcards come after the named fields, which keep their names; their leaves take
    // what room is left and stay fields past it.
    for f in &mapping.labels {
        if let LabelField::Under { prefix } = f {
            leaves.retain(|(path, v)| {
                let Some(label) = wildcard_label(prefix, path, v, &pairs, limits) else {
                    return true;
                };
                pairs.push((label, value_text(v.clone())));
                false
            });
        }
    }
    let labels = build_labels(pairs, at, limits)?;
    let fields: Vec<(String, String)> = leaves
        .into_iter()
        .map(|(name, v)| (name, value_text(v)))
        .collect();
    check_log_entry(&text, &fields, at, limits)?;
    Ok(LogRecord {
        labels,
        ts,
        line: text,
        fields,
    })
}

/// The label a leaf under a `.*` label field becomes, if it fits: a non-empty scalar, not
/// under an annotations map, with a name not taken, within the label limits.
fn wildcard_label(
    prefix: &str,
    path: &str,
    v: &Value,
    pairs: &[(String, String)],
    limits: &Limits,
) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    let mut maps = rest.split('.');
    maps.next_back();
    if maps.any(|m| m.ends_with("annotations")) {
        return None;
    }
    let len = match v {
        Value::String(s) if !s.is_empty() => s.len(),
        Value::Number(_) | Value::Bool(_) => v.to_string().len(),
        _ => return None,
    };
    let label = label_name(path);
    let counted = pairs.iter().filter(|(_, v)| !v.is_empty()).count();
    (is_label_name(&label)
        && label.len() <= limits.max_label_name_bytes
        && len <= limits.max_label_value_bytes
        && counted < limits.max_labels_per_series
        && pairs.iter().all(|(n, _)| *n != label))
    .then_some(label)
}

/// Every leaf of a document by its dotted path, nested and flat spellings alike; `null`s are
/// dropped (Elasticsearch indexes nothing for them), arrays are leaves.
fn flatten(prefix: &str, obj: Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (key, v) in obj {
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match v {
            Value::Object(m) => flatten(&path, m, out),
            Value::Null => {}
            other => out.push((path, other)),
        }
    }
}

/// Removes every leaf at `path`, returning the first (a document may spell a path both
/// nested and flat).
fn take(leaves: &mut Vec<(String, Value)>, path: &str) -> Option<Value> {
    let first = leaves.iter().position(|(p, _)| p == path)?;
    let v = leaves.remove(first).1;
    leaves.retain(|(p, _)| p != path);
    Some(v)
}

fn value_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// `@timestamp` in milliseconds, read as Elasticsearch's default date format
/// (`strict_date_optional_time||epoch_millis`) reads it.
fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(float_ms)),
        Value::String(s) => date_ms(s.trim()),
        _ => None,
    }
}

fn float_ms(f: f64) -> Option<i64> {
    // Beyond ±2^63 ms the cast would saturate silently.
    (f.is_finite() && f.abs() < 9.2e18).then(|| f.floor() as i64)
}

fn date_ms(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s.parse::<f64>().ok().and_then(float_ms);
    }
    if let Some(ms) = super::rfc3339_ms(s) {
        return Some(ms);
    }
    // Offsets without a colon (`+0000`), as Java and strftime's %z write them.
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.timestamp_millis());
    }
    // No zone: UTC, as Elasticsearch reads it.
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_795_000_000_000;

    fn mapping() -> Mapping {
        Mapping::new(&ElasticsearchConfig::default()).unwrap()
    }

    fn bulk_with(body: &str, path_index: Option<&str>, limits: &Limits) -> Bulk {
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("gen{n}")
        };
        parse(
            body.as_bytes(),
            path_index,
            &mapping(),
            NOW,
            &mut ids,
            limits,
        )
        .unwrap()
    }

    fn bulk(body: &str) -> Bulk {
        bulk_with(body, None, &Limits::default())
    }

    fn refused(body: &str) -> String {
        let e = parse(
            body.as_bytes(),
            None,
            &mapping(),
            NOW,
            &mut String::new,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        e.to_string()
    }

    fn fields(r: &LogRecord) -> Vec<(&str, &str)> {
        r.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn pairs_become_records_and_created_items() {
        let body = concat!(
            "{\"index\":{\"_index\":\"app\",\"_id\":\"a1\"}}\n",
            "{\"@timestamp\":\"2026-11-26T09:23:19.484Z\",\"message\":\"boom\",",
            "\"host\":{\"name\":\"web1\"},\"http\":{\"response\":{\"status_code\":500}},",
            "\"tags\":[\"x\"],\"trace\":null}\n",
            "\n",
            "{\"create\":{}}\n",
            "{\"message\":\"no time\",\"log.level\":\"info\"}\n",
        );
        let b = bulk_with(body, Some("logs"), &Limits::default());
        assert_eq!(b.records.len(), 2);
        let r = &b.records[0];
        assert_eq!(r.labels.to_string(), r#"{host_name="web1", index="app"}"#);
        assert_eq!((r.ts, r.line.as_str()), (1_795_684_999_484, "boom"));
        assert_eq!(
            fields(r),
            [("http.response.status_code", "500"), ("tags", "[\"x\"]")]
        );
        let r = &b.records[1];
        assert_eq!(r.labels.to_string(), r#"{index="logs", log_level="info"}"#);
        assert_eq!(r.ts, NOW);
        assert_eq!(
            b.items,
            [
                Item {
                    action: Action::Index,
                    index: Some("app".into()),
                    id: Some("a1".into()),
                    error: None
                },
                Item {
                    action: Action::Create,
                    index: Some("logs".into()),
                    id: Some("gen1".into()),
                    error: None
                },
            ]
        );
        assert_eq!(
            b.response(3),
            json!({"took": 3, "errors": false, "items": [
                {"index": {"_index": "app", "_id": "a1", "_version": 1, "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": 0, "_primary_term": 1, "status": 201}},
                {"create": {"_index": "logs", "_id": "gen1", "_version": 1, "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": 1, "_primary_term": 1, "status": 201}},
            ]})
        );
    }

    /// What rsyslog 8.2302's omelasticsearch sent here in bulk mode: `_type`, a space after
    /// a colon, and a blank line after each document.
    #[test]
    fn rsyslog_bodies_are_read() {
        let body = concat!(
            "{\"index\":{\"_index\": \"syslog\",\"_type\":\"events\"}}\n",
            "{\"@timestamp\":\"2026-12-02T00:09:31.997450+00:00\", \"host.name\":\"vm\", ",
            "\"service.name\":\"app\", \"log.level\":\"err\", \"message\":\"hello error one\"}\n",
            "\n",
        );
        let b = bulk(body);
        assert_eq!(b.failed(), 0);
        let r = &b.records[0];
        assert_eq!(
            r.labels.to_string(),
            r#"{host_name="vm", index="syslog", log_level="err", service_name="app"}"#
        );
        assert_eq!(r.ts, 1_796_170_171_997);
        assert_eq!(r.line, "hello error one");
    }

    #[test]
    fn failed_items_are_answered_and_the_others_kept() {
        let body = [
            r#"{"index":{"_index":"app"}}"#,
            r#"{"message":"first"}"#,
            r#"{"delete":{"_index":"app","_id":"7"}}"#,
            r#"{"update":{"_index":"app","_id":"8"}}"#,
            r#"{"doc":{"message":"changed"}}"#,
            r#"{"index":{"_index":"app"}}"#,
            r#"{"msg":"no message field"}"#,
            r#"{"index":{"_index":"app"}}"#,
            r#"{"message":"broken""#,
            r#"{"index":{}}"#,
            r#"{"message":"no index"}"#,
            r#"{"index":{"_index":"app"}}"#,
            r#"{"message":"m","@timestamp":"yesterday"}"#,
            r#"{"index":{"_index":"app"}}"#,
            r#"{"message":"last"}"#,
        ]
        .join("\n");
        let b = bulk(&body);
        let lines: Vec<&str> = b.records.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(lines, ["first", "last"]);
        let errors: Vec<(u16, &str, &str)> = b
            .items
            .iter()
            .filter_map(|i| i.error.as_ref())
            .map(|e| (e.status, e.kind, e.reason.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (
                    400,
                    "illegal_argument_exception",
                    "line 3: delete is not supported: log records are kept as they arrived; \
                     send index or create"
                ),
                (
                    400,
                    "illegal_argument_exception",
                    "line 4: update is not supported: log records are kept as they arrived; \
                     send index or create"
                ),
                (
                    400,
                    "mapper_parsing_exception",
                    "line 7: the document has no field [message], the log line \
                     (elasticsearch.message_field)"
                ),
                (
                    400,
                    "mapper_parsing_exception",
                    "line 9: invalid JSON at column 19: EOF while parsing an object"
                ),
                (
                    400,
                    "action_request_validation_exception",
                    "line 10: Validation Failed: 1: index is missing: name it in the action's \
                     _index or the path (/<index>/_bulk);"
                ),
                (
                    400,
                    "mapper_parsing_exception",
                    "line 13: failed to parse field [@timestamp] of type [date]: \"yesterday\" \
                     is neither RFC 3339 nor epoch milliseconds"
                ),
            ]
        );
        assert_eq!(b.failed(), 6);
        let response = b.response(1);
        assert_eq!(response["errors"], true);
        assert_eq!(response["items"].as_array().unwrap().len(), 8);
        assert_eq!(
            response["items"][1],
            json!({"delete": {"_index": "app", "_id": "7", "status": 400, "error": {
                "type": "illegal_argument_exception",
                "reason": "line 3: delete is not supported: log records are kept as they \
                           arrived; send index or create"}}})
        );
        assert_eq!(response["items"][7]["index"]["_seq_no"], 1);
    }

    #[test]
    fn nested_and_flat_paths_are_the_same_field() {
        let nested = r#"{"message":"m","host":{"name":"a"},"service":{"name":"api"},"kubernetes":{"pod":{"name":"p-1"},"namespace":"shop"}}"#;
        let flat = r#"{"message":"m","host.name":"a","service.name":"api","kubernetes.pod.name":"p-1","kubernetes":{"namespace":"shop"}}"#;
        let mixed = r#"{"message":"m","host":{"name":"a"},"service.name":"api","kubernetes":{"pod.name":"p-1","namespace":"shop"}}"#;
        let want = r#"{host_name="a", index="i", kubernetes_namespace="shop", kubernetes_pod_name="p-1", service_name="api"}"#;
        for doc in [nested, flat, mixed] {
            let b = bulk(&format!("{{\"index\":{{\"_index\":\"i\"}}}}\n{doc}\n"));
            assert_eq!(b.records[0].labels.to_string(), want, "{doc}");
            assert!(b.records[0].fields.is_empty(), "{doc}");
        }
    }

    #[test]
    fn kubernetes_leaves_are_labels_within_bounds() {
        let doc = json!({
            "message": "m",
            "kubernetes": {
                "pod": {"name": "api-7", "uid": 42},
                "labels": {"app": "api", "app_kubernetes_io/name": "shop", "empty": ""},
                "annotations": {"kubectl_kubernetes_io/restartedAt": "2026-01-01"},
                "namespace_annotations": {"owner": "team"},
                "container": {"ports": [80]},
            },
        });
        let b = bulk(&format!("{{\"index\":{{\"_index\":\"k\"}}}}\n{doc}\n"));
        let r = &b.records[0];
        assert_eq!(
            r.labels.to_string(),
            r#"{index="k", kubernetes_labels_app="api", kubernetes_labels_app_kubernetes_io_name="shop", kubernetes_pod_name="api-7", kubernetes_pod_uid="42"}"#
        );
        assert_eq!(
            fields(r),
            [
                (
                    "kubernetes.annotations.kubectl_kubernetes_io/restartedAt",
                    "2026-01-01"
                ),
                ("kubernetes.container.ports", "[80]"),
                ("kubernetes.labels.empty", ""),
                ("kubernetes.namespace_annotations.owner", "team"),
            ]
        );
        // Past the label count, or the value length, leaves stay fields: nothing is lost.
        let limits = Limits {
            max_labels_per_series: 3,
            max_label_value_bytes: 4,
            ..Limits::default()
        };
        let doc =
            r#"{"message":"m","host.name":"h","kubernetes":{"a":"1","b":"22222","c":"3","d":"4"}}"#;
        let b = bulk_with(
            &format!("{{\"index\":{{\"_index\":\"k\"}}}}\n{doc}\n"),
            None,
            &limits,
        );
        let r = &b.records[0];
        assert_eq!(
            r.labels.to_string(),
            r#"{host_name="h", index="k", kubernetes_a="1"}"#
        );
        assert_eq!(
            fields(r),
            [
                ("kubernetes.b", "22222"),
                ("kubernetes.c", "3"),
                ("kubernetes.d", "4")
            ]
        );
        // A named label field over a limit fails its document, naming the line.
        let doc = r#"{"message":"m","host.name":"too long"}"#;
        let b = bulk_with(
            &format!("{{\"index\":{{\"_index\":\"k\"}}}}\n{doc}\n"),
            None,
            &limits,
        );
        assert_eq!(
            b.items[0].error.as_ref().unwrap().reason,
            "line 2: value of label \"host_name\" is over max_label_value_bytes (8 > 4)"
        );
    }

    #[test]
    fn timestamps() {
        let ts = |t: &str| {
            let b = bulk(&format!(
                "{{\"index\":{{\"_index\":\"i\"}}}}\n{{\"message\":\"m\",\"@timestamp\":{t}}}\n"
            ));
            match &b.items[0].error {
                None => Ok(b.records[0].ts),
                Some(e) => Err(e.reason.clone()),
            }
        };
        let ok = [
            ("\"2023-11-14T22:13:20Z\"", 1_700_000_000_000),
            ("\"2023-11-14T22:13:20.123Z\"", 1_700_000_000_123),
            ("\"2023-11-14T22:13:20.123456789+01:00\"", 1_699_996_400_123),
            ("\"2023-11-14T22:13:20.123+0100\"", 1_699_996_400_123),
            ("\"2023-11-14T22:13:20\"", 1_700_000_000_000),
            ("\"2023-11-14T22:13:20.5\"", 1_700_000_000_500),
            ("\"2023-11-14T22:13\"", 1_699_999_980_000),
            ("\"2023-11-14\"", 1_699_920_000_000),
            ("1700000000123", 1_700_000_000_123),
            ("1700000000123.9", 1_700_000_000_123),
            ("\"1700000000123\"", 1_700_000_000_123),
            ("null", NOW),
        ];
        for (t, want) in ok {
            assert_eq!(ts(t), Ok(want), "{t}");
        }
        for t in ["\"yesterday\"", "true", "1e300", "\"NaN\"", "[1]"] {
            let e = ts(t).unwrap_err();
            assert!(
                e.starts_with("line 2: failed to parse field [@timestamp] of type [date]: "),
                "{t}: {e}"
            );
        }
    }

    #[test]
    fn bodies_that_cannot_be_split_are_refused_naming_the_line() {
        let cases = [
            ("", "Validation Failed: 1: no requests added"),
            (
                "{\"index\":{}}\n{\"message\":\"m\"}\n{\"index\"\n",
                "line 3: malformed action line: invalid JSON at column 8: EOF while parsing an object",
            ),
            (
                "[1]",
                "line 1: malformed action line: expected a JSON object: invalid type: sequence, expected a map",
            ),
            (
                "{\"upsert\":{}}",
                "line 1: malformed action line: unknown action \"upsert\": expected index, create, delete or update",
            ),
            (
                "{}",
                "line 1: malformed action line: expected one key, the action (index, create, delete or update)",
            ),
            (
                "{\"index\":{},\"create\":{}}",
                "line 1: malformed action line: expected one key, the action (index, create, delete or update)",
            ),
            (
                "{\"index\":[]}",
                "line 1: malformed action line: the metadata of \"index\" must be an object",
            ),
            (
                "{\"index\":{\"_index\":\"i\"}}\n\n",
                "line 1: the index action has no document line after it",
            ),
        ];
        for (body, want) in cases {
            let got = refused(body);
            assert!(got.starts_with(want), "for {body:?}: {got}");
        }
        let e = parse(
            b"{\"index\":{}}\n{\"message\":\"\xff\"}",
            None,
            &mapping(),
            NOW,
            &mut String::new,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: invalid UTF-8 at byte 13 of the line"
        );
    }

    #[test]
    fn index_names_are_checked_per_item() {
        let body = "{\"index\":{\"_index\":\"Logs\"}}\n{\"message\":\"m\"}\n{\"index\":{}}\n{\"message\":\"ok\"}\n";
        let b = bulk_with(body, Some("logs-app"), &Limits::default());
        assert_eq!(
            b.items[0].error,
            Some(ItemError {
                status: 400,
                kind: "invalid_index_name_exception",
                reason: "line 1: Invalid index name [Logs], must be lowercase".to_string()
            })
        );
        assert_eq!(b.records.len(), 1);
        for bad in [
            "",
            ".",
            "_all",
            "-x",
            "a b",
            "a/b",
            "a*",
            "x".repeat(256).as_str(),
        ] {
            assert!(check_index_name(bad).is_err(), "{bad}");
        }
        assert_eq!(check_index_name(".ds-logs-2026.12.02"), Ok(()));
    }

    #[test]
    fn mapping_is_checked() {
        let m = |message: &str, labels: &[&str]| {
            Mapping::new(&ElasticsearchConfig {
                message_field: message.to_string(),
                label_fields: labels.iter().map(|s| s.to_string()).collect(),
            })
            .map(|_| ())
        };
        assert_eq!(m("log.original", &["@metadata.beat", "a.*"]), Ok(()));
        assert_eq!(
            m("", &[]),
            Err("elasticsearch.message_field: is empty".to_string())
        );
        assert_eq!(
            m("message", &["host.name", "host_name"]),
            Err("elasticsearch.label_fields: \"host_name\" makes the label name \"host_name\", which is taken".to_string())
        );
        assert_eq!(
            m("message", &["index"]),
            Err("elasticsearch.label_fields: \"index\" makes the label name \"index\", which is taken".to_string())
        );
        assert_eq!(
            m("message", &["a..b"]),
            Err("elasticsearch.label_fields: \"a..b\" has an empty segment".to_string())
        );
        assert_eq!(
            m("message", &["a.*.b"]),
            Err("elasticsearch.label_fields: \"a.*.b\" may have `*` only as its last segment, after a dot".to_string())
        );
        assert_eq!(label_name("1st.x-y"), "_1st_x_y");
    }

    #[test]
    fn the_server_config_reads_and_checks_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faultline.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            crate::config::Config::load(&path).map(|c| c.elasticsearch)
        };
        assert_eq!(load("").unwrap(), ElasticsearchConfig::default());
        let c = load(
            "[elasticsearch]\nmessage_field = \"log.original\"\nlabel_fields = [\"container.id\"]\n",
        )
        .unwrap();
        assert_eq!(c.message_field, "log.original");
        assert_eq!(c.label_fields, ["container.id"]);
        let e = load("[elasticsearch]\nlabel_fields = [\"host.name\", \"host_name\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("elasticsearch.label_fields: \"host_name\" makes the label name \"host_name\", which is taken"),
            "{e}"
        );
        let e = load("[elasticsearch]\nmessage = \"m\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `message`"), "{e}");
    }

    #[test]
    fn a_configured_message_field_and_labels() {
        let m = Mapping::new(&ElasticsearchConfig {
            message_field: "log.original".to_string(),
            label_fields: vec!["container.id".to_string()],
        })
        .unwrap();
        let body = "{\"index\":{\"_index\":\"i\"}}\n{\"log\":{\"original\":\"raw\"},\"message\":\"parsed\",\"container\":{\"id\":\"c1\"},\"host.name\":\"h\"}\n";
        let b = parse(
            body.as_bytes(),
            None,
            &m,
            NOW,
            &mut String::new,
            &Limits::default(),
        )
        .unwrap();
        let r = &b.records[0];
        assert_eq!(r.line, "raw");
        assert_eq!(r.labels.to_string(), r#"{container_id="c1", index="i"}"#);
        assert_eq!(fields(r), [("host.name", "h"), ("message", "parsed")]);
    }

    #[test]
    fn content_types() {
        assert_eq!(check_content_type(None).unwrap_err().status(), 415);
        for ok in [
            Some("application/x-ndjson"),
            Some("application/json; charset=utf-8"),
            Some("application/vnd.elasticsearch+x-ndjson; compatible-with=9"),
            Some("application/vnd.elasticsearch+json;compatible-with=8"),
        ] {
            assert_eq!(check_content_type(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "text/plain",
            "application/vnd.elasticsearch+x-ndjson",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=6",
        ] {
            let e = check_content_type(Some(bad)).unwrap_err();
            assert_eq!(e.status(), 415, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body, Some("i"), &mapping(), NOW, &mut String::new, &Limits::default());
        }

        #[test]
        fn mutated_bodies_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut body = br#"{"index":{"_index":"a","_id":"1"}}
{"@timestamp":"2026-01-01T00:00:00Z","message":"x","host":{"name":"h"},"kubernetes":{"pod":{"name":"p"}}}
{"delete":{"_id":"2"}}
"#.to_vec();
            for (pos, byte) in edits {
                let i = pos % body.len();
                body[i] = byte;
            }
            if let Err(e) = parse(&body, None, &mapping(), NOW, &mut String::new, &Limits::default()) {
                prop_assert_eq!(e.status(), 400);
            }
        }
    }
}
