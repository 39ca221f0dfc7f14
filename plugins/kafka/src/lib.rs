//! `kafka`: a recovery action that produces the incident as an event to a Kafka topic.
//!
//! ```toml
//! [[receiver]]
//! name = "events"
//! plugin = "kafka"
//! params = { topic = "incidents", event_type = "faultline.incident" }  # event_type: default
//! # The topic, and the Kafka connection of the server config that names the brokers.
//! grants = { kafka = ["incidents"], connections = ["events"] }
//! ```
//!
//! with, in the server config (`faultline serve --config`):
//!
//! ```toml
//! [connection.events]
//! brokers = "kafka-1:9092,kafka-2:9092"
//! ```
//!
//! One message per attempt: the key is the incident's id (so one incident's events stay in
//! order on one partition), the value its JSON event (version 1: the incident, its alerts
//! as Alertmanager's webhook shows them, the suspects, whether their ranking is `ambiguous`, and
//! the action), and the headers are
//! `type` (the `event_type`), `idempotency-key` (stable across retries of one notification:
//! consumers deduplicate on it) and `content-type: application/json`.
//!
//! Acknowledged is done; a refusal of the rule's grants, an authorization failure or a
//! message too large fails; anything else (timeouts, unreachable brokers, a topic not
//! created yet) is retried.

mod event;

use faultline_sdk::kafka::Message;
use faultline_sdk::recovery::*;
use serde::Deserialize;

/// The action's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The topic to produce to; the rule must grant it.
    pub topic: String,
    /// The value of the `type` header, which consumers route on.
    #[serde(default = "default_event_type")]
    pub event_type: String,
}

fn default_event_type() -> String {
    "faultline.incident".to_string()
}

/// The action, built from validated [`Params`].
#[derive(Debug)]
pub struct Kafka {
    p: Params,
}

impl Recovery for Kafka {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if let Err(why) = check_topic(&p.topic) {
            return Err(format!("params: `topic` {:?} {why}", p.topic).into());
        }
        if p.event_type.is_empty() {
            return Err("params: `event_type` is empty".into());
        }
        Ok(Self { p })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let topic = &self.p.topic;
        let value = match event::value(input) {
            Ok(value) => value,
            Err(e) => return Outcome::Failed(format!("encoding the event: {e}")),
        };
        let message = Message::new(topic, value)
            .key(input.incident.id.as_str())
            .header("type", self.p.event_type.as_str())
            .header("idempotency-key", input.idempotency_key.as_str())
            .header("content-type", "application/json");
        match kafka::produce(message) {
            Ok(()) => Outcome::Done(format!("produced to topic {topic}")),
            Err(e) if permanent(&e) => Outcome::Failed(format!("producing to topic {topic}: {e}")),
            Err(e) => Outcome::RetryLater(format!("producing to topic {topic}: {e}")),
        }
    }
}

