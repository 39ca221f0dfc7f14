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

#[cfg(test)]
mod data_tests;
mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use faultline_sdk::localizer::*;
use faultline_sdk::params::duration_ms;
use serde::Deserialize;
use serde_json::Value;

use stats::{Cusum, Deviation, Direction};

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

/// An explained symptom's score is its confidence times this.
const EXPLAINED: f64 = 0.2;
/// A late candidate's penalty decays towards one half over this.
const LATE_SCALE_MS: f64 = 120_000.0;
/// The share of an entity's strongest deviation that another of its series needs to date
/// the entity's onset.
const STRONG_SHARE: f64 = 0.5;
/// The share of a symptom's confidence that a dependency's anomaly needs to explain it.
const EXPLAINER_SHARE: f64 = 0.7;

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

/// The dependency graph with services as indices, numbered in name order so that walking
/// indices in order is walking names in order.
#[derive(Debug)]
struct Graph {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// `deps[s]`: the services `s` depends on, in name order, without duplicates.
    deps: Vec<Vec<usize>>,
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

impl Graph {
    /// The graph of `adjacency`, in which every dependency must also be a key.
    fn new(adjacency: &BTreeMap<String, BTreeSet<String>>) -> Self {
        let names: Vec<String> = adjacency.keys().cloned().collect();
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let deps = adjacency
            .values()
            .map(|on| on.iter().map(|dep| index[dep]).collect())
            .collect();
        Self { names, index, deps }
    }

    /// Breadth-first from `from` along dependencies, entering only services `enter` allows:
    /// for each service reached through at least one edge (`from` itself only through a
    /// cycle), the service it was reached from, so that following them back gives a shortest
    /// path. Each service is visited once, so a cycle ends the walk rather than looping.
    fn walk_through(&self, from: usize, enter: impl Fn(usize) -> bool) -> Vec<Option<usize>> {
        let mut parent = vec![None; self.names.len()];
        let mut queue = VecDeque::from([from]);
        while let Some(s) = queue.pop_front() {
            for &d in &self.deps[s] {
                if parent[d].is_none() && enter(d) {
                    parent[d] = Some(s);
                    queue.push_back(d);
                }
            }
        }
        parent
    }

    fn walk(&self, from: usize) -> Vec<Option<usize>> {
        self.walk_through(from, |_| true)
    }

    /// The path `from -> ... -> to` in a walk from `from` that reached `to`. Each parent
    /// was reached before its child, so the chain ends at `from`.
    fn path(&self, walk: &[Option<usize>], from: usize, to: usize) -> Vec<usize> {
        let mut path = vec![to];
        let mut at = to;
        while let Some(parent) = walk[at] {
            path.push(parent);
            at = parent;
            if at == from {
                break;
            }
        }
        path.reverse();
        path
    }

    fn join(&self, services: impl IntoIterator<Item = usize>, separator: &str) -> String {
        services
            .into_iter()
            .map(|s| self.names[s].as_str())
            .collect::<Vec<_>>()
            .join(separator)
    }
}

/// The service-graph edge `(client, server)` a series stands for: `Some(None)` for a
/// service-graph series without a usable edge, `None` for any other series.
fn edge(labels: &Labels) -> Option<Option<(&str, &str)>> {
    let name = labels.get("__name__")?;
    let (from, to) = if name.starts_with("traces_service_graph_") {
        ("client", "server")
    } else if name.starts_with("istio_") {
        ("source_workload", "destination_workload")
    } else {
        return None;
    };
    let usable = |v: &&str| !v.is_empty() && *v != "unknown";
    let from = labels.get(from).filter(usable);
    let to = labels.get(to).filter(usable);
    Some(match (from, to) {
        (Some(a), Some(b)) if a != b => Some((a, b)),
        _ => None,
    })
}

impl Localizer for Topology {
    type Params = Params;

