//! Silences through Alertmanager's API: create or update (`POST /api/v2/silences`), list
//! (`GET /api/v2/silences`, with `filter`), get and expire (`GET`, `DELETE
//! /api/v2/silence/{id}`). Validation and messages are Alertmanager 0.25's. A silence may
//! carry a `schedule` (Faultline's extension, see `dispatch::silences`).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{AmError, Rfc3339, json_response, parse_filter, passes_filter, query_pairs};
use crate::dispatch::silences::{MatcherSpec, Silence, SilenceError, SilenceSpec, is_uuid};
use crate::dispatch::time_interval::TimeSpecConfig;
use crate::server::{body, require};
use crate::service::Service;

type Shared = Arc<Service>;

/// `PostableSilence`, every field optional so that a missing one is named as Alertmanager
/// names it.
#[derive(Deserialize)]
struct Postable {
    id: Option<String>,
    matchers: Option<Vec<PostableMatcher>>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "createdBy")]
    created_by: Option<String>,
    comment: Option<String>,
    /// Faultline's extension: a recurring silence's schedule, in the syntax of time
    /// intervals.
    #[serde(default)]
    schedule: Vec<TimeSpecConfig>,
}

#[derive(Deserialize)]
struct PostableMatcher {
    name: Option<String>,
    value: Option<String>,
    #[serde(rename = "isRegex")]
    is_regex: Option<bool>,
    #[serde(rename = "isEqual")]
    is_equal: Option<bool>,
}

/// `POST /api/v2/silences`: `{"silenceID": ...}`, the new ID when an update had to replace
/// the silence.
pub async fn silences_create(State(svc): State<Shared>, req: Request) -> Result<Response, AmError> {
    require(req.headers(), &["application/json"])?;
    let bytes = body(&svc, req.into_body()).await?;
    let now = crate::model::time::now_ms();
    let spec = parse_postable(&bytes)?;
    if spec.starts_at >= spec.ends_at {
        return Err(AmError::Message(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: start time must be before end time".into(),
        ));
    }
    if spec.ends_at < now {
        return Err(AmError::Message(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: end time can't be in the past".into(),
        ));
    }
    let id = svc.silences().set(spec, now).map_err(|e| {
        let status = match e {
            SilenceError::NotFound => StatusCode::NOT_FOUND,
            SilenceError::Invalid(_) => StatusCode::BAD_REQUEST,
            SilenceError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        AmError::Message(status, e.to_string())
    })?;
    tracing::info!(silence = %id, "silence set");
    Ok(json_response(&serde_json::json!({ "silenceID": id })))
}

/// Parses and checks a `PostableSilence` against the API's schema.
pub(crate) fn parse_postable(bytes: &[u8]) -> Result<SilenceSpec, AmError> {
    let p: Postable = serde_json::from_slice(bytes).map_err(|e| AmError::parsing("silence", e))?;
    let comment = p.comment.ok_or_else(|| AmError::required("comment"))?;
    let created_by = p.created_by.ok_or_else(|| AmError::required("createdBy"))?;
    let ends_at = p.ends_at.ok_or_else(|| AmError::required("endsAt"))?;
    let raw_matchers = p.matchers.ok_or_else(|| AmError::required("matchers"))?;
    let starts_at = p.starts_at.ok_or_else(|| AmError::required("startsAt"))?;
    if raw_matchers.is_empty() {
        return Err(AmError::Schema {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 612,
            message: "matchers in body should have at least 1 items".into(),
        });
    }
    let mut matchers = Vec::with_capacity(raw_matchers.len());
    for (i, m) in raw_matchers.into_iter().enumerate() {
        let field = |f: &str| AmError::required(&format!("matchers.{i}.{f}"));
        let is_regex = m.is_regex.ok_or_else(|| field("isRegex"))?;
        let name = m.name.ok_or_else(|| field("name"))?;
        let value = m.value.ok_or_else(|| field("value"))?;
        matchers.push(MatcherSpec {
            name,
            value,
            is_regex,
            is_equal: m.is_equal.unwrap_or(true),
        });
    }
    let time = |s: &str| {
        crate::ingest::rfc3339_ms(s)
            .ok_or_else(|| AmError::parsing("silence", format!("{s:?} is not an RFC 3339 time")))
    };
    Ok(SilenceSpec {
        id: p.id.filter(|id| !id.is_empty()),
        matchers,
        starts_at: time(&starts_at)?,
        ends_at: time(&ends_at)?,
        created_by,
        comment,
        schedule: p.schedule,
    })
}

/// `GET /api/v2/silences`: every silence (active, then pending, then expired), or those
/// whose matchers pass the `filter` matchers.
pub async fn silences_list(State(svc): State<Shared>, uri: Uri) -> Result<Response, AmError> {
    let pairs = query_pairs(uri.query());
    let filter = parse_filter(&pairs)?;
    let now = crate::model::time::now_ms();
    let silences = svc.silences().list(now);
    let out: Vec<Gettable> = silences
        .iter()
        .filter(|s| {
            passes_filter(&filter, |name| {
                s.specs
                    .iter()
                    .rev()
                    .find(|m| m.name == name)
                    .map(|m| m.value.as_str())
            })
        })
        .map(|s| Gettable::new(s, now))
        .collect();
    Ok(json_response(&out))
}

/// `GET /api/v2/silence/{id}`.
pub async fn silence_get(
    State(svc): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    check_id(&id)?;
    let s = svc
        .silences()
        .get(&id)
        .ok_or(AmError::Empty(StatusCode::NOT_FOUND))?;
    Ok(json_response(&Gettable::new(
        &s,
        crate::model::time::now_ms(),
    )))
}

/// `DELETE /api/v2/silence/{id}`: expires the silence. An unknown one is 500 "silence not
/// found", as Alertmanager 0.25 answers: its API declares no 404 here, so amtool would print
/// only that the status is undeclared.
pub async fn silence_delete(
    State(svc): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, AmError> {
    check_id(&id)?;
    svc.silences()
        .expire(&id, crate::model::time::now_ms())
        .map_err(|e| AmError::Message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::info!(silence = %id, "silence expired");
    Ok(StatusCode::OK)
}

fn check_id(id: &str) -> Result<(), AmError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(AmError::Schema {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 601,
            message: format!("silenceID in path must be of type uuid: {id:?}"),
        })
    }
}

/// A silence in Alertmanager's `GettableSilence` shape.
#[derive(Serialize)]
struct Gettable<'a> {
    id: &'a str,
    status: SilenceStatus,
    #[serde(rename = "updatedAt")]
    updated_at: Rfc3339,
    comment: &'a str,
    #[serde(rename = "createdBy")]
    created_by: &'a str,
    #[serde(rename = "endsAt")]
    ends_at: Rfc3339,
    matchers: &'a [MatcherSpec],
    #[serde(rename = "startsAt")]
    starts_at: Rfc3339,
    /// A recurring silence's schedule; Alertmanager's clients ignore it.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    schedule: &'a [TimeSpecConfig],
}

#[derive(Serialize)]
struct SilenceStatus {
    state: &'static str,
}

impl<'a> Gettable<'a> {
    fn new(s: &'a Silence, now: i64) -> Gettable<'a> {
        Gettable {
            id: &s.id,
            status: SilenceStatus {
                state: s.shown_state(now).as_str(),
            },
            updated_at: Rfc3339(s.updated_at),
            comment: &s.comment,
            created_by: &s.created_by,
            ends_at: Rfc3339(s.ends_at),
            matchers: &s.specs,
            starts_at: Rfc3339(s.starts_at),
            schedule: s.schedule_specs(),
        }
    }
}
