//! Alertmanager's API v2, so that the tools operators already have work against Faultline
//! unchanged: Prometheus, vmalert and Grafana post alerts, `amtool` queries alerts and
//! manages silences, and an existing Alertmanager forwards its notifications by webhook.
//!
//! | Route                                | Handler                    |
//! |--------------------------------------|----------------------------|
//! | `POST /api/v2/alerts`                | [`alerts::alerts_create`]  |
//! | `POST /api/v1/alerts`                | [`alerts::alerts_create_v1`]: API v1's answers (routed in `server`) |
//! | `GET /api/v2/alerts`                 | [`alerts::alerts_list`]    |
//! | `GET /api/v2/alerts/groups`          | [`alerts::alert_groups_list`] |
//! | `POST /api/v1/alertmanager/webhook`  | [`alerts::webhook_receive`]: an Alertmanager `webhook_config` URL |
//! | `GET`, `POST /api/v2/silences`       | [`silences::silences_list`], [`silences::silences_create`] |
//! | `GET`, `DELETE /api/v2/silence/{id}` | [`silences::silence_get`], [`silences::silence_delete`] |
//! | `GET /api/v2/status`                 | [`status`], with the routing as YAML ([`original`]) |
//! | `GET /api/v2/receivers`              | [`receivers_list`]         |
//!
//! Answers are Alertmanager 0.25's, shapes and messages: a handler's refusal is a JSON string
//! (`"start time must be before end time"`), a request that does not fit the API's schema is
//! `{"code": 602, "message": "comment in body is required"}`.

pub mod alerts;
pub mod original;
pub mod silences;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::routing::post;
use serde::Serialize;

use crate::service::Service;

/// When the API was set up: the `uptime` of the status.
static STARTED: LazyLock<i64> = LazyLock::new(crate::model::time::now_ms);

/// The Alertmanager API routes, merged into [`super::app`].
pub fn routes() -> Router<Arc<Service>> {
    LazyLock::force(&STARTED);
    Router::new()
        .route(
            "/api/v2/alerts",
            get(alerts::alerts_list).post(alerts::alerts_create),
        )
        .route("/api/v2/alerts/groups", get(alerts::alert_groups_list))
        .route(
            "/api/v1/alertmanager/webhook",
            post(alerts::webhook_receive),
        )
        .route(
            "/api/v2/silences",
            get(silences::silences_list).post(silences::silences_create),
        )
        .route(
            "/api/v2/silence/{id}",
            get(silences::silence_get).delete(silences::silence_delete),
        )
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers_list))
}

/// Sets the gauges of external alerts and silences by state, for `/metrics`.
pub fn export_metrics(svc: &Service) {
    let now = crate::model::time::now_ms();
    let (firing, resolved) = svc.external().counts(now);
    let m = &svc.metrics();
    m.set(
        "faultline_external_alerts",
        &[("state", "firing")],
        firing as f64,
    );
    m.set(
        "faultline_external_alerts",
        &[("state", "resolved")],
        resolved as f64,
    );
    let mut by_state: HashMap<&str, usize> = HashMap::new();
    for s in svc.silences().list(now) {
        *by_state.entry(s.shown_state(now).as_str()).or_default() += 1;
    }
    for state in ["active", "pending", "expired"] {
        let n = by_state.get(state).copied().unwrap_or(0);
        m.set("faultline_silences", &[("state", state)], n as f64);
        m.set("alertmanager_silences", &[("state", state)], n as f64);
    }
    let (active, suppressed) = alerts::counts(svc, now);
    for (state, n) in [
        ("active", active),
        ("suppressed", suppressed),
        ("unprocessed", 0),
    ] {
        m.set("alertmanager_alerts", &[("state", state)], n as f64);
    }
    // Alertmanager shows every counter from the start, at zero until it counts.
    for version in ["v1", "v2"] {
        for status in ["firing", "resolved"] {
            let labels = [("status", status), ("version", version)];
            m.add("alertmanager_alerts_received_total", &labels, 0.0);
        }
        m.add(
            "alertmanager_alerts_invalid_total",
            &[("version", version)],
            0.0,
        );
    }
    for receiver in svc.rules().receivers.values() {
        let integration = [("integration", receiver.plugin.name.as_str())];
        for name in [
            "alertmanager_notifications_total",
            "alertmanager_notifications_failed_total",
            "alertmanager_notification_requests_total",
            "alertmanager_notification_requests_failed_total",
        ] {
            m.add(name, &integration, 0.0);
        }
    }
}

