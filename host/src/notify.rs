//! From alerts to recovery actions: alerts are grouped into incidents (by `alertname` for
//! now), an incident is notified whenever its set of firing alerts changes (new firing,
//! resolved), and each notification is delivered to the receiver's recovery plugin with
//! retries and exponential backoff. The idempotency key is stable across the attempts of one
//! notification.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::alerts::{Alert, Status};
use crate::metrics::Metrics;
use crate::model::Labels;
use crate::rules::Receiver;
use crate::runtime::{Failure, to_wit_labels, types};

/// One notification of an incident to a receiver.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub incident: types::Incident,
    pub idempotency_key: String,
}

/// What was last notified for an incident group.
#[derive(Default)]
struct GroupState {
    /// Fingerprints of the alerts notified as firing.
    firing: BTreeSet<u64>,
}

/// Groups alerts into incidents and queues notifications per receiver.
pub struct Dispatcher {
    groups: Mutex<HashMap<(String, String), GroupState>>,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Delivery>>>,
    metrics: Arc<Metrics>,
    external_url: String,
}

/// Alertmanager's group key: the route's matchers (`{}` for the root) and the group labels.
pub fn group_key(group_labels: &Labels) -> String {
    format!("{{}}:{group_labels}").replace(", ", ",")
}

impl Dispatcher {
    pub fn new(metrics: Arc<Metrics>, external_url: String) -> Dispatcher {
        Dispatcher {
            groups: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            metrics,
            external_url,
        }
    }

    /// Looks at a rule's alerts after an evaluation and queues a notification to `receiver`
    /// for each incident whose firing set changed since it was last notified.
    pub fn evaluated<'a>(&self, receiver: &Arc<Receiver>, alerts: impl Iterator<Item = &'a Alert>) {
        let mut by_group: HashMap<Labels, Vec<&Alert>> = HashMap::new();
        for a in alerts {
            let gl = Labels::from_pairs(a.labels.get("alertname").map(|n| ("alertname", n)));
            by_group.entry(gl).or_default().push(a);
        }
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        for (gl, alerts) in by_group {
            let key = group_key(&gl);
            let state = groups
                .entry((receiver.name.clone(), key.clone()))
                .or_default();
            let firing: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| a.status == Status::Firing)
                .map(|a| a.labels.fingerprint())
                .collect();
            if firing == state.firing {
                continue;
            }
            // Firing alerts, and resolved ones that were notified as firing.
            let mut notified: Vec<&Alert> = alerts
                .into_iter()
                .filter(|a| match a.status {
                    Status::Firing => true,
                    Status::Resolved => state.firing.contains(&a.labels.fingerprint()),
                    Status::Pending => false,
                })
                .collect();
            notified.sort_by(|a, b| a.labels.cmp(&b.labels));
            state.firing = firing;
            if notified.is_empty() {
                continue;
            }
            let delivery = self.delivery(&receiver.name, &key, &gl, &notified);
            self.queue(receiver).send(delivery).ok();
        }
    }

    fn delivery(&self, receiver: &str, key: &str, gl: &Labels, alerts: &[&Alert]) -> Delivery {
        let mut h = Sha256::new();
        h.update(receiver.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        for a in alerts {
            h.update(a.labels.fingerprint().to_be_bytes());
            h.update(a.status.as_str().as_bytes());
            h.update(a.active_at.to_be_bytes());
        }
        let idempotency_key = hex::encode(&h.finalize()[..16]);
        let status = if alerts.iter().any(|a| a.status == Status::Firing) {
            "firing"
        } else {
            "resolved"
        };
        Delivery {
            incident: types::Incident {
                id: hex::encode(&Sha256::digest(key.as_bytes())[..8]),
                group_labels: to_wit_labels(gl),
                status: status.into(),
                alerts: alerts.iter().map(|a| wit_alert(a)).collect(),
            },
            idempotency_key,
        }
    }

    fn queue(&self, receiver: &Arc<Receiver>) -> mpsc::UnboundedSender<Delivery> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = queues.get(&receiver.name).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(
            receiver.clone(),
            rx,
            self.metrics.clone(),
            self.external_url.clone(),
        ));
        queues.insert(receiver.name.clone(), tx.clone());
        tx
    }
}

/// An alert as plugins see it.
pub fn wit_alert(a: &Alert) -> types::Alert {
    types::Alert {
        labels: to_wit_labels(&a.labels),
        annotations: to_wit_labels(&a.annotations),
        value: a.value,
        state: a.status.as_str().into(),
        active_at: a.active_at,
        resolved_at: a.resolved_at,
    }
}

/// Delay before attempt `attempt + 1`: exponential from 500 ms, capped at a minute, with
/// up to 25% jitter so that many retries do not arrive together.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(7).saturating_sub(1));
    let base = base.min(Duration::from_secs(60));
    let jitter = (crate::now_ms() as u64 % 1000) as f64 / 4000.0;
    base.mul_f64(1.0 + jitter)
}

async fn deliver(
    receiver: Arc<Receiver>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    metrics: Arc<Metrics>,
    external_url: String,
) {
    let name = receiver.name.clone();
    while let Some(d) = rx.recv().await {
        let mut attempt = 1;
        loop {
            let input = types::RecoverInput {
                now: crate::now_ms(),
                incident: d.incident.clone(),
                suspects: Vec::new(),
                attempt,
                idempotency_key: d.idempotency_key.clone(),
                receiver: name.clone(),
                external_url: external_url.clone(),
            };
            let r = receiver.clone();
            let result = tokio::task::spawn_blocking(move || {
                r.instance
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .recover(&input)
            })
            .await;
            metrics.inc(
                "faultline_plugin_calls_total",
                &[("plugin", &receiver.plugin.name), ("world", "recovery")],
            );
            let retry_reason = match result {
                Ok(Ok(types::Outcome::Done(msg))) => {
                    tracing::info!(receiver = %name, incident = %d.incident.id, attempt, "delivered: {msg}");
                    metrics.inc(
                        "faultline_notifications_total",
                        &[("receiver", &name), ("outcome", "done")],
                    );
                    break;
                }
                Ok(Ok(types::Outcome::Failed(msg))) => {
                    tracing::error!(receiver = %name, incident = %d.incident.id, attempt, "recovery failed: {msg}");
                    metrics.inc(
                        "faultline_notifications_total",
                        &[("receiver", &name), ("outcome", "failed")],
                    );
                    break;
                }
                Ok(Ok(types::Outcome::RetryLater(msg))) => msg,
                Ok(Err(e)) if matches!(e.failure, Failure::Params(_)) => {
                    tracing::error!(receiver = %name, "{e}");
                    break;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("recovery task failed: {e}"),
            };
            metrics.inc(
                "faultline_notifications_total",
                &[("receiver", &name), ("outcome", "retry")],
            );
            if attempt >= receiver.max_attempts {
                tracing::error!(receiver = %name, incident = %d.incident.id, attempt, "giving up: {retry_reason}");
                metrics.inc(
                    "faultline_notifications_total",
                    &[("receiver", &name), ("outcome", "gave_up")],
                );
                break;
            }
            tracing::warn!(receiver = %name, incident = %d.incident.id, attempt, "will retry: {retry_reason}");
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_key_is_alertmanagers_form() {
        let gl = Labels::from_pairs([("alertname", "HighLoad"), ("job", "node")]);
        assert_eq!(group_key(&gl), r#"{}:{alertname="HighLoad",job="node"}"#);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) < Duration::from_millis(700)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(75));
    }
}
