//! The delivery loop: attempts due actions, at most one in flight per (receiver, target) and
//! at most the receiver's `concurrency` per receiver, each on a thread and plugin instance
//! of its own (a hung endpoint holds only its receiver's slots); retries transient failures
//! with backoff and jitter, and dead-letters an action after its receiver's `max_attempts`
//! or `max_age`.
//!
//! In a cluster only the leader delivers, and only actions whose keys are not recorded as
//! completed (see `cluster/`); it records each action it finishes. A follower finishes its
//! copies of the actions the leader recorded.

use std::sync::Arc;
use std::time::Duration;

use super::{Action, Outbox, Payload, state};
use crate::cluster::Cluster;
use crate::cluster::completed::Completed;
use crate::rules::Receiver;
use crate::runtime::Failure;
use crate::runtime::instance::{Attempt, Outcome};

/// Delay before the attempt after `attempt`: exponential from 500 ms, capped at a minute,
/// with up to 25% jitter so that many retries do not arrive together.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(8).saturating_sub(1));
    let base = base.min(Duration::from_secs(60));
    let jitter = (crate::model::time::now_ms() as u64 % 1000) as f64 / 4000.0;
    base.mul_f64(1.0 + jitter)
}

/// Due actions read per receiver and pass: enough to fill its slots, few enough that a
/// receiver with thousands waiting does not hide the others' actions.
const DUE_PER_RECEIVER: usize = 100;

