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

mod payload;

use faultline_sdk::http::{ErrorKind, Request};
use faultline_sdk::recovery::*;
use serde::Deserialize;

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
}

impl Recovery for Webhook {
    type Params = Params;

    fn new(p: Params) -> Result<Self, String> {
        if p.url.is_empty() {
            return Err("params: `url` is empty".to_string());
        }
        if p.signature_header.is_empty() {
            return Err("params: `signature_header` is empty".to_string());
        }
        if p.timeout == 0 {
            return Err("params: `timeout` must be at least 1 (milliseconds)".to_string());
        }
        Ok(Self { p })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let body = match payload::body(input) {
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
        match http::send(request) {
            Ok(response) => {
                let status = response.status;
                let answer = format!("{target} answered {status}");
                match status {
                    200..=299 => Outcome::Done(answer),
                    429 | 500..=599 => Outcome::RetryLater(with_body(answer, &response.body)),
                    _ => Outcome::Failed(with_body(answer, &response.body)),
                }
            }
            Err(e) if e.kind == ErrorKind::Transport => {
                Outcome::RetryLater(format!("{target}: {e}"))
            }
            Err(e) => Outcome::Failed(format!("{target}: {e}")),
        }
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

/// `message`, followed by the start of the response body if there is one: receivers
/// usually say there what they did not like.
fn with_body(message: String, body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = text.trim();
    if text.is_empty() {
        message
    } else {
        format!("{message}: {text}")
    }
}

export_recovery!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::http::{HttpError, Response};
    use faultline_sdk::testing;
    use serde_json::Value;

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

    /// The capture, with its generator URL replaced by ours: the WIT alert carries none.
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
