//! Prometheus's query API over what Faultline holds, so a Prometheus user, `faultline
//! query` and Grafana (with Faultline as a Prometheus data source) can look at it:
//! `/api/v1/query` and `/api/v1/query_range` for series selectors (`metric{label="v"}`, and
//! `metric{...}[5m]` for raw samples), `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, `/api/v1/targets` and `/api/v1/status/buildinfo`, in
//! Prometheus's response format. Full PromQL (functions, operators, aggregations) is refused
//! with a 400 that says so. GET and form POST are both accepted, as Prometheus does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Shared;
use crate::model::units::PromDuration;
use crate::model::{Labels, Sample};
use crate::rules::selector::Selector;
use crate::store::Store;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/query", get(query).post(query_form))
        .route(
            "/api/v1/query_range",
            get(query_range).post(query_range_form),
        )
        .route("/api/v1/series", get(series).post(series_form))
        .route("/api/v1/labels", get(labels).post(labels_form))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/status/buildinfo", get(buildinfo))
}

/// A refused query, answered as Prometheus answers one.
struct BadData(String);

impl IntoResponse for BadData {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": "bad_data", "error": self.0});
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// The request's parameters: the query string's, then a form body's.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<String>, body: &[u8]) -> Params {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        pairs.extend(form_urlencoded::parse(body).into_owned());
        Params(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A time parameter in ms: Unix seconds (with a fraction) or RFC 3339; `default` if absent.
    fn time(&self, name: &str, default: i64) -> Result<i64, BadData> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => parse_time(text).ok_or_else(|| {
                BadData(format!(
                    "invalid parameter {name:?}: cannot parse {text:?} to a valid timestamp"
                ))
            }),
        }
    }
}