/// An answer of the Alertmanager API other than success.
#[derive(Debug)]
pub enum AmError {
    /// A handler's refusal: the message as a JSON string.
    Message(StatusCode, String),
    /// A request that does not fit the API's schema: `{"code", "message"}`.
    Schema {
        status: StatusCode,
        code: u16,
        message: String,
    },
    /// A status alone.
    Empty(StatusCode),
}

impl AmError {
    /// A body that cannot be parsed (400, code 400).
    fn parsing(what: &str, reason: impl std::fmt::Display) -> AmError {
        AmError::Schema {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: format!("parsing {what} body from \"\" failed, because {reason}"),
        }
    }

    /// A required field that is missing (422, code 602).
    fn required(field: &str) -> AmError {
        AmError::Schema {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 602,
            message: format!("{field} in body is required"),
        }
    }
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        match self {
            AmError::Message(status, message) => (status, json_response(&message)).into_response(),
            AmError::Schema {
                status,
                code,
                message,
            } => (
                status,
                json_response(&serde_json::json!({"code": code, "message": message})),
            )
                .into_response(),
            AmError::Empty(status) => status.into_response(),
        }
    }
}

impl From<super::ApiError> for AmError {
    fn from(e: super::ApiError) -> AmError {
        AmError::Message(e.status, e.message)
    }
}

/// A JSON body with its content type.
fn json_response(value: &impl Serialize) -> Response {
    json_bytes(serde_json::to_vec(value).unwrap_or_default())
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A time (ms since the epoch) serialized as Alertmanager shows times,
/// `2026-01-02T03:04:05.678Z`, without allocating: a listing writes three per alert.
pub struct Rfc3339(pub i64);

impl Rfc3339 {
    /// The text, for years 0 to 9999 (JSON needs no escaping of it).
    pub fn ascii(&self) -> Option<[u8; 24]> {
        let (secs, ms) = (self.0.div_euclid(1000), self.0.rem_euclid(1000));
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, sod / 3600);
        put(14, 2, sod / 60 % 60);
        put(17, 2, sod % 60);
        put(20, 3, ms);
        Some(b)
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.ascii() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).unwrap_or_default()),
            None => s.serialize_str(&crate::model::time::rfc3339(self.0)),
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A fingerprint serialized as 16 hex digits, without allocating.
pub struct Hex(pub u64);

impl Hex {
    /// The 16 digits (JSON needs no escaping of them).
    pub fn ascii(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = b"0123456789abcdef"[(self.0 >> (60 - 4 * i) & 0xf) as usize];
        }
        b
    }
}

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.ascii()).unwrap_or_default())
    }
}

/// `{"name": ...}`, as receivers are shown.
#[derive(Serialize)]
struct ReceiverName<'a> {
    name: &'a str,
}

/// The query parameters of a request, in order, decoded (`filter` may repeat).
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (a space in a query); invalid UTF-8 is replaced.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A boolean query parameter.
fn parse_bool(name: &str, value: &str) -> Result<bool, AmError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(AmError::Schema {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: format!("{name} in query must be of type boolean: {value:?}"),
        }),
    }
}

/// Whether a label set (or a silence's matchers, by name and value) passes `filter`
/// matchers, as Alertmanager filters: a matcher on the empty value also accepts a missing
/// name (`a=""`) or any present one (`a!=""`).
fn passes_filter<'a>(
    filter: &[crate::model::matcher::Matcher],
    get: impl Fn(&str) -> Option<&'a str>,
) -> bool {
    filter.iter().all(|m| {
        let value = get(m.name());
        if m.value().is_empty() && value.is_some() == m.op().is_negative() {
            return true;
        }
        m.matches(value.unwrap_or(""))
    })
}