    fn new(p: Params) -> Result<Self, String> {
        if p.label.is_empty() {
            return Err("params: `label` must name an alert label".to_string());
        }
        if p.instance_label.is_empty() {
            return Err("params: `instance_label` must name a series label".to_string());
        }
        if p.carry.iter().any(String::is_empty) {
            return Err("params: `carry` must list label names, not empty strings".to_string());
        }
        for (name, value) in [
            ("threshold", p.threshold),
            ("scale", p.scale),
            ("cusum_h", p.cusum_h),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!(
                    "params: `{name}` ({value}) must be a positive number"
                ));
            }
        }
        if !(p.cusum_k.is_finite() && p.cusum_k >= 0.0) {
            return Err(format!(
                "params: `cusum_k` ({}) must be a number, 0 or more",
                p.cusum_k
            ));
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

    fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, String> {
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
            self.by_alerts(input, &edges)
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

/// Alert mode: the failing services are those the firing alerts name.
impl Topology {
    fn by_alerts(
        &self,
        input: &LocalizeInput,
        edges: &BTreeMap<&str, BTreeSet<&str>>,
    ) -> Result<Vec<Suspect>, String> {
        let firing: Vec<&Alert> = input
            .incident()
            .alerts
            .iter()
            .filter(|a| a.state == "firing")
            .collect();
        let named = firing.iter().filter_map(|a| a.labels.get(&self.label));
        // Without a graph or edges every service stands alone; with them, it must be known.
        let built;
        let g = if self.file.is_none() && edges.is_empty() {
            built = self.graph_with(edges, named.clone());
            &built
        } else if edges.is_empty() {
            &self.graph
        } else {
            built = self.graph_with(edges, []);
            &built
        };
        let mut failing = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for service in named {
            match g.index.get(service) {
                Some(&s) => failing.insert(s),
                None => unknown.insert(service),
            };
        }
        if !unknown.is_empty() {
            let unknown: Vec<&str> = unknown.into_iter().collect();
            log::debug(&format!(
                "firing alerts name services the graph does not know, ignored: {}",
                unknown.join(", ")
            ));
        }
        if failing.is_empty() {
            return Ok(Vec::new());
        }

        let walks: BTreeMap<usize, Vec<Option<usize>>> =
            failing.iter().map(|&s| (s, g.walk(s))).collect();
        let reaches = |from: usize, to: usize| walks[&from][to].is_some();
        // The failing services each one depends on, transitively (itself excluded).
        let failing_deps = |s: usize| {
            failing
                .iter()
                .copied()
                .filter(move |&t| t != s && reaches(s, t))
        };
        let candidates: BTreeSet<usize> = failing
            .iter()
            .copied()
            .filter(|&s| failing_deps(s).all(|t| reaches(t, s)))
            .collect();
        let total = failing.len() as f64;

        let mut suspects: Vec<(f64, usize, String)> = failing
            .iter()
            .map(|&s| {
                let dependents: Vec<usize> = failing
                    .iter()
                    .copied()
                    .filter(|&t| t != s && reaches(t, s))
                    .collect();
                let explained = (1 + dependents.len()) as f64 / total;
                if candidates.contains(&s) {
                    let reason = candidate_reason(g, s, failing_deps(s), &dependents, &walks);
                    (explained, s, reason)
                } else {
                    let roots = failing_deps(s).filter(|t| candidates.contains(t));
                    (
                        0.1 * explained,
                        s,
                        dependent_reason(g, s, roots, &walks[&s]),
                    )
                }
            })
            .collect();
        suspects.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        Ok(suspects
            .into_iter()
            .map(|(score, s, reason)| {
                let name = &g.names[s];
                let mut suspect = Suspect::new().score(score).reason(reason);
                let alerts: Vec<&Labels> = firing
                    .iter()
                    .map(|a| &a.labels)
                    .filter(|l| l.get(&self.label) == Some(name))
                    .collect();
                for carried in &self.carry {
                    if let Some(value) = agreed(&alerts, carried) {
                        suspect = suspect.label(carried, value);
                    }
                }
                suspect.label(&self.label, name)
            })
            .collect())
    }
}

/// "db is failing and its dependencies (none) are healthy; frontend -> api -> db depend
/// on it": each failing dependent's path to `s`, leaving out those that lie on another's.
fn candidate_reason(
    g: &Graph,
    s: usize,
    cycle: impl Iterator<Item = usize>,
    dependents: &[usize],
    walks: &BTreeMap<usize, Vec<Option<usize>>>,
) -> String {
    let name = &g.names[s];
    let cycle: Vec<usize> = cycle.collect();
    let mut reason = if cycle.is_empty() {
        let deps = g.deps[s].iter().copied().filter(|&d| d != s);
        let deps = g.join(deps, ", ");
        let deps = if deps.is_empty() { "none" } else { &deps };
        format!("{name} is failing and its dependencies ({deps}) are healthy")
    } else {
        format!(
            "{name} is failing in a dependency cycle with failing {}, and its other \
             dependencies are healthy",
            g.join(cycle, ", ")
        )
    };
    let paths: Vec<Vec<usize>> = dependents
        .iter()
        .map(|&t| g.path(&walks[&t], t, s))
        .collect();
    // Shortest paths: one dependent lying on another's path is nearer to `s`, so two
    // paths never both lie on each other and at least one path is kept.
    let shown: Vec<String> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q[0] != p[0] && q.contains(&p[0])))
        .map(|p| g.join(p.iter().copied(), " -> "))
        .collect();
    if shown.is_empty() {
        reason.push_str("; no failing service depends on it");
    } else {
        reason.push_str(&format!("; {} depend on it", shown.join(", ")));
    }
    reason
}

/// "frontend depends on failing db (via api)", for each root candidate `s` depends on.
fn dependent_reason(
    g: &Graph,
    s: usize,
    roots: impl Iterator<Item = usize>,
    walk: &[Option<usize>],
) -> String {
    let roots: Vec<String> = roots
        .map(|root| {
            let path = g.path(walk, s, root);
            let via = &path[1..path.len() - 1];
            if via.is_empty() {
                format!("failing {}", g.names[root])
            } else {
                format!(
                    "failing {} (via {})",
                    g.names[root],
                    g.join(via.iter().copied(), " -> ")
                )
            }
        })
        .collect();
    format!("{} depends on {}", g.names[s], roots.join(", "))
}

/// The value of label `name` if every alert has it, the same; `None` otherwise.
fn agreed<'a>(alerts: &[&'a Labels], name: &str) -> Option<&'a str> {
    let first = alerts.first()?.get(name)?;
    alerts
        .iter()
        .all(|l| l.get(name) == Some(first))
        .then_some(first)
}

