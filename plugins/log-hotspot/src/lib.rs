//! `log-hotspot`: a localizer that blames the nodes whose share of error log records rose
//! during an incident, each against its own baseline: the streaming form of "group the error
//! records by node and status, and count", with noisy nodes that always log errors kept from
//! drowning out a quiet node that suddenly fails.
//!
//! ```toml
//! [[localizer]]
//! name = "ErrorHotspot"
//! plugin = "log-hotspot"
//! match = ['alertname="HighErrorRate"']   # the incidents whose alerts this rule localizes
//! logs = '{app="api"}'                    # every record, not only errors: shares need both
//! range = "1h"                            # the baseline is what precedes the window
//! params = { node_label = "instance", lead = "2m", min_records = 20 }
//! ```
//!
//! The incident window runs from `lead` before the incident's start (the earliest `active_at`
//! of its firing alerts, or of all its alerts if none fires; the time of the call if it has
//! none) to now; every earlier record is the baseline. A record's node is its structured field
//! `node_label`, else its stream's label of that name (records with neither are skipped). Its
//! status is its field `status_field`, else `status=503` (logfmt) or `"status": 503` (JSON) in
//! its line; it is an error when the status starts with one of `error_status`.
//!
//! For each node with at least `min_records` records in the window, with `w` and `b` its
//! share of errors in the window and in the baseline (0 without baseline records), the score
//! is `(w - b) / (1 - b)`: how much of the room left above its usual error share the node
//! used up. Nodes whose share did not rise are left out; every other node is returned, best
//! first, labelled `{<node_label>="<node>"}`. `max_suspects` caps the list, but by default
//! nothing is cut: the host merges the suspects of several localizers and truncates only after
//! merging, so a cap here could drop the real cause before it is weighed with other evidence.

use std::collections::BTreeMap;

use faultline_sdk::localizer::*;
use faultline_sdk::params::duration_ms;
use serde::Deserialize;
use serde_json::Value;

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The structured field, or else stream label, naming a record's node. Default
    /// `instance`.
    #[serde(default = "default_node_label")]
    pub node_label: String,
    /// The structured field, or else logfmt or JSON key of the line, holding a record's
    /// status. Default `status`.
    #[serde(default = "default_status_field")]
    pub status_field: String,
    /// A record is an error when its status starts with one of these. Default `["5"]`.
    #[serde(default = "default_error_status")]
    pub error_status: Vec<String>,
    /// How long before the incident's start its window opens: milliseconds, or a duration
    /// such as `"90s"`, `"5m"`, `"1h"`. Default `"1m"`.
    #[serde(default = "default_lead")]
    pub lead: Value,
    /// Nodes with fewer records in the window are skipped. Default 5.
    #[serde(default = "default_min_records")]
    pub min_records: u64,
    /// At most this many suspects, best first. Default: no limit (the host truncates after
    /// merging the suspects of every localizer).
    #[serde(default)]
    pub max_suspects: Option<usize>,
}

fn default_node_label() -> String {
    "instance".to_string()
}

fn default_status_field() -> String {
    "status".to_string()
}

fn default_error_status() -> Vec<String> {
    vec!["5".to_string()]
}

fn default_lead() -> Value {
    Value::from("1m")
}

fn default_min_records() -> u64 {
    5
}

/// The localizer, built from validated [`Params`].
#[derive(Debug)]
pub struct LogHotspot {
    node_label: String,
    status_field: String,
    error_status: Vec<String>,
    lead_ms: i64,
    min_records: u64,
    max_suspects: Option<usize>,
    /// `status=`, to find the status in a logfmt line.
    logfmt_key: String,
    /// `"status"`, to find the status in a JSON line.
    json_key: String,
}

/// One node's counts.
#[derive(Debug, Default)]
struct Counts<'a> {
    window: u64,
    window_errors: u64,
    before: u64,
    before_errors: u64,
    /// The window's errors by status.
    statuses: BTreeMap<&'a str, u64>,
}

