//! Alerts in and out: `POST /api/v2/alerts` and the webhook receiver take external alerts
//! in; `GET /api/v2/alerts` and `GET /api/v2/alerts/groups` list the firing alerts, rule and
//! external, with their receivers and whether silences or inhibition mute them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde::Serialize;
use smallvec::SmallVec;

use super::{
    AmError, Hex, ReceiverName, Rfc3339, json_bytes, parse_bool, parse_filter, passes_filter,
    query_pairs,
};
use crate::alerts::external::{ExternalAlert, StoreError};
use crate::alerts::{Alert, Status};
use crate::dispatch::mute::{Muter, Suppression};
use crate::ingest::alerts::PostableAlert;
use crate::model::Labels;
use crate::model::matcher::Matcher;
use crate::rules::RuleSet;
use crate::server::{ApiError, body, ingest_limits, require};
use crate::service::Service;

type Shared = Arc<Service>;

/// Why an alert intake was refused (in part, for [`Refused::Invalid`]).
enum Refused {
    /// The body could not be read (not JSON, or over the size limit).
    Body(ApiError),
    /// The body could not be parsed: nothing was stored.
    Parse(crate::ingest::IngestError),
    /// Storing failed.
    Store(StoreError),
    /// Some alerts were invalid (the valid ones were stored).
    Invalid(crate::ingest::IngestError),
}

/// Takes a `POST /api/v{1,2}/alerts` body: stores the valid alerts (durably, before
/// answering) and counts them as Alertmanager does, by API `version`.
async fn take(svc: &Service, req: Request, version: &str) -> Result<(), Refused> {
    require(req.headers(), &["application/json"]).map_err(Refused::Body)?;
    let bytes = body(svc, req.into_body()).await.map_err(Refused::Body)?;
    let posted =
        crate::ingest::alerts::parse_postable(&bytes, &ingest_limits(svc)).map_err(|e| {
            svc.metrics()
                .inc("faultline_alerts_invalid_total", &[("source", "api")]);
            Refused::Parse(e)
        })?;
    let m = svc.metrics();
    let now = crate::model::time::now_ms();
    let resolved = posted
        .valid
        .iter()
        .filter(|a| a.ends_at.is_some_and(|e| e <= now))
        .count();
    let firing = posted.valid.len() - resolved;
    for (status, n) in [("firing", firing), ("resolved", resolved)] {
        m.add(
            "alertmanager_alerts_received_total",
            &[("status", status), ("version", version)],
            n as f64,
        );
    }
    receive(svc, "api", posted.valid, svc.config().resolve_timeout.0)
        .await
        .map_err(Refused::Store)?;
    if let Some(invalid) = posted.invalid {
        svc.metrics()
            .inc("faultline_alerts_invalid_total", &[("source", "api")]);
        if let crate::ingest::IngestError::InvalidAlerts(each) = &invalid {
            m.add(
                "alertmanager_alerts_invalid_total",
                &[("version", version)],
                each.len() as f64,
            );
        }
        return Err(Refused::Invalid(invalid));
    }
    Ok(())
}

/// `POST /api/v2/alerts`: stores the valid alerts (durably, before answering); answers 200
/// with no body, or 400 with the invalid alerts' messages (the valid ones are kept).
pub async fn alerts_create(State(svc): State<Shared>, req: Request) -> Result<StatusCode, AmError> {
    take(&svc, req, "v2")
        .await
        .map_err(|refused| match refused {
            Refused::Body(e) => e.into(),
            Refused::Parse(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                match e.status() {
                    422 => AmError::Schema {
                        status,
                        code: 602,
                        message: e.to_string(),
                    },
                    400 => AmError::parsing("alerts", e),
                    _ => AmError::Message(status, e.to_string()),
                }
            }
            Refused::Store(e) => AmError::Message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            Refused::Invalid(e) => AmError::Message(StatusCode::BAD_REQUEST, e.to_string()),
        })?;
    Ok(StatusCode::OK)
}

/// `POST /api/v1/alerts`: Alertmanager 0.25's API v1 intake (a Prometheus with
/// `api_version: v1` posts here): the body of v2, the answers of v1,
/// `{"status": "success"}` or `{"status": "error", "errorType", "error"}`.
pub async fn alerts_create_v1(State(svc): State<Shared>, req: Request) -> Response {
    let (status, kind, message) = match take(&svc, req, "v1").await {
        Ok(()) => return super::json_response(&serde_json::json!({"status": "success"})),
        Err(Refused::Body(e)) => (e.status, "bad_data", e.message),
        Err(Refused::Parse(e) | Refused::Invalid(e)) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, "bad_data", e.to_string())
        }
        Err(Refused::Store(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    };
    let body = serde_json::json!({"status": "error", "errorType": kind, "error": message});
    (status, super::json_response(&body)).into_response()
}

