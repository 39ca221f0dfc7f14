//! Incidents of aggregation groups: the id that names an episode, the host's incident made
//! from a group's alerts, and the key of those alerts that makes an action idempotent.

use sha2::{Digest, Sha256};

use crate::alerts::Alert;
use crate::model::Labels;
use crate::model::incident::{Incident, IncidentAlert, IncidentStatus, pairs};

/// An incident of a group's alerts. Its id names the episode: the group labels and when
/// its earliest alert became active, so every receiver and route sees the same id.
pub fn incident(key: &str, gl: &Labels, alerts: &[&Alert], resolved: bool) -> Incident {
    let start = alerts.iter().map(|a| a.active_at).min().unwrap_or(0);
    let id = hex::encode(&Sha256::digest(format!("{gl}\0{start}").as_bytes())[..8]);
    Incident {
        id,
        group_key: key.to_string(),
        group_labels: pairs(gl),
        status: if resolved {
            IncidentStatus::Resolved
        } else {
            IncidentStatus::Firing
        },
        alerts: alerts.iter().map(|a| incident_alert(a)).collect(),
    }
}

/// An alert as an incident carries it.
fn incident_alert(a: &Alert) -> IncidentAlert {
    IncidentAlert {
        labels: pairs(&a.labels),
        annotations: pairs(&a.annotations),
        value: a.value,
        state: a.status.as_str().into(),
        active_at: a.active_at,
        resolved_at: a.resolved_at,
        generator_url: a.generator_url.clone(),
    }
}

/// The key of an incident's alerts for idempotency: fingerprints, states and activation
/// times, so a new episode of the same alerts is a new action. In a cluster every instance
/// evaluates a group at the same aligned timestamps (see `crate::schedule`), so the same
/// data gives the same activation times, and the same key, on every instance.
pub fn alerts_key(alerts: &[&Alert]) -> Vec<u8> {
    let mut out = Vec::with_capacity(alerts.len() * 24);
    for a in alerts {
        out.extend(a.labels.fingerprint().to_be_bytes());
        out.extend(a.status.as_str().as_bytes());
        out.extend(a.active_at.to_be_bytes());
    }
    out
}
