//! Hot reload triggers: a watcher on the rules directory (debounced, so an editor's
//! several writes make one reload) and SIGHUP. `POST /-/reload` is in the HTTP API. Each
//! calls `Service::reload`, which swaps the new rules in only if all of them load.

use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::service::Service;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Starts the watcher and the SIGHUP handler for a running service.
pub fn watch(svc: Arc<Service>) {
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
                return sighup(svc);
            }
        };
    if let Err(e) = watcher.watch(&svc.config.rules_dir, RecursiveMode::Recursive) {
        tracing::warn!(dir = %svc.config.rules_dir.display(), "cannot watch the rules directory ({e}); reload with SIGHUP or POST /-/reload");
    }
    let s = svc.clone();
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Debounce: wait until changes stop for a moment.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            tracing::info!("rules directory changed: reloading");
            s.reload().await.ok();
        }
    });
    sighup(svc);
}

fn sighup(svc: Arc<Service>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            svc.reload().await.ok();
        }
    });
}