fn parse_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        return secs.is_finite().then(|| (secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A selector from the `query` parameter, with an optional `[range]` suffix.
fn parse_query(text: &str) -> Result<(Selector, Option<i64>), BadData> {
    let text = text.trim();
    let (selector, range) = match text.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((sel, range)) => {
            let range: PromDuration = range
                .parse()
                .map_err(|e| BadData(format!("invalid range {range:?} in {text:?}: {e}")))?;
            (sel, Some(range.0.as_millis() as i64))
        }
        None => (text, None),
    };
    let selector = Selector::parse(selector).map_err(|e| {
        BadData(format!(
            "Faultline answers series selectors only (metric{{label=\"value\"}}, optionally \
             with [range]), not full PromQL: {text:?}: {e}"
        ))
    })?;
    Ok((selector, range))
}

/// Unix seconds as Prometheus writes them: a number, with a fraction only when there is one.
fn unix(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// A value as Prometheus writes it: a string, `NaN`, `+Inf`, `-Inf` or the shortest decimal.
fn value(v: f64) -> Value {
    Value::String(if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    })
}

fn metric(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// What an instant selector sees at `t`: the latest sample within the lookback, unless it
/// is a staleness marker.
fn instant(samples: &[Sample], t: i64, lookback: i64) -> Option<Sample> {
    let end = samples.partition_point(|s| s.ts <= t);
    let s = samples[..end].last()?;
    (s.ts > t - lookback && !s.is_stale_marker()).then_some(*s)
}

async fn query(State(svc): State<Shared>, RawQuery(q): RawQuery) -> Response {
    answer(instant_query(svc.store(), &Params::new(q, &[])))
}

async fn query_form(State(svc): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    answer(instant_query(svc.store(), &Params::new(q, &body)))
}

fn answer(r: Result<Value, BadData>) -> Response {
    match r {
        Ok(data) => success(data),
        Err(e) => e.into_response(),
    }
}

fn instant_query(store: &Arc<Store>, p: &Params) -> Result<Value, BadData> {
    let text = p
        .get("query")
        .ok_or_else(|| BadData("invalid parameter \"query\": missing".into()))?;
    let (selector, range) = parse_query(text)?;
    let t = p.time("time", crate::model::time::now_ms())?;
    let lookback = store.lookback().as_millis() as i64;
    Ok(match range {
        // A range selector: every sample in (t - range, t].
        Some(range) => {
            let result: Vec<Value> = store
                .series_matching(&selector, t - range, t)
                .into_iter()
                .filter_map(|(labels, samples)| {
                    let values: Vec<Value> = samples
                        .iter()
                        .filter(|s| !s.is_stale_marker())
                        .map(|s| json!([unix(s.ts), value(s.value)]))
                        .collect();
                    (!values.is_empty())
                        .then(|| json!({"metric": metric(&labels), "values": values}))
                })
                .collect();
            json!({"resultType": "matrix", "result": result})
        }
        None => {
            let result: Vec<Value> = store
                .series_matching(&selector, t - lookback, t)
                .into_iter()
                .filter_map(|(labels, samples)| {
                    let s = instant(&samples, t, lookback)?;
                    Some(json!({"metric": metric(&labels), "value": [unix(t), value(s.value)]}))
                })
                .collect();
            json!({"resultType": "vector", "result": result})
        }
    })
}

async fn query_range(State(svc): State<Shared>, RawQuery(q): RawQuery) -> Response {
    answer(range_query(svc.store(), &Params::new(q, &[])))
}

async fn query_range_form(
    State(svc): State<Shared>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    answer(range_query(svc.store(), &Params::new(q, &body)))
}

/// Points per series a range query may ask for, as Prometheus caps them.
const MAX_POINTS: i64 = 11_000;

fn range_query(store: &Arc<Store>, p: &Params) -> Result<Value, BadData> {
    let text = p
        .get("query")
        .ok_or_else(|| BadData("invalid parameter \"query\": missing".into()))?;
    let (selector, range) = parse_query(text)?;
    if range.is_some() {
        return Err(BadData(format!(
            "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector: {text:?}"
        )));
    }
    let missing = |name: &str| BadData(format!("invalid parameter {name:?}: missing"));
    let start = p.time("start", i64::MIN).and_then(|t| match t {
        i64::MIN => Err(missing("start")),
        t => Ok(t),
    })?;
    let end = p.time("end", i64::MIN).and_then(|t| match t {
        i64::MIN => Err(missing("end")),
        t => Ok(t),
    })?;
    let step = match p.get("step") {
        None => return Err(missing("step")),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .map(|secs| (secs * 1000.0) as i64)
            .or_else(|| {
                s.parse::<PromDuration>()
                    .ok()
                    .map(|d| d.0.as_millis() as i64)
            })
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                BadData(format!(
                    "invalid parameter \"step\": cannot parse {s:?} to a valid duration"
                ))
            })?,
    };
    if end < start {
        return Err(BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let lookback = store.lookback().as_millis() as i64;
    let result: Vec<Value> = store
        .series_matching(&selector, start - lookback, end)
        .into_iter()
        .filter_map(|(labels, samples)| {
            let values: Vec<Value> = (0..=(end - start) / step)
                .map(|i| start + i * step)
                .filter_map(|t| {
                    Some(json!([
                        unix(t),
                        value(instant(&samples, t, lookback)?.value)
                    ]))
                })
                .collect();
            (!values.is_empty()).then(|| json!({"metric": metric(&labels), "values": values}))
        })
        .collect();
    Ok(json!({"resultType": "matrix", "result": result}))
}

/// The labels of the series matching any `match[]` (every series without one) that have
/// samples between `start` and `end` (by default, what the store holds).
fn matching(store: &Arc<Store>, p: &Params) -> Result<Vec<Labels>, BadData> {
    let (start, end) = (p.time("start", i64::MIN)?, p.time("end", i64::MAX)?);
    let mut selectors = Vec::new();
    for m in p.all("match[]") {
        let (selector, range) = parse_query(m)?;
        if range.is_some() {
            return Err(BadData(format!(
                "match[] takes series selectors, not {m:?}"
            )));
        }
        selectors.push(selector);
    }
    if selectors.is_empty() {
        selectors.push(Selector::parse("{__name__=~\".+\"}").expect("a valid selector"));
    }
    let mut all = BTreeMap::new();
    for sel in &selectors {
        for (labels, samples) in store.series_matching(sel, start.saturating_sub(1), end) {
            if !samples.is_empty() {
                all.insert(labels.as_slice().to_vec(), labels);
            }
        }
    }
    Ok(all.into_values().collect())
}

async fn series(State(svc): State<Shared>, RawQuery(q): RawQuery) -> Response {
    answer(series_list(svc.store(), &Params::new(q, &[])))
}

async fn series_form(State(svc): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    answer(series_list(svc.store(), &Params::new(q, &body)))
}

fn series_list(store: &Arc<Store>, p: &Params) -> Result<Value, BadData> {
    if p.all("match[]").next().is_none() {
        return Err(BadData("no match[] parameter provided".into()));
    }
    Ok(Value::Array(
        matching(store, p)?.iter().map(metric).collect(),
    ))
}

async fn labels(State(svc): State<Shared>, RawQuery(q): RawQuery) -> Response {
    answer(label_names(svc.store(), &Params::new(q, &[])))
}

async fn labels_form(State(svc): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    answer(label_names(svc.store(), &Params::new(q, &body)))
}

fn label_names(store: &Arc<Store>, p: &Params) -> Result<Value, BadData> {
    let names: BTreeSet<String> = matching(store, p)?
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>())
        .collect();
    Ok(json!(names))
}

async fn label_values(
    State(svc): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if !crate::model::is_label_name(&name) {
        return BadData(format!("invalid label name: {name:?}")).into_response();
    }
    let p = Params::new(q, &[]);
    answer(matching(svc.store(), &p).map(|all| {
        let values: BTreeSet<&str> = all.iter().filter_map(|l| l.get(&name)).collect();
        json!(values)
    }))
}

/// The scrape targets of the server config, with the health their `up` series says.
async fn targets(State(svc): State<Shared>) -> Response {
    let store = svc.store();
    let now = crate::model::time::now_ms();
    let lookback = store.lookback().as_millis() as i64;
    let latest = |name: &str, labels: &Labels| -> Option<Sample> {
        let sel = Selector::parse(&format!(
            "{name}{{job={:?}, instance={:?}}}",
            labels.get("job").unwrap_or(""),
            labels.get("instance").unwrap_or("")
        ))
        .ok()?;
        let series = store.series_matching(&sel, now - lookback, now);
        instant(&series.first()?.1, now, lookback)
    };
    let mut active = Vec::new();
    for job in &svc.config().scrape {
        for address in &job.targets {
            let mut labels = Labels::from_pairs([("job", job.job.as_str()), ("instance", address)]);
            for (k, v) in &job.labels {
                labels.set(k, v);
            }
            let up = latest("up", &labels);
            let duration = latest("scrape_duration_seconds", &labels);
            let url = format!("http://{address}{}", job.metrics_path);
            active.push(json!({
                "discoveredLabels": {
                    "__address__": address,
                    "__metrics_path__": job.metrics_path,
                    "__scheme__": "http",
                    "__scrape_interval__": PromDuration(job.interval).to_string(),
                    "__scrape_timeout__": PromDuration(job.timeout).to_string(),
                    "job": job.job,
                },
                "labels": metric(&labels),
                "scrapePool": job.job,
                "scrapeUrl": url,
                "globalUrl": url,
                "lastError": match up {
                    Some(s) if s.value == 0.0 => "the last scrape failed (see the server log)",
                    _ => "",
                },
                "lastScrape": up.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |s| crate::model::time::rfc3339(s.ts)),
                "lastScrapeDuration": duration.map_or(0.0, |s| s.value),
                "health": match up {
                    Some(s) if s.value == 1.0 => "up",
                    Some(_) => "down",
                    None => "unknown",
                },
                "scrapeInterval": PromDuration(job.interval).to_string(),
                "scrapeTimeout": PromDuration(job.timeout).to_string(),
            }));
        }
    }
    success(json!({"activeTargets": active, "droppedTargets": []}))
}

