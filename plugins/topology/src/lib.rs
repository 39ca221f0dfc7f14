//! `topology`: a causal localizer. Among the services that look unhealthy, it finds the ones
//! whose trouble is not explained by an unhealthy dependency: the likely root causes. Their
//! callers, which fail too (often louder), are explained away rather than added up.
//!
//! ```toml
//! [[localizer]]
//! name = "causes"
//! plugin = "topology"
//! match = ['severity=~"page|critical"']   # the incidents whose alerts this rule localizes
//! # Health series (every selected series with a `label` label), and service-graph series
//! # (edges): all the data over `range` around the incident.
//! select = '{__name__=~"http_request_duration_seconds_p99|http_error_ratio|process_cpu_ratio|process_resident_memory_bytes|traces_service_graph_request_total"}'
//! range = "1h"
//! files = { graph = "topology.json" }     # optional: params.graph, from the rules directory
//! params = { label = "service", instance_label = "instance", window = "10m", threshold = 3 }
//! ```
//!
//! # The dependency graph
//!
//! `graph` (optional; usually `files = { graph = "topology.json" }`) maps each service to the
//! services it depends on (every dependency must be a service of the graph; cycles are
//! allowed):
//!
//! ```json
//! { "frontend": ["api"], "api": ["db", "cache"], "db": [], "cache": [] }
//! ```
//!
//! Selected service-graph series add edges, rebuilt at every call so that a changing graph is
//! followed without a reload: `traces_service_graph_*{client="a", server="b"}` (OpenTelemetry
//! Collector's servicegraph connector, Tempo) and `istio_*{source_workload="a",
//! destination_workload="b"}` each mean that `a` depends on `b` (values `unknown` and empty,
//! and self-edges, are ignored). These series are never health series. With neither a graph
//! nor edge series, every service stands alone (nothing explains anything away).
//!
//! # With health series: health from data
//!
//! A *health series* is any other selected series with a `label` label (default `service`):
//! it belongs to that service, and to the instance named by its `instance_label` label
//! (default `instance`), or to the service as a whole without one. Each (service, instance)
//! is an *entity*. For each health series (non-finite samples and samples after now dropped):
//!
//! - **Split.** The incident starts at the earliest `active_at` of its firing alerts (of all
//!   its alerts if none fires; now without alerts). Samples older than `start - window`
//!   (default `10m`) are the *baseline*; the others the *recent window*. With fewer than 5
//!   baseline samples, the oldest third of the series is the baseline (at least 3 samples;
//!   else the series is not judged).
//! - **Robust scale.** m = median(baseline), σ = 1.4826 × MAD(baseline); when σ is zero (more
//!   than half the samples equal), 1.2533 × the mean absolute deviation from m; never below
//!   max(0.01 × |m|, 1e-6), so that a flat baseline gives a large but finite z.
//! - **Onset (CUSUM).** Over the standardized series u = ±(x − m) / σ (+ for upward moves),
//!   S₀ = 0, Sᵢ = max(0, Sᵢ₋₁ + uᵢ − k) with drift k = `cusum_k` (default 0.5: shifts of
//!   about 1σ and more are tracked, noise is not) and threshold h = `cusum_h` (default 5).
//!   A run of S > 0 that exceeds h is a change; of the changes that reach the recent window,
//!   the one with the highest peak counts, and its *onset* is where S last left zero (for a
//!   ramp such as a slow leak: where the ramp rises past k σ). When the change began inside
//!   the baseline, m and σ are estimated again from the samples before it (once, with 5 or
//!   more of them) and the change is searched again.
//! - **Deviation.** z = ±(median of the change's samples − m) / σ, capped at 1000; without a
//!   change, the median of the recent window is used (onset: the window's first sample).
//!   `direction` (default `"up"`) says which moves are faults: `"up"` (latency, errors, CPU,
//!   memory), `"down"`, or `"both"` (the stronger of the two); `directions` overrides it per
//!   metric name, e.g. `{ http_requests_rate = "both" }`.
//!
//! An entity's anomaly is its strongest series' z; it is *anomalous* when z ≥ `threshold`
//! (default 3), and its onset is the earliest onset among its anomalous series at least half as
//! strong as its strongest (a weak drift of another series does not date it earlier). A
//! service is anomalous when one of its entities is, since the earliest onset among them; a
//! service with health series none of which is anomalous is *healthy*; one without health
//! series is *unknown*. A steadily high series (an instance that always logs errors) is
//! compared with its own baseline, so it is not anomalous.
//!
//! **Causal ranking.** An anomalous entity of service S is *explained* by service D when D is
//! anomalous at least 0.7 times as confidently (c below) as the entity, S depends on D directly or
//! transitively through anomalous or unknown services (a healthy service in between breaks
//! the chain), and D's onset is no later than the
//! entity's plus `tolerance` (default `30s`: onsets from samples a scrape apart, and the time
//! a failure takes to propagate, blur the order by that much). Within a dependency cycle D
//! must lead by more than `tolerance`; otherwise both are left unexplained. Unexplained
//! anomalous entities are the root-cause *candidates*. Scores, comparable across incidents:
//!
//! ```text
//! c(z)        = 1 − exp(−(z − threshold + 1) / scale)        scale: `scale`, default 4
//! candidate   = c(z) × late(onset − onset of the earliest candidate at least as confident)
//! late(lag)   = 1 if lag ≤ tolerance, else 0.5 + 0.5 × exp(−(lag − tolerance) / 2 min)
//! explained   = 0.2 × c(z)
//! ```
//!
//! So a candidate at the threshold scores 0.22, at 8σ 0.78, at 12σ 0.92 (default scale), an
//! explained symptom at most 0.2 however loud, and two independent candidates with the same
//! deviation and onset score the same: the localization is visibly ambiguous. Instances are
//! scored by their own z, so a healthy instance of the root service is not a suspect. Every
//! anomalous entity is returned (no top-k: the host truncates after merging localizers),
//! best first (ties: earlier onset, then name), labelled `{<label>="db",
//! <instance_label>="node7"}` (the instance label only for instance series), with a reason:
//!
//! ```text
//! db on node7: http_request_duration_seconds_p99 +8.3σ (0.21 → 0.55) since 12:01:10, 40 s before its callers; api, frontend fail downstream of it
//! api on node2: http_error_ratio +20.1σ (0.01 → 0.4) since 12:01:50; explained by db (anomalous 40 s earlier)
//! ```
//!
//! (times in UTC; the metric is the series' `__name__` with its other labels; the median
//! before → during in parentheses). A candidate's reason ends with `; no anomalous service
//! depends on it` when nothing downstream failed, `; its dependencies (a, b) are healthy` or
//! `; its anomalous dependencies (a) started later` as the case may be, and `; started 2 min
//! after the earliest candidate (x)` when the late penalty applies (only a candidate at least
//! as confident counts: a weak early drift does not push a strong cause down).
//!
//! # Without health series: the firing alerts
//!
//! When the rule selects no health series, the failing services are the values of `label` on
//! the incident's firing alerts (with a graph or edge series, values it does not know are
//! ignored and logged at debug). A failing service is a root-cause candidate when none of its
//! dependencies, direct or transitive, is failing. Services in a dependency cycle cannot be
//! told apart, so a failing service whose failing dependencies all depend on it in turn is a
//! candidate too. A candidate scores `(1 + failing services that depend on it) / failing
//! services`; every other failing service is returned as well, at a tenth of that, with the
//! failing candidates it depends on as its reason. A suspect is labelled
//! `{<label>="<service>"}`, plus each `carry` label (alert mode only) on which all of that
//! service's firing alerts agree.
//!
//! # Params
//!
//! All optional: `graph` (none), `label` (`"service"`), `instance_label` (`"instance"`),
//! `carry` (`[]`), `window` (`"10m"`), `tolerance` (`"30s"`), `direction` (`"up"`),
//! `directions` (`{}`), `threshold` (3), `scale` (4), `cusum_k` (0.5), `cusum_h` (5).
//! Durations are milliseconds or strings such as `"90s"`, `"10m"`, `"1h"`.

