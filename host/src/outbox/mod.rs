//! The durable outbox of recovery actions, their safety rails and the decision log.
//!
//! When the dispatcher decides an incident goes to a receiver, [`Outbox::plan`] applies the
//! receiver's rails (target, minimum suspect score, cooldown, rate limit, dry-run) and, if
//! the action may run, writes it to the database *before* anything is attempted. The
//! delivery loop ([`run`]) attempts due actions, one at a time per (receiver, target): a
//! later action on a target waits until the earlier one is done or dead. It retries transient failures with exponential backoff and jitter until the
//! receiver's `max_attempts` or `max_age`, and then moves the action to the dead-letter
//! list, from which an operator can retry it. A crash between the write and the delivery
//! loses nothing: on restart the action is attempted again with the same idempotency key.
//!
//! Every decision (queued, done, retry, failed, dead, skipped and why, dry-run) is recorded
//! in the `decisions` table and served by the API.
//!
//! The parts: this file holds the records (actions, decisions, payloads); `rails.rs` is the
//! pure planning (which target, and whether it may be acted on); `queue.rs` is the SQL
//! queue (writing, claiming, finishing and listing actions); `deliver.rs` is the delivery
//! loop and its backoff.

pub mod deliver;
pub mod queue;
pub mod rails;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::db::Db;
use crate::localize::Ranking;
use crate::metrics::Metrics;
use crate::model::incident::{Incident, Suspect};
use crate::rules::Receiver;

/// States of an action.
pub mod state {
    /// Waiting for its next attempt.
    pub const PENDING: &str = "pending";
    /// Carried out.
    pub const DONE: &str = "done";
    /// Given up: the dead-letter list.
    pub const DEAD: &str = "dead";
    /// Recorded, not performed (the receiver is in dry-run).
    pub const DRY_RUN: &str = "dry-run";
    /// Every state.
    pub const ALL: [&str; 4] = [PENDING, DONE, DEAD, DRY_RUN];
}

/// What an action hands its plugin: the incident and its suspects (the target first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payload {
    pub incident: Incident,
    pub suspects: Vec<Suspect>,
    /// Whether the top suspect led by less than the receiver's margin.
    #[serde(default)]
    pub ambiguous: bool,
}

/// One action of the outbox.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: i64,
    pub receiver: String,
    pub group_key: String,
    pub incident_id: String,
    /// What the action acts on: the target suspect's labels, or the group key.
    pub target: String,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: u32,
    pub created_at: i64,
    pub next_at: i64,
    pub updated_at: i64,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub payload: String,
}

/// One recorded decision.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub id: i64,
    pub at: i64,
    pub receiver: String,
    pub incident_id: String,
    pub target: String,
    pub action_id: Option<i64>,
    /// queued, done, retry, failed, dead, skipped, dry-run or retried.
    pub decision: String,
    pub reason: String,
}

/// Filters of the decisions listing.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DecisionQuery {
    pub receiver: Option<String>,
    pub incident: Option<String>,
    pub decision: Option<String>,
    pub limit: Option<usize>,
}

/// The outbox, its in-flight set and its wake-up.
pub struct Outbox {
    pub(crate) db: Db,
    pub(crate) metrics: Arc<Metrics>,
    /// Wakes the delivery loop when an action is queued or finishes.
    pub(crate) wake: Notify,
    pub(crate) in_flight: Mutex<InFlight>,
}

/// Actions being attempted, and the (receiver, target) pairs they hold.
#[derive(Default)]
pub(crate) struct InFlight {
    pub(crate) actions: HashSet<i64>,
    pub(crate) targets: HashSet<(String, String)>,
}

/// What the dispatcher hands [`Outbox::plan`].
pub struct Planned<'a> {
    pub receiver: &'a Receiver,
    pub incident: &'a Incident,
    /// The incident's suspects, ranked best first.
    pub ranking: &'a Ranking,
    /// Fingerprints, states and activation times of the alerts, for the idempotency key.
    pub alerts_key: &'a [u8],
}

/// An action a dispatcher pass wrote: its id and its first state.
#[derive(Clone, Copy, Debug)]
pub struct Queued {
    pub id: i64,
    pub state: &'static str,
}

impl Outbox {
    /// The outbox of the database. The `faultline_outbox_actions` gauges are counted from
    /// the table once, here, and then kept by every change of state, so that `/metrics`
    /// does not read the table.
    pub fn new(db: Db, metrics: Arc<Metrics>) -> Outbox {
        let outbox = Outbox {
            db,
            metrics,
            wake: Notify::new(),
            in_flight: Mutex::new(InFlight::default()),
        };
        let counts = outbox.count_by_state().unwrap_or_else(|e| {
            tracing::error!("counting the outbox: {e}");
            Default::default()
        });
        for st in state::ALL {
            let n = counts.get(st).copied().unwrap_or(0);
            outbox
                .metrics
                .set("faultline_outbox_actions", &[("state", st)], n as f64);
        }
        outbox
    }

    /// Moves `n` actions from state `from` (none: new) to `to` (none: deleted) in the gauges.
    pub(crate) fn count(&self, from: Option<&str>, to: Option<&str>, n: usize) {
        if from == to {
            return;
        }
        let gauge = "faultline_outbox_actions";
        if let Some(from) = from {
            self.metrics.add(gauge, &[("state", from)], -(n as f64));
        }
        if let Some(to) = to {
            self.metrics.add(gauge, &[("state", to)], n as f64);
        }
    }
}

/// Why an action could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no such action")]
    NotFound,
    #[error("only dead-lettered actions can be retried; this one is {0}")]
    NotDead(String),
    #[error("database: {0}")]
    Db(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::{IncidentStatus, Pair};

    #[test]
    fn payloads_round_trip_with_labels_as_objects() {
        let pair = |n: &str, v: &str| Pair {
            name: n.into(),
            value: v.into(),
        };
        let p = Payload {
            incident: Incident {
                id: "i".into(),
                group_key: "{}:{}".into(),
                group_labels: vec![pair("alertname", "A")],
                status: IncidentStatus::Firing,
                alerts: Vec::new(),
            },
            suspects: vec![Suspect {
                labels: vec![pair("instance", "n4")],
                score: 0.9,
                reason: "r".into(),
            }],
            ambiguous: false,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            text.contains(r#""groupLabels":{"alertname":"A"}"#),
            "{text}"
        );
        assert!(text.contains(r#""labels":{"instance":"n4"}"#), "{text}");
        let back: Payload = serde_json::from_str(&text).unwrap();
        assert_eq!(back.incident.group_labels, p.incident.group_labels);
        assert_eq!(back.suspects, p.suspects);
    }
}
