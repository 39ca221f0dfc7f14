//! `email`: a recovery action that mails the incident, through an SMTP connection of the
//! server config. The connection holds the server (spoken to with STARTTLS, required), the
//! credentials and the sender; the action names the recipients.
//!
//! ```toml
//! # faultline.toml
//! [connection.mail]
//! smtp = "mail.example.com:587"
//! from = "Faultline <faultline@example.com>"
//! username = "faultline"
//! password = { file = "/etc/faultline/smtp-password" }
//! ca = "/etc/ssl/certs/ca-certificates.crt"
//!
//! # a rule file
//! [[receiver]]
//! name = "ops-mail"
//! plugin = "email"
//! params = { connection = "mail", to = ["ops@example.com", "DB team <db@example.com>"] }
//! grants = { connections = ["mail"] }
//! ```
//!
//! The subject is Alertmanager's notification title (`[FIRING:2] HighErrorRate`,
//! `[RESOLVED] HighErrorRate`): a resolved incident is mailed too. The plain-text body lists
//! each alert (its summary, labels, other annotations, start and source), the top suspects,
//! and the incident's id with a link to Faultline. Accepted by the server is done; a server
//! that cannot be reached or answers 4xx is retried; a 5xx answer, a recipient that is not
//! an address, or a connection that is not granted fails.

use faultline_sdk::mail::{ErrorKind, Message};
use faultline_sdk::recovery::*;
use faultline_sdk::time::rfc3339;
use serde::Deserialize;

/// Suspects listed in a mail.
const MAX_SUSPECTS: usize = 3;

/// The action's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The SMTP connection of the server config to send through.
    pub connection: String,
    /// Recipients: `ops@example.com` or `Ops <ops@example.com>`.
    pub to: Vec<String>,
}

/// The action, built from validated [`Params`].
#[derive(Debug)]
pub struct Email {
    p: Params,
}

impl Recovery for Email {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.connection.is_empty() {
            return Err("params: `connection` is empty".into());
        }
        if p.to.is_empty() {
            return Err("params: `to` needs at least one recipient".into());
        }
        if let Some(bad) = p.to.iter().find(|a| !a.contains('@')) {
            return Err(format!("params: `to`: {bad:?} is not a mail address").into());
        }
        Ok(Self { p })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let message = self.p.to.iter().fold(
            Message::new(&self.p.connection, title(input), body(input)),
            |m, to| m.to(to),
        );
        let target = format!(
            "mail to {} (connection {})",
            self.p.to.join(", "),
            self.p.connection
        );
        match mail::send(message) {
            Ok(()) => Outcome::Done(format!("{target} accepted")),
            Err(e) if e.kind == ErrorKind::Transient => {
                Outcome::RetryLater(format!("{target}: {e}"))
            }
            Err(e) => Outcome::Failed(format!("{target}: {e}")),
        }
    }
}

/// Alertmanager's notification title: `[FIRING:2] <group label values>`, `[RESOLVED] ...`.
fn title(input: &RecoverInput) -> String {
    let incident = &input.incident;
    let status = if incident.status == "resolved" {
        "RESOLVED".to_string()
    } else {
        let firing = incident
            .alerts
            .iter()
            .filter(|a| a.state != "resolved")
            .count();
        format!("FIRING:{firing}")
    };
    let mut name: Vec<&str> = incident.group_labels.iter().map(|(_, v)| v).collect();
    if name.is_empty() {
        name.extend(
            incident
                .alerts
                .first()
                .and_then(|a| a.labels.get("alertname")),
        );
    }
    format!("[{status}] {}", name.join(" "))
}