/// One entity: a service, or one instance of it, with its strongest series.
#[derive(Debug)]
struct Entity<'a> {
    service: &'a str,
    instance: Option<&'a str>,
    /// The strongest series: its metric as PromQL writes it, and its deviation.
    metric: String,
    top: Deviation,
    /// The strength and onset of each of its anomalous series.
    anomalies: Vec<(f64, i64)>,
    /// When it became anomalous: the earliest onset among its anomalous series that are at
    /// least half as strong as its strongest. A weak drift of some other series (memory
    /// creeping up for an hour) does not date an entity whose errors jumped a minute ago.
    onset: Option<i64>,
}

impl Entity<'_> {
    /// "db on node7", or "db".
    fn who(&self) -> String {
        match self.instance {
            Some(instance) => format!("{} on {instance}", self.service),
            None => self.service.to_string(),
        }
    }

    /// "http_error_ratio +20.1σ (0.01 → 0.4) since 12:01:50".
    fn evidence(&self) -> String {
        let d = &self.top;
        format!(
            "{} {:+.1}σ ({} → {}) since {}",
            self.metric,
            d.sign * d.strength,
            stats::number(d.before),
            stats::number(d.after),
            stats::clock(self.onset.unwrap_or(d.onset)),
        )
    }
}

/// A service's health, from its entities.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Health {
    /// Anomalous since this onset.
    Anomalous(i64),
    Healthy,
    /// No health series.
    Unknown,
}