/// `POST /api/v1/alertmanager/webhook`: an Alertmanager's webhook notification. Its firing
/// alerts have no end: they resolve when a resolved notification arrives, or after
/// `webhook_resolve_timeout` without a repeat.
pub async fn webhook_receive(
    State(svc): State<Shared>,
    req: Request,
) -> Result<StatusCode, ApiError> {
    require(req.headers(), &["application/json"])?;
    let bytes = body(&svc, req.into_body()).await?;
    let alerts =
        crate::ingest::alerts::parse_webhook(&bytes, &ingest_limits(&svc)).inspect_err(|_| {
            svc.metrics()
                .inc("faultline_alerts_invalid_total", &[("source", "webhook")]);
        })?;
    receive(
        &svc,
        "webhook",
        alerts,
        svc.config().webhook_resolve_timeout.0,
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::OK)
}

async fn receive(
    svc: &Service,
    source: &str,
    alerts: Vec<PostableAlert>,
    resolve_timeout: Duration,
) -> Result<(), StoreError> {
    let now = crate::model::time::now_ms();
    let resolved = alerts
        .iter()
        .filter(|a| a.ends_at.is_some_and(|e| e <= now))
        .count();
    let firing = alerts.len() - resolved;
    svc.external()
        .receive(alerts, now, resolve_timeout)
        .await
        .inspect_err(|e| tracing::error!("{e}"))?;
    for (status, n) in [("firing", firing), ("resolved", resolved)] {
        if n > 0 {
            svc.metrics().add(
                "faultline_alerts_received_total",
                &[("source", source), ("status", status)],
                n as f64,
            );
        }
    }
    Ok(())
}

/// The query parameters of `GET /api/v2/alerts` (and `/alerts/groups`).
#[derive(Debug)]
pub struct AlertsQuery {
    /// Show alerts that are neither silenced nor inhibited.
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    /// Accepted for compatibility: every alert listed has been processed.
    pub unprocessed: bool,
    /// Matchers every listed alert satisfies.
    pub filter: Vec<Matcher>,
    /// A regex (anchored) that one of the alert's receivers must match.
    pub receiver: Option<Regex>,
}

impl Default for AlertsQuery {
    fn default() -> Self {
        AlertsQuery {
            active: true,
            silenced: true,
            inhibited: true,
            unprocessed: true,
            filter: Vec::new(),
            receiver: None,
        }
    }
}

