//! Alertmanager's API v2, so that the tools operators already have work against Faultline
//! unchanged: Prometheus, vmalert and Grafana post alerts, `amtool` queries alerts and
//! manages silences, and an existing Alertmanager forwards its notifications by webhook.
//!
//! | Route                                | Handler                    |
//! |--------------------------------------|----------------------------|
//! | `POST /api/v2/alerts`                | [`alerts::alerts_create`]  |
//! | `GET /api/v2/alerts`                 | [`alerts::alerts_list`]    |
//! | `GET /api/v2/alerts/groups`          | [`alerts::alert_groups_list`] |
//! | `POST /api/v1/alertmanager/webhook`  | [`alerts::webhook_receive`]: an Alertmanager `webhook_config` URL |
//! | `GET`, `POST /api/v2/silences`       | [`silences::silences_list`], [`silences::silences_create`] |
//! | `GET`, `DELETE /api/v2/silence/{id}` | [`silences::silence_get`], [`silences::silence_delete`] |
//! | `GET /api/v2/status`                 | [`status`]                 |
//! | `GET /api/v2/receivers`              | [`receivers_list`]         |
//!
//! Answers are Alertmanager 0.25's, shapes and messages: a handler's refusal is a JSON string
//! (`"start time must be before end time"`), a request that does not fit the API's schema is
//! `{"code": 602, "message": "comment in body is required"}`.

pub mod alerts;
pub mod silences;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::routing::post;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::model::Labels;
use crate::service::Service;

/// When the API was set up: the `uptime` of the status.
static STARTED: LazyLock<i64> = LazyLock::new(crate::now_ms);

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
    let now = crate::now_ms();
    let (firing, resolved) = svc.external.counts(now);
    let m = &svc.metrics;
    m.set("faultline_external_alerts", &[("state", "firing")], firing as f64);
    m.set(
        "faultline_external_alerts",
        &[("state", "resolved")],
        resolved as f64,
    );
    let mut by_state: HashMap<&str, usize> = HashMap::new();
    for s in svc.silences.list(now) {
        *by_state.entry(s.state(now).as_str()).or_default() += 1;
    }
    for state in ["active", "pending", "expired"] {
        let n = by_state.get(state).copied().unwrap_or(0);
        m.set("faultline_silences", &[("state", state)], n as f64);
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

/// A label set as a JSON object.
pub struct LabelMap<'a>(pub &'a Labels);

impl Serialize for LabelMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
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
fn passes_filter(filter: &[crate::rules::selector::Matcher], get: impl Fn(&str) -> Option<String>) -> bool {
    use crate::rules::selector::MatchOp;
    filter.iter().all(|m| {
        let value = get(m.name());
        let negative = matches!(m.op(), MatchOp::NotEqual | MatchOp::NotRegex);
        if m.value().is_empty() && value.is_some() == negative {
            return true;
        }
        m.matches(value.as_deref().unwrap_or(""))
    })
}

/// Parses repeated `filter` parameters (each may hold several matchers).
fn parse_filter<'a>(
    values: impl Iterator<Item = &'a str>,
) -> Result<Vec<crate::rules::selector::Matcher>, AmError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(
            crate::matchers::parse_matchers(v)
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
/// is in `revision`.
async fn status() -> Response {
    json_response(&serde_json::json!({
        "cluster": {"peers": [], "status": "disabled"},
        "config": {"original": ""},
        "uptime": crate::rfc3339(*STARTED),
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
async fn receivers_list(
    axum::extract::State(svc): axum::extract::State<Arc<Service>>,
) -> Response {
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

    #[test]
    fn query_parameters_are_decoded_and_may_repeat() {
        assert_eq!(
            query_pairs(Some("filter=alertname%3DB&filter=instance%3D~%22a%7Cb%22&active&x=a+b%")),
            vec![
                ("filter".to_string(), "alertname=B".to_string()),
                ("filter".to_string(), "instance=~\"a|b\"".to_string()),
                ("active".to_string(), String::new()),
                ("x".to_string(), "a b%".to_string()),
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn filters_treat_empty_values_as_alertmanager_does() {
        let labels = Labels::from_pairs([("a", "1")]);
        let get = |n: &str| labels.get(n).map(str::to_string);
        let f = |s: &str| parse_filter(std::iter::once(s)).unwrap();
        assert!(passes_filter(&f("a=1"), get));
        assert!(!passes_filter(&f("a=2"), get));
        assert!(passes_filter(&f(r#"b="""#), get));
        assert!(!passes_filter(&f(r#"a="""#), get));
        assert!(passes_filter(&f(r#"a!="""#), get));
        assert!(passes_filter(&f("a=~1|2, b!=x"), get));
    }
}