/// The delivery loop: attempts due actions until the process ends. `receiver` finds a
/// receiver by name as it is now (reloads take effect at the next attempt).
pub async fn run(
    outbox: Arc<Outbox>,
    receiver: impl Fn(&str) -> Option<Arc<Receiver>> + Send + Sync + 'static,
    external_url: String,
    cluster: Option<Arc<Cluster>>,
) {
    loop {
        if let Some(c) = cluster.as_ref().filter(|c| !c.may_deliver()) {
            follow(&outbox, c).await;
            tokio::select! {
                _ = c.elected.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let now = crate::model::time::now_ms();
        for a in outbox.due(now, DUE_PER_RECEIVER) {
            let slot = (a.receiver.clone(), a.target.clone());
            let receiver = receiver(&a.receiver);
            let running = {
                let mut f = outbox.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                // At most one action in flight per target: the others wait their turn.
                if f.actions.contains(&a.id) || f.targets.contains(&slot) {
                    continue;
                }
                // At most `concurrency` per receiver: the others wait for a free slot.
                let running = match &receiver {
                    Some(r) => match r.instances.try_slot() {
                        Some(running) => Some(running),
                        None => continue,
                    },
                    None => None,
                };
                f.actions.insert(a.id);
                f.targets.insert(slot.clone());
                running
            };
            let ob = outbox.clone();
            let url = external_url.clone();
            let cluster = cluster.clone();
            tokio::spawn(async move {
                attempt(&ob, a.clone(), receiver, url, cluster.as_deref()).await;
                drop(running);
                let mut f = ob.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                f.actions.remove(&a.id);
                f.targets.remove(&slot);
                drop(f);
                ob.wake.notify_one();
            });
        }
        let next = outbox
            .db
            .with(|c| {
                // Waiting actions become due when the one before them finishes, which
                // wakes this loop: only the first of each target counts here.
                c.query_row(
                    "SELECT MIN(next_at) FROM outbox o WHERE state = 'pending'
                     AND NOT EXISTS (SELECT 1 FROM outbox e INDEXED BY outbox_target
                         WHERE e.receiver = o.receiver
                         AND e.target = o.target AND e.state = 'pending' AND e.id < o.id)",
                    [],
                    |r| r.get::<_, Option<i64>>(0),
                )
            })
            .ok()
            .flatten();
        // Actions already due wait for a slot or their target: the attempt that frees it
        // wakes this loop, so only future ones set a timer.
        let wait = match next.map(|n| n - crate::model::time::now_ms()) {
            Some(ms) if ms > 0 => Duration::from_millis(ms.clamp(10, 1000) as u64),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = outbox.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A follower's part: finishes its copies of the actions the leader recorded.
async fn follow(outbox: &Outbox, cluster: &Cluster) {
    let pending = outbox.actions(Some(state::PENDING), 100_000);
    if pending.is_empty() {
        return;
    }
    let completed = match cluster.all_completed().await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("cluster: cannot read the completed actions: {e}");
            return;
        }
    };
    for a in pending {
        if let Some(c) = completed.get(&a.idempotency_key) {
            finish_completed(outbox, &a, c);
        }
    }
}

/// Finishes an action another instance finished, as it recorded.
fn finish_completed(outbox: &Outbox, a: &Action, c: &Completed) {
    let st = if c.state == state::DEAD {
        state::DEAD
    } else {
        state::DONE
    };
    let reason = format!("{st} on {} (recorded in the cluster)", c.by);
    outbox.finish(a, st, a.next_at, st, &reason);
}

/// Finishes an attempted action: in a cluster, records it there first (done or dead), so
/// the next leader does not deliver it again.
async fn conclude(
    outbox: &Outbox,
    cluster: Option<&Cluster>,
    a: &Action,
    (st, decision, reason): (&str, &str, &str),
    keep: Duration,
) {
    if let Some(c) = cluster
        && let Err(e) = c.record(&a.idempotency_key, st, keep).await
    {
        tracing::error!(
            action = a.id,
            "cluster: cannot record the action as {st}; a next leader may deliver it again, \
             with the same idempotency key: {e}"
        );
    }
    outbox.finish(a, st, a.next_at, decision, reason);
}

async fn attempt(
    outbox: &Outbox,
    mut a: Action,
    receiver: Option<Arc<Receiver>>,
    external_url: String,
    cluster: Option<&Cluster>,
) {
    if !outbox.claim(&a) {
        return;
    }
    if let Some(c) = cluster {
        match c.completed(&a.idempotency_key).await {
            Ok(Some(done)) => return finish_completed(outbox, &a, &done),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(
                    action = a.id,
                    "cluster: cannot tell whether another instance completed the action; holding it: {e}"
                );
                return;
            }
        }
    }
    let Some(receiver) = receiver else {
        let reason = format!(
            "receiver {:?} no longer exists in the rules: dead-lettered",
            a.receiver
        );
        outbox.finish(&a, state::DEAD, a.next_at, "dead", &reason);
        return;
    };
    let payload: Payload = match serde_json::from_str(&a.payload) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("unreadable action payload: {e}");
            outbox.finish(&a, state::DEAD, a.next_at, "dead", &reason);
            return;
        }
    };
    // Fenced since the loop read the action: no new attempt (one already running ends).
    if cluster.is_some_and(|c| !c.may_deliver()) {
        return;
    }
    a.attempts += 1;
    let (key, url) = (a.idempotency_key.clone(), external_url);
    let (number, name) = (a.attempts, a.receiver.clone());
    let mut instance = receiver.instances.take();
    let thread = format!("deliver {name}");
    let ran = crate::workers::once(thread, move || {
        let outcome = instance.recover(&Attempt {
            now: crate::model::time::now_ms(),
            incident: &payload.incident,
            suspects: &payload.suspects,
            ambiguous: payload.ambiguous,
            attempt: number,
            idempotency_key: &key,
            receiver: &name,
            external_url: &url,
        });
        (outcome, instance)
    })
    .await;
    let result = ran.map(|(outcome, instance)| {
        receiver.instances.give(instance);
        outcome
    });
    let name = &receiver.name;
    let m = &outbox.metrics;
    m.inc(
        "faultline_plugin_calls_total",
        &[("plugin", &receiver.plugin.name), ("world", "recovery")],
    );
    // Alertmanager's counters, its integration being the receiver's plugin: a notification
    // is counted once, at its first attempt, and as failed once, when given up; every
    // attempt is a request.
    let integration = [("integration", receiver.plugin.name.as_str())];
    if a.attempts == 1 {
        m.inc("alertmanager_notifications_total", &integration);
    }
    m.inc("alertmanager_notification_requests_total", &integration);
    if !matches!(result, Ok(Ok(Outcome::Done(_)))) {
        m.inc(
            "alertmanager_notification_requests_failed_total",
            &integration,
        );
    }
    let failed = || m.inc("alertmanager_notifications_failed_total", &integration);
    let retry_reason = match result {
        Ok(Ok(Outcome::Done(msg))) => {
            m.inc(
                "faultline_notifications_total",
                &[("receiver", name), ("outcome", "done")],
            );
            let end = (state::DONE, "done", msg.as_str());
            return conclude(outbox, cluster, &a, end, receiver.max_age).await;
        }
        Ok(Ok(Outcome::Failed(msg))) => {
            m.inc(
                "faultline_notifications_total",
                &[("receiver", name), ("outcome", "failed")],
            );
            failed();
            let reason = format!("the plugin failed permanently: {msg}");
            let end = (state::DEAD, "failed", reason.as_str());
            return conclude(outbox, cluster, &a, end, receiver.max_age).await;
        }
        Ok(Ok(Outcome::RetryLater(msg))) => msg,
        Ok(Err(e)) if matches!(e.failure, Failure::Params(_)) => {
            failed();
            let reason = e.to_string();
            let end = (state::DEAD, "failed", reason.as_str());
            return conclude(outbox, cluster, &a, end, receiver.max_age).await;
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("recovery task failed: {e}"),
    };
    m.inc(
        "faultline_notifications_total",
        &[("receiver", name), ("outcome", "retry")],
    );
    let now = crate::model::time::now_ms();
    let age = Duration::from_millis((now - a.created_at).max(0) as u64);
    if a.attempts >= receiver.max_attempts || age >= receiver.max_age {
        m.inc(
            "faultline_notifications_total",
            &[("receiver", name), ("outcome", "gave_up")],
        );
        failed();
        let reason = format!(
            "gave up after {} attempts over {}s (max_attempts {}, max_age {}): {retry_reason}",
            a.attempts,
            age.as_secs(),
            receiver.max_attempts,
            crate::model::units::PromDuration(receiver.max_age)
        );
        let end = (state::DEAD, "dead", reason.as_str());
        return conclude(outbox, cluster, &a, end, receiver.max_age).await;
    }
    let next = now + backoff(a.attempts).as_millis() as i64;
    let reason = format!("attempt {} failed, will retry: {retry_reason}", a.attempts);
    outbox.finish(&a, state::PENDING, next, "retry", &reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) < Duration::from_millis(700)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(75));
    }
}
