//! The Events API v2 event for an incident: a trigger while it fires, a resolve once it
//! resolved, both keyed by the incident's id (`dedup_key`).

use faultline_sdk::recovery::{Incident, RecoverInput};
use faultline_sdk::time::rfc3339;
use serde_json::{Value, json};

use crate::SEVERITIES;

/// PagerDuty cuts nothing: a longer summary is an invalid event.
const MAX_SUMMARY: usize = 1024;

/// The event for `input`'s incident; `routing_key` is the secret's placeholder.
pub(crate) fn event(input: &RecoverInput, routing_key: &str, severity: &str) -> Value {
    let incident = &input.incident;
    if incident.status == "resolved" {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": incident.id,
        });
    }
    let severity = common_label(incident, "severity")
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| SEVERITIES.contains(&s.as_str()))
        .unwrap_or_else(|| severity.to_string());
    let mut payload = json!({
        "summary": summary(incident),
        "source": common_label(incident, "instance").unwrap_or(&input.external_url),
        "severity": severity,
        "custom_details": details(input),
    });
    if let Some(start) = incident.start() {
        payload["timestamp"] = rfc3339(start).into();
    }
    if let Some(class) = common_label(incident, "alertname") {
        payload["class"] = class.into();
    }
    let mut links: Vec<Value> = Vec::new();
    for alert in &incident.alerts {
        if let Some(url) = &alert.generator_url
            && !links.iter().any(|l| l["href"] == url.as_str())
        {
            let name = alert.labels.get("alertname").unwrap_or("alert");
            links.push(json!({ "href": url, "text": format!("Source of {name}") }));
        }
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": incident.id,
        "payload": payload,
        "client": "Faultline",
        "client_url": input.external_url,
        "links": links,
    })
}

/// Alertmanager's notification title, `[FIRING:2] <group label values>`, with the first
/// alert's summary, cut to PagerDuty's limit.
fn summary(incident: &Incident) -> String {
    let firing = incident
        .alerts
        .iter()
        .filter(|a| a.state != "resolved")
        .count();
    let mut name: Vec<&str> = incident.group_labels.iter().map(|(_, v)| v).collect();
    if name.is_empty() {
        name.extend(
            incident
                .alerts
                .first()
                .and_then(|a| a.labels.get("alertname")),
        );
    }
    let mut text = format!("[FIRING:{firing}] {}", name.join(" "));
    if let Some(summary) = incident
        .alerts
        .first()
        .and_then(|a| a.annotations.get("summary"))
    {
        text.push_str(": ");
        text.push_str(summary);
    }
    match text.char_indices().nth(MAX_SUMMARY - 1) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The value of label `name` if every alert has it, the same.
fn common_label<'a>(incident: &'a Incident, name: &str) -> Option<&'a str> {
    let first = incident.alerts.first()?.labels.get(name)?;
    incident
        .alerts
        .iter()
        .all(|a| a.labels.get(name) == Some(first))
        .then_some(first)
}

/// `custom_details`: what a responder reads in PagerDuty.
fn details(input: &RecoverInput) -> Value {
    let alerts: Vec<Value> = input
        .incident
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": a.state,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.active_at),
                "value": a.value,
            })
        })
        .collect();
    json!({
        "incident": input.incident.id,
        "receiver": input.receiver,
        "group_labels": input.incident.group_labels,
        "alerts": alerts,
        "suspects": input.suspects,
        "ambiguous": input.ambiguous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::incident;

    #[test]
    fn trigger_follows_the_documented_event() {
        assert_eq!(
            event(&incident("firing"), "KEY", "error"),
            json!({
                "routing_key": "KEY",
                "event_action": "trigger",
                "dedup_key": "inc-7",
                "payload": {
                    "summary": "[FIRING:1] HighErrorRate: 5xx ratio above 0.2",
                    "source": "node4",
                    "severity": "warning",
                    "timestamp": "2026-11-26T09:23:19.484Z",
                    "class": "HighErrorRate",
                    "custom_details": {
                        "incident": "inc-7",
                        "receiver": "oncall",
                        "group_labels": {"alertname": "HighErrorRate"},
                        "alerts": [{
                            "status": "firing",
                            "labels": {"alertname": "HighErrorRate", "instance": "node4",
                                       "severity": "warning"},
                            "annotations": {"summary": "5xx ratio above 0.2"},
                            "startsAt": "2026-11-26T09:23:19.484Z",
                            "value": 0.9,
                        }],
                        "suspects": [{"labels": {"instance": "node4"}, "score": 0.95,
                                      "reason": "db"}],
                        "ambiguous": false,
                    },
                },
                "client": "Faultline",
                "client_url": "http://faultline:9797",
                "links": [{"href": "http://prometheus:9090/graph?g0.expr=up",
                           "text": "Source of HighErrorRate"}],
            })
        );
    }

    #[test]
    fn resolve_carries_only_the_key_and_the_dedup_key() {
        assert_eq!(
            event(&incident("resolved"), "KEY", "error"),
            json!({"routing_key": "KEY", "event_action": "resolve", "dedup_key": "inc-7"})
        );
    }

    #[test]
    fn severity_and_source_fall_back_when_alerts_differ() {
        let mut input = incident("firing");
        let mut other = input.incident.alerts[0].clone();
        other.labels.insert("instance", "node2");
        other.labels.insert("severity", "page");
        input.incident.alerts.push(other);
        let e = event(&input, "KEY", "critical");
        assert_eq!(e["payload"]["severity"], "critical");
        assert_eq!(e["payload"]["source"], "http://faultline:9797");
        assert_eq!(e["links"].as_array().unwrap().len(), 1);
        assert!(
            e["payload"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING:2]")
        );

        input.incident.alerts[0]
            .annotations
            .insert("summary", "y".repeat(3000));
        let e = event(&input, "KEY", "critical");
        assert_eq!(
            e["payload"]["summary"].as_str().unwrap().chars().count(),
            MAX_SUMMARY
        );
    }
}
