//! Records every instance holds the same copy of (silences): each is written under
//! `PREFIX/KIND/ID` with when it last changed, and every instance merges the others'
//! changes every second, the newest change of a record winning (as Alertmanager's gossip
//! merges silences). Writing through etcd rather than to the leader keeps the records
//! writable on every instance, also while there is no leader.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Cluster;

/// One replicated record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// When it last changed (ms): the newest change wins.
    pub updated_at: i64,
    /// After this (ms) the record is forgotten everywhere.
    pub expires_at: i64,
    pub body: serde_json::Value,
}

/// What keeps replicated records.
pub trait Replicated {
    /// Every record kept here.
    fn records(&self) -> Vec<Record>;
    /// Takes in a record changed on another instance (unknown here, or newer).
    fn merge(&self, record: Record);
}

impl Cluster {
    /// One round of replication of the records of `kind`: merges the newer ones found in
    /// etcd, writes the newer ones kept here, and deletes the expired ones from etcd.
    pub async fn replicate(&self, kind: &str, local: &impl Replicated) {
        let prefix = self.key(kind, "");
        let remote = match self.etcd.list(&prefix).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(kind, "cluster: cannot read replicated records: {e}");
                return;
            }
        };
        let now = crate::model::time::now_ms();
        let mut theirs: HashMap<String, Record> = HashMap::new();
        for (key, value) in remote {
            let Ok(record) = serde_json::from_slice::<Record>(&value) else {
                tracing::warn!(key, "cluster: unreadable replicated record skipped");
                continue;
            };
            if record.expires_at < now {
                self.etcd.delete(&key).await.ok();
                continue;
            }
            theirs.insert(record.id.clone(), record);
        }
        let mine = local.records();
        for r in &mine {
            let newer = theirs
                .get(&r.id)
                .is_none_or(|t| t.updated_at < r.updated_at);
            if r.expires_at >= now && newer {
                let value = serde_json::to_vec(r).unwrap_or_default();
                if let Err(e) = self.etcd.put(&self.key(kind, &r.id), &value, None).await {
                    tracing::debug!(kind, "cluster: cannot write a replicated record: {e}");
                }
            }
        }
        let known: HashMap<&str, i64> =
            mine.iter().map(|r| (r.id.as_str(), r.updated_at)).collect();
        for (id, record) in theirs {
            if known
                .get(id.as_str())
                .is_none_or(|&at| at < record.updated_at)
            {
                local.merge(record);
            }
        }
    }
}