/// The plain-text body.
fn body(input: &RecoverInput) -> String {
    let incident = &input.incident;
    let mut out = format!("{}\n\n", title(input));
    for alert in &incident.alerts {
        let what = alert
            .annotations
            .get("summary")
            .or_else(|| alert.labels.get("alertname"))
            .unwrap_or("alert");
        let state = if alert.state == "resolved" {
            " (resolved)"
        } else {
            ""
        };
        out.push_str(&format!("- {what}{state}\n  labels: {}\n", alert.labels));
        for (name, value) in alert.annotations.iter().filter(|(n, _)| *n != "summary") {
            out.push_str(&format!("  {name}: {value}\n"));
        }
        out.push_str(&format!("  started: {}\n", rfc3339(alert.active_at)));
        if let Some(url) = &alert.generator_url {
            out.push_str(&format!("  source: {url}\n"));
        }
    }
    if incident.status != "resolved" && !input.suspects.is_empty() {
        out.push_str("\nLikely at");
        if input.ambiguous {
            out.push_str(" (ambiguous: the top suspects are close)");
        }
        out.push_str(":\n");
        for s in input.suspects.iter().take(MAX_SUSPECTS) {
            out.push_str(&format!("- {} (score {})", s.labels, s.score));
            if !s.reason.is_empty() {
                out.push_str(&format!(": {}", s.reason));
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\nIncident {} (receiver {})\nFaultline: {}\n",
        incident.id, input.receiver, input.external_url
    ));
    out
}

export_recovery!(Email);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::mail::MailError;
    use faultline_sdk::testing;

    fn incident(status: &str) -> RecoverInput {
        RecoverInput {
            incident: Incident {
                id: "inc-7".into(),
                group_labels: Labels::from([("alertname", "DiskFull")]),
                status: status.into(),
                alerts: vec![Alert {
                    labels: Labels::from([("alertname", "DiskFull"), ("instance", "db-1")]),
                    annotations: Labels::from([
                        ("summary", "disk 97% full on db-1"),
                        ("runbook", "https://runbooks/disk"),
                    ]),
                    state: status.into(),
                    active_at: 1_795_684_999_484,
                    generator_url: Some("http://prometheus:9090/graph".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            suspects: vec![
                Suspect::new()
                    .label("instance", "db-1")
                    .score(0.9)
                    .reason("disk"),
            ],
            receiver: "ops-mail".into(),
            external_url: "http://faultline:9797".into(),
            ..Default::default()
        }
    }

    fn email() -> Email {
        Email::configure(
            r#"{"connection": "mail", "to": ["ops@example.com", "DB <db@example.com>"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn mails_the_incident_through_the_connection() {
        assert_eq!(
            email().recover(&incident("firing")),
            Outcome::Done(
                "mail to ops@example.com, DB <db@example.com> (connection mail) accepted".into()
            )
        );
        let sent = testing::mail_messages().remove(0);
        assert_eq!(sent.connection, "mail");
        assert_eq!(sent.to, ["ops@example.com", "DB <db@example.com>"]);
        assert_eq!(sent.subject, "[FIRING:1] DiskFull");
        assert_eq!(
            sent.body,
            "[FIRING:1] DiskFull\n\n\
             - disk 97% full on db-1\n  \
               labels: {alertname=\"DiskFull\", instance=\"db-1\"}\n  \
               runbook: https://runbooks/disk\n  \
               started: 2026-11-26T09:23:19.484Z\n  \
               source: http://prometheus:9090/graph\n\n\
             Likely at:\n- {instance=\"db-1\"} (score 0.9): disk\n\n\
             Incident inc-7 (receiver ops-mail)\nFaultline: http://faultline:9797\n"
        );
    }

    #[test]
    fn a_resolved_incident_is_mailed_as_such() {
        email().recover(&incident("resolved"));
        let sent = testing::mail_messages().remove(0);
        assert_eq!(sent.subject, "[RESOLVED] DiskFull");
        assert!(sent.body.contains("- disk 97% full on db-1 (resolved)\n"));
        assert!(!sent.body.contains("Likely at"));
    }

    #[test]
    fn outcomes_follow_the_server() {
        let outcome = |result| {
            testing::reset();
            testing::mail_respond(result);
            email().recover(&incident("firing"))
        };
        assert!(matches!(
            outcome(Err(MailError::new(ErrorKind::Transient, "421 try later"))),
            Outcome::RetryLater(_)
        ));
        assert_eq!(
            outcome(Err(MailError::new(ErrorKind::Rejected, "550 no such user"))),
            Outcome::Failed(
                "mail to ops@example.com, DB <db@example.com> (connection mail): \
                 rejected: 550 no such user"
                    .into()
            )
        );
        assert!(matches!(
            outcome(Err(MailError::new(ErrorKind::Denied, "not granted"))),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            outcome(Err(MailError::new(ErrorKind::Invalid, "bad address"))),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| Email::configure(params).unwrap_err();
        assert_eq!(
            refused(r#"{"connection": "mail"}"#),
            "params: missing field `to`"
        );
        assert_eq!(
            refused(r#"{"connection": "mail", "to": []}"#),
            "params: `to` needs at least one recipient"
        );
        assert_eq!(
            refused(r#"{"connection": "mail", "to": ["ops"]}"#),
            r#"params: `to`: "ops" is not a mail address"#
        );
        assert_eq!(
            refused(r#"{"connection": "", "to": ["a@b"]}"#),
            "params: `connection` is empty"
        );
    }
}
