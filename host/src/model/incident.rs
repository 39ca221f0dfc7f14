//! Incidents as the host keeps, stores and serves them: a group of alerts with the suspects
//! that localization ranked for it. Labels here keep the order they were given in and
//! serialize as JSON objects (`{"instance": "node4"}`), as Alertmanager shows labels. The
//! plugins' own (WIT) forms are made from these at the sandbox's edge (`runtime::convert`).

use serde::{Deserialize, Serialize};

use super::Labels;

/// A label pair, as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    pub name: String,
    pub value: String,
}

/// The pairs of a label set, in its order.
pub fn pairs(labels: &Labels) -> Vec<Pair> {
    labels
        .iter()
        .map(|(name, value)| Pair {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

/// Label lists as JSON objects; the order of the pairs is kept.
mod label_map {
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Pair;

    pub fn serialize<S: Serializer>(pairs: &[Pair], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for p in pairs {
            m.serialize_entry(&p.name, &p.value)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Pair>, D::Error> {
        let map = serde_json::Map::deserialize(d)?;
        Ok(map
            .into_iter()
            .map(|(name, v)| Pair {
                name,
                value: v.as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }
}

/// Whether any alert of an incident still fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Firing,
    Resolved,
}

impl IncidentStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Firing => "firing",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// An alert of an incident.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentAlert {
    #[serde(with = "label_map")]
    pub labels: Vec<Pair>,
    #[serde(with = "label_map")]
    pub annotations: Vec<Pair>,
    pub value: Option<f64>,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub active_at: i64,
    pub resolved_at: Option<i64>,
    pub generator_url: Option<String>,
}

/// A group of alerts that share the routing tree's group labels.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Names the episode: the group labels and when its earliest alert became active.
    pub id: String,
    /// Alertmanager's group key: the route and the group labels.
    pub group_key: String,
    #[serde(with = "label_map")]
    pub group_labels: Vec<Pair>,
    pub status: IncidentStatus,
    pub alerts: Vec<IncidentAlert>,
}

/// A ranked candidate for where a fault is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Suspect {
    #[serde(with = "label_map")]
    pub labels: Vec<Pair>,
    /// In [0, 1].
    pub score: f64,
    pub reason: String,
}

impl Suspect {
    /// A suspect with these labels, in this order (for tests).
    #[cfg(test)]
    pub fn of(labels: &[(&str, &str)], score: f64, reason: &str) -> Suspect {
        Suspect {
            labels: labels
                .iter()
                .map(|(name, value)| Pair {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            score,
            reason: reason.to_string(),
        }
    }

    /// The suspect's labels as a label set.
    pub fn label_set(&self) -> Labels {
        Labels::from_pairs(
            self.labels
                .iter()
                .map(|p| (p.name.clone(), p.value.clone())),
        )
    }
}

/// How far the top suspect leads the next one.
pub fn margin(suspects: &[Suspect]) -> Option<f64> {
    let first = suspects.first()?;
    Some(first.score - suspects.get(1).map_or(0.0, |s| s.score))
}