mod alerts;
mod causal;
#[cfg(test)]
mod data_tests;
mod graph;
mod stats;

use std::collections::{BTreeMap, BTreeSet};

use faultline_sdk::localizer::*;
use faultline_sdk::params::duration_ms;
use serde::Deserialize;
use serde_json::Value;

use graph::{Graph, edge};
use stats::{Cusum, Direction};

/// The rule's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Each service, mapped to the services it depends on. Usually loaded from a JSON file of
    /// the rules directory with `files = { graph = "topology.json" }`. Optional.
    #[serde(default)]
    pub graph: Option<BTreeMap<String, Vec<String>>>,
    /// The alert and series label naming the service. Default `service`.
    #[serde(default = "default_label")]
    pub label: String,
    /// The series label naming an instance of a service. Default `instance`.
    #[serde(default = "default_instance_label")]
    pub instance_label: String,
    /// Alert mode: alert labels copied onto a suspect when all of its service's firing
    /// alerts agree on the value (`["instance"]` says which node). Default none.
    #[serde(default)]
    pub carry: Vec<String>,
    /// How long before the incident's start the recent window opens. Default `"10m"`.
    #[serde(default = "default_window")]
    pub window: Value,
    /// How much later than its dependent a dependency's onset may be and still explain it.
    /// Default `"30s"`.
    #[serde(default = "default_tolerance")]
    pub tolerance: Value,
    /// Which moves are faults: `"up"`, `"down"` or `"both"`. Default `"up"`.
    #[serde(default = "default_direction")]
    pub direction: String,
    /// `direction` per metric name (`__name__`). Default none.
    #[serde(default)]
    pub directions: BTreeMap<String, String>,
    /// The z from which an entity is anomalous. Default 3.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// How fast confidence grows with z above the threshold. Default 4.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// CUSUM drift k, in baseline standard deviations. Default 0.5.
    #[serde(default = "default_cusum_k")]
    pub cusum_k: f64,
    /// CUSUM decision threshold h, in baseline standard deviations. Default 5.
    #[serde(default = "default_cusum_h")]
    pub cusum_h: f64,
}

