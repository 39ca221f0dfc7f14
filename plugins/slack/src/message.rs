//! The Slack message for an incident: `text` (the one line that notifications and clients
//! without blocks show) and `blocks`, in Slack's documented incoming-webhook payload.

use faultline_sdk::recovery::{Alert, RecoverInput};
use serde_json::{Value, json};

/// Alerts listed one per line; the rest are counted.
const MAX_ALERTS: usize = 10;

/// Slack refuses a section's text longer than 3000 characters.
const MAX_SECTION: usize = 3000;

/// The JSON body posted for `input`'s incident.
pub(crate) fn message(input: &RecoverInput) -> Value {
    let title = title(input);
    let incident = &input.incident;
    let mut blocks = vec![section(&format!("*{}*", escape(&title)))];
    let mut lines: Vec<String> = incident
        .alerts
        .iter()
        .take(MAX_ALERTS)
        .map(alert_line)
        .collect();
    if incident.alerts.len() > MAX_ALERTS {
        lines.push(format!("…and {} more", incident.alerts.len() - MAX_ALERTS));
    }
    if !lines.is_empty() {
        blocks.push(section(&lines.join("\n")));
    }
    if let Some(top) = input.suspects.first()
        && incident.status != "resolved"
    {
        let ambiguous = if input.ambiguous {
            " (ambiguous: the next suspect is close)"
        } else {
            ""
        };
        blocks.push(section(&format!(
            "*Likely at:* `{}` (score {}){ambiguous}",
            escape(&top.labels.to_string()),
            top.score
        )));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "Incident `{}` · <{}|Faultline>",
                escape(&incident.id),
                input.external_url
            ),
        }],
    }));
    json!({ "text": title, "blocks": blocks })
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

/// `• summary — `{labels}``: the summary annotation, else the alert's name, and its labels
/// but the name.
fn alert_line(alert: &Alert) -> String {
    let what = alert
        .annotations
        .get("summary")
        .or_else(|| alert.labels.get("alertname"))
        .unwrap_or("alert");
    let mut labels = alert.labels.clone();
    labels.remove("alertname");
    let state = if alert.state == "resolved" {
        " (resolved)"
    } else {
        ""
    };
    format!(
        "• {}{state} — `{}`",
        escape(what),
        escape(&labels.to_string())
    )
}

fn section(text: &str) -> Value {
    let text = match text.char_indices().nth(MAX_SECTION - 1) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    };
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// Slack's escaping of text it would otherwise read as markup: `&`, `<` and `>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::incident;

    #[test]
    fn firing_message_follows_slacks_payload() {
        let mut input = incident("firing");
        input.ambiguous = true;
        assert_eq!(
            message(&input),
            json!({
                "text": "[FIRING:2] HighErrorRate",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "*[FIRING:2] HighErrorRate*"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text":
                        "• 5xx ratio 0.9 &gt; 0.2 &lt;b&gt; — `{instance=\"node4\", job=\"api\"}`\n\
                         • HighErrorRate — `{instance=\"node2\", job=\"api\"}`"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text":
                        "*Likely at:* `{instance=\"node4\"}` (score 0.95) \
                         (ambiguous: the next suspect is close)"}},
                    {"type": "context", "elements": [{"type": "mrkdwn",
                        "text": "Incident `inc-7` · <http://faultline:9797|Faultline>"}]},
                ]
            })
        );
    }

    #[test]
    fn resolved_message_says_so_without_suspects() {
        let body = message(&incident("resolved"));
        assert_eq!(body["text"], "[RESOLVED] HighErrorRate");
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3, "{body:#}");
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("(resolved)")
        );
    }

    #[test]
    fn long_incidents_are_cut_to_slacks_limits() {
        let mut input = incident("firing");
        input.incident.group_labels = Default::default();
        let alert = input.incident.alerts[0].clone();
        input.incident.alerts = vec![alert; 25];
        input.incident.alerts[0]
            .annotations
            .insert("summary", "x".repeat(5000));
        let body = message(&input);
        assert_eq!(body["text"], "[FIRING:25] HighErrorRate");
        let list = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(list.chars().count(), MAX_SECTION);
        assert!(list.ends_with('…'));
        input.incident.alerts[0].annotations = Default::default();
        let body = message(&input);
        let list = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(list.lines().count(), MAX_ALERTS + 1);
        assert!(list.ends_with("…and 15 more"), "{list}");
    }
}
