//! Alerts from outside: the body of Alertmanager API v2 `POST /api/v2/alerts` (what
//! Prometheus, vmalert and Grafana send) and Alertmanager's webhook notification (version
//! "4"), both into [`PostableAlert`].
//!
//! Validation follows Alertmanager 0.25, with its messages: labels with an empty value are
//! dropped first; then "start time must be before end time", "invalid label set: invalid name
//! ...", "at least one label pair required", "invalid annotations: invalid name ...". Like
//! Alertmanager, a batch keeps its valid alerts and reports the invalid ones (see
//! [`PostedAlerts`]). On top, the label [`Limits`] apply to labels, and the label count limit
//! to annotations too.
//!
//! A missing `startsAt` stays `None`: Alertmanager sets it to `endsAt`, or to the receive time
//! if that is missing too, and a missing `endsAt` to receive time + `resolve_timeout`; that is
//! the caller's job, as it owns the clock. The zero time `0001-01-01T00:00:00Z`, which the
//! webhook sends for a firing alert's `endsAt`, counts as missing.

use serde::Deserialize;

use super::{
    IngestError, Limit, Limits, Location, Pairs, bounded_labels, check_label, check_label_count,
};
use crate::model::{Labels, is_label_name};

/// One alert as posted: its identity (`labels`), extra information (`annotations`) and the
/// known part of its activity interval, in ms since the epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct PostableAlert {
    pub labels: Labels,
    /// Annotations; as for labels, an empty value means absent.
    pub annotations: Labels,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    /// Link back to the rule that produced the alert; `None` if absent or empty.
    pub generator_url: Option<String>,
}

/// A `POST /api/v2/alerts` body after validation. Alertmanager stores the valid alerts and
/// answers 400 with the invalid ones' messages, so one bad alert does not lose its batch:
/// store `valid`, then answer with `invalid` if there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct PostedAlerts {
    pub valid: Vec<PostableAlert>,
    /// [`IngestError::InvalidAlerts`] with every invalid alert's message, if any was invalid.
    pub invalid: Option<IngestError>,
}

/// Parses a `POST /api/v2/alerts` body: a JSON array of
/// `{labels, annotations, startsAt, endsAt, generatorURL}`. Errors for the body as a whole
/// (bad JSON, a time that is not RFC 3339, an alert without `labels`) refuse all of it.
pub fn parse_postable(body: &[u8], limits: &Limits) -> Result<PostedAlerts, IngestError> {
    let raw: Vec<RawAlert> = json_array(body, limits)?;
    let (valid, invalid) = convert_all(raw, limits)?;
    Ok(PostedAlerts {
        valid,
        invalid: (!invalid.is_empty()).then_some(IngestError::InvalidAlerts(invalid)),
    })
}

/// Parses an Alertmanager webhook notification (`"version": "4"`) into its alerts: a
/// resolved alert keeps its `endsAt`, a firing one has `ends_at: None`. Any invalid alert
/// refuses the whole notification.
pub fn parse_webhook(body: &[u8], limits: &Limits) -> Result<Vec<PostableAlert>, IngestError> {
    let msg: WebhookMessage = super::json_body(body, limits)?;
    if msg.version != "4" {
        return Err(IngestError::malformed(
            Location::Body,
            format!(
                "webhook version {:?} is not supported (Alertmanager sends \"4\")",
                msg.version
            ),
        ));
    }
    let (valid, invalid) = convert_all(msg.alerts, limits)?;
    if !invalid.is_empty() {
        return Err(IngestError::InvalidAlerts(invalid));
    }
    Ok(valid)
}

/// Parses a body that must be a JSON array of alerts. serde reports a type mismatch before
/// a syntax error (`{{{` is "invalid type: map, expected a sequence"), which hides what is
/// wrong: on failure, the syntax error is named if there is one, else the wrong shape.
fn json_array<T: serde::de::DeserializeOwned>(
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<T>, IngestError> {
    super::json_body(body, limits).map_err(|e| {
        let (IngestError::Malformed { .. }, Ok(text)) = (&e, std::str::from_utf8(body)) else {
            return e;
        };
        match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(syntax) => IngestError::malformed(Location::Body, format!("JSON: {syntax}")),
            Ok(_) if !text.trim_start().starts_with('[') => IngestError::malformed(
                Location::Body,
                "the body must be a JSON array of alerts ([{\"labels\": {...}}, ...])",
            ),
            Ok(_) => e,
        }
    })
}

