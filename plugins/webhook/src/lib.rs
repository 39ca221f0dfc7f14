//! `webhook`: a recovery action that POSTs the incident as an Alertmanager webhook
//! notification (payload version 4), so receivers built for Alertmanager work unchanged.
//!
//! ```toml
//! [params]
//! url = "https://hooks.example.com/faultline"
//! signature_header = "X-Faultline-Signature"   # default
//! timeout = 10000                              # milliseconds, default
//! # connection = "ops"   # send through a connection of the server config; `url` is a path
//! ```
//!
//! The request carries `Idempotency-Key` (stable across retries of one notification) and,
//! when the rule grants a secret, an HMAC-SHA256 of the body under `signature_header`, added
//! by the host. 2xx is done; 5xx, 429 and transport errors are retried; anything else fails.
//!
//! # Another JSON shape
//!
//! For a receiver that expects something else (Slack, a chat bot, a ticketing API), give a
//! `body_template`: a JSON value (a TOML table in the rule file) whose strings may hold
//! `{{ path }}` placeholders:
//!
//! ```toml
//! [params.body_template]
//! text = "{{ commonAnnotations.summary }} on {{ suspects.0.labels.instance }}"
//! incident = "{{ groupKey }}"
//! alerts = "{{ alerts }}"
//! ```
//!
//! It is rendered against the Alertmanager payload above, plus `suspects` (each with
//! `labels`, `score` and `reason`, best first), `ambiguous` (true when the top suspect does
//! not lead the next by the receiver's margin: where the fault is, is not clear) and
//! `idempotencyKey`. A path is keys and array
//! indices joined by dots (`alerts.0.labels.instance`). A string that is exactly one
//! placeholder becomes the value at its path with its JSON type (`alerts` above stays an
//! array); placeholders inside longer text become the value's text, strings unquoted and
//! anything else as compact JSON. A path that leads nowhere renders as the empty string.
//! Keys and non-string values are sent as written. An unbalanced `{{` or `}}`, or an empty
//! path, refuses the rule. The body is still sent as `application/json`. Without a
//! template the body is exactly Alertmanager's (no `suspects`, no `idempotencyKey`).

mod payload;
mod template;

use faultline_sdk::http::Request;
use faultline_sdk::recovery::*;
use serde::Deserialize;
use serde_json::Value;

use crate::template::Template;

/// The action's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Where to POST: an absolute URL; with `connection`, a path appended to its URL.
    pub url: String,
    /// The header under which the host signs the body, when the rule grants a secret.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// How long to wait for the response, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    /// A connection of the server config, whose URL, token and TLS settings the host adds.
    pub connection: Option<String>,
    /// The body's shape, when not Alertmanager's: JSON with `{{ path }}` placeholders
    /// (see the crate's documentation).
    pub body_template: Option<Value>,
}

fn default_signature_header() -> String {
    "X-Faultline-Signature".to_string()
}

fn default_timeout() -> u32 {
    10_000
}

/// The action, built from validated [`Params`].
#[derive(Debug)]
pub struct Webhook {
    p: Params,
    template: Option<Template>,
}

impl Recovery for Webhook {
    type Params = Params;

    fn new(mut p: Params) -> Result<Self, Error> {
        if p.url.is_empty() {
            return Err("params: `url` is empty".into());
        }
        if p.signature_header.is_empty() {
            return Err("params: `signature_header` is empty".into());
        }
        if p.timeout == 0 {
            return Err("params: `timeout` must be at least 1 (milliseconds)".into());
        }
        let template = p.body_template.take().map(Template::new).transpose()?;
        Ok(Self { p, template })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let body = match &self.template {
            None => payload::body(input),
            Some(template) => payload::context(input)
                .and_then(|context| serde_json::to_vec(&template.render(&context))),
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(format!("encoding the notification: {e}")),
        };
        let mut request = Request::post(&self.p.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &input.idempotency_key)
            .header("User-Agent", "Faultline/0.1")
            .body(body)
            .timeout_ms(self.p.timeout)
            .sign_header(&self.p.signature_header);
        if let Some(connection) = &self.p.connection {
            request = request.connection(connection);
        }
        let target = self.target();
        Outcome::of_http(&target, "", http::send(request))
    }
}