impl AlertsQuery {
    /// Parses a query string; unknown parameters are ignored, as Alertmanager does.
    pub fn parse(query: Option<&str>) -> Result<AlertsQuery, AmError> {
        let pairs = query_pairs(query);
        let mut q = AlertsQuery {
            filter: parse_filter(&pairs)?,
            ..AlertsQuery::default()
        };
        for (k, v) in &pairs {
            match k.as_str() {
                "active" => q.active = parse_bool(k, v)?,
                "silenced" => q.silenced = parse_bool(k, v)?,
                "inhibited" => q.inhibited = parse_bool(k, v)?,
                "unprocessed" => q.unprocessed = parse_bool(k, v)?,
                "receiver" if !v.is_empty() => {
                    q.receiver = Some(Regex::new(&format!("^(?:{v})$")).map_err(|e| {
                        AmError::Message(
                            StatusCode::BAD_REQUEST,
                            format!("failed to parse receiver param: {e}"),
                        )
                    })?);
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// `GET /api/v2/alerts`.
pub async fn alerts_list(State(svc): State<Shared>, uri: Uri) -> Result<Response, AmError> {
    let q = AlertsQuery::parse(uri.query())?;
    // Right after a restart, not before the stored alerts are all read.
    svc.external().loaded().await;
    Ok(json_bytes(list(&svc, &q, crate::model::time::now_ms())))
}

/// `GET /api/v2/alerts/groups`: the listed alerts in the groups of the routing tree.
pub async fn alert_groups_list(State(svc): State<Shared>, uri: Uri) -> Result<Response, AmError> {
    let q = AlertsQuery::parse(uri.query())?;
    svc.external().loaded().await;
    Ok(json_bytes(groups(&svc, &q, crate::model::time::now_ms())))
}

/// An alert as the API lists it, naming receivers of the rule set `'r`.
struct Listed<'r> {
    origin: Origin,
    fingerprint: u64,
    starts_at: i64,
    ends_at: i64,
    updated_at: i64,
    /// A rule's own receiver, besides the routing tree's.
    recovery: Option<&'r str>,
    receivers: SmallVec<[&'r str; 2]>,
}

/// Where a listed alert comes from (an external one is shared, not copied).
enum Origin {
    Rule(Alert),
    External(Arc<ExternalAlert>),
}

impl Listed<'_> {
    fn labels(&self) -> &Labels {
        match &self.origin {
            Origin::Rule(a) => &a.labels,
            Origin::External(e) => &e.labels,
        }
    }

    fn generator_url(&self) -> Option<&str> {
        match &self.origin {
            Origin::Rule(_) => None,
            Origin::External(e) => e.generator_url.as_deref(),
        }
    }
}

/// A listed alert that passed the query, with why it is muted.
struct Shown<'a, 'r> {
    listed: &'a Listed<'r>,
    suppression: Suppression,
}

/// Every firing alert, rule and external, at `now`. A rule alert ends, as Prometheus would
/// send it, four evaluation intervals (at least a minute each) after it was last found.
fn gather<'r>(svc: &Service, rules: &'r RuleSet, now: i64) -> Vec<Listed<'r>> {
    let by_rule: HashMap<String, (Duration, Option<&'r str>)> = rules
        .groups
        .iter()
        .flat_map(|g| {
            g.rules
                .iter()
                .map(move |r| (r.id(), (g.interval, r.recovery.as_deref())))
        })
        .collect();
    let mut out: Vec<Listed> = svc
        .alerts()
        .into_iter()
        .filter(|(_, a)| a.status == Status::Firing)
        .map(|(id, a)| {
            let (interval, recovery) = by_rule
                .get(&id)
                .cloned()
                .unwrap_or((Duration::from_secs(60), None));
            let valid_for = 4 * interval.max(Duration::from_secs(60)).as_millis() as i64;
            Listed {
                fingerprint: a.labels.fingerprint(),
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at: a.last_seen + valid_for,
                updated_at: a.last_seen,
                recovery,
                receivers: SmallVec::new(),
                origin: Origin::Rule(a),
            }
        })
        .collect();
    out.extend(
        svc.external()
            .snapshot()
            .into_iter()
            .filter(|e| !e.is_resolved(now))
            .map(|e| Listed {
                fingerprint: e.fingerprint,
                starts_at: e.starts_at,
                ends_at: e.ends_at,
                updated_at: e.updated_at,
                recovery: None,
                receivers: SmallVec::new(),
                origin: Origin::External(e),
            }),
    );
    let tree = rules.tree.as_ref();
    for l in &mut out {
        if let Some(t) = tree {
            for r in t.matches(l.labels()) {
                if !l.receivers.contains(&r.receiver.as_str()) {
                    l.receivers.push(&r.receiver);
                }
            }
        }
        if let Some(r) = l.recovery
            && !l.receivers.contains(&r)
        {
            l.receivers.push(r);
        }
        if l.receivers.is_empty() {
            l.receivers.push(crate::dispatch::route::UNROUTED);
        }
    }
    out
}

/// Silences and the inhibit rules of `rules` (the set the alerts were gathered with) for the
/// listed alerts (all firing: all inhibition sources).
fn muter<'a>(svc: &Service, rules: &RuleSet, listed: &'a [Listed<'_>], now: i64) -> Muter<'a> {
    Muter::new(
        svc.silences().index(now),
        rules
            .inhibitor
            .index_firing(listed.iter().map(Listed::labels)),
    )
}

/// The alerts that pass the query, sorted by fingerprint as Alertmanager sorts them.
fn select<'a, 'r>(
    listed: &'a [Listed<'r>],
    muter: &Muter<'_>,
    q: &AlertsQuery,
) -> Vec<Shown<'a, 'r>> {
    let mut shown: Vec<Shown<'a, 'r>> = listed
        .iter()
        .filter(|l| {
            q.receiver
                .as_ref()
                .is_none_or(|re| l.receivers.iter().any(|r| re.is_match(r)))
        })
        .filter(|l| passes_filter(&q.filter, |n| l.labels().get(n)))
        .filter_map(|l| {
            let suppression = muter.suppression(l.labels());
            let keep = (q.active || suppression.is_suppressed())
                && (q.silenced || suppression.silenced_by.is_empty())
                && (q.inhibited || suppression.inhibited_by.is_empty());
            keep.then_some(Shown {
                listed: l,
                suppression,
            })
        })
        .collect();
    shown.sort_by_key(|s| s.listed.fingerprint);
    shown
}

/// How many listed alerts are active and how many suppressed at `now`, for
/// `alertmanager_alerts`.
pub fn counts(svc: &Service, now: i64) -> (usize, usize) {
    let rules = svc.rules();
    let listed = gather(svc, &rules, now);
    let muter = muter(svc, &rules, &listed, now);
    let suppressed = listed.iter().filter(|l| muter.is_muted(l.labels())).count();
    (listed.len() - suppressed, suppressed)
}

/// The body of `GET /api/v2/alerts` at `now`.
pub fn list(svc: &Service, q: &AlertsQuery, now: i64) -> Vec<u8> {
    let rules = svc.rules();
    let listed = gather(svc, &rules, now);
    let muter = muter(svc, &rules, &listed, now);
    let shown = select(&listed, &muter, q);
    let mut body = Vec::with_capacity(shown.len() * 512);
    write_alerts(&mut body, shown.iter());
    body
}

/// The body of `GET /api/v2/alerts/groups` at `now`: per receiver and group of the routing
/// tree (and of each rule's own receiver), the listed alerts.
pub fn groups(svc: &Service, q: &AlertsQuery, now: i64) -> Vec<u8> {
    let rules = svc.rules();
    let listed = gather(svc, &rules, now);
    let muter = muter(svc, &rules, &listed, now);
    let shown = select(&listed, &muter, q);
    // (receiver, group key) -> (group labels, alerts)
    let mut groups: BTreeMap<(String, String), (Labels, Vec<&Shown<'_, '_>>)> = BTreeMap::new();
    for s in &shown {
        let labels = s.listed.labels();
        let mut routes = rules
            .tree
            .as_ref()
            .map(|t| t.matches(labels))
            .unwrap_or_default();
        let own = s.listed.recovery.map(crate::dispatch::route::Route::direct);
        routes.extend(own.as_ref());
        for route in routes {
            let gl = route.group_by.group_labels(labels);
            let key = format!("{}:{gl}", route.key);
            groups
                .entry((route.receiver.clone(), key))
                .or_insert_with(|| (gl, Vec::new()))
                .1
                .push(s);
        }
    }
    let mut body = Vec::with_capacity(shown.len() * 512);
    body.push(b'[');
    for (i, ((receiver, _), (labels, alerts))) in groups.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"alerts\":");
        write_alerts(&mut body, alerts.iter().copied());
        body.extend_from_slice(b",\"labels\":");
        json(&mut body, labels);
        body.extend_from_slice(b",\"receiver\":");
        json(&mut body, &ReceiverName { name: receiver });
        body.push(b'}');
    }
    body.push(b']');
    body
}

/// Writes alerts as a JSON array of Alertmanager's `GettableAlert`s. By hand rather than
/// through a derived `Serialize`, so that an external alert's labels and annotations, encoded
/// once when it was received, are copied as they are: they are most of a listing.
fn write_alerts<'a, 'r: 'a>(out: &mut Vec<u8>, shown: impl Iterator<Item = &'a Shown<'a, 'r>>) {
    out.push(b'[');
    for (i, s) in shown.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let l = s.listed;
        out.extend_from_slice(b"{\"annotations\":");
        match &l.origin {
            Origin::External(e) => out.extend_from_slice(e.annotations_json.as_bytes()),
            Origin::Rule(a) => json(out, &a.annotations),
        }
        out.extend_from_slice(b",\"endsAt\":");
        time(out, l.ends_at);
        out.extend_from_slice(b",\"fingerprint\":");
        quoted(out, &Hex(l.fingerprint).ascii());
        out.extend_from_slice(b",\"receivers\":[");
        for (i, name) in l.receivers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json(out, &ReceiverName { name });
        }
        out.extend_from_slice(b"],\"startsAt\":");
        time(out, l.starts_at);
        out.extend_from_slice(b",\"status\":{\"inhibitedBy\":[");
        for (i, &fp) in s.suppression.inhibited_by.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            quoted(out, &Hex(fp).ascii());
        }
        out.extend_from_slice(b"],\"silencedBy\":");
        json(out, &s.suppression.silenced_by);
        out.extend_from_slice(if s.suppression.is_suppressed() {
            b",\"state\":\"suppressed\"},\"updatedAt\":"
        } else {
            b",\"state\":\"active\"},\"updatedAt\":"
        });
        time(out, l.updated_at);
        if let Some(url) = l.generator_url() {
            out.extend_from_slice(b",\"generatorURL\":");
            json(out, url);
        }
        out.extend_from_slice(b",\"labels\":");
        match &l.origin {
            Origin::External(e) => out.extend_from_slice(e.labels_json.as_bytes()),
            Origin::Rule(a) => json(out, &a.labels),
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// Appends a time as a JSON string.
fn time(out: &mut Vec<u8>, ms: i64) {
    match Rfc3339(ms).ascii() {
        Some(ascii) => quoted(out, &ascii),
        None => json(out, &Rfc3339(ms)),
    }
}

/// Appends text that needs no escaping as a JSON string.
fn quoted(out: &mut Vec<u8>, ascii: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(ascii);
    out.push(b'"');
}

/// Appends a value as JSON (writing to a `Vec` cannot fail).
fn json(out: &mut Vec<u8>, v: &(impl Serialize + ?Sized)) {
    serde_json::to_writer(out, v).ok();
}