/// Data mode: health, onsets, and the causal ranking, as the crate documentation states.
impl Topology {
    fn by_data(
        &self,
        input: &LocalizeInput,
        edges: &BTreeMap<&str, BTreeSet<&str>>,
        health: &[Series],
    ) -> Vec<Suspect> {
        let now = input.now();
        let start = input.incident().start().unwrap_or(now);
        let split = start.saturating_sub(self.window_ms);

        let mut entities = BTreeMap::<(&str, Option<&str>), Entity>::new();
        for series in health {
            let labels = series.labels();
            let Some(service) = labels.get(&self.label) else {
                continue;
            };
            let instance = labels.get(&self.instance_label);
            let (times, values): (Vec<i64>, Vec<f64>) = series
                .samples()
                .filter(|s| s.value.is_finite() && s.timestamp <= now)
                .map(|s| (s.timestamp, s.value))
                .unzip();
            let name = labels.get("__name__").unwrap_or("");
            let direction = self.directions.get(name).copied().unwrap_or(self.direction);
            let Some(d) = stats::deviation(&times, &values, split, direction, self.cusum) else {
                continue;
            };
            let anomalous = d.strength >= self.threshold;
            let entity = entities
                .entry((service, instance))
                .or_insert_with(|| Entity {
                    service,
                    instance,
                    metric: self.metric(labels),
                    top: d,
                    anomalies: Vec::new(),
                    onset: None,
                });
            if d.strength > entity.top.strength {
                entity.top = d;
                entity.metric = self.metric(labels);
            }
            if anomalous {
                entity.anomalies.push((d.strength, d.onset));
            }
        }
        let mut entities: Vec<Entity> = entities.into_values().collect();
        for e in &mut entities {
            let strong = e.top.strength * STRONG_SHARE;
            e.onset = e
                .anomalies
                .iter()
                .filter(|(z, _)| *z >= strong)
                .map(|&(_, t)| t)
                .min();
        }

        let g = self.graph_with(edges, entities.iter().map(|e| e.service));
        let mut status = vec![Health::Unknown; g.names.len()];
        for e in &entities {
            let s = g.index[e.service];
            status[s] = match (status[s], e.onset) {
                (Health::Anomalous(a), Some(b)) => Health::Anomalous(a.min(b)),
                (Health::Anomalous(a), None) => Health::Anomalous(a),
                (_, Some(b)) => Health::Anomalous(b),
                (_, None) => Health::Healthy,
            };
        }
        let onset_of = |s: usize| match status[s] {
            Health::Anomalous(t) => Some(t),
            _ => None,
        };
        let confidence = |z: f64| 1.0 - (-(z - self.threshold + 1.0) / self.scale).exp();
        // How confident each service's anomaly is: its most anomalous entity's.
        let mut service_z = vec![f64::NEG_INFINITY; g.names.len()];
        for e in entities.iter().filter(|e| e.onset.is_some()) {
            let z = &mut service_z[g.index[e.service]];
            *z = z.max(e.top.strength);
        }
        let strength_of = |s: usize| confidence(service_z[s]);
        // From each anomalous service, the services reached through non-healthy ones.
        let walks: BTreeMap<usize, Vec<Option<usize>>> = (0..g.names.len())
            .filter(|&s| onset_of(s).is_some())
            .map(|s| (s, g.walk_through(s, |d| status[d] != Health::Healthy)))
            .collect();

        // Each anomalous entity with the services that explain it, earliest first.
        let tolerance = self.tolerance_ms;
        let judged: Vec<(&Entity, i64, Vec<usize>)> = entities
            .iter()
            .filter_map(|e| {
                let onset = e.onset?;
                let s = g.index[e.service];
                let mut explainers: Vec<usize> = walks
                    .iter()
                    .filter(|&(&d, _)| d != s && walks[&s][d].is_some())
                    .filter(|&(&d, _)| {
                        // A faint anomaly (a series drifting a few σ) does not explain a
                        // strong one: the explainer must be at least half as confident.
                        strength_of(d) >= EXPLAINER_SHARE * confidence(e.top.strength)
                    })
                    .filter(|&(&d, walk_d)| {
                        let onset_d = onset_of(d).unwrap_or(i64::MAX);
                        let cycle = walk_d[s].is_some();
                        if cycle {
                            onset_d.saturating_add(tolerance) < onset
                        } else {
                            onset_d <= onset.saturating_add(tolerance)
                        }
                    })
                    .map(|(&d, _)| d)
                    .collect();
                explainers.sort_by_key(|&d| (onset_of(d), d));
                Some((e, onset, explainers))
            })
            .collect();
        // A candidate that started after another at least as confident is less likely the
        // first cause; a weaker early one (a drifting series) does not count against it.
        let earliest_as_strong = |e: &Entity, z: f64| {
            judged
                .iter()
                .filter(|(o, _, by)| by.is_empty() && !std::ptr::eq(*o, e))
                .filter(|(o, _, _)| confidence(o.top.strength) >= confidence(z))
                .min_by_key(|(o, onset, _)| (*onset, o.service, o.instance))
        };
        let mut suspects: Vec<(f64, i64, &Entity, String)> = judged
            .iter()
            .map(|(e, onset, by)| {
                let s = g.index[e.service];
                let c = confidence(e.top.strength);
                let Some(&d) = by.first() else {
                    let mut reason = self.candidate(&g, &status, &judged, e, *onset);
                    let earliest = earliest_as_strong(e, e.top.strength);
                    let lag = earliest.map_or(0, |(_, t0, _)| onset - t0);
                    let factor = if lag > tolerance {
                        let (first, _, _) = earliest.expect("a candidate is earlier");
                        reason.push_str(&format!(
                            "; started {} after the earliest candidate ({})",
                            stats::duration(lag),
                            first.who()
                        ));
                        0.5 + 0.5 * (-((lag - tolerance) as f64) / LATE_SCALE_MS).exp()
                    } else {
                        1.0
                    };
                    return (c * factor, *onset, *e, reason);
                };
                let path = g.path(&walks[&s], s, d);
                let via = &path[1..path.len() - 1];
                let via = if via.is_empty() {
                    String::new()
                } else {
                    format!(" via {}", g.join(via.iter().copied(), " -> "))
                };
                let onset_d = onset_of(d).unwrap_or(*onset);
                let when = match onset - onset_d {
                    0 => "at the same time".to_string(),
                    lead if lead > 0 => format!("{} earlier", stats::duration(lead)),
                    lag => format!("{} later, within the tolerance", stats::duration(-lag)),
                };
                let reason = format!(
                    "{}: {}; explained by {}{via} (anomalous {when})",
                    e.who(),
                    e.evidence(),
                    g.names[d]
                );
                (EXPLAINED * c, *onset, *e, reason)
            })
            .collect();
        suspects.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then((a.2.service, a.2.instance).cmp(&(b.2.service, b.2.instance)))
        });
        suspects
            .into_iter()
            .map(|(score, _, e, reason)| {
                let mut suspect = Suspect::new()
                    .label(&self.label, e.service)
                    .score(score)
                    .reason(reason);
                if let Some(instance) = e.instance {
                    suspect = suspect.label(&self.instance_label, instance);
                }
                suspect
            })
            .collect()
    }

    /// A candidate's reason: "db on node7: ... since 12:01:10, 40 s before its callers; api,
    /// frontend fail downstream of it; its dependencies (disk) are healthy".
    fn candidate(
        &self,
        g: &Graph,
        status: &[Health],
        judged: &[(&Entity, i64, Vec<usize>)],
        e: &Entity,
        onset: i64,
    ) -> String {
        let s = g.index[e.service];
        let mut reason = format!("{}: {}", e.who(), e.evidence());
        // The services with an entity this one's service explains, by their earliest onset.
        let mut downstream = BTreeMap::<usize, i64>::new();
        for (other, t, by) in judged {
            if by.contains(&s) {
                let o = g.index[other.service];
                let first = downstream.entry(o).or_insert(*t);
                *first = (*first).min(*t);
            }
        }
        if let Some(&first) = downstream.values().min() {
            let lead = first - onset;
            if lead > 0 {
                reason.push_str(&format!(", {} before its callers", stats::duration(lead)));
            } else {
                reason.push_str(", together with its callers");
            }
            let mut callers: Vec<(i64, usize)> = downstream.iter().map(|(&o, &t)| (t, o)).collect();
            callers.sort();
            reason.push_str(&format!(
                "; {} fail downstream of it",
                g.join(callers.into_iter().map(|(_, o)| o), ", ")
            ));
        } else {
            reason.push_str("; no anomalous service depends on it");
        }
        let deps: Vec<usize> = g.deps[s].iter().copied().filter(|&d| d != s).collect();
        let anomalous: Vec<usize> = deps
            .iter()
            .copied()
            .filter(|&d| matches!(status[d], Health::Anomalous(_)))
            .collect();
        if !anomalous.is_empty() {
            reason.push_str(&format!(
                "; its anomalous dependencies ({}) started later",
                g.join(anomalous, ", ")
            ));
        } else if !deps.is_empty() && deps.iter().all(|&d| status[d] == Health::Healthy) {
            reason.push_str(&format!(
                "; its dependencies ({}) are healthy",
                g.join(deps, ", ")
            ));
        }
        reason
    }

    /// The series as PromQL writes it, without the entity's labels, which the reason
    /// already names: `http_request_duration_seconds{quantile="0.99"}`.
    fn metric(&self, labels: &Labels) -> String {
        let mut rest = labels.clone();
        for name in [
            self.label.as_str(),
            self.instance_label.as_str(),
            "__name__",
        ] {
            rest.remove(name);
        }
        let name = labels.get("__name__").unwrap_or("");
        match (name, rest.is_empty()) {
            ("", true) => "the series".to_string(),
            (name, true) => name.to_string(),
            (name, false) => format!("{name}{rest}"),
        }
    }
}

