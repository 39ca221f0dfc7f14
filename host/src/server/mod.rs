//! The HTTP API (axum). `app` builds the router, separate from serving, so tests can call
//! it without a socket.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::auth;
use crate::ingest::{self, IngestError};
use crate::service::Service;

pub mod alertmanager;
mod bodies;
mod browsers;
pub use browsers::require;
mod console;
mod ingestion;
pub mod listener;
mod query;
mod recovery;

/// An error answered to a client: a status and a message naming what is wrong.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.to_string())
    }
}

type Shared = Arc<Service>;

/// The router.
pub fn app(svc: Shared) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/-/healthy", get(|| async { "Faultline is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/metrics/job/{*grouping}", post(push).put(push))
        .route("/-/reload", post(reload))
        .route("/api/v1/status/reload", get(reload_status))
        .route("/api/v1/rules", get(rules_list))
        .route(
            "/api/v1/alerts",
            get(alerts_list).post(alertmanager::alerts::alerts_create_v1),
        )
        .merge(ingestion::routes())
        .merge(alertmanager::routes())
        .merge(recovery::routes())
        .merge(query::routes())
        .merge(console::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            bodies::Bodies::new(svc.clone()),
            bodies::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(svc.clone(), authorize))
        .layer(axum::middleware::from_fn_with_state(
            browsers::Allowed::new(svc.config()),
            browsers::check,
        ))
        .with_state(svc)
}

/// `GET /` is two things: the console for a browser, and Elasticsearch's version document for
/// its clients and shippers, which read it before they send logs. A request that accepts HTML
/// is a browser's.
async fn root(headers: HeaderMap) -> Response {
    let html = header_str(&headers, header::ACCEPT).is_some_and(|a| a.contains("text/html"));
    if html {
        console::page().await
    } else {
        ingestion::elasticsearch::info().await
    }
}

/// An unknown path: 404 with a body saying so, in the shape of the API it is under
/// (Alertmanager's `{"code", "message"}` for `/api/v2/`).
async fn not_found(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/v2/") {
        let body = json!({"code": 404, "message": format!("path {path} was not found")});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    ApiError::new(StatusCode::NOT_FOUND, format!("path {path} was not found")).into_response()
}

/// Refuses a request whose token may not do what it asks (see [`crate::auth`]).
async fn authorize(State(svc): State<Shared>, req: Request, next: Next) -> Response {
    let Some(needed) = auth::needed(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    match svc.tokens().check(req.headers(), needed) {
        Ok(()) => next.run(req).await,
        Err(denied) => denied.into_response(),
    }
}

async fn ready(State(svc): State<Shared>) -> Response {
    match svc.readiness() {
        Ok(()) => "Faultline is Ready.\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}.\n")).into_response(),
    }
}

async fn metrics(State(svc): State<Shared>) -> Response {
    ingestion::export_dropped(&svc);
    alertmanager::export_metrics(&svc);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        svc.metrics().render(),
    )
        .into_response()
}

/// Reads a request body up to the configured limit (413 past it; 408 when it does not
/// arrive within `[listener] body_read_timeout`, see [`bodies`]).
pub async fn body(svc: &Service, body: Body) -> Result<bytes::Bytes, ApiError> {
    let max = svc.config().max_body.0;
    axum::body::to_bytes(body, max).await.map_err(|e| {
        if let Some(timed_out) = bodies::timed_out(&e) {
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, timed_out.to_string());
        }
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {max} bytes"),
        )
    })
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn ingest_limits(svc: &Service) -> ingest::Limits {
    ingest::Limits {
        max_body_bytes: svc.config().max_body.0,
        ..ingest::Limits::default()
    }
}

/// Pushgateway-style push of text exposition: `/metrics/job/<job>{/<label>/<value>}`.
async fn push(State(svc): State<Shared>, req: Request) -> Result<StatusCode, ApiError> {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let bytes = body(&svc, req.into_body()).await.inspect_err(|_| {
        svc.metrics().inc(
            "faultline_ingest_rejected_total",
            &[("source", "push"), ("code", "413")],
        );
    })?;
    let series = ingest::exposition::parse_push(
        header_str(&headers, header::CONTENT_TYPE),
        header_str(&headers, header::CONTENT_ENCODING),
        &bytes,
        &path,
        crate::model::time::now_ms(),
        &ingest_limits(&svc),
    )
    .map_err(|e| {
        svc.metrics().inc(
            "faultline_ingest_rejected_total",
            &[("source", "push"), ("code", &e.status().to_string())],
        );
        ApiError::from(e)
    })?;
    let n: usize = series.iter().map(|s| s.samples.len()).sum();
    svc.store().append(series);
    svc.metrics().add(
        "faultline_samples_ingested_total",
        &[("source", "push")],
        n as f64,
    );
    Ok(StatusCode::OK)
}

/// Reloads the rules directory, as Prometheus's `/-/reload`: 200, or 500 with every error.
async fn reload(State(svc): State<Shared>) -> Result<&'static str, ApiError> {
    match svc.reload().await {
        Ok(()) => Ok("rules reloaded\n"),
        Err(errors) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload rules, the previous rules keep running:\n{errors}"),
        )),
    }
}