/// Prometheus's build information fields, with Faultline's version.
async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_only_with_a_clear_refusal() {
        let (sel, range) = parse_query(r#"up{job="node"}[5m]"#).ok().unwrap();
        assert_eq!(sel.to_string(), r#"up{job="node"}"#);
        assert_eq!(range, Some(300_000));
        let refused = parse_query("rate(http_requests_total[5m])")
            .err()
            .unwrap()
            .0;
        assert!(refused.contains("not full PromQL"), "{refused}");
        assert!(parse_query("sum(up)").is_err());
        assert!(parse_query("up[5x]").is_err());
    }

    #[test]
    fn times_and_values_as_prometheus_writes_them() {
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("soon"), None);
        assert_eq!(unix(1_700_000_000_000), json!(1_700_000_000));
        assert_eq!(unix(1_700_000_000_250), json!(1_700_000_000.25));
        assert_eq!(value(1e6), json!("1000000"));
        assert_eq!(value(0.1), json!("0.1"));
        assert_eq!(value(f64::INFINITY), json!("+Inf"));
        assert_eq!(value(f64::NAN), json!("NaN"));
    }

    #[test]
    fn instant_respects_lookback_and_staleness() {
        let s = |ts, value| Sample { ts, value };
        let stale = f64::from_bits(crate::model::STALE_NAN_BITS);
        let samples = [s(1_000, 1.0), s(2_000, 2.0), s(3_000, stale)];
        assert_eq!(instant(&samples, 2_500, 10_000).map(|s| s.value), Some(2.0));
        assert_eq!(instant(&samples, 3_500, 10_000), None);
        assert_eq!(instant(&samples, 2_500, 400), None);
        assert_eq!(instant(&samples, 500, 10_000), None);
    }
}
