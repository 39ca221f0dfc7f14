//! The message value: the incident as a JSON event. Alerts have the shape of Alertmanager's
//! webhook alerts (as the `webhook` plugin sends them), so consumers can reuse their parsers.

use faultline_sdk::recovery::{AlertmanagerAlert, Labels, RecoverInput, Suspect};
use serde::Serialize;

/// The event, version 1.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    receiver: &'a str,
    incident: IncidentPayload<'a>,
    alerts: Vec<AlertmanagerAlert<'a>>,
    suspects: &'a [Suspect],
    /// The top suspect does not lead the next by the receiver's margin.
    ambiguous: bool,
    action: Action<'a>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IncidentPayload<'a> {
    id: &'a str,
    group_key: String,
    status: &'a str,
    group_labels: &'a Labels,
}

/// Which delivery of the action this message is: consumers deduplicate on the key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Action<'a> {
    receiver: &'a str,
    idempotency_key: &'a str,
    attempt: u32,
}

/// The JSON value of the message for `input`'s incident.
pub(crate) fn value(input: &RecoverInput) -> Result<Vec<u8>, serde_json::Error> {
    let incident = &input.incident;
    let event = Event {
        version: "1",
        receiver: &input.receiver,
        incident: IncidentPayload {
            id: &incident.id,
            group_key: incident.alertmanager_group_key(),
            status: &incident.status,
            group_labels: &incident.group_labels,
        },
        // Alerts Faultline's own rules found link to Faultline.
        alerts: incident
            .alerts
            .iter()
            .map(|a| a.alertmanager(&input.external_url))
            .collect(),
        suspects: &input.suspects,
        ambiguous: input.ambiguous,
        action: Action {
            receiver: &input.receiver,
            idempotency_key: &input.idempotency_key,
            attempt: input.attempt,
        },
        external_url: &input.external_url,
    };
    serde_json::to_vec(&event)
}