impl Localizer for LogHotspot {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.node_label.is_empty() {
            return Err("params: `node_label` must name a field or label"
                .to_string()
                .into());
        }
        if p.status_field.is_empty() {
            return Err("params: `status_field` must name a field"
                .to_string()
                .into());
        }
        if p.error_status.is_empty() || p.error_status.iter().any(String::is_empty) {
            return Err(
                "params: `error_status` must list status prefixes such as \"5\" or \"429\""
                    .to_string()
                    .into(),
            );
        }
        if p.max_suspects == Some(0) {
            return Err("params: `max_suspects` must be at least 1"
                .to_string()
                .into());
        }
        Ok(Self {
            lead_ms: duration_ms("lead", &p.lead)?,
            logfmt_key: format!("{}=", p.status_field),
            json_key: format!("\"{}\"", p.status_field),
            node_label: p.node_label,
            status_field: p.status_field,
            error_status: p.error_status,
            min_records: p.min_records,
            max_suspects: p.max_suspects,
        })
    }

    fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error> {
        let start = input.incident().start().unwrap_or(input.now());
        let window_start = start.saturating_sub(self.lead_ms);

        let mut nodes = BTreeMap::<&str, Counts>::new();
        let mut without_node = 0u64;
        for record in input.logs() {
            let node = record
                .field(&self.node_label)
                .or_else(|| record.labels().get(&self.node_label));
            let Some(node) = node else {
                without_node += 1;
                continue;
            };
            let counts = nodes.entry(node).or_default();
            let error = self
                .status(&record)
                .filter(|s| self.error_status.iter().any(|p| s.starts_with(p.as_str())));
            if record.timestamp() >= window_start {
                counts.window += 1;
                if let Some(status) = error {
                    counts.window_errors += 1;
                    *counts.statuses.entry(status).or_default() += 1;
                }
            } else {
                counts.before += 1;
                counts.before_errors += u64::from(error.is_some());
            }
        }
        if without_node > 0 {
            log::debug(&format!(
                "{without_node} log records without a `{}` field or label, skipped",
                self.node_label
            ));
        }

        let mut suspects: Vec<(f64, Suspect)> = nodes
            .into_iter()
            .filter(|(_, c)| c.window > 0 && c.window >= self.min_records)
            .filter_map(|(node, c)| {
                let w = c.window_errors as f64 / c.window as f64;
                let b = if c.before == 0 {
                    0.0
                } else {
                    c.before_errors as f64 / c.before as f64
                };
                // A node that always failed has no room left to rise.
                let score = if b < 1.0 { (w - b) / (1.0 - b) } else { 0.0 };
                (score > 0.0).then(|| {
                    let suspect = Suspect::new()
                        .label(&self.node_label, node)
                        .score(score)
                        .reason(reason(node, &c, w, b));
                    (score, suspect)
                })
            })
            .collect();
        // Stable: ties keep the nodes' name order.
        suspects.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(max) = self.max_suspects {
            suspects.truncate(max);
        }
        Ok(suspects.into_iter().map(|(_, s)| s).collect())
    }
}

impl LogHotspot {
    /// The record's status: its structured field, else the value in its line.
    fn status<'a>(&self, record: &LogRecord<'a>) -> Option<&'a str> {
        let line = record.line();
        record
            .field(&self.status_field)
            .or_else(|| logfmt_value(line, &self.logfmt_key))
            .or_else(|| json_value(line, &self.json_key))
    }
}

/// The value after `key` (`status=`) at the start of the line or after a space: up to the
/// next space, or inside quotes.
fn logfmt_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.match_indices(key)
        .filter(|&(at, _)| {
            line[..at]
                .chars()
                .next_back()
                .is_none_or(char::is_whitespace)
        })
        .find_map(|(at, _)| {
            let rest = &line[at + key.len()..];
            let value = match rest.strip_prefix('"') {
                Some(quoted) => &quoted[..quoted.find('"')?],
                None => &rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())],
            };
            (!value.is_empty()).then_some(value)
        })
}

