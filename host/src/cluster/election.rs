//! The leader election: grant a lease, keep it renewed, campaign with it, lead until it is
//! lost, and start again. Fencing is not decided here but from the time of the last
//! renewal (see [`Cluster::may_deliver`]), so a renewal that hangs cannot delay it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Cluster;

/// Campaigns forever: each round grants a lease, campaigns with it while renewing it, and,
/// once elected, leads until etcd says the lease is gone.
pub(super) async fn run(c: Arc<Cluster>) {
    let election = format!("{}election", c.config.prefix);
    let pause = Duration::from_secs(1);
    loop {
        let sent = Instant::now();
        let lease = match c.etcd.grant(c.config.lease_ttl.0).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!("cluster: cannot get a lease from etcd: {e}");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if !c.granted(lease, sent).await {
            return;
        }
        let renewing = keep_alive(&c, lease);
        tokio::pin!(renewing);
        let campaign = c.etcd.campaign(&election, lease, &c.config.name);
        let won = tokio::select! {
            () = &mut renewing => false,
            r = campaign => match r {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("cluster: campaigning failed: {e}");
                    false
                }
            },
        };
        if won {
            c.set_elected(true);
            (&mut renewing).await;
            c.set_elected(false);
            tracing::warn!(
                name = %c.config.name,
                "cluster: the leader's lease expired; campaigning again"
            );
        } else {
            c.etcd.revoke(lease).await.ok();
            tokio::time::sleep(pause).await;
        }
    }
}

/// Renews `lease` every `lease_ttl / 6` until etcd says it is gone. A renewal that fails
/// is retried at the next turn; the first of a run of failures is logged.
async fn keep_alive(c: &Cluster, lease: i64) {
    let every = Cluster::renew_every(&c.config);
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        match c.etcd.keep_alive(lease).await {
            Ok(true) => {
                if failing {
                    tracing::info!("cluster: etcd answers again; the lease is renewed");
                }
                failing = false;
                c.renewed(sent);
            }
            Ok(false) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!("cluster: cannot renew the lease: {e}");
                }
                failing = true;
            }
        }
    }
}
