//! Several instances of Faultline as one, coordinated through etcd (`[cluster]`).
//!
//! Every instance ingests what is sent to it, evaluates every rule and plans every recovery
//! action in its own outbox, with idempotency keys that are the same on every instance
//! (see `dispatch::incident::alerts_key` and the aligned evaluation in `service.rs`). One
//! instance, the leader, delivers: it holds an etcd lease, renewed every `lease_ttl / 6`,
//! and wins the election campaign under `PREFIX/election` with it. The others plan but do
//! not deliver; they finish their copies of the actions the leader recorded as done.
//!
//! - **Completed keys** (`completed.rs`): the leader records each finished action's key
//!   under `PREFIX/completed/` with a lease longer than the receiver's `max_age`. Before
//!   any attempt the leader looks the key up, so a new leader delivers exactly the actions
//!   whose keys are not recorded.
//! - **Fencing**: a leader that has not renewed its lease for `lease_ttl / 2` (counted from
//!   when the last successful renewal was *sent*, so before etcd can let the lease expire)
//!   starts no attempt, logs it, sets `faultline_cluster_fenced` and fails `/-/ready`,
//!   until a renewal succeeds or etcd says the lease is gone (then it campaigns again).
//! - **Replicated records** (`replica.rs`): silences are written under `PREFIX/silences/`
//!   and every instance merges what it finds there every second, newest change winning, so
//!   a silence set on any instance mutes on all, also when the leader is gone.
//!
//! On shutdown (SIGTERM, SIGINT) an instance revokes its lease, so another one takes over at
//! once rather than after the lease's TTL.
//!
//! `election.rs` holds the lease and the campaign; `etcd.rs` is the small etcd client.

pub mod completed;
mod election;
pub mod etcd;
pub mod replica;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::model::units::PromDuration;
use etcd::Etcd;

/// `[cluster]`: the etcd cluster, this instance's name, the lease and the key prefix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd's client URLs, e.g. `["http://10.0.0.1:2379", "http://10.0.0.2:2379"]`.
    pub etcd: Vec<String>,
    /// This instance's name, unique in the cluster: announced when it leads and recorded
    /// with the actions it completes.
    pub name: String,
    /// The leader's lease: a leader that dies is replaced within about this long, and one
    /// that cannot renew it stops delivering after half of it.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: PromDuration,
    /// Where in etcd's key space the cluster keeps its keys.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_lease_ttl() -> PromDuration {
    PromDuration(Duration::from_secs(6))
}

fn default_prefix() -> String {
    "/faultline/".into()
}

impl ClusterConfig {
    /// Refuses settings that cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.etcd.is_empty() {
            return Err("[cluster] etcd: at least one endpoint is needed".into());
        }
        if let Some(bad) = self.etcd.iter().find(|e| !e.starts_with("http://")) {
            return Err(format!(
                "[cluster] etcd: {bad:?} is not an http:// URL (etcd's client URL)"
            ));
        }
        if self.name.trim().is_empty() {
            return Err("[cluster] name: must not be empty".into());
        }
        if self.lease_ttl.0 < Duration::from_secs(2) {
            return Err(format!(
                "[cluster] lease_ttl: {} is under etcd's minimum of 2s",
                self.lease_ttl
            ));
        }
        if !self.prefix.starts_with('/') || !self.prefix.ends_with('/') {
            return Err(format!(
                "[cluster] prefix: {:?} must start and end with '/'",
                self.prefix
            ));
        }
        Ok(())
    }
}

/// This instance's part in the cluster.
pub struct Cluster {
    config: ClusterConfig,
    etcd: Etcd,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Notified when this instance becomes the leader, to wake the delivery loop.
    pub elected: Notify,
    /// The lease completed keys are written with, and until when it lives.
    records_lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
}

#[derive(Default)]
struct State {
    /// Whether this instance won the campaign with its current lease.
    elected: bool,
    /// When the last successful renewal of the lease was sent.
    renewed: Option<Instant>,
    /// The current lease, once granted.
    lease: Option<i64>,
    /// Set on shutdown: campaign no more.
    left: bool,
    /// What the log and `/metrics` last said: (leader, fenced).
    shown: (bool, bool),
}

impl Cluster {
    /// The cluster of `config`; nothing runs until [`Cluster::start`].
    pub fn new(config: ClusterConfig, metrics: Arc<Metrics>) -> Arc<Cluster> {
        let etcd = Etcd::new(&config.etcd, Self::renew_every(&config));
        metrics.set("faultline_cluster_leader", &[], 0.0);
        metrics.set("faultline_cluster_fenced", &[], 0.0);
        Arc::new(Cluster {
            config,
            etcd,
            metrics,
            state: Mutex::new(State::default()),
            elected: Notify::new(),
            records_lease: tokio::sync::Mutex::new(None),
        })
    }

    /// How often the lease is renewed, and how long a request to etcd may take.
    fn renew_every(config: &ClusterConfig) -> Duration {
        (config.lease_ttl.0 / 6).max(Duration::from_millis(300))
    }