/// The value of `key` (`"status"`) in a JSON line: `"status": 503` or `"status": "503"`.
fn json_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.match_indices(key).find_map(|(at, _)| {
        let rest = line[at + key.len()..].trim_start().strip_prefix(':')?;
        let rest = rest.trim_start();
        let value = match rest.strip_prefix('"') {
            Some(quoted) => &quoted[..quoted.find('"')?],
            None => {
                let end = rest
                    .find(|c: char| c == ',' || c == '}' || c == ']' || c.is_whitespace())
                    .unwrap_or(rest.len());
                &rest[..end]
            }
        };
        (!value.is_empty()).then_some(value)
    })
}

/// "node4: 48% of its 120 log records in the incident window are errors (503×50, 500×8),
/// against 1% of 900 before".
fn reason(node: &str, c: &Counts, w: f64, b: f64) -> String {
    let mut statuses: Vec<(&str, u64)> = c.statuses.iter().map(|(&s, &n)| (s, n)).collect();
    statuses.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    let before = if c.before == 0 {
        "against no records before".to_string()
    } else {
        format!("against {} of {} before", percent(b), c.before)
    };
    format!(
        "{node}: {} of its {} log records in the incident window are errors ({}), {before}",
        percent(w),
        c.window,
        statuses.join(", ")
    )
}

/// A share as a percentage, with a decimal only where rounding would show a non-zero share
/// as 0%.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 {
        "0%".to_string()
    } else if p < 0.1 {
        "<0.1%".to_string()
    } else if p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

