//! The recovery API: incidents with their suspects, the outbox (and its dead-letter list),
//! and the decision log.
//!
//! - `GET /api/v1/incidents`: incidents notified lately, with ranked suspects.
//! - `GET /api/v1/outbox?state=pending|done|dead|dry-run&limit=N`: actions, newest first.
//!   `state=dead` is the dead-letter list.
//! - `GET /api/v1/outbox/{id}`: one action with what it hands its plugin.
//! - `POST /api/v1/outbox/{id}/retry`: puts a dead-lettered action back in the queue.
//! - `GET /api/v1/decisions?receiver=&incident=&decision=&limit=`: every decision (queued,
//!   done, retry, failed, dead, skipped and why, dry-run, retried), newest first.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Shared};
use crate::outbox::{DecisionQuery, RetryError, state};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/outbox", get(outbox))
        .route("/api/v1/outbox/{id}", get(action))
        .route("/api/v1/outbox/{id}/retry", post(retry))
        .route("/api/v1/decisions", get(decisions))
}

async fn incidents(State(svc): State<Shared>) -> Json<Value> {
    Json(json!({"status": "success", "data": svc.incidents()}))
}

#[derive(Deserialize)]
struct OutboxQuery {
    state: Option<String>,
    limit: Option<usize>,
}

async fn outbox(
    State(svc): State<Shared>,
    Query(q): Query<OutboxQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &q.state
        && !state::ALL.contains(&s.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown state {s:?}: use one of {}", state::ALL.join(", ")),
        ));
    }
    let actions = svc
        .outbox()
        .actions(q.state.as_deref(), q.limit.unwrap_or(1000));
    Ok(Json(json!({"status": "success", "data": actions})))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid action id {id:?}: expected a number"),
        )
    })
}

async fn action(
    State(svc): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (a, payload) = svc
        .outbox()
        .action(id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no action {id}")))?;
    let mut v = serde_json::to_value(a).unwrap_or_default();
    v["incident"] = serde_json::to_value(&payload.incident).unwrap_or_default();
    v["suspects"] = serde_json::to_value(&payload.suspects).unwrap_or_default();
    Ok(Json(json!({"status": "success", "data": v})))
}

async fn retry(State(svc): State<Shared>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    match svc.outbox().retry(id, crate::model::time::now_ms()) {
        Ok(a) => Ok(Json(json!({"status": "success", "data": a}))),
        Err(e @ RetryError::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("action {id}: {e}"),
        )),
        Err(e @ RetryError::NotDead(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("action {id}: {e}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

async fn decisions(State(svc): State<Shared>, Query(q): Query<DecisionQuery>) -> Json<Value> {
    Json(json!({"status": "success", "data": svc.outbox().decisions(&q)}))
}
