//! Incidents and their alerts, as localizers and recovery plugins see them.

use crate::bindings::wit;
use crate::labels::Labels;

/// A group of alerts that share the routing tree's group labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incident {
    /// The host's identifier of the incident.
    pub id: String,
    /// Alertmanager's group key: the route and the group labels (`{}:{alertname="X"}`).
    pub group_key: String,
    /// The labels the route groups by, with the alerts' values.
    pub group_labels: Labels,
    /// `"firing"` while any alert fires, else `"resolved"`.
    pub status: String,
    /// The incident's alerts.
    pub alerts: Vec<Alert>,
}

/// One alert of an incident.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alert {
    /// The alert's identity.
    pub labels: Labels,
    /// Its annotations, templates expanded.
    pub annotations: Labels,
    /// The value its finding reported, if any.
    pub value: Option<f64>,
    /// `"pending"`, `"firing"` or `"resolved"`.
    pub state: String,
    /// When the alert became active, milliseconds since the Unix epoch.
    pub active_at: i64,
    /// When it resolved, if it has.
    pub resolved_at: Option<i64>,
    /// Where the alert came from (Prometheus's `generatorURL`), if known.
    pub generator_url: Option<String>,
}

impl Incident {
    pub(crate) fn from_wit(incident: wit::Incident) -> Self {
        Self {
            id: incident.id,
            group_key: incident.group_key,
            group_labels: Labels::from_wit(incident.group_labels),
            status: incident.status,
            alerts: incident.alerts.into_iter().map(Alert::from_wit).collect(),
        }
    }
}

impl Alert {
    fn from_wit(alert: wit::Alert) -> Self {
        Self {
            labels: Labels::from_wit(alert.labels),
            annotations: Labels::from_wit(alert.annotations),
            value: alert.value,
            state: alert.state,
            active_at: alert.active_at,
            resolved_at: alert.resolved_at,
            generator_url: alert.generator_url,
        }
    }
}