/// Parses the repeated `filter` parameters among the query's (each may hold several
/// matchers).
fn parse_filter(
    pairs: &[(String, String)],
) -> Result<Vec<crate::model::matcher::Matcher>, AmError> {
    let mut out = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "filter") {
        out.extend(
            crate::model::matcher::parse_matchers(v)
                .map_err(|e| AmError::Message(StatusCode::BAD_REQUEST, e))?,
        );
    }
    Ok(out)
}

/// The Alertmanager release whose API Faultline answers as. `amtool` compares its own
/// version with `versionInfo.version` and warns on every command when they differ.
const API_VERSION: &str = "0.25.0";

/// `GET /api/v2/status`: what `amtool` asks before every command. Faultline runs alone:
/// the cluster is disabled, with no peers. The version is [`API_VERSION`]; Faultline's own
/// is in `revision`. The configuration is the routing part of the rules, as Alertmanager
/// YAML (see [`original`]).
async fn status(axum::extract::State(svc): axum::extract::State<Arc<Service>>) -> Response {
    json_response(&serde_json::json!({
        "cluster": {"peers": [], "status": "disabled"},
        "config": {"original": original::render(&svc.rules())},
        "uptime": crate::model::time::rfc3339(*STARTED),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": concat!("faultline-", env!("CARGO_PKG_VERSION")),
            "version": API_VERSION,
        },
    }))
}

/// `GET /api/v2/receivers`: the receivers of the loaded rule files.
async fn receivers_list(axum::extract::State(svc): axum::extract::State<Arc<Service>>) -> Response {
    let rules = svc.rules();
    let names: Vec<ReceiverName> = rules
        .receivers
        .keys()
        .map(|name| ReceiverName { name })
        .collect();
    json_response(&names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn query_parameters_are_decoded_and_may_repeat() {
        assert_eq!(
            query_pairs(Some(
                "filter=alertname%3DB&filter=instance%3D~%22a%7Cb%22&active&x=a+b%"
            )),
            vec![
                ("filter".to_string(), "alertname=B".to_string()),
                ("filter".to_string(), "instance=~\"a|b\"".to_string()),
                ("active".to_string(), String::new()),
                ("x".to_string(), "a b%".to_string()),
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    fn json(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn times_and_fingerprints_serialize_as_alertmanager_shows_them() {
        let days = (-800_000..3_000_000)
            .step_by(997)
            .map(|d| d * 86_400_000 + 45_296_789);
        let edges = [
            0,
            -1,
            951_782_400_000,     // 2000-02-29
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
            -62_135_596_800_000, // 0001-01-01
            253_402_300_800_000, // year 10000: the slow path
        ];
        for ms in edges.into_iter().chain(days) {
            let shown = crate::model::time::rfc3339(ms);
            assert_eq!(json(&Rfc3339(ms)), format!("{shown:?}"), "{ms}");
            // What listings copy as it is, where there is a fast path.
            if let Some(ascii) = Rfc3339(ms).ascii() {
                assert_eq!(std::str::from_utf8(&ascii).unwrap(), shown, "{ms}");
            }
        }
        assert!(Rfc3339(253_402_300_799_999).ascii().is_some());
        assert_eq!(&Hex(0xab).ascii(), b"00000000000000ab");
        assert_eq!(json(&Hex(0x4309_838f_f01e_f783)), r#""4309838ff01ef783""#);
        assert_eq!(json(&Hex(0xab)), r#""00000000000000ab""#);
    }

    #[test]
    fn filters_treat_empty_values_as_alertmanager_does() {
        let labels = Labels::from_pairs([("a", "1")]);
        let get = |n: &str| labels.get(n);
        let f = |s: &str| parse_filter(&[("filter".to_string(), s.to_string())]).unwrap();
        assert!(passes_filter(&f("a=1"), get));
        assert!(!passes_filter(&f("a=2"), get));
        assert!(passes_filter(&f(r#"b="""#), get));
        assert!(!passes_filter(&f(r#"a="""#), get));
        assert!(passes_filter(&f(r#"a!="""#), get));
        assert!(passes_filter(&f("a=~1|2, b!=x"), get));
    }
}