    /// This instance's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Starts campaigning, and keeps the log and `/metrics` told of this instance's part.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(election::run(self.clone()));
        let c = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                c.show();
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this instance may start delivering an action now: it is the leader and
    /// renewed its lease less than half the lease's TTL ago.
    pub fn may_deliver(&self) -> bool {
        let s = self.lock();
        s.elected
            && s.renewed
                .is_some_and(|r| r.elapsed() < self.config.lease_ttl.0 / 2)
    }

    /// Whether this instance won the election but is cut off from etcd: it delivers nothing.
    pub fn fenced(&self) -> bool {
        let elected = self.lock().elected;
        elected && !self.may_deliver()
    }

    /// `/-/ready`'s part: a fenced leader is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        if self.fenced() {
            return Err(format!(
                "fenced: the cluster lease was not renewed for {} (half of lease_ttl), so \
                 recovery actions are held until etcd answers again",
                PromDuration(self.config.lease_ttl.0 / 2)
            ));
        }
        Ok(())
    }

    /// Logs and exports a change of this instance's part.
    fn show(&self) {
        let now = (self.may_deliver(), self.fenced());
        let before = std::mem::replace(&mut self.lock().shown, now);
        if now == before {
            return;
        }
        let name = &self.config.name;
        match now {
            (true, _) => tracing::info!(
                name,
                "this instance is the cluster's leader: it delivers recovery actions"
            ),
            (false, true) => tracing::error!(
                name,
                "fenced: the cluster lease was not renewed for half its TTL; delivering no recovery action until it is"
            ),
            (false, false) => tracing::info!(
                name,
                "this instance is a follower: it plans recovery actions, the leader delivers them"
            ),
        }
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        self.metrics
            .set("faultline_cluster_leader", &[], flag(now.0));
        self.metrics
            .set("faultline_cluster_fenced", &[], flag(now.1));
    }

    fn set_elected(&self, elected: bool) {
        let mut s = self.lock();
        // Leaving: a campaign that returns now does not make this instance the leader.
        s.elected = elected && !s.left;
        drop(s);
        self.show();
        if elected {
            self.elected.notify_one();
        }
    }

    /// Leaves the cluster on shutdown: stops delivering and revokes the lease, so another
    /// instance takes over at once instead of after the lease's TTL.
    pub async fn leave(&self) {
        let lease = {
            let mut s = self.lock();
            s.left = true;
            s.elected = false;
            s.lease.take()
        };
        self.show();
        if let Some(lease) = lease {
            match self.etcd.revoke(lease).await {
                Ok(()) => tracing::info!(name = %self.config.name, "cluster: left, lease revoked"),
                Err(e) => tracing::warn!("cluster: cannot revoke the lease on leaving: {e}"),
            }
        }
    }

    /// Takes a newly granted lease, unless this instance is leaving: then it is revoked.
    async fn granted(&self, lease: i64, sent: Instant) -> bool {
        let left = {
            let mut s = self.lock();
            if !s.left {
                s.lease = Some(lease);
                s.renewed = Some(sent);
            }
            s.left
        };
        if left {
            self.etcd.revoke(lease).await.ok();
        }
        !left
    }

    fn renewed(&self, sent: Instant) {
        self.lock().renewed = Some(sent);
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}/{id}", self.config.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<ClusterConfig, String> {
        let c: ClusterConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check().map(|()| c)
    }

    #[test]
    fn defaults_and_bad_settings() {
        let c = config("etcd = [\"http://127.0.0.1:2379\"]\nname = \"a\"").unwrap();
        assert_eq!(c.lease_ttl.0, Duration::from_secs(6));
        assert_eq!(c.prefix, "/faultline/");
        let bad = [
            ("etcd = []\nname = \"a\"", "at least one endpoint"),
            (
                "etcd = [\"127.0.0.1:2379\"]\nname = \"a\"",
                "not an http:// URL",
            ),
            (
                "etcd = [\"http://e\"]\nname = \"a\"\nlease_ttl = \"1s\"",
                "minimum",
            ),
            (
                "etcd = [\"http://e\"]\nname = \"a\"\nprefix = \"x\"",
                "prefix",
            ),
            ("etcd = [\"http://e\"]", "missing field `name`"),
        ];
        for (text, why) in bad {
            let e = config(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_leader_stops_delivering_half_a_ttl_after_its_last_renewal() {
        let c = Cluster::new(
            config("etcd = [\"http://e\"]\nname = \"a\"\nlease_ttl = \"2s\"").unwrap(),
            Arc::new(Metrics::default()),
        );
        assert!(!c.may_deliver(), "not elected");
        c.renewed(Instant::now());
        c.set_elected(true);
        assert!(c.may_deliver() && !c.fenced());
        assert_eq!(c.metrics.get("faultline_cluster_leader", &[]), Some(1.0));
        c.renewed(Instant::now() - Duration::from_millis(1001));
        assert!(!c.may_deliver() && c.fenced());
        assert!(c.readiness().unwrap_err().contains("fenced"));
        c.show();
        assert_eq!(c.metrics.get("faultline_cluster_fenced", &[]), Some(1.0));
        assert_eq!(c.metrics.get("faultline_cluster_leader", &[]), Some(0.0));
    }
}