export_localizer!(Topology);

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"{"graph": {
        "frontend": ["api"], "api": ["db", "cache"], "db": [], "cache": [], "worker": ["db"]
    }}"#;

    fn alert(state: &str, labels: &[(&str, &str)]) -> Alert {
        Alert {
            labels: labels.iter().copied().collect(),
            state: state.to_string(),
            ..Default::default()
        }
    }

    fn firing(service: &str) -> Alert {
        alert("firing", &[("alertname", "Down"), ("service", service)])
    }

    fn localize(rule: &mut Topology, alerts: Vec<Alert>) -> Vec<Suspect> {
        let incident = Incident {
            id: "inc".into(),
            alerts,
            ..Default::default()
        };
        rule.localize(&LocalizeInput::new(incident, Input::builder().build()))
            .unwrap()
    }

    /// The suspects as (labels, score rounded to 4 places, reason).
    fn ranked(suspects: &[Suspect]) -> Vec<(String, f64, &str)> {
        suspects
            .iter()
            .map(|s| {
                let score = (s.score * 10_000.0).round() / 10_000.0;
                (s.labels.to_string(), score, s.reason.as_str())
            })
            .collect()
    }

    fn services(suspects: &[Suspect]) -> Vec<&str> {
        suspects
            .iter()
            .map(|s| s.labels.get("service").unwrap())
            .collect()
    }

    #[test]
    fn blames_the_failing_service_with_healthy_dependencies() {
        let mut rule = Topology::configure(SHOP).unwrap();
        let alerts = vec![firing("frontend"), firing("db"), firing("api")];
        assert_eq!(
            ranked(&localize(&mut rule, alerts)),
            [
                (
                    r#"{service="db"}"#.to_string(),
                    1.0,
                    "db is failing and its dependencies (none) are healthy; \
                     frontend -> api -> db depend on it"
                ),
                (
                    r#"{service="api"}"#.to_string(),
                    0.0667,
                    "api depends on failing db"
                ),
                (
                    r#"{service="frontend"}"#.to_string(),
                    0.0333,
                    "frontend depends on failing db (via api)"
                ),
            ]
        );
    }

    #[test]
    fn paths_go_through_healthy_services_and_list_every_branch() {
        let mut rule = Topology::configure(SHOP).unwrap();
        // api is healthy: frontend still depends on db through it.
        let suspects = localize(
            &mut rule,
            vec![firing("frontend"), firing("worker"), firing("db")],
        );
        assert_eq!(
            ranked(&suspects),
            [
                (
                    r#"{service="db"}"#.to_string(),
                    1.0,
                    "db is failing and its dependencies (none) are healthy; \
                     frontend -> api -> db, worker -> db depend on it"
                ),
                (
                    r#"{service="frontend"}"#.to_string(),
                    0.0333,
                    "frontend depends on failing db (via api)"
                ),
                (
                    r#"{service="worker"}"#.to_string(),
                    0.0333,
                    "worker depends on failing db"
                ),
            ]
        );
    }

    #[test]
    fn independent_roots_share_the_blame_and_ties_go_by_name() {
        let mut rule = Topology::configure(SHOP).unwrap();
        let suspects = localize(
            &mut rule,
            vec![firing("db"), firing("cache"), firing("api")],
        );
        assert_eq!(
            ranked(&suspects),
            [
                (
                    r#"{service="cache"}"#.to_string(),
                    0.6667,
                    "cache is failing and its dependencies (none) are healthy; \
                     api -> cache depend on it"
                ),
                (
                    r#"{service="db"}"#.to_string(),
                    0.6667,
                    "db is failing and its dependencies (none) are healthy; \
                     api -> db depend on it"
                ),
                (
                    r#"{service="api"}"#.to_string(),
                    0.0333,
                    "api depends on failing cache, failing db"
                ),
            ]
        );
    }

    #[test]
    fn a_lone_failure_names_its_healthy_dependencies() {
        let mut rule = Topology::configure(SHOP).unwrap();
        assert_eq!(
            ranked(&localize(&mut rule, vec![firing("api")])),
            [(
                r#"{service="api"}"#.to_string(),
                1.0,
                "api is failing and its dependencies (cache, db) are healthy; \
                 no failing service depends on it"
            )]
        );
    }

    #[test]
    fn cycles_end_and_blame_the_cycle_together() {
        let graph = r#"{"graph": {"a": ["b"], "b": ["a", "c"], "c": [], "d": ["a"], "e": ["e"]}}"#;
        let mut rule = Topology::configure(graph).unwrap();
        let suspects = localize(&mut rule, vec![firing("a"), firing("b"), firing("d")]);
        assert_eq!(
            ranked(&suspects),
            [
                (
                    r#"{service="a"}"#.to_string(),
                    1.0,
                    "a is failing in a dependency cycle with failing b, and its other \
                     dependencies are healthy; b -> a, d -> a depend on it"
                ),
                (
                    r#"{service="b"}"#.to_string(),
                    1.0,
                    "b is failing in a dependency cycle with failing a, and its other \
                     dependencies are healthy; d -> a -> b depend on it"
                ),
                (
                    r#"{service="d"}"#.to_string(),
                    0.0333,
                    "d depends on failing a, failing b (via a)"
                ),
            ]
        );
        // A service depending on itself is not its own failing dependency.
        assert_eq!(
            ranked(&localize(&mut rule, vec![firing("e")])),
            [(
                r#"{service="e"}"#.to_string(),
                1.0,
                "e is failing and its dependencies (none) are healthy; \
                 no failing service depends on it"
            )]
        );
        // A failing dependency below the cycle makes the cycle dependents.
        let suspects = localize(&mut rule, vec![firing("a"), firing("b"), firing("c")]);
        assert_eq!(services(&suspects), ["c", "a", "b"]);
        assert_eq!(suspects[0].score, 1.0);
        assert_eq!(suspects[1].reason, "a depends on failing c (via b)");
    }

    #[test]
    fn only_firing_alerts_of_known_services_count() {
        let mut rule = Topology::configure(SHOP).unwrap();
        let alerts = vec![
            alert("pending", &[("service", "db")]),
            alert("resolved", &[("service", "cache")]),
            firing("payments"),
            alert("firing", &[("alertname", "NoService")]),
            firing("api"),
        ];
        let suspects = localize(&mut rule, alerts);
        assert_eq!(services(&suspects), ["api"]);
        assert_eq!(suspects[0].score, 1.0);
    }

    #[test]
    fn label_names_the_service() {
        let params = r#"{"graph": {"api": ["db"], "db": []}, "label": "app"}"#;
        let mut rule = Topology::configure(params).unwrap();
        let alerts = vec![
            alert("firing", &[("app", "db")]),
            alert("firing", &[("app", "api")]),
            firing("api"),
        ];
        let suspects = localize(&mut rule, alerts);
        let labels: Vec<String> = suspects.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(labels, [r#"{app="db"}"#, r#"{app="api"}"#]);
        assert_eq!(suspects[0].score, 1.0);
    }

    #[test]
    fn carry_copies_labels_all_alerts_agree_on() {
        let params = r#"{"graph": {"api": ["db"], "db": []}, "carry": ["instance", "zone"]}"#;
        let mut rule = Topology::configure(params).unwrap();
        let alerts = vec![
            alert(
                "firing",
                &[("service", "db"), ("instance", "db1"), ("zone", "a")],
            ),
            alert(
                "firing",
                &[("service", "db"), ("instance", "db1"), ("zone", "b")],
            ),
            alert("firing", &[("service", "api"), ("instance", "web1")]),
            alert("firing", &[("service", "api"), ("zone", "a")]),
            // Not firing: its instance does not spoil the agreement.
            alert("resolved", &[("service", "db"), ("instance", "db2")]),
        ];
        let suspects = localize(&mut rule, alerts);
        let labels: Vec<String> = suspects.iter().map(|s| s.labels.to_string()).collect();
        // db's alerts disagree on zone; one of api's alerts lacks each label.
        assert_eq!(
            labels,
            [r#"{instance="db1", service="db"}"#, r#"{service="api"}"#]
        );
    }

    #[test]
    fn defaults_label_service_and_carry_nothing() {
        let rule = Topology::configure(r#"{"graph": {}}"#).unwrap();
        assert_eq!(rule.label, "service");
        assert!(rule.carry.is_empty());
        let mut rule = Topology::configure(SHOP).unwrap();
        let alerts = vec![alert("firing", &[("service", "db"), ("instance", "db1")])];
        let suspects = localize(&mut rule, alerts);
        assert_eq!(suspects[0].labels.to_string(), r#"{service="db"}"#);
    }

    #[test]
    fn no_alerts_no_suspects() {
        let mut rule = Topology::configure(SHOP).unwrap();
        assert_eq!(localize(&mut rule, vec![]), []);
    }

    #[test]
    fn an_empty_graph_knows_no_service() {
        let mut rule = Topology::configure(r#"{"graph": {}}"#).unwrap();
        assert_eq!(localize(&mut rule, vec![firing("db")]), []);
    }

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

    #[test]
    fn the_example_graph_loads() {
        let graph = include_str!("../example-topology.json");
        let params = format!(r#"{{"graph": {graph}, "carry": ["instance"]}}"#);
        let mut rule = Topology::configure(&params).unwrap();
        assert!(rule.graph.names.len() > 3);
        let suspects = localize(&mut rule, vec![firing("frontend"), firing("postgres")]);
        assert_eq!(services(&suspects), ["postgres", "frontend"]);
    }
}