export_localizer!(LogHotspot);

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 600_000;
    const NOW: i64 = 900_000;
    /// The window's start with the default lead of a minute.
    const WINDOW: i64 = START - 60_000;

    /// Adds `total` logfmt records of `node` spread over `[from, to)`, the first ones with
    /// the given error statuses (`(status, count)`), the others with status 200.
    fn records(
        mut b: InputBuilder,
        node: &str,
        (from, to): (i64, i64),
        total: usize,
        errors: &[(&str, usize)],
    ) -> InputBuilder {
        let statuses = errors
            .iter()
            .flat_map(|&(status, n)| std::iter::repeat_n(status, n))
            .chain(std::iter::repeat("200"))
            .take(total);
        for (i, status) in statuses.enumerate() {
            let ts = from + (to - from) * i as i64 / total as i64;
            let line = format!("method=GET path=/api status={status} took=3ms");
            b = b.log([("app", "api"), ("instance", node)], ts, line);
        }
        b
    }

    fn incident_at(active_at: i64) -> Incident {
        Incident {
            id: "inc".into(),
            alerts: vec![Alert {
                state: "firing".into(),
                active_at,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn localize(rule: &mut LogHotspot, incident: Incident, b: InputBuilder) -> Vec<Suspect> {
        let input = LocalizeInput::new(incident, b.now(NOW).build());
        rule.localize(&input).unwrap()
    }

    fn default_rule() -> LogHotspot {
        LogHotspot::configure("{}").unwrap()
    }

    fn nodes(suspects: &[Suspect]) -> Vec<&str> {
        suspects
            .iter()
            .map(|s| s.labels.get("instance").unwrap())
            .collect()
    }

    const BEFORE: (i64, i64) = (0, WINDOW);
    const DURING: (i64, i64) = (WINDOW, NOW);

    #[test]
    fn blames_the_node_whose_errors_rose_not_the_noisiest() {
        let mut b = Input::builder();
        // node1 always logs many errors: 40% before, 45% now, 90 error records in the window.
        b = records(b, "node1", BEFORE, 200, &[("500", 80)]);
        b = records(b, "node1", DURING, 200, &[("500", 90)]);
        // Healthy nodes, with the odd error before and during.
        b = records(b, "node2", BEFORE, 100, &[]);
        b = records(b, "node2", DURING, 100, &[]);
        b = records(b, "node3", BEFORE, 100, &[("502", 5)]);
        b = records(b, "node3", DURING, 100, &[("502", 3)]);
        b = records(b, "node5", BEFORE, 100, &[("503", 1)]);
        b = records(b, "node5", DURING, 100, &[("503", 1)]);
        // node4 was quiet and now fails: fewer error records than node1, but all new.
        b = records(b, "node4", BEFORE, 100, &[("500", 1)]);
        b = records(b, "node4", DURING, 120, &[("503", 50), ("500", 8)]);

        let suspects = localize(&mut default_rule(), incident_at(START), b);
        assert_eq!(nodes(&suspects), ["node4", "node1"]);
        assert_eq!(
            suspects[0].reason,
            "node4: 48% of its 120 log records in the incident window are errors \
             (503×50, 500×8), against 1% of 100 before"
        );
        assert!((suspects[0].score - (58.0 / 120.0 - 0.01) / 0.99).abs() < 1e-9);
        assert!((suspects[1].score - (0.45 - 0.40) / 0.60).abs() < 1e-9);
        assert_eq!(suspects[0].labels.to_string(), r#"{instance="node4"}"#);
    }

    #[test]
    fn without_a_baseline_the_share_is_the_score() {
        let b = records(Input::builder(), "web1", DURING, 10, &[("504", 4)]);
        let suspects = localize(&mut default_rule(), incident_at(START), b);
        assert_eq!(suspects.len(), 1);
        assert!((suspects[0].score - 0.4).abs() < 1e-9);
        assert_eq!(
            suspects[0].reason,
            "web1: 40% of its 10 log records in the incident window are errors (504×4), \
             against no records before"
        );
    }

    #[test]
    fn a_node_that_always_failed_cannot_rise() {
        let mut b = records(Input::builder(), "web1", BEFORE, 10, &[("500", 10)]);
        b = records(b, "web1", DURING, 10, &[("500", 10)]);
        assert_eq!(localize(&mut default_rule(), incident_at(START), b), []);
    }

    #[test]
    fn lead_defaults_to_a_minute_before_the_incident_start() {
        // 5 records at the window's start count in the window; errors a millisecond earlier
        // are baseline.
        let mut b = Input::builder();
        for i in 0..5 {
            b = b.log([("instance", "a")], WINDOW, format!("status=500 n={i}"));
            b = b.log([("instance", "b")], WINDOW - 1, "status=500");
            b = b.log([("instance", "b")], WINDOW, "status=200");
        }
        let suspects = localize(&mut default_rule(), incident_at(START), b);
        assert_eq!(nodes(&suspects), ["a"]);
        assert_eq!(suspects[0].score, 1.0);
    }

    #[test]
    fn lead_takes_milliseconds_or_durations() {
        for (lead, ms) in [
            ("90000", 90_000),
            (r#""90s""#, 90_000),
            (r#""5m""#, 300_000),
            (r#""1h""#, 3_600_000),
            (r#""1h30m""#, 5_400_000),
            (r#""250ms""#, 250),
            (r#""1d""#, 86_400_000),
            ("0", 0),
        ] {
            let rule = LogHotspot::configure(&format!(r#"{{"lead": {lead}}}"#)).unwrap();
            assert_eq!(rule.lead_ms, ms, "{lead}");
        }
        // The window follows: with a lead of 5 minutes, errors 4 minutes early are in it.
        let mut rule = LogHotspot::configure(r#"{"lead": "5m"}"#).unwrap();
        let mut b = records(Input::builder(), "a", (0, START - 300_000), 10, &[]);
        b = records(b, "a", (START - 240_000, START), 10, &[("500", 5)]);
        let suspects = localize(&mut rule, incident_at(START), b);
        assert!((suspects[0].score - 0.5).abs() < 1e-9);
    }

    #[test]
    fn without_alerts_the_window_ends_the_lead_before_now() {
        let mut b = records(Input::builder(), "a", (0, NOW - 60_000), 10, &[]);
        b = records(b, "a", (NOW - 60_000, NOW), 10, &[("500", 10)]);
        let suspects = localize(&mut default_rule(), Incident::default(), b);
        assert_eq!(nodes(&suspects), ["a"]);
        assert_eq!(suspects[0].score, 1.0);
    }

    #[test]
    fn no_logs_no_suspects() {
        assert_eq!(
            localize(&mut default_rule(), incident_at(START), Input::builder()),
            []
        );
    }

    #[test]
    fn min_records_defaults_to_five() {
        let mut b = records(Input::builder(), "few", DURING, 4, &[("500", 4)]);
        b = records(b, "enough", DURING, 5, &[("500", 1)]);
        let suspects = localize(&mut default_rule(), incident_at(START), b);
        assert_eq!(nodes(&suspects), ["enough"]);

        let mut rule = LogHotspot::configure(r#"{"min_records": 1}"#).unwrap();
        let b = records(Input::builder(), "few", DURING, 4, &[("500", 4)]);
        assert_eq!(nodes(&localize(&mut rule, incident_at(START), b)), ["few"]);
    }

    #[test]
    fn every_node_whose_share_rose_is_returned_by_default() {
        let mut b = Input::builder();
        for (i, node) in ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]
            .iter()
            .enumerate()
        {
            b = records(b, node, DURING, 10, &[("500", i + 1)]);
        }
        let suspects = localize(&mut default_rule(), incident_at(START), b);
        // The old default (5) dropped n2 and n1.
        assert_eq!(nodes(&suspects), ["n7", "n6", "n5", "n4", "n3", "n2", "n1"]);

        let mut rule = LogHotspot::configure(r#"{"max_suspects": 2}"#).unwrap();
        let b = records(Input::builder(), "a", DURING, 10, &[("500", 1)]);
        let b = records(b, "b", DURING, 10, &[("500", 1)]);
        let b = records(b, "c", DURING, 10, &[("500", 1)]);
        // Ties go by name.
        assert_eq!(
            nodes(&localize(&mut rule, incident_at(START), b)),
            ["a", "b"]
        );
    }

    #[test]
    fn status_from_field_logfmt_or_json() {
        let rule = default_rule();
        let status = |fields: &[(&str, &str)], line: &str| {
            let input = Input::builder()
                .log_with_fields(
                    [("instance", "a")],
                    0,
                    line,
                    fields.iter().copied().collect::<Labels>(),
                )
                .build();
            let record = input.logs().next().unwrap();
            rule.status(&record).map(str::to_string)
        };
        let none: &[(&str, &str)] = &[];
        assert_eq!(
            status(&[("status", "502")], "status=200").as_deref(),
            Some("502")
        );
        assert_eq!(status(none, "status=503 path=/").as_deref(), Some("503"));
        assert_eq!(
            status(none, r#"path=/ status="504""#).as_deref(),
            Some("504")
        );
        assert_eq!(
            status(none, r#"{"path":"/","status":500}"#).as_deref(),
            Some("500")
        );
        assert_eq!(
            status(none, r#"{"status": "501", "x": 1}"#).as_deref(),
            Some("501")
        );
        // Another key ending in the name is not the status.
        assert_eq!(
            status(none, "upstream_status=503 status=200").as_deref(),
            Some("200")
        );
        assert_eq!(status(none, "upstream_status=503"), None);
        assert_eq!(status(none, r#"{"upstream_status":503}"#), None);
        assert_eq!(status(none, "status= done"), None);
        assert_eq!(status(none, "connection refused"), None);
    }

    #[test]
    fn status_field_and_error_status_are_configurable() {
        let params = r#"{"status_field": "code", "error_status": ["429", "5"]}"#;
        let mut rule = LogHotspot::configure(params).unwrap();
        let mut b = Input::builder();
        for (i, line) in ["code=429", "code=503", "code=404", "status=500", "code=200"]
            .iter()
            .enumerate()
        {
            b = b.log([("instance", "a")], WINDOW + i as i64, *line);
        }
        let suspects = localize(&mut rule, incident_at(START), b);
        assert!((suspects[0].score - 0.4).abs() < 1e-9);
        assert!(suspects[0].reason.contains("(429×1, 503×1)"));
    }

    #[test]
    fn node_from_field_else_stream_label() {
        let mut rule =
            LogHotspot::configure(r#"{"node_label": "host", "min_records": 1}"#).unwrap();
        let b = Input::builder()
            .log_with_fields(
                [("host", "stream")],
                WINDOW,
                "status=500",
                [("host", "field")],
            )
            .log([("host", "stream")], WINDOW, "status=500")
            .log([("instance", "nohost")], WINDOW, "status=500");
        let suspects = localize(&mut rule, incident_at(START), b);
        let labels: Vec<String> = suspects.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(labels, [r#"{host="field"}"#, r#"{host="stream"}"#]);
    }

    #[test]
    fn percentages_stay_honest_at_the_edges() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.0004), "<0.1%");
        assert_eq!(percent(0.004), "0.4%");
        assert_eq!(percent(0.4833), "48%");
        assert_eq!(percent(1.0), "100%");
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |p: &str| LogHotspot::configure(p).unwrap_err();
        let lead = |shown: &str| {
            format!(
                "params: `lead` must be milliseconds or a duration such as \"90s\", \"5m\" or \
                 \"1h\", not {shown}"
            )
        };
        for bad in [
            r#""5x""#, r#""""#, r#""5""#, r#""m""#, r#""-5m""#, "-5", "1.5", "true",
        ] {
            assert_eq!(
                refused(&format!(r#"{{"lead": {bad}}}"#)),
                lead(bad),
                "{bad}"
            );
        }
        assert_eq!(
            refused(r#"{"lead": "99999999999999999d"}"#),
            lead(r#""99999999999999999d""#)
        );
        assert_eq!(
            refused(r#"{"error_status": []}"#),
            r#"params: `error_status` must list status prefixes such as "5" or "429""#
        );
        assert_eq!(
            refused(r#"{"error_status": ["5", ""]}"#),
            r#"params: `error_status` must list status prefixes such as "5" or "429""#
        );
        assert_eq!(
            refused(r#"{"max_suspects": 0}"#),
            "params: `max_suspects` must be at least 1"
        );
        assert_eq!(
            refused(r#"{"node_label": ""}"#),
            "params: `node_label` must name a field or label"
        );
        assert_eq!(
            refused(r#"{"status_field": ""}"#),
            "params: `status_field` must name a field"
        );
        assert_eq!(
            refused(r#"{"min_records": -1}"#),
            "params: invalid value: integer `-1`, expected u64"
        );
        assert!(refused(r#"{"leed": "1m"}"#).starts_with("params: unknown field `leed`"));
    }

    #[test]
    fn defaults() {
        let rule = default_rule();
        assert_eq!(rule.node_label, "instance");
        assert_eq!(rule.status_field, "status");
        assert_eq!(rule.error_status, ["5"]);
        assert_eq!(rule.lead_ms, 60_000);
        assert_eq!(rule.min_records, 5);
        assert_eq!(rule.max_suspects, None);
    }

    #[test]
    fn the_documented_example_parses() {
        let rule =
            LogHotspot::configure(r#"{"node_label": "instance", "lead": "2m", "min_records": 20}"#)
                .unwrap();
        assert_eq!((rule.lead_ms, rule.min_records), (120_000, 20));
    }
}