impl Webhook {
    /// Where the notification goes, for messages.
    fn target(&self) -> String {
        match &self.p.connection {
            Some(connection) => format!("{} (connection {connection})", self.p.url),
            None => self.p.url.clone(),
        }
    }
}

export_recovery!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::http::ErrorKind;
    use faultline_sdk::http::{HttpError, Response};
    use faultline_sdk::testing;
    use serde_json::json;

    const FIRING: &str =
        include_str!("../../../tests/fixtures/alertmanager-0.25/webhook-firing.json");
    const RESOLVED: &str =
        include_str!("../../../tests/fixtures/alertmanager-0.25/webhook-resolved.json");

    /// The incident of the Alertmanager 0.25 capture, firing or resolved.
    fn captured(resolved: bool) -> RecoverInput {
        let labels = Labels::from([
            ("alertname", "NodeExporterUp"),
            ("env", "peertest"),
            ("instance", "127.0.0.1:19100"),
            ("job", "node"),
            ("severity", "info"),
        ]);
        let status = if resolved { "resolved" } else { "firing" };
        RecoverInput {
            now: 1_795_685_249_484,
            incident: Incident {
                id: "incident-1".into(),
                group_key: r#"{}:{alertname="NodeExporterUp"}"#.into(),
                group_labels: Labels::from([("alertname", "NodeExporterUp")]),
                status: status.into(),
                alerts: vec![Alert {
                    labels,
                    annotations: Labels::from([("summary", "node exporter 127.0.0.1:19100 is up")]),
                    value: Some(1.0),
                    state: status.into(),
                    active_at: 1_795_684_999_484,
                    resolved_at: resolved.then_some(1_795_685_249_484),
                    generator_url: None,
                }],
            },
            attempt: 1,
            idempotency_key: "idem-42".into(),
            receiver: "webhook".into(),
            external_url: "http://vm:19093".into(),
            ..Default::default()
        }
    }

    fn webhook(params: &str) -> Webhook {
        Webhook::configure(params).unwrap()
    }

    /// Runs one attempt against a mocked response; returns the outcome and the request.
    fn attempt(hook: &mut Webhook, response: Result<Response, HttpError>) -> (Outcome, Request) {
        testing::reset();
        testing::http_respond(response);
        let outcome = hook.recover(&captured(false));
        (outcome, testing::http_requests().remove(0))
    }

    /// The capture, with its generator URL replaced by ours: the alert given here has none
    /// of its own (a rule alert), so the external URL stands in.
    fn expected(capture: &str) -> Value {
        let mut expected: Value = serde_json::from_str(capture).unwrap();
        expected["alerts"][0]["generatorURL"] = "http://vm:19093".into();
        expected
    }

    #[test]
    fn payload_matches_alertmanager() {
        let mut hook = webhook(r#"{"url": "http://127.0.0.1:18082/webhook"}"#);
        for (resolved, capture) in [(false, FIRING), (true, RESOLVED)] {
            testing::http_respond(Ok(Response::new(200)));
            hook.recover(&captured(resolved));
            let sent = testing::http_requests().pop().unwrap();
            let body: Value = serde_json::from_slice(&sent.body).unwrap();
            assert_eq!(body, expected(capture), "resolved: {resolved}");
        }
    }

    #[test]
    fn common_labels_are_shared_by_all_alerts() {
        let mut input = captured(false);
        let mut other = input.incident.alerts[0].clone();
        other.labels.insert("instance", "127.0.0.1:19101");
        other.annotations.insert("summary", "another");
        input.incident.alerts.push(other);
        testing::http_respond(Ok(Response::new(200)));
        webhook(r#"{"url": "http://h/"}"#).recover(&input);
        let body: Value = serde_json::from_slice(&testing::http_requests()[0].body).unwrap();
        assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(body["commonLabels"].get("instance"), None);
        assert_eq!(body["commonLabels"]["job"], "node");
        assert_eq!(body["commonAnnotations"], serde_json::json!({}));
        assert_ne!(
            body["alerts"][0]["fingerprint"],
            body["alerts"][1]["fingerprint"]
        );
    }

    #[test]
    fn request_headers_and_options() {
        let mut hook = webhook(r#"{"url": "http://h/hook"}"#);
        let (_, sent) = attempt(&mut hook, Ok(Response::new(200)));
        assert_eq!(
            (sent.method.as_str(), sent.url.as_str()),
            ("POST", "http://h/hook")
        );
        assert_eq!(sent.header_value("content-type"), Some("application/json"));
        assert_eq!(sent.header_value("idempotency-key"), Some("idem-42"));
        assert_eq!(sent.header_value("user-agent"), Some("Faultline/0.1"));
        assert_eq!(sent.sign_header.as_deref(), Some("X-Faultline-Signature"));
        assert_eq!(sent.timeout_ms, Some(10_000));
        assert_eq!(sent.connection, None);

        let params = r#"{"url": "/hooks/1", "connection": "ops", "timeout": 2500,
                         "signature_header": "X-Sig"}"#;
        let (_, sent) = attempt(&mut webhook(params), Ok(Response::new(200)));
        assert_eq!(sent.url, "/hooks/1");
        assert_eq!(sent.connection.as_deref(), Some("ops"));
        assert_eq!(sent.timeout_ms, Some(2500));
        assert_eq!(sent.sign_header.as_deref(), Some("X-Sig"));
    }

    #[test]
    fn outcomes_follow_the_status() {
        let mut hook = webhook(r#"{"url": "http://h/"}"#);
        let mut outcome = |response| attempt(&mut hook, response).0;
        assert_eq!(
            outcome(Ok(Response::new(204))),
            Outcome::Done("http://h/ answered 204".into())
        );
        assert_eq!(
            outcome(Ok(Response::new(503).body("overloaded\n"))),
            Outcome::RetryLater("http://h/ answered 503: overloaded".into())
        );
        assert!(matches!(
            outcome(Ok(Response::new(429))),
            Outcome::RetryLater(_)
        ));
        assert!(matches!(
            outcome(Ok(Response::new(500))),
            Outcome::RetryLater(_)
        ));
        assert_eq!(
            outcome(Ok(Response::new(400).body("bad payload"))),
            Outcome::Failed("http://h/ answered 400: bad payload".into())
        );
        assert!(matches!(
            outcome(Ok(Response::new(404))),
            Outcome::Failed(_)
        ));
        assert_eq!(
            outcome(Err(HttpError::new(
                ErrorKind::Transport,
                "timed out after 10000 ms"
            ))),
            Outcome::RetryLater("http://h/: transport error: timed out after 10000 ms".into())
        );
        assert_eq!(
            outcome(Err(HttpError::new(ErrorKind::Denied, "host h not granted"))),
            Outcome::Failed("http://h/: denied: host h not granted".into())
        );
        assert!(matches!(
            outcome(Err(HttpError::new(ErrorKind::Invalid, "bad url"))),
            Outcome::Failed(_)
        ));
    }

    /// `captured(false)` with two suspects.
    fn with_suspects() -> RecoverInput {
        let mut input = captured(false);
        input.suspects = vec![
            Suspect::new()
                .label("instance", "node4")
                .score(0.95)
                .reason("latency z=+56.3"),
            Suspect::new().label("instance", "node2").score(0.6),
        ];
        input
    }

    /// The body sent for `input` by a webhook with `params`.
    fn sent_body(params: Value, input: &RecoverInput) -> Value {
        testing::http_respond(Ok(Response::new(200)));
        Webhook::configure(&params.to_string())
            .unwrap()
            .recover(input);
        let sent = testing::http_requests().pop().unwrap();
        assert_eq!(sent.header_value("content-type"), Some("application/json"));
        serde_json::from_slice(&sent.body).unwrap()
    }

    #[test]
    fn template_makes_a_slack_message() {
        let params = json!({
            "url": "https://hooks.slack.com/services/T/B/X",
            "body_template": {
                "text": "{{ commonAnnotations.summary }} on {{ suspects.0.labels.instance }}",
                "incident": "{{ groupKey }}",
                "alerts": "{{ alerts }}",
                "username": "faultline",
                "unfurl_links": false,
            }
        });
        let body = sent_body(params, &with_suspects());
        let alerts = expected(FIRING)["alerts"].clone();
        assert_eq!(
            body,
            json!({
                "text": "node exporter 127.0.0.1:19100 is up on node4",
                "incident": r#"{}:{alertname="NodeExporterUp"}"#,
                "alerts": alerts,
                "username": "faultline",
                "unfurl_links": false,
            })
        );
    }

    #[test]
    fn template_keeps_whole_placeholders_typed() {
        let params = json!({
            "url": "http://h/",
            "body_template": {
                "score": "{{ suspects.0.score }}",
                "suspect": "{{ suspects.1 }}",
                "labels": "{{ groupLabels }}",
                "truncated": "{{ truncatedAlerts }}",
                "key": "{{ idempotencyKey }}",
                "as_text": "score {{ suspects.0.score }}, labels {{ groupLabels }}",
                "{{ status }}": "keys are not templated",
                "copied": [1, true, null, 2.5],
            }
        });
        assert_eq!(
            sent_body(params, &with_suspects()),
            json!({
                "score": 0.95,
                "suspect": {"labels": {"instance": "node2"}, "score": 0.6, "reason": ""},
                "labels": {"alertname": "NodeExporterUp"},
                "truncated": 0,
                "key": "idem-42",
                "as_text": r#"score 0.95, labels {"alertname":"NodeExporterUp"}"#,
                "{{ status }}": "keys are not templated",
                "copied": [1, true, null, 2.5],
            })
        );
    }

    #[test]
    fn template_missing_paths_render_empty() {
        let params = json!({
            "url": "http://h/",
            "body_template": {
                "whole": "{{ suspects.0.reason }}",
                "text": "[{{ commonAnnotations.runbook }}] {{ alerts.3.labels.instance }}!",
                "through_a_string": "{{ receiver.name }}",
            }
        });
        // No suspects at all: `suspects` is an empty list.
        assert_eq!(
            sent_body(params, &captured(false)),
            json!({"whole": "", "text": "[] !", "through_a_string": ""})
        );
    }

    #[test]
    fn template_nests_arrays_and_indexes_into_them() {
        let params = json!({
            "url": "http://h/",
            "body_template": {
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "*{{ status }}*: {{ alerts.0.labels.alertname }}"}},
                    {"type": "context", "elements": [
                        ["{{ suspects.0.labels.instance }}", "{{ suspects.1.labels.instance }}"],
                        "{{ alerts.0.labels }}",
                    ]},
                ]
            }
        });
        let labels = expected(FIRING)["alerts"][0]["labels"].clone();
        assert_eq!(
            sent_body(params, &with_suspects()),
            json!({
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "*firing*: NodeExporterUp"}},
                    {"type": "context", "elements": [["node4", "node2"], labels]},
                ]
            })
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        let refused = |template: Value| {
            Webhook::configure(&json!({"url": "http://h/", "body_template": template}).to_string())
                .unwrap_err()
        };
        assert_eq!(
            refused(json!({"text": "{{ groupKey"})),
            r#"params: `body_template.text`: `{{` without `}}` in "{{ groupKey""#
        );
        assert_eq!(
            refused(json!({"a": [{"b": "{{}}"}]})),
            r#"params: `body_template.a.0.b`: empty placeholder `{{ }}` in "{{}}""#
        );
        assert!(refused(json!("status }}")).starts_with("params: `body_template`: `}}`"));
    }

    #[test]
    fn default_body_has_no_template_extras() {
        // Suspects and the idempotency key are in the template context only.
        let body = sent_body(json!({"url": "http://h/"}), &with_suspects());
        assert_eq!(body, expected(FIRING));
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| Webhook::configure(params).unwrap_err();
        assert_eq!(refused("{}"), "params: missing field `url`");
        assert_eq!(refused(r#"{"url": ""}"#), "params: `url` is empty");
        assert_eq!(
            refused(r#"{"url": "http://h/", "timeout": 0}"#),
            "params: `timeout` must be at least 1 (milliseconds)"
        );
        assert_eq!(
            refused(r#"{"url": "http://h/", "timeout": "10s"}"#),
            r#"params: invalid type: string "10s", expected u32"#
        );
        assert!(
            refused(r#"{"url": "http://h/", "secret": "x"}"#)
                .starts_with("params: unknown field `secret`")
        );
    }
}
