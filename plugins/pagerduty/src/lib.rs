//! `pagerduty`: a recovery action that triggers a PagerDuty incident for a firing incident
//! and resolves it when the incident resolves, through the
//! [Events API v2](https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
//! The integration's routing key stays a secret of a connection: the plugin writes a
//! placeholder for it in the body, and the host fills it in as the request leaves.
//!
//! ```toml
//! # faultline.toml
//! [connection.pagerduty]
//! url = "https://events.pagerduty.com"
//! secrets = { routing_key = { file = "/etc/faultline/pagerduty-routing-key" } }
//!
//! # a rule file
//! [[receiver]]
//! name = "oncall"
//! plugin = "pagerduty"
//! params = { connection = "pagerduty" }   # secret = "routing_key", severity = "error", timeout = 10000 (ms)
//! grants = { connections = ["pagerduty"] }
//! ```
//!
//! Each notification is one `POST /v2/enqueue` with `dedup_key` = the incident's id, so
//! retries and repeated notifications update one PagerDuty incident, and the resolution
//! closes it. A trigger carries `payload.summary` (`[FIRING:2] HighErrorRate`, cut to
//! PagerDuty's 1024 characters), `payload.source` (the alerts' common `instance` label, else
//! Faultline's external URL), `payload.severity` (the alerts' common `severity` label when
//! it is one of PagerDuty's `critical`, `error`, `warning`, `info`, else the `severity`
//! param), `payload.timestamp` (when the incident started), `payload.class` (the common
//! `alertname`), `payload.custom_details` (the alerts' labels and annotations, and the
//! suspects), `client`, `client_url` and `links` (each alert's source). A resolve carries
//! only `routing_key`, `event_action` and `dedup_key`, as documented.
//!
//! PagerDuty answers 202 when it accepted the event: done. 400 (an invalid event) fails with
//! PagerDuty's message; 429 and 5xx are retried, as are transport errors; anything else
//! fails.

mod event;

use faultline_sdk::http::Request;
use faultline_sdk::recovery::*;
use serde::Deserialize;

/// PagerDuty's severities, for the `severity` param and label.
pub(crate) const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The action's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The connection whose URL is PagerDuty's events endpoint
    /// (`https://events.pagerduty.com`) and whose secrets hold the routing key.
    pub connection: String,
    /// The name of the connection's secret holding the integration's routing key.
    #[serde(default = "default_secret")]
    pub secret: String,
    /// The severity of incidents whose alerts do not share a `severity` label PagerDuty
    /// knows: `critical`, `error`, `warning` or `info`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// How long to wait for PagerDuty's answer, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
}

fn default_secret() -> String {
    "routing_key".to_string()
}

fn default_severity() -> String {
    "error".to_string()
}

fn default_timeout() -> u32 {
    10_000
}

/// The action, built from validated [`Params`].
#[derive(Debug)]
pub struct PagerDuty {
    p: Params,
}

impl Recovery for PagerDuty {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.connection.is_empty() {
            return Err("params: `connection` is empty".into());
        }
        if p.secret.is_empty() {
            return Err("params: `secret` is empty".into());
        }
        if !SEVERITIES.contains(&p.severity.as_str()) {
            return Err(format!(
                "params: `severity` must be one of {}, not {:?}",
                SEVERITIES.join(", "),
                p.severity
            )
            .into());
        }
        if p.timeout == 0 {
            return Err("params: `timeout` must be at least 1 (milliseconds)".into());
        }
        Ok(Self { p })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let routing_key = http::secret(&self.p.secret);
        let event = event::event(input, &routing_key, &self.p.severity);
        let action = event["event_action"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let body = match serde_json::to_vec(&event) {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(format!("encoding the event: {e}")),
        };
        let request = Request::post("/v2/enqueue")
            .connection(&self.p.connection)
            .header("Content-Type", "application/json")
            .body(body)
            .timeout_ms(self.p.timeout);
        let target = format!("PagerDuty (connection {})", self.p.connection);
        Outcome::of_http(&target, &format!(" to {action}"), http::send(request))
    }
}

