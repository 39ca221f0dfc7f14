//! Hot reload triggers: a watcher on the rules directory and SIGHUP. `POST /-/reload` is in
//! the HTTP API. The watcher reloads only once the directory has been stable for a quiet
//! period (every further change starts it again), so a file saved in several writes is
//! never loaded half-written. Each trigger arrives as one message on the channel
//! [`triggers`] returns; the service answers it with a reload, which swaps the new rules in
//! only if all of them load.

use std::path::Path;

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::model::units::PromDuration;

/// `[reload]` in the server configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// How long the rules directory must be unchanged before the watcher reloads it.
    /// Default 2s.
    pub quiet_period: PromDuration,
    /// How long the alerts of a rule that vanished (its file deleted, or the rule removed
    /// from it) are kept as they are before they resolve; a rule back within it keeps its
    /// alerts. Default 5m.
    pub vanished_grace: PromDuration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            quiet_period: PromDuration(std::time::Duration::from_secs(2)),
            vanished_grace: PromDuration(std::time::Duration::from_secs(300)),
        }
    }
}

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The rules directory changed, then stayed unchanged for the quiet period.
    Changed,
    /// The process received SIGHUP.
    Sighup,
}

/// Starts the watcher on `rules_dir` (reloading after `quiet_period` without changes) and
/// the SIGHUP handler; each reload they ask for arrives on the returned channel. Must run
/// inside a Tokio runtime.
pub fn triggers(rules_dir: &Path, quiet_period: PromDuration) -> mpsc::UnboundedReceiver<Trigger> {
    let (out, triggers) = mpsc::unbounded_channel();
    sighup(out.clone());
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && matches!(
                    ev.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                )
            {
                tx.send(()).ok();
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    "cannot watch the rules directory ({e}); reload with SIGHUP or POST /-/reload"
                );
                return triggers;
            }
        };
    if let Err(e) = watcher.watch(rules_dir, RecursiveMode::Recursive) {
        tracing::warn!(dir = %rules_dir.display(), "cannot watch the rules directory ({e}); reload with SIGHUP or POST /-/reload");
    }
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Wait until the directory has been quiet for the whole period: a change
            // within it starts the period again.
            while let Ok(Some(())) = tokio::time::timeout(quiet_period.0, rx.recv()).await {}
            tracing::info!("rules directory changed: reloading");
            if out.send(Trigger::Changed).is_err() {
                return;
            }
        }
    });
    triggers
}

fn sighup(out: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            if out.send(Trigger::Sighup).is_err() {
                return;
            }
        }
    });
}
