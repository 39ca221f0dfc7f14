//! Muting: whether an alert is silenced or inhibited, and by what, as Alertmanager's marker
//! reports it (`status: {state, silencedBy, inhibitedBy}`).
//!
//! A [`Muter`] is built once per pass over the alerts (a dispatcher tick, an API listing)
//! with the service's `muter`: it takes the current silence index and files the firing alerts
//! as inhibition sources, then answers per alert in roughly constant time:
//!
//! ```ignore
//! let muter = svc.muter(alerts.iter(), now);
//! for a in &alerts {
//!     if muter.is_muted(&a.labels) { continue; }       // the dispatcher's question
//!     let s = muter.suppression(&a.labels);             // the API's: which silences, which alert
//! }
//! ```
//!
//! The alerts given to the service's `muter` are the candidate inhibition sources: pass every
//! alert (rule and external) of the pass. Only firing ones inhibit.

use std::sync::Arc;

use crate::dispatch::inhibit::Inhibitions;
use crate::dispatch::silences::SilenceIndex;
use crate::model::Labels;

/// Why an alert is not notified, if it is not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suppression {
    /// IDs of the active silences that match the alert, sorted.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the alerts that inhibit it (at most one, as in Alertmanager).
    pub inhibited_by: Vec<u64>,
}

impl Suppression {
    /// Whether the alert is silenced or inhibited.
    pub fn is_suppressed(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty()
    }
}

/// Silences and inhibition for one pass over the alerts.
#[derive(Debug)]
pub struct Muter<'a> {
    silences: Arc<SilenceIndex>,
    inhibitions: Inhibitions<'a>,
}

impl<'a> Muter<'a> {
    pub fn new(silences: Arc<SilenceIndex>, inhibitions: Inhibitions<'a>) -> Muter<'a> {
        Muter {
            silences,
            inhibitions,
        }
    }

    /// Which silences and which alert mute an alert with these labels.
    pub fn suppression(&self, labels: &Labels) -> Suppression {
        Suppression {
            silenced_by: self.silences.silenced_by(labels),
            inhibited_by: self.inhibitions.inhibited_by(labels).into_iter().collect(),
        }
    }

    /// Whether an alert with these labels is silenced or inhibited.
    pub fn is_muted(&self, labels: &Labels) -> bool {
        self.silences.is_silenced(labels) || self.inhibitions.inhibited_by(labels).is_some()
    }
}