fn default_label() -> String {
    "service".to_string()
}

fn default_instance_label() -> String {
    "instance".to_string()
}

fn default_window() -> Value {
    Value::from("10m")
}

fn default_tolerance() -> Value {
    Value::from("30s")
}

fn default_direction() -> String {
    "up".to_string()
}

fn default_threshold() -> f64 {
    3.0
}

fn default_scale() -> f64 {
    4.0
}

fn default_cusum_k() -> f64 {
    0.5
}

fn default_cusum_h() -> f64 {
    5.0
}

/// The localizer, built from validated [`Params`].
#[derive(Debug)]
pub struct Topology {
    /// The `graph` param, validated: every service with its dependencies.
    file: Option<BTreeMap<String, BTreeSet<String>>>,
    /// `file` as a graph (empty without one).
    graph: Graph,
    label: String,
    instance_label: String,
    carry: Vec<String>,
    window_ms: i64,
    tolerance_ms: i64,
    direction: Direction,
    directions: BTreeMap<String, Direction>,
    threshold: f64,
    scale: f64,
    cusum: Cusum,
}

/// Validates the `graph` param: every dependency must be a service of the graph.
fn validate(
    graph: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    for (service, on) in &graph {
        if let Some(dep) = on.iter().find(|dep| !graph.contains_key(*dep)) {
            return Err(format!(
                "params: `graph`: `{service}` depends on `{dep}`, which is not a service of the \
                 graph"
            ));
        }
    }
    Ok(graph
        .into_iter()
        .map(|(service, on)| (service, on.into_iter().collect()))
        .collect())
}

