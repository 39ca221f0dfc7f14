//! `slack`: a recovery action that posts the incident to a Slack channel through an
//! [incoming webhook](https://api.slack.com/messaging/webhooks). The webhook's URL is the
//! only credential Slack asks for, so it stays a secret of a connection: the plugin writes a
//! placeholder for its path, and the host fills it in as the request leaves.
//!
//! ```toml
//! # faultline.toml
//! [connection.slack]
//! url = "https://hooks.slack.com"
//! # The file holds the webhook URL's path: /services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX
//! secrets = { webhook_path = { file = "/etc/faultline/slack-webhook-path" } }
//!
//! # a rule file
//! [[receiver]]
//! name = "team-slack"
//! plugin = "slack"
//! params = { connection = "slack" }   # secret = "webhook_path", timeout = 10000 (ms)
//! grants = { connections = ["slack"] }
//! ```
//!
//! The message is Slack's documented payload: `text`, the notification's one line
//! (`[FIRING:2] HighErrorRate`, `[RESOLVED] HighErrorRate`), and `blocks` showing the same
//! line, one line per alert (its `summary` annotation, else its name, and its labels), the
//! top suspect when localizers named one, and the incident id with a link to Faultline. A
//! resolved incident posts a `[RESOLVED]` message. 2xx is done; 5xx, 429 and transport errors
//! are retried; anything else fails with Slack's answer (`invalid_payload`, `no_service`...).

mod message;

use faultline_sdk::http::Request;
use faultline_sdk::recovery::*;
use serde::Deserialize;

/// The action's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The connection whose URL is Slack's (`https://hooks.slack.com`) and whose secrets hold
    /// the webhook's path.
    pub connection: String,
    /// The name of the connection's secret holding the webhook URL's path.
    #[serde(default = "default_secret")]
    pub secret: String,
    /// How long to wait for Slack's answer, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
}

fn default_secret() -> String {
    "webhook_path".to_string()
}

fn default_timeout() -> u32 {
    10_000
}

/// The action, built from validated [`Params`].
#[derive(Debug)]
pub struct Slack {
    p: Params,
}

impl Recovery for Slack {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.connection.is_empty() {
            return Err("params: `connection` is empty".into());
        }
        if p.secret.is_empty() {
            return Err("params: `secret` is empty".into());
        }
        if p.timeout == 0 {
            return Err("params: `timeout` must be at least 1 (milliseconds)".into());
        }
        Ok(Self { p })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let body = match serde_json::to_vec(&message::message(input)) {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(format!("encoding the message: {e}")),
        };
        let request = Request::post(http::secret(&self.p.secret))
            .connection(&self.p.connection)
            .header("Content-Type", "application/json")
            .body(body)
            .timeout_ms(self.p.timeout);
        let target = format!("Slack (connection {})", self.p.connection);
        Outcome::of_http(&target, "", http::send(request))
    }
}

export_recovery!(Slack);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::http::ErrorKind;
    use faultline_sdk::http::{HttpError, Response};
    use faultline_sdk::testing;

    pub(crate) fn incident(status: &str) -> RecoverInput {
        let alert = |instance: &str, summary: Option<&str>| Alert {
            labels: Labels::from([
                ("alertname", "HighErrorRate"),
                ("instance", instance),
                ("job", "api"),
            ]),
            annotations: summary
                .map(|s| Labels::from([("summary", s)]))
                .unwrap_or_default(),
            state: status.into(),
            active_at: 1_795_684_999_484,
            resolved_at: (status == "resolved").then_some(1_795_685_249_484),
            ..Default::default()
        };
        RecoverInput {
            incident: Incident {
                id: "inc-7".into(),
                group_labels: Labels::from([("alertname", "HighErrorRate")]),
                status: status.into(),
                alerts: vec![
                    alert("node4", Some("5xx ratio 0.9 > 0.2 <b>")),
                    alert("node2", None),
                ],
                ..Default::default()
            },
            suspects: vec![
                Suspect::new()
                    .label("instance", "node4")
                    .score(0.95)
                    .reason("db"),
            ],
            attempt: 1,
            receiver: "team-slack".into(),
            external_url: "http://faultline:9797".into(),
            ..Default::default()
        }
    }

    fn slack() -> Slack {
        Slack::configure(r#"{"connection": "slack"}"#).unwrap()
    }

    fn attempt(response: Result<Response, HttpError>) -> Outcome {
        testing::reset();
        testing::http_respond(response);
        slack().recover(&incident("firing"))
    }

    #[test]
    fn posts_to_the_secret_path_through_the_connection() {
        testing::http_respond(Ok(Response::new(200).body("ok")));
        let outcome = slack().recover(&incident("firing"));
        assert_eq!(
            outcome,
            Outcome::Done("Slack (connection slack) answered 200".into())
        );
        let sent = testing::http_requests().remove(0);
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.url, "{{secret:webhook_path:test}}");
        assert_eq!(sent.connection.as_deref(), Some("slack"));
        assert_eq!(sent.header_value("content-type"), Some("application/json"));
        assert_eq!(sent.timeout_ms, Some(10_000));

        let params = r#"{"connection": "ops", "secret": "hook", "timeout": 500}"#;
        testing::http_respond(Ok(Response::new(200)));
        Slack::configure(params)
            .unwrap()
            .recover(&incident("firing"));
        let sent = testing::http_requests().remove(1);
        assert_eq!(sent.url, "{{secret:hook:test}}");
        assert_eq!(sent.connection.as_deref(), Some("ops"));
        assert_eq!(sent.timeout_ms, Some(500));
    }

    #[test]
    fn outcomes_follow_slacks_answers() {
        assert!(matches!(attempt(Ok(Response::new(200))), Outcome::Done(_)));
        assert_eq!(
            attempt(Ok(Response::new(400).body("invalid_payload"))),
            Outcome::Failed("Slack (connection slack) answered 400: invalid_payload".into())
        );
        assert!(matches!(
            attempt(Ok(Response::new(404).body("no_service"))),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            attempt(Ok(Response::new(429))),
            Outcome::RetryLater(_)
        ));
        assert_eq!(
            attempt(Ok(Response::new(500).body("rollup_error"))),
            Outcome::RetryLater("Slack (connection slack) answered 500: rollup_error".into())
        );
        assert!(matches!(
            attempt(Err(HttpError::new(ErrorKind::Transport, "refused"))),
            Outcome::RetryLater(_)
        ));
        assert_eq!(
            attempt(Err(HttpError::new(
                ErrorKind::Invalid,
                "connection \"slack\": the connection has no secret \"webhook_path\""
            ))),
            Outcome::Failed(
                "Slack (connection slack): invalid request: connection \"slack\": \
                 the connection has no secret \"webhook_path\""
                    .into()
            )
        );
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| Slack::configure(params).unwrap_err();
        assert_eq!(refused("{}"), "params: missing field `connection`");
        assert_eq!(
            refused(r#"{"connection": ""}"#),
            "params: `connection` is empty"
        );
        assert_eq!(
            refused(r#"{"connection": "s", "secret": ""}"#),
            "params: `secret` is empty"
        );
        assert_eq!(
            refused(r#"{"connection": "s", "timeout": 0}"#),
            "params: `timeout` must be at least 1 (milliseconds)"
        );
        assert!(
            refused(r#"{"connection": "s", "url": "https://hooks.slack.com/x"}"#)
                .starts_with("params: unknown field `url`")
        );
    }
}
