//! The notification body: Alertmanager's webhook payload, version 4, so receivers written
//! for Alertmanager take Faultline's notifications unchanged.

use faultline_sdk::recovery::{AlertmanagerAlert, Labels, RecoverInput};
use serde::Serialize;
use serde_json::Value;

/// What Alertmanager 0.25 POSTs (`notify/webhook.Message`), fields in its order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification<'a> {
    receiver: &'a str,
    status: &'a str,
    alerts: Vec<AlertmanagerAlert<'a>>,
    group_labels: &'a Labels,
    common_labels: Labels,
    common_annotations: Labels,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    group_key: String,
    truncated_alerts: u32,
}

/// The JSON body notifying `input`'s incident.
pub(crate) fn body(input: &RecoverInput) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&notification(input))
}

/// What a `body_template` is rendered against: the notification, plus `suspects` (labels,
/// score, reason; best first), `ambiguous` (whether the top suspect does not clearly lead)
/// and `idempotencyKey`. Those stay out of [`body`], which is exactly Alertmanager's.
pub(crate) fn context(input: &RecoverInput) -> Result<Value, serde_json::Error> {
    let mut context = serde_json::to_value(notification(input))?;
    if let Value::Object(map) = &mut context {
        map.insert(
            "suspects".to_string(),
            serde_json::to_value(&input.suspects)?,
        );
        map.insert("ambiguous".to_string(), Value::from(input.ambiguous));
        map.insert(
            "idempotencyKey".to_string(),
            Value::from(input.idempotency_key.as_str()),
        );
    }
    Ok(context)
}

fn notification(input: &RecoverInput) -> Notification<'_> {
    let incident = &input.incident;
    let alerts = &incident.alerts;
    Notification {
        receiver: &input.receiver,
        status: &incident.status,
        // Alerts Faultline's own rules found link to Faultline.
        alerts: alerts
            .iter()
            .map(|a| a.alertmanager(&input.external_url))
            .collect(),
        group_labels: &incident.group_labels,
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        external_url: &input.external_url,
        version: "4",
        group_key: incident.alertmanager_group_key(),
        truncated_alerts: 0,
    }
}

/// The pairs that every set has, with the same value (none without sets).
fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::new();
    };
    let mut common = first.clone();
    for set in sets {
        let differing: Vec<String> = common
            .iter()
            .filter(|&(name, value)| set.get(name) != Some(value))
            .map(|(name, _)| name.to_string())
            .collect();
        for name in differing {
            common.remove(&name);
        }
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keeps_equal_pairs_only() {
        let a = Labels::from([("job", "node"), ("instance", "a"), ("env", "prod")]);
        let b = Labels::from([("job", "node"), ("instance", "b")]);
        assert_eq!(
            common([&a, &b].into_iter()),
            Labels::from([("job", "node")])
        );
        assert_eq!(common([&a].into_iter()), a);
        assert_eq!(common(std::iter::empty()), Labels::new());
    }
}
