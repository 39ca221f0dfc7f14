//! The sandbox's edge: the host's own types to and from the contract's (WIT) types. Nothing
//! outside `runtime` sees a WIT incident, alert or suspect.

use super::Finding;
use super::bindings::types::{self, Label};
use crate::model::Labels;
use crate::model::incident::{Incident, IncidentAlert, Pair, Suspect};

/// Labels in the contract's form.
pub fn to_wit_labels(labels: &Labels) -> Vec<Label> {
    labels
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// Labels from the contract's form.
pub fn from_wit_labels(labels: &[Label]) -> Labels {
    Labels::from_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

fn wit_pairs(p: &[Pair]) -> Vec<Label> {
    p.iter()
        .map(|l| Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn pairs(labels: &[Label]) -> Vec<Pair> {
    labels
        .iter()
        .map(|l| Pair {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// An incident as plugins see it.
pub fn incident(i: &Incident) -> types::Incident {
    types::Incident {
        id: i.id.clone(),
        group_key: i.group_key.clone(),
        group_labels: wit_pairs(&i.group_labels),
        status: i.status.as_str().to_string(),
        alerts: i.alerts.iter().map(alert).collect(),
    }
}

fn alert(a: &IncidentAlert) -> types::Alert {
    types::Alert {
        labels: wit_pairs(&a.labels),
        annotations: wit_pairs(&a.annotations),
        value: a.value,
        state: a.state.clone(),
        active_at: a.active_at,
        resolved_at: a.resolved_at,
        generator_url: a.generator_url.clone(),
    }
}

/// A suspect as plugins see it.
pub fn suspect(s: &Suspect) -> types::Suspect {
    types::Suspect {
        labels: wit_pairs(&s.labels),
        score: s.score,
        reason: s.reason.clone(),
    }
}

/// A suspect a localizer returned.
pub fn from_wit_suspect(s: types::Suspect) -> Suspect {
    Suspect {
        labels: pairs(&s.labels),
        score: s.score,
        reason: s.reason,
    }
}

fn label_pairs(labels: Vec<Label>) -> Vec<(String, String)> {
    labels.into_iter().map(|l| (l.name, l.value)).collect()
}

/// A detector's finding.
pub fn finding(f: types::Finding) -> Finding {
    Finding {
        series: f.series,
        labels: label_pairs(f.labels),
        value: f.value,
        annotations: label_pairs(f.annotations),
    }
}