#[derive(Deserialize)]
struct RawAlert {
    #[serde(default)]
    labels: Option<Pairs>,
    #[serde(default)]
    annotations: Option<Pairs>,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

#[derive(Deserialize)]
struct WebhookMessage {
    version: String,
    alerts: Vec<RawAlert>,
}

/// Converts every alert: the valid ones, and the validation messages of the invalid ones.
fn convert_all(
    raw: Vec<RawAlert>,
    limits: &Limits,
) -> Result<(Vec<PostableAlert>, Vec<String>), IngestError> {
    let mut valid = Vec::with_capacity(raw.len());
    let mut invalid = Vec::new();
    for (i, alert) in raw.into_iter().enumerate() {
        match convert(alert, i, limits)? {
            Ok(a) => valid.push(a),
            Err(msg) => invalid.push(msg),
        }
    }
    Ok((valid, invalid))
}

/// Converts one alert. The outer error refuses the whole body; the inner one is the
/// Alertmanager validation message for this alert alone.
fn convert(
    raw: RawAlert,
    index: usize,
    limits: &Limits,
) -> Result<Result<PostableAlert, String>, IngestError> {
    let at = Location::Alert(index + 1);
    let Some(Pairs(labels)) = raw.labels else {
        return Err(IngestError::AlertLabelsMissing { index });
    };
    let starts_at = time(raw.starts_at.as_deref(), "startsAt", at)?;
    let ends_at = time(raw.ends_at.as_deref(), "endsAt", at)?;
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e < s
    {
        return Ok(Err("start time must be before end time".to_string()));
    }
    let annotations = raw.annotations.map(|p| p.0).unwrap_or_default();
    if let Err(e) = check_label_count(&labels, Limit::Labels, at, limits)
        .and_then(|()| check_label_count(&annotations, Limit::Annotations, at, limits))
    {
        return Ok(Err(e.to_string()));
    }
    // Alertmanager drops empty label values before validating; so does bounded_labels.
    let labels = bounded_labels(labels);
    if let Some(name) = first_invalid_name(&labels) {
        return Ok(Err(format!("invalid label set: invalid name {name:?}")));
    }
    if labels.is_empty() {
        return Ok(Err("at least one label pair required".to_string()));
    }
    if let Err(e) = labels
        .iter()
        .try_for_each(|(n, v)| check_label(n, v, at, limits))
    {
        return Ok(Err(e.to_string()));
    }
    let annotations = bounded_labels(annotations);
    if let Some(name) = first_invalid_name(&annotations) {
        return Ok(Err(format!("invalid annotations: invalid name {name:?}")));
    }
    Ok(Ok(PostableAlert {
        labels,
        annotations,
        starts_at,
        ends_at,
        generator_url: raw.generator_url.filter(|u| !u.is_empty()),
    }))
}

fn first_invalid_name(labels: &Labels) -> Option<&str> {
    labels.iter().map(|(n, _)| n).find(|n| !is_label_name(n))
}

/// An RFC 3339 time in ms; absent, empty and the zero time are `None`.
fn time(s: Option<&str>, field: &str, at: Location) -> Result<Option<i64>, IngestError> {
    const ZERO_TIME_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
    match s {
        None | Some("") => Ok(None),
        Some(s) => match super::rfc3339_ms(s) {
            Some(ZERO_TIME_MS) => Ok(None),
            Some(ms) => Ok(Some(ms)),
            None => Err(IngestError::malformed(
                at,
                format!("{field} {s:?} is not an RFC 3339 time"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::testing::fixture;
    use proptest::prelude::*;

    const STARTS: i64 = 1_795_684_999_484; // 2026-11-26T09:23:19.484Z

    fn node_up_labels() -> Labels {
        Labels::from_pairs([
            ("alertname", "NodeExporterUp"),
            ("env", "peertest"),
            ("instance", "127.0.0.1:19100"),
            ("job", "node"),
            ("severity", "info"),
        ])
    }

    #[test]
    fn prometheus_fixture() {
        let posted = parse_postable(
            &fixture("prometheus-2.42/alerts-post-firing.json"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(posted.invalid, None);
        assert_eq!(
            posted.valid,
            vec![PostableAlert {
                labels: node_up_labels(),
                annotations: Labels::from_pairs([(
                    "summary",
                    "node exporter 127.0.0.1:19100 is up"
                )]),
                starts_at: Some(STARTS),
                ends_at: Some(STARTS + 240_000),
                generator_url: Some(
                    "http://vm:19090/graph?g0.expr=up%7Bjob%3D%22node%22%7D+%3D%3D+1&g0.tab=1"
                        .to_string()
                ),
            }]
        );
    }

    #[test]
    fn webhook_fixtures() {
        let l = Limits::default();
        let firing = parse_webhook(&fixture("alertmanager-0.25/webhook-firing.json"), &l).unwrap();
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].labels, node_up_labels());
        assert_eq!(firing[0].starts_at, Some(STARTS));
        assert_eq!(firing[0].ends_at, None);
        let resolved =
            parse_webhook(&fixture("alertmanager-0.25/webhook-resolved.json"), &l).unwrap();
        assert_eq!(resolved[0].labels, node_up_labels());
        assert_eq!(resolved[0].ends_at, Some(STARTS + 250_000));
        assert_eq!(
            resolved[0].annotations.get("summary"),
            Some("node exporter 127.0.0.1:19100 is up")
        );
    }

    fn invalid(body: &str) -> Vec<String> {
        let posted = parse_postable(body.as_bytes(), &Limits::default()).unwrap();
        match posted.invalid {
            Some(IngestError::InvalidAlerts(v)) => v,
            other => panic!("expected invalid alerts, got {other:?}"),
        }
    }

    #[test]
    fn alertmanager_validation_messages() {
        let cases = [
            (r#"{"labels":{}}"#, "at least one label pair required"),
            (r#"{"labels":{"a":""}}"#, "at least one label pair required"),
            (
                r#"{"labels":{"a":"1"},"startsAt":"2026-01-01T00:00:01Z","endsAt":"2026-01-01T00:00:00Z"}"#,
                "start time must be before end time",
            ),
            (
                r#"{"labels":{"a":"1","bad-name":"x"}}"#,
                "invalid label set: invalid name \"bad-name\"",
            ),
            (
                r#"{"labels":{"a":"1"},"annotations":{"1x":"y"}}"#,
                "invalid annotations: invalid name \"1x\"",
            ),
        ];
        for (alert, want) in cases {
            assert_eq!(
                invalid(&format!("[{alert}]")),
                vec![want.to_string()],
                "for {alert}"
            );
        }
    }

    #[test]
    fn valid_alerts_of_a_batch_are_kept_and_invalid_ones_reported_together() {
        let posted = parse_postable(
            br#"[{"labels":{}},{"labels":{"alertname":"A"},"endsAt":"2026-01-01T00:00:00Z"},{"labels":{"x-y":"1"}}]"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(posted.valid.len(), 1);
        assert_eq!(posted.valid[0].starts_at, None);
        assert_eq!(posted.valid[0].ends_at, Some(1_767_225_600_000));
        let e = posted.invalid.unwrap();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "at least one label pair required; invalid label set: invalid name \"x-y\""
        );
    }

    #[test]
    fn body_errors() {
        let l = Limits::default();
        let e = parse_postable(br#"[{"annotations":{}}]"#, &l).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (422, "0.labels in body is required")
        );
        let e =
            parse_postable(br#"[{"labels":{"a":"1"},"startsAt":"yesterday"}]"#, &l).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (
                400,
                "alert 1: startsAt \"yesterday\" is not an RFC 3339 time"
            )
        );
        let e = parse_postable(br#"{"labels":{}}"#, &l).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            r#"the body must be a JSON array of alerts ([{"labels": {...}}, ...])"#
        );
        // A syntax error is named as such, not as the shape it might have had.
        let e = parse_postable(b"{{{", &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "JSON: key must be a string at line 1 column 2"
        );
        let e = parse_postable(br#"[{"labels":{"a":1}}]"#, &l).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("JSON: invalid type: integer `1`, expected a string"),
            "{e}"
        );
        let e = parse_postable(b"[{\"labels\":{\"a\":\"\xff\"}}]", &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: invalid UTF-8 at byte 18 of the line"
        );
        let small = Limits {
            max_body_bytes: 1,
            ..Limits::default()
        };
        assert_eq!(parse_postable(b"[]", &small).unwrap_err().status(), 413);
    }

    #[test]
    fn label_limits_make_an_alert_invalid() {
        let l = Limits {
            max_label_value_bytes: 3,
            ..Limits::default()
        };
        let posted = parse_postable(br#"[{"labels":{"a":"1234"}}]"#, &l).unwrap();
        assert_eq!(
            posted.invalid.unwrap().to_string(),
            "alert 1: value of label \"a\" is over max_label_value_bytes (4 > 3)"
        );
    }

    #[test]
    fn label_and_annotation_counts_are_bounded() {
        let l = Limits {
            max_labels_per_series: 2,
            ..Limits::default()
        };
        let posted = parse_postable(
            br#"[{"labels":{"a":"1","b":"2","c":"3"}},{"labels":{"a":"1"},"annotations":{"a":"1","b":"2","c":"3"}}]"#,
            &l,
        )
        .unwrap();
        assert_eq!(
            posted.invalid.unwrap().to_string(),
            "alert 1: label count is over max_labels_per_series (3 > 2); \
             alert 2: annotation count is over max_labels_per_series (3 > 2)"
        );
    }

    #[test]
    fn webhook_errors() {
        let l = Limits::default();
        let e = parse_webhook(br#"{"version":"5","alerts":[]}"#, &l).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (
                400,
                "webhook version \"5\" is not supported (Alertmanager sends \"4\")"
            )
        );
        let e = parse_webhook(br#"{"version":"4","alerts":[{"labels":{}}]}"#, &l).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (400, "at least one label pair required")
        );
        let e = parse_webhook(br#"{"alerts":[]}"#, &l).unwrap_err();
        assert!(
            e.to_string().starts_with("JSON: missing field `version`"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_postable(&body, &Limits::default());
            let _ = parse_webhook(&body, &Limits::default());
        }

        #[test]
        fn mutated_fixtures_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            for path in ["prometheus-2.42/alerts-post-firing.json", "alertmanager-0.25/webhook-resolved.json"] {
                let mut body = fixture(path);
                for &(pos, byte) in &edits {
                    let i = pos % body.len();
                    body[i] = byte;
                }
                if let Err(e) = parse_postable(&body, &Limits::default()) {
                    prop_assert!(e.status() == 400 || e.status() == 422);
                }
                if let Err(e) = parse_webhook(&body, &Limits::default()) {
                    prop_assert!(e.status() == 400 || e.status() == 422);
                }
            }
        }
    }
}
