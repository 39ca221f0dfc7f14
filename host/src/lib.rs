//! Faultline: fault handling for distributed systems, with detection, localization and
//! recovery rules that run as WebAssembly sandboxes.

pub mod alerts;
pub mod config;
pub mod connections;
pub mod db;
pub mod external;
pub mod ingest;
pub mod inhibit;
pub mod kafka;
pub mod matchers;
pub mod metrics;
pub mod model;
pub mod mute;
pub mod notify;
pub mod outbox;
pub mod reload;
pub mod route;
pub mod rules;
pub mod ruletest;
pub mod runtime;
pub mod scaffold;
pub mod scrape;
pub mod server;
pub mod service;
pub mod silences;
pub mod store;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time in milliseconds since the Unix epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs the service until SIGINT or SIGTERM.
pub async fn serve(config: config::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", config.listen))?;
    let mut config = config;
    if config.external_url.is_none() {
        config.external_url = Some(format!("http://{}", listener.local_addr()?));
    }
    let svc = service::Service::new(config)?;
    svc.start();
    tracing::info!(
        address = %listener.local_addr()?,
        rules = svc.rules().rules().count(),
        "Faultline is listening"
    );
    axum::serve(listener, server::app(svc))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