/// Whether Kafka accepts `topic` as a topic name (its `Topic.validate`): 1 to 249 of
/// `[a-zA-Z0-9._-]`, and neither `.` nor `..`.
fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("is empty");
    }
    if topic == "." || topic == ".." {
        return Err("is not a Kafka topic name");
    }
    if topic.len() > 249 {
        return Err("is longer than Kafka's 249 characters");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("has characters other than ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// Whether a produce error stays until someone changes the rule, the server config or the
/// cluster: the host's refusal of an ungranted topic or connection, the broker's refusal
/// to authorize, a message the broker will never take. Everything else is worth retrying.
fn permanent(error: &str) -> bool {
    const PERMANENT: [&str; 5] = [
        "not granted",
        "denied",
        "authorization failed",
        "too large",
        "no kafka connection",
    ];
    let error = error.to_ascii_lowercase();
    PERMANENT.iter().any(|p| error.contains(p))
}

export_recovery!(Kafka);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_sdk::testing;
    use serde_json::{Value, json};

    /// A firing incident with one of its two alerts resolved, and two suspects.
    fn input() -> RecoverInput {
        let alert = |instance: &str, state: &str, resolved_at: Option<i64>| Alert {
            labels: Labels::from([
                ("alertname", "HighLoad"),
                ("instance", instance),
                ("severity", "warning"),
            ]),
            annotations: Labels::from([("summary", "load on {instance}")]),
            value: Some(7.5),
            state: state.into(),
            active_at: 1_795_684_999_484,
            resolved_at,
            generator_url: None,
        };
        let mut resolved = alert("web2", "resolved", Some(1_795_685_249_484));
        resolved.generator_url = Some("http://prometheus:9090/graph".into());
        RecoverInput {
            now: 1_795_685_250_000,
            incident: Incident {
                id: "incident-7".into(),
                group_key: r#"{}:{alertname="HighLoad"}"#.into(),
                group_labels: Labels::from([("alertname", "HighLoad")]),
                status: "firing".into(),
                alerts: vec![alert("web1", "firing", None), resolved],
            },
            suspects: vec![
                Suspect::new()
                    .label("instance", "web1")
                    .score(0.9)
                    .reason("most errors"),
                Suspect::new().label("service", "db").score(0.1),
            ],
            ambiguous: false,
            attempt: 2,
            idempotency_key: "idem-42".into(),
            receiver: "events".into(),
            external_url: "http://faultline:9797".into(),
        }
    }

    fn kafka(params: &str) -> Kafka {
        Kafka::configure(params).unwrap()
    }

    /// Runs one attempt with `result` as the host's answer; returns the outcome and the
    /// message produced.
    fn attempt(action: &mut Kafka, result: Result<(), String>) -> (Outcome, Message) {
        testing::reset();
        testing::kafka_respond(result);
        let outcome = action.recover(&input());
        (outcome, testing::kafka_messages().remove(0))
    }

    #[test]
    fn event_has_the_incident_alerts_suspects_and_action() {
        let (_, message) = attempt(&mut kafka(r#"{"topic": "incidents"}"#), Ok(()));
        let value: Value = serde_json::from_slice(&message.value).unwrap();
        let fingerprint = |instance| {
            let labels = &input().incident.alerts[if instance == "web1" { 0 } else { 1 }].labels;
            format!("{:016x}", labels.fingerprint())
        };
        let expected = json!({
            "version": "1",
            "receiver": "events",
            "incident": {
                "id": "incident-7",
                "groupKey": "{}:{alertname=\"HighLoad\"}",
                "status": "firing",
                "groupLabels": {"alertname": "HighLoad"},
            },
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "HighLoad", "instance": "web1", "severity": "warning"},
                    "annotations": {"summary": "load on {instance}"},
                    "startsAt": "2026-11-26T09:23:19.484Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://faultline:9797",
                    "fingerprint": fingerprint("web1"),
                },
                {
                    "status": "resolved",
                    "labels": {"alertname": "HighLoad", "instance": "web2", "severity": "warning"},
                    "annotations": {"summary": "load on {instance}"},
                    "startsAt": "2026-11-26T09:23:19.484Z",
                    "endsAt": "2026-11-26T09:27:29.484Z",
                    "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": fingerprint("web2"),
                },
            ],
            "suspects": [
                {"labels": {"instance": "web1"}, "score": 0.9, "reason": "most errors"},
                {"labels": {"service": "db"}, "score": 0.1, "reason": ""},
            ],
            "ambiguous": false,
            "action": {"receiver": "events", "idempotencyKey": "idem-42", "attempt": 2},
            "externalURL": "http://faultline:9797",
        });
        assert_eq!(value, expected);
        assert_ne!(fingerprint("web1"), fingerprint("web2"));
    }

    #[test]
    fn group_key_defaults_to_the_root_route_and_group_labels() {
        let mut input = input();
        input.incident.group_key.clear();
        kafka(r#"{"topic": "incidents"}"#).recover(&input);
        let value: Value = serde_json::from_slice(&testing::kafka_messages()[0].value).unwrap();
        assert_eq!(
            value["incident"]["groupKey"],
            r#"{}:{alertname="HighLoad"}"#
        );
    }

    #[test]
    fn message_has_topic_key_and_headers() {
        let (_, message) = attempt(&mut kafka(r#"{"topic": "incidents"}"#), Ok(()));
        assert_eq!(message.topic, "incidents");
        assert_eq!(message.key.as_deref(), Some(&b"incident-7"[..]));
        let headers: Vec<(&str, &[u8])> = message
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        assert_eq!(
            headers,
            [
                ("type", &b"faultline.incident"[..]),
                ("idempotency-key", b"idem-42"),
                ("content-type", b"application/json"),
            ]
        );

        let params = r#"{"topic": "ops.events", "event_type": "com.example.outage"}"#;
        let (_, message) = attempt(&mut kafka(params), Ok(()));
        assert_eq!(message.topic, "ops.events");
        assert_eq!(
            message.headers[0],
            ("type".into(), b"com.example.outage".to_vec())
        );
    }

    #[test]
    fn outcomes_follow_the_host_answer() {
        let mut action = kafka(r#"{"topic": "incidents"}"#);
        let mut outcome = |result| attempt(&mut action, result).0;
        assert_eq!(
            outcome(Ok(())),
            Outcome::Done("produced to topic incidents".into())
        );
        assert_eq!(
            outcome(Err(
                "Message production error: MessageTimedOut (Local: Message timed out)".into()
            )),
            Outcome::RetryLater(
                "producing to topic incidents: Message production error: MessageTimedOut \
                 (Local: Message timed out)"
                    .into()
            )
        );
        for transient in [
            "Message production error: UnknownTopicOrPartition (Broker: Unknown topic or partition)",
            "Message production error: QueueFull (Local: Queue full)",
            "Message production error: AllBrokersDown (Local: All broker connections are down)",
        ] {
            assert!(
                matches!(outcome(Err(transient.into())), Outcome::RetryLater(_)),
                "{transient}"
            );
        }
        assert_eq!(
            outcome(Err(r#"topic "incidents" is not granted to events""#.into())),
            Outcome::Failed(
                r#"producing to topic incidents: topic "incidents" is not granted to events""#
                    .into()
            )
        );
        for permanent in [
            "Message production error: TopicAuthorizationFailed (Broker: Topic authorization failed)",
            "Message production error: MessageSizeTooLarge (Broker: Message size too large)",
            "no Kafka connection is granted to events: add one to grants.connections",
            "access denied",
        ] {
            assert!(
                matches!(outcome(Err(permanent.into())), Outcome::Failed(_)),
                "{permanent}"
            );
        }
    }

    #[test]
    fn bad_params_are_refused() {
        let refused = |params: &str| Kafka::configure(params).unwrap_err();
        assert_eq!(refused("{}"), "params: missing field `topic`");
        assert_eq!(
            refused(r#"{"topic": ""}"#),
            r#"params: `topic` "" is empty"#
        );
        assert_eq!(
            refused(r#"{"topic": "ops events"}"#),
            "params: `topic` \"ops events\" has characters other than ASCII letters, digits, \
             `.`, `_` and `-`"
        );
        assert_eq!(
            refused(r#"{"topic": ".."}"#),
            r#"params: `topic` ".." is not a Kafka topic name"#
        );
        let long = format!(r#"{{"topic": "{}"}}"#, "t".repeat(250));
        assert!(refused(&long).ends_with("is longer than Kafka's 249 characters"));
        assert_eq!(
            refused(r#"{"topic": "t", "event_type": ""}"#),
            "params: `event_type` is empty"
        );
        assert!(
            refused(r#"{"topic": "t", "brokers": "k:9092"}"#)
                .starts_with("params: unknown field `brokers`")
        );
        assert!(Kafka::configure(r#"{"topic": "Ops.events_2-x"}"#).is_ok());
    }
}
