//! Hot reload triggers: a watcher on the rules directory (debounced, so an editor's
//! several writes make one reload) and SIGHUP. `POST /-/reload` is in the HTTP API. Each
//! trigger arrives as one message on the channel [`triggers`] returns; the service answers
//! it with a reload, which swaps the new rules in only if all of them load.

use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The rules directory changed (after the debounce).
    Changed,
    /// The process received SIGHUP.
    Sighup,
}

/// Starts the watcher on `rules_dir` and the SIGHUP handler; each reload they ask for
/// arrives on the returned channel. Must run inside a Tokio runtime.
pub fn triggers(rules_dir: &Path) -> mpsc::UnboundedReceiver<Trigger> {
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
            // Debounce: wait until changes stop for a moment.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
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
