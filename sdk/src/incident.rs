//! Incidents and their alerts, as localizers and recovery plugins see them, and as
//! Alertmanager's webhook notifications show them.

use serde::Serialize;

use crate::bindings::wit;
use crate::labels::Labels;
use crate::time::rfc3339;

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

/// An [`Alert`] as Alertmanager's webhook notification (version 4) has it
/// (`template.Alert`, fields in its order), for serializing with serde. Made by
/// [`Alert::alertmanager`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert<'a> {
    status: &'static str,
    labels: &'a Labels,
    annotations: &'a Labels,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of a firing alert.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Incident {
    /// Alertmanager's group key of the incident: [`group_key`](Self::group_key), or, when
    /// the host gave none, the key of the group under Alertmanager's root route: its (empty)
    /// matchers, then the group labels (`{}:{alertname="X"}`).
    pub fn alertmanager_group_key(&self) -> String {
        if self.group_key.is_empty() {
            format!("{{}}:{}", self.group_labels)
        } else {
            self.group_key.clone()
        }
    }

    /// When the incident started: the earliest `active_at` of its firing alerts, or of all
    /// its alerts when none fires any more. `None` without alerts.
    ///
    /// Localizers that compare the incident with what came before it split their data here.
    pub fn start(&self) -> Option<i64> {
        let firing = self.alerts.iter().filter(|a| a.state == "firing");
        firing
            .map(|a| a.active_at)
            .min()
            .or_else(|| self.alerts.iter().map(|a| a.active_at).min())
    }

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
    /// The alert as Alertmanager's webhook notification shows it: `status` `"firing"` or
    /// `"resolved"`, times in RFC 3339 (`endsAt` Go's zero time until it resolves), the
    /// labels' fingerprint, and `generator_url` standing in for the alert's own
    /// [`generator_url`](Self::generator_url) when it has none: pass the host's external URL,
    /// so that alerts Faultline's own rules found link to Faultline.
    ///
    /// ```
    /// use faultline_sdk::{Alert, Labels};
    ///
    /// let alert = Alert {
    ///     labels: Labels::from([("alertname", "Up")]),
    ///     state: "firing".into(),
    ///     active_at: 1_795_684_999_484,
    ///     ..Default::default()
    /// };
    /// let json = serde_json::to_string(&alert.alertmanager("http://faultline:9797")).unwrap();
    /// assert_eq!(
    ///     json,
    ///     r#"{"status":"firing","labels":{"alertname":"Up"},"annotations":{},"#.to_string()
    ///         + r#""startsAt":"2026-11-26T09:23:19.484Z","endsAt":"0001-01-01T00:00:00Z","#
    ///         + r#""generatorURL":"http://faultline:9797","fingerprint":"57fc0d42e24a6ea7"}"#
    /// );
    /// ```
    pub fn alertmanager<'a>(&'a self, generator_url: &'a str) -> AlertmanagerAlert<'a> {
        let resolved = self.state == "resolved";
        AlertmanagerAlert {
            status: if resolved { "resolved" } else { "firing" },
            labels: &self.labels,
            annotations: &self.annotations,
            starts_at: rfc3339(self.active_at),
            ends_at: match self.resolved_at {
                Some(at) if resolved => rfc3339(at),
                _ => ZERO_TIME.to_string(),
            },
            generator_url: self.generator_url.as_deref().unwrap_or(generator_url),
            fingerprint: format!("{:016x}", self.labels.fingerprint()),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(state: &str, resolved_at: Option<i64>) -> Alert {
        Alert {
            labels: Labels::from([("alertname", "HighLoad"), ("instance", "web1")]),
            annotations: Labels::from([("summary", "load")]),
            value: Some(7.5),
            state: state.into(),
            active_at: 1_795_684_999_484,
            resolved_at,
            generator_url: None,
        }
    }

    fn json(alert: &Alert) -> serde_json::Value {
        serde_json::to_value(alert.alertmanager("http://faultline:9797")).unwrap()
    }

    #[test]
    fn firing_alert_ends_at_go_zero_time() {
        let fingerprint = format!("{:016x}", alert("firing", None).labels.fingerprint());
        assert_eq!(
            json(&alert("firing", None)),
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": "HighLoad", "instance": "web1"},
                "annotations": {"summary": "load"},
                "startsAt": "2026-11-26T09:23:19.484Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://faultline:9797",
                "fingerprint": fingerprint,
            })
        );
        // Pending alerts fire as far as Alertmanager's receivers know.
        assert_eq!(json(&alert("pending", None))["status"], "firing");
    }

    #[test]
    fn resolved_alert_ends_when_it_resolved_and_keeps_its_generator() {
        let mut resolved = alert("resolved", Some(1_795_685_249_484));
        resolved.generator_url = Some("http://prometheus:9090/graph".into());
        let shown = json(&resolved);
        assert_eq!(shown["status"], "resolved");
        assert_eq!(shown["endsAt"], "2026-11-26T09:27:29.484Z");
        assert_eq!(shown["generatorURL"], "http://prometheus:9090/graph");
        // A resolution time only counts once the alert is resolved.
        let firing = alert("firing", Some(1_795_685_249_484));
        assert_eq!(json(&firing)["endsAt"], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn fields_in_alertmanagers_order() {
        let text = serde_json::to_string(&alert("firing", None).alertmanager("u")).unwrap();
        let keys = [
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn the_incident_starts_with_its_earliest_firing_alert() {
        let alert = |state: &str, active_at| Alert {
            state: state.into(),
            active_at,
            ..Default::default()
        };
        let incident = |alerts| Incident {
            alerts,
            ..Default::default()
        };
        let firing = incident(vec![
            alert("pending", 100),
            alert("firing", 500),
            alert("firing", 300),
        ]);
        assert_eq!(firing.start(), Some(300));
        let pending = incident(vec![alert("resolved", 700), alert("pending", 400)]);
        assert_eq!(pending.start(), Some(400));
        assert_eq!(incident(vec![]).start(), None);
    }

    #[test]
    fn group_key_falls_back_to_the_root_routes() {
        let mut incident = Incident {
            group_labels: Labels::from([("alertname", "HighLoad")]),
            ..Default::default()
        };
        assert_eq!(
            incident.alertmanager_group_key(),
            r#"{}:{alertname="HighLoad"}"#
        );
        incident.group_key = r#"{}/{severity="page"}:{alertname="HighLoad"}"#.into();
        assert_eq!(incident.alertmanager_group_key(), incident.group_key);
    }
}