impl Localizer for Topology {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.label.is_empty() {
            return Err("params: `label` must name an alert label".into());
        }
        if p.instance_label.is_empty() {
            return Err("params: `instance_label` must name a series label".into());
        }
        if p.carry.iter().any(String::is_empty) {
            return Err("params: `carry` must list label names, not empty strings".into());
        }
        for (name, value) in [
            ("threshold", p.threshold),
            ("scale", p.scale),
            ("cusum_h", p.cusum_h),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("params: `{name}` ({value}) must be a positive number").into());
            }
        }
        if !(p.cusum_k.is_finite() && p.cusum_k >= 0.0) {
            return Err(format!(
                "params: `cusum_k` ({}) must be a number, 0 or more",
                p.cusum_k
            )
            .into());
        }
        let directions = p
            .directions
            .iter()
            .map(|(metric, d)| Ok((metric.clone(), Direction::parse("directions", d)?)))
            .collect::<Result<_, String>>()?;
        let file = p.graph.map(validate).transpose()?;
        Ok(Self {
            graph: Graph::new(file.as_ref().unwrap_or(&BTreeMap::new())),
            file,
            label: p.label,
            instance_label: p.instance_label,
            carry: p.carry,
            window_ms: duration_ms("window", &p.window)?,
            tolerance_ms: duration_ms("tolerance", &p.tolerance)?,
            direction: Direction::parse("direction", &p.direction)?,
            directions,
            threshold: p.threshold,
            scale: p.scale,
            cusum: Cusum {
                k: p.cusum_k,
                h: p.cusum_h,
            },
        })
    }

    fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error> {
        let mut edges = BTreeMap::<&str, BTreeSet<&str>>::new();
        let mut health = Vec::new();
        for series in input.series() {
            match edge(series.labels()) {
                Some(Some((client, server))) => {
                    edges.entry(client).or_default().insert(server);
                }
                Some(None) => {}
                None if series.labels().get(&self.label).is_some() => health.push(series),
                None => {}
            }
        }
        if health.is_empty() {
            Ok(self.by_alerts(input, &edges)?)
        } else {
            Ok(self.by_data(input, &edges, &health))
        }
    }
}

impl Topology {
    /// The graph of the `graph` param, the edges from data and the `extra` services.
    fn graph_with<'a>(
        &self,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Graph {
        let mut adjacency = self.file.clone().unwrap_or_default();
        for (&client, servers) in edges {
            for &server in servers {
                adjacency.entry(server.to_string()).or_default();
                adjacency
                    .entry(client.to_string())
                    .or_default()
                    .insert(server.to_string());
            }
        }
        for service in extra {
            adjacency.entry(service.to_string()).or_default();
        }
        Graph::new(&adjacency)
    }
}

export_localizer!(Topology);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_params_are_refused() {
        let refused = |p: &str| Topology::configure(p).unwrap_err();
        // `graph` is optional since the graph can come from data (a deliberate change).
        assert!(Topology::configure("{}").is_ok());
        assert_eq!(
            refused(r#"{"graph": {"api": ["db", "dbx"], "db": []}}"#),
            "params: `graph`: `api` depends on `dbx`, which is not a service of the graph"
        );
        assert_eq!(
            refused(r#"{"graph": {}, "label": ""}"#),
            "params: `label` must name an alert label"
        );
        assert_eq!(
            refused(r#"{"graph": {}, "carry": ["instance", ""]}"#),
            "params: `carry` must list label names, not empty strings"
        );
        assert_eq!(
            refused(r#"{"graph": {}, "lable": "app"}"#),
            "params: unknown field `lable`, expected one of `graph`, `label`, \
             `instance_label`, `carry`, `window`, `tolerance`, `direction`, `directions`, \
             `threshold`, `scale`, `cusum_k`, `cusum_h`"
        );
        assert_eq!(
            refused(r#"{"instance_label": ""}"#),
            "params: `instance_label` must name a series label"
        );
        assert_eq!(
            refused(r#"{"direction": "sideways"}"#),
            r#"params: `direction` must be "up", "down" or "both", not "sideways""#
        );
        assert_eq!(
            refused(r#"{"directions": {"x": "left"}}"#),
            r#"params: `directions` must be "up", "down" or "both", not "left""#
        );
        assert_eq!(
            refused(r#"{"threshold": 0}"#),
            "params: `threshold` (0) must be a positive number"
        );
        assert_eq!(
            refused(r#"{"cusum_k": -1}"#),
            "params: `cusum_k` (-1) must be a number, 0 or more"
        );
        assert!(refused(r#"{"window": "soon"}"#).starts_with("params: `window` must be"));
        assert!(refused(r#"{"tolerance": "-5s"}"#).starts_with("params: `tolerance` must be"));
        assert_eq!(
            refused(r#"{"graph": {"api": "db"}}"#),
            r#"params: invalid type: string "db", expected a sequence"#
        );
    }
}