export_recovery!(PagerDuty);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::http::ErrorKind;
    use faultline_sdk::http::{HttpError, Response};
    use faultline_sdk::testing;
    use serde_json::Value;

    pub(crate) fn incident(status: &str) -> RecoverInput {
        let alert = |instance: &str| Alert {
            labels: Labels::from([
                ("alertname", "HighErrorRate"),
                ("instance", instance),
                ("severity", "warning"),
            ]),
            annotations: Labels::from([("summary", "5xx ratio above 0.2")]),
            value: Some(0.9),
            state: status.into(),
            active_at: 1_795_684_999_484,
            resolved_at: (status == "resolved").then_some(1_795_685_249_484),
            generator_url: Some("http://prometheus:9090/graph?g0.expr=up".into()),
        };
        RecoverInput {
            incident: Incident {
                id: "inc-7".into(),
                group_labels: Labels::from([("alertname", "HighErrorRate")]),
                status: status.into(),
                alerts: vec![alert("node4")],
                ..Default::default()
            },
            suspects: vec![
                Suspect::new()
                    .label("instance", "node4")
                    .score(0.95)
                    .reason("db"),
            ],
            attempt: 1,
            receiver: "oncall".into(),
            external_url: "http://faultline:9797".into(),
            ..Default::default()
        }
    }

    fn pagerduty() -> PagerDuty {
        PagerDuty::configure(r#"{"connection": "pd"}"#).unwrap()
    }

    fn attempt(response: Result<Response, HttpError>) -> Outcome {
        testing::reset();
        testing::http_respond(response);
        pagerduty().recover(&incident("firing"))
    }

    #[test]
    fn triggers_and_resolves_through_the_connection() {
        for status in ["firing", "resolved"] {
            testing::http_respond(Ok(Response::new(202).body(
                r#"{"status":"success","message":"Event processed","dedup_key":"inc-7"}"#,
            )));
            let outcome = pagerduty().recover(&incident(status));
            let action = if status == "firing" {
                "trigger"
            } else {
                "resolve"
            };
            assert_eq!(
                outcome,
                Outcome::Done(format!(
                    "PagerDuty (connection pd) answered 202 to {action}"
                ))
            );
            let sent = testing::http_requests().pop().unwrap();
            assert_eq!(
                (sent.method.as_str(), sent.url.as_str()),
                ("POST", "/v2/enqueue")
            );
            assert_eq!(sent.connection.as_deref(), Some("pd"));
            assert_eq!(sent.header_value("content-type"), Some("application/json"));
            let body: Value = serde_json::from_slice(&sent.body).unwrap();
            assert_eq!(body["routing_key"], "{{secret:routing_key:test}}");
            assert_eq!(body["event_action"], action);
            assert_eq!(body["dedup_key"], "inc-7");
        }
    }

    #[test]
    fn outcomes_follow_pagerdutys_answers() {
        assert!(matches!(attempt(Ok(Response::new(202))), Outcome::Done(_)));
        assert_eq!(
            attempt(Ok(Response::new(400).body(
                r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#
            ))),
            Outcome::Failed(
                "PagerDuty (connection pd) answered 400 to trigger: {\"status\":\"invalid event\",\
                 \"message\":\"Event object is invalid\",\"errors\":[\"Length of 'routing_key' is \
                 incorrect (should be 32 characters)\"]}"
                    .into()
            )
        );
        assert!(matches!(
            attempt(Ok(Response::new(429))),
            Outcome::RetryLater(_)
        ));
        assert!(matches!(
            attempt(Ok(Response::new(503))),
            Outcome::RetryLater(_)
        ));
        assert!(matches!(
            attempt(Ok(Response::new(403))),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            attempt(Err(HttpError::new(ErrorKind::Transport, "timed out"))),
            Outcome::RetryLater(_)
        ));
        assert!(matches!(
            attempt(Err(HttpError::new(ErrorKind::Denied, "not granted"))),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| PagerDuty::configure(params).unwrap_err();
        assert_eq!(refused("{}"), "params: missing field `connection`");
        assert_eq!(
            refused(r#"{"connection": "pd", "severity": "high"}"#),
            r#"params: `severity` must be one of critical, error, warning, info, not "high""#
        );
        assert_eq!(
            refused(r#"{"connection": "pd", "secret": ""}"#),
            "params: `secret` is empty"
        );
        assert_eq!(
            refused(r#"{"connection": "pd", "timeout": 0}"#),
            "params: `timeout` must be at least 1 (milliseconds)"
        );
        assert!(
            refused(r#"{"connection": "pd", "routing_key": "abc"}"#)
                .starts_with("params: unknown field `routing_key`")
        );
    }
}
