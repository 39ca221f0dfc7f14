//! Completed keys: the leader records in etcd the idempotency key of every action it
//! finished (done, or given up), under `PREFIX/completed/KEY`, with a lease that outlives
//! the receiver's `max_age`. A leader looks a key up before attempting its action, and
//! followers finish their own copies of recorded actions, so an action is delivered by
//! one leader only, unless that leader died before recording it (then the next one
//! delivers it again, with the same key).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Cluster;
use super::etcd::EtcdError;

/// What the leader recorded about a finished action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    /// The instance that finished it.
    pub by: String,
    /// The outbox state it ended in: `done` or `dead`.
    pub state: String,
    /// When (ms).
    pub at: i64,
}

impl Cluster {
    /// The record of the action with idempotency key `key`, if the leader made one.
    pub async fn completed(&self, key: &str) -> Result<Option<Completed>, EtcdError> {
        let value = self.etcd.get(&self.key("completed", key)).await?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every recorded action, by idempotency key.
    pub async fn all_completed(&self) -> Result<HashMap<String, Completed>, EtcdError> {
        let prefix = self.key("completed", "");
        let all = self.etcd.list(&prefix).await?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(&prefix)?.to_string();
                Some((key, serde_json::from_slice(&v).ok()?))
            })
            .collect())
    }

    /// Records that the action with idempotency key `key` ended in `state`, kept in etcd
    /// for at least `keep`.
    pub async fn record(&self, key: &str, state: &str, keep: Duration) -> Result<(), EtcdError> {
        let lease = self.records_lease(keep).await?;
        let value = serde_json::to_vec(&Completed {
            by: self.config.name.clone(),
            state: state.to_string(),
            at: crate::model::time::now_ms(),
        })
        .unwrap_or_default();
        self.etcd
            .put(&self.key("completed", key), &value, Some(lease))
            .await
    }

    /// A lease that lives at least `keep` longer: the last one when it does, else a new one
    /// of twice that, so that one lease serves the records of a while.
    async fn records_lease(&self, keep: Duration) -> Result<i64, EtcdError> {
        let mut cached = self.records_lease.lock().await;
        let now = Instant::now();
        if let Some((id, until)) = *cached
            && until > now + keep
        {
            return Ok(id);
        }
        let ttl = (keep * 2).max(Duration::from_secs(3600));
        let id = self.etcd.grant(ttl).await?;
        *cached = Some((id, now + ttl));
        Ok(id)
    }
}