/// The outcome of the last reload.
async fn reload_status(State(svc): State<Shared>) -> Response {
    let s = svc.reload_status();
    axum::Json(json!({
        "status": "success",
        "data": {
            "success": s.success,
            "lastAttempt": s.last_attempt.map(crate::model::time::rfc3339),
            "lastSuccess": s.last_success.map(crate::model::time::rfc3339),
            "errors": s.errors,
        }
    }))
    .into_response()
}

/// Every rule with its health, last evaluation and last error: in Prometheus's `groups`
/// shape (for Prometheus clients and Grafana), and as the flat `rules` list of earlier
/// versions.
async fn rules_list(State(svc): State<Shared>) -> Response {
    let health = svc.rule_health();
    let alerts = svc.alerts();
    let rules: Vec<_> = health
        .iter()
        .map(|(r, h)| {
            json!({
                "name": r.name,
                "group": r.group,
                "file": r.file.display().to_string(),
                "line": r.line,
                "plugin": r.plugin.name,
                "pluginHash": r.plugin.hash,
                "select": r.select,
                "health": h.health,
                "lastEvaluation": h.last_evaluation.map(crate::model::time::rfc3339),
                "evaluationTime": h.last_duration_seconds,
                "lastError": h.last_error,
                "consecutiveFailures": h.consecutive_failures,
                "quarantinedUntil": h.quarantined_until.map(crate::model::time::rfc3339),
            })
        })
        .collect();
    let never = "0001-01-01T00:00:00Z";
    let groups: Vec<_> = svc
        .rules()
        .groups
        .iter()
        .map(|g| {
            let mut group_time = 0.0;
            let mut group_last: Option<i64> = None;
            let rules: Vec<_> = health
                .iter()
                .filter(|(r, _)| r.group == g.name)
                .map(|(r, h)| {
                    group_time += h.last_duration_seconds;
                    group_last = group_last.max(h.last_evaluation);
                    let id = r.id();
                    let active: Vec<_> = alerts
                        .iter()
                        .filter(|(rule, a)| *rule == id && a.status.as_str() != "resolved")
                        .map(|(_, a)| {
                            json!({
                                "labels": a.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
                                "annotations": a.annotations.iter().collect::<std::collections::BTreeMap<_, _>>(),
                                "state": a.status.as_str(),
                                "activeAt": crate::model::time::rfc3339(a.active_at),
                                "value": a.value.map_or_else(|| "NaN".to_string(), |v| v.to_string()),
                            })
                        })
                        .collect();
                    let state = if active.iter().any(|a| a["state"] == "firing") {
                        "firing"
                    } else if active.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    json!({
                        "state": state,
                        "name": r.name,
                        "query": r.select,
                        "duration": r.for_.as_secs_f64(),
                        "keepFiringFor": r.keep_firing_for.as_secs_f64(),
                        "labels": r.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
                        "annotations": r.annotations.iter().map(|(k, t)| (k.clone(), t.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                        "alerts": active,
                        "health": h.health,
                        "lastError": h.last_error.clone().unwrap_or_default(),
                        "evaluationTime": h.last_duration_seconds,
                        "lastEvaluation": h.last_evaluation.map_or_else(|| never.to_string(), crate::model::time::rfc3339),
                        "type": "alerting",
                        "plugin": r.plugin.name,
                    })
                })
                .collect();
            json!({
                "name": g.name,
                "file": g.file.display().to_string(),
                "rules": rules,
                "interval": g.interval.as_secs_f64(),
                "limit": 0,
                "evaluationTime": group_time,
                "lastEvaluation": group_last.map_or_else(|| never.to_string(), crate::model::time::rfc3339),
            })
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"groups": groups, "rules": rules}}))
        .into_response()
}

/// The alerts of the rules, in Prometheus's `/api/v1/alerts` shape.
async fn alerts_list(State(svc): State<Shared>) -> Response {
    let alerts: Vec<_> = svc
        .alerts()
        .into_iter()
        .map(|(rule, a)| {
            json!({
                "rule": rule,
                "labels": a.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "annotations": a.annotations.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "state": a.status.as_str(),
                "activeAt": crate::model::time::rfc3339(a.active_at),
                "firedAt": a.fired_at.map(crate::model::time::rfc3339),
                "resolvedAt": a.resolved_at.map(crate::model::time::rfc3339),
                "value": a.value.map(|v| v.to_string()),
            })
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response()
}

/// Runs the service until SIGINT or SIGTERM.
pub async fn serve(config: crate::config::Config) -> anyhow::Result<()> {
    let listener = listener::Listener::bind(&config.listen, &config.listener).await?;
    let mut config = config;
    if config.external_url.is_none() {
        let scheme = config.listener.scheme();
        config.external_url = Some(format!("{scheme}://{}", listener.local_addr()?));
    }
    let svc = Service::new(config)?;
    svc.start();
    tracing::info!(
        address = %listener.local_addr()?,
        tls = svc.config().listener.tls.is_some(),
        rules = svc.rules().rules().count(),
        "Faultline is listening"
    );
    listener.serve(app(svc.clone()), shutdown()).await;
    svc.stop().await;
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
