//! Localization that finds the cause, not the loudest symptom (issue 10), run as users run
//! it: the real binary, the bundled `topology` and `log-hotspot` plugins configured as the
//! README shows, half an hour of metrics and logs pushed with their timestamps so that every
//! localizer has a baseline, and the incident coming from an alert posted as Prometheus posts
//! it.
//!
//! The shop: `frontend -> api -> db`, two instances each, each instance with its error
//! ratio, p99 latency and CPU (small deterministic noise) and its request log. Each test
//! builds a trap that a localizer blaming the loudest symptom falls into: callers failing
//! louder than their failing dependency, an instance that always fails, two equally likely
//! causes; and checks that the ranking, and what receivers are asked to do, get it right.

use std::fmt::Write as _;

use faultline_system_tests::k8s::ApiServer;
use faultline_system_tests::{Receiver, RulesDir, Server, wait_for};
use serde_json::{Value, json};

const MIN: i64 = 60_000;
/// Metrics are sampled every 15 s, logs every 5 s, over the last 36 minutes.
const STEP: i64 = 15_000;
const LOG_STEP: i64 = 5_000;
const HISTORY: i64 = 36 * MIN;
/// The fault begins this long before "now"...
const FAULT: i64 = 4 * MIN;
/// ...its callers fail this much later...
const PROPAGATION: i64 = 45_000;
/// ...and Prometheus's alert became active this much after the fault began.
const ALERT_AFTER: i64 = 60_000;

/// The shop's dependency graph, as `files = { graph = "topology.json" }` loads it.
const SHOP: &str = r#"{"frontend": ["api"], "api": ["db"], "db": []}"#;

/// The health series the topology localizer selects.
const HEALTH: &str = "http_error_ratio|http_request_duration_seconds_p99|process_cpu_ratio";

// ---------------------------------------------------------------------------------------
// Data: deterministic noise, curves with steps, the shop's instances.

/// A 64-bit LCG (Knuth's MMIX constants): deterministic noise without a rand crate.
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Lcg {
        let mut rng = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
        rng.next();
        rng
    }

    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// FNV-1a, to seed each entity's noise from its name.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A value over time: a base, uniform noise of ± `noise`, and steps (from a time, by an
/// amount).
#[derive(Clone, Debug)]
struct Curve {
    base: f64,
    noise: f64,
    steps: Vec<(i64, f64)>,
}

impl Curve {
    fn flat(base: f64, noise: f64) -> Curve {
        Curve {
            base,
            noise,
            steps: Vec::new(),
        }
    }

    fn step(mut self, at: i64, by: f64) -> Curve {
        self.steps.push((at, by));
        self
    }

    fn at(&self, t: i64, rng: &mut Lcg) -> f64 {
        let stepped: f64 = self
            .steps
            .iter()
            .filter(|(from, _)| t >= *from)
            .map(|(_, by)| by)
            .sum();
        self.base + stepped + self.noise * rng.next()
    }
}

/// One instance of a service, with its series and the error share of its request log.
#[derive(Clone, Debug)]
struct Entity {
    service: &'static str,
    instance: &'static str,
    /// Seeds the noise: two entities with the same seed and curves have identical data.
    seed: u64,
    error_ratio: Curve,
    p99: Curve,
    cpu: Curve,
    /// The share of its request log records that are 5xx (no noise: a fixed pattern).
    logged_errors: Curve,
}

/// A healthy instance: 1% errors, 200 ms p99, 30% CPU, 1% of its requests logged as 5xx.
fn healthy(service: &'static str, instance: &'static str) -> Entity {
    Entity {
        service,
        instance,
        seed: fnv(&format!("{service}/{instance}")),
        error_ratio: Curve::flat(0.01, 0.002),
        p99: Curve::flat(0.2, 0.01),
        cpu: Curve::flat(0.3, 0.02),
        logged_errors: Curve::flat(0.01, 0.0),
    }
}

/// Two instances of each service of the shop, all healthy: `frontend-1`, `frontend-2`,
/// `api-1`...
fn shop() -> Vec<Entity> {
    vec![
        healthy("frontend", "frontend-1"),
        healthy("frontend", "frontend-2"),
        healthy("api", "api-1"),
        healthy("api", "api-2"),
        healthy("db", "db-1"),
        healthy("db", "db-2"),
    ]
}

fn get<'a>(entities: &'a mut [Entity], instance: &str) -> &'a mut Entity {
    entities
        .iter_mut()
        .find(|e| e.instance == instance)
        .unwrap_or_else(|| panic!("no instance {instance}"))
}

/// Sample times, oldest first, ending at `now`.
fn times(now: i64, step: i64) -> impl Iterator<Item = i64> {
    let n = HISTORY / step;
    (0..=n).map(move |i| now - (n - i) * step)
}

/// Every entity's series over the history, as exposition text with timestamps.
fn exposition(now: i64, entities: &[Entity]) -> String {
    let mut out = String::new();
    for e in entities {
        let series = [
            ("http_error_ratio", &e.error_ratio),
            ("http_request_duration_seconds_p99", &e.p99),
            ("process_cpu_ratio", &e.cpu),
        ];
        for (k, (name, curve)) in series.into_iter().enumerate() {
            let mut rng = Lcg::new(e.seed.wrapping_add(k as u64));
            for t in times(now, STEP) {
                let v = curve.at(t, &mut rng).max(0.0);
                writeln!(
                    out,
                    r#"{name}{{service="{}",instance="{}"}} {v} {t}"#,
                    e.service, e.instance
                )
                .unwrap();
            }
        }
    }
    out
}

/// Every entity's request log over the history, as NDJSON: a record every 5 s, 5xx in the
/// share its `logged_errors` says (a low-discrepancy pattern, the same for the same seed).
fn request_log(now: i64, entities: &[Entity]) -> String {
    let mut out = String::new();
    for e in entities {
        let offset = (e.seed % 1000) as f64;
        let mut rng = Lcg::new(0);
        for (k, t) in times(now, LOG_STEP).enumerate() {
            let share = e.logged_errors.at(t, &mut rng);
            let error = ((k as f64 + offset) * 0.618_033_988_749_895).fract() < share;
            let status = if error { 503 } else { 200 };
            let record = json!({
                "timestamp": t,
                "labels": {"job": "shop", "service": e.service, "instance": e.instance},
                "message": format!("GET /cart status={status}"),
                "fields": {"status": status.to_string()},
            });
            writeln!(out, "{record}").unwrap();
        }
    }
    out
}

/// Service-graph request counters, as the OpenTelemetry Collector's servicegraph connector
/// exports them: one increasing counter per `client -> server` edge.
fn service_graph(now: i64, edges: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (client, server) in edges {
        for (i, t) in times(now, STEP).enumerate() {
            let v = 1000 + 37 * i as i64;
            writeln!(
                out,
                r#"traces_service_graph_request_total{{client="{client}",server="{server}",connection_type=""}} {v} {t}"#
            )
            .unwrap();
        }
    }
    out
}

/// Pushes the entities' series (and `extra` exposition text) to job `shop`, and their logs.
fn push(server: &Server, now: i64, entities: &[Entity], extra: &str) {
    let text = exposition(now, entities) + extra;
    let r = server.push("shop", &text);
    assert!(r.status().is_success(), "push: {:?}", r.text());
    let r = reqwest::blocking::Client::new()
        .post(server.url("/api/v1/logs"))
        .header("Content-Type", "application/x-ndjson")
        .body(request_log(now, entities))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "logs: {:?}", r.text());
}

/// Posts firing alerts as Prometheus does, active since `since` (ms): one per label set.
fn fire(server: &Server, since: i64, alerts: &[&[(&str, &str)]]) {
    let body: Vec<Value> = alerts
        .iter()
        .map(|labels| {
            let labels: serde_json::Map<String, Value> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            json!({
                "labels": labels,
                "annotations": {"summary": "error ratio above 5%"},
                "startsAt": faultline::model::time::rfc3339(since),
                "generatorURL": "http://prometheus:9090/graph?g0.expr=http_error_ratio",
            })
        })
        .collect();
    let r = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
}

/// `HighErrorRate` on both instances of `service`, as a Prometheus rule would fire it.
fn high_error_rate(server: &Server, now: i64, service: &str, extra: &[(&str, &str)]) {
    let one = |instance: String| {
        let mut l = vec![
            ("alertname", "HighErrorRate".to_string()),
            ("job", "shop".to_string()),
            ("severity", "page".to_string()),
            ("service", service.to_string()),
            ("instance", instance),
        ];
        l.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        l
    };
    let a = one(format!("{service}-1"));
    let b = one(format!("{service}-2"));
    let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b: Vec<(&str, &str)> = b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    fire(server, now - FAULT + ALERT_AFTER, &[&a, &b]);
}

// ---------------------------------------------------------------------------------------
// Rules: the localizers a user would write.

/// The two localizers of the README, with `[localization]`: the causal topology (weight 3)
/// and the error-log hotspot. `graph`: `files = { graph = "topology.json" }` when true;
/// `edges`: extra metric names for the topology's selector (service-graph series).
fn localizers(graph: bool, edges: &str) -> String {
    let files = if graph {
        "files = { graph = \"topology.json\" }\n"
    } else {
        ""
    };
    let select = if edges.is_empty() {
        HEALTH.to_string()
    } else {
        format!("{HEALTH}|{edges}")
    };
    format!(
        r#"
[localization]
entity = ["instance", "service"]
min_margin = 0.1

[[localizer]]
name = "causes"
plugin = "topology"
match = ['alertname="HighErrorRate"']
{files}select = '{{__name__=~"{select}"}}'
range = "1h"
weight = 3
params = {{ label = "service", instance_label = "instance" }}

[[localizer]]
name = "error-logs"
plugin = "log-hotspot"
match = ['alertname="HighErrorRate"']
logs = '{{job="shop"}}'
range = "1h"
params = {{ node_label = "instance" }}
"#
    )
}

/// A route sending every alert to `receivers` (each a child route, `continue`d), grouped
/// by `group_by`, notified after 1 s.
fn route(group_by: &[&str], receivers: &[&str]) -> String {
    let group_by: Vec<String> = group_by.iter().map(|l| format!("{l:?}")).collect();
    let mut out = format!(
        r#"
[route]
receiver = "{}"
group_by = [{}]
group_wait = "1s"
group_interval = "1s"
"#,
        receivers[0],
        group_by.join(", ")
    );
    for r in receivers {
        write!(
            out,
            r#"
[[route.routes]]
receiver = "{r}"
matchers = ['alertname="HighErrorRate"']
continue = true
"#
        )
        .unwrap();
    }
    out
}

/// A webhook receiver posting to `hook`, with `extra` params (inline-table entries) and
/// `rails`.
fn receiver(name: &str, to: &Receiver, params: &str, rails: &str) -> String {
    let addr = to.addr;
    format!(
        r#"
[[receiver]]
name = "{name}"
plugin = "webhook"
params = {{ url = "http://{addr}/"{params} }}
grants = {{ http = ["{addr}"] }}
send_resolved = false
{rails}
"#
    )
}

// ---------------------------------------------------------------------------------------
// Reading the API.

fn data(v: &Value) -> Vec<Value> {
    v["data"].as_array().expect("a data array").clone()
}

/// The incident whose group labels include `group`, once it has been notified with
/// suspects.
fn incident(server: &Server, group: &[(&str, &str)]) -> Value {
    wait_for("the incident, localized", || {
        data(&server.get_json("/api/v1/incidents"))
            .into_iter()
            .find(|i| {
                group.iter().all(|(k, v)| i["groupLabels"][k] == *v)
                    && i["suspects"].as_array().is_some_and(|s| !s.is_empty())
            })
    })
}

fn suspects(incident: &Value) -> Vec<Value> {
    incident["suspects"].as_array().unwrap().clone()
}

fn label<'a>(suspect: &'a Value, name: &str) -> &'a str {
    suspect["labels"][name].as_str().unwrap_or("")
}

fn score(suspect: &Value) -> f64 {
    suspect["score"].as_f64().unwrap()
}

fn reason(suspect: &Value) -> &str {
    suspect["reason"].as_str().unwrap()
}

/// The suspect for `instance`, if ranked.
fn suspect<'a>(suspects: &'a [Value], instance: &str) -> Option<&'a Value> {
    suspects.iter().find(|s| label(s, "instance") == instance)
}

/// The ranking, one line per suspect, for failure messages.
fn show(suspects: &[Value]) -> String {
    suspects
        .iter()
        .map(|s| format!("{:.3} {} {}", score(s), s["labels"], reason(s)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The decisions recorded for `receiver`, once one satisfies `f`.
fn decision(server: &Server, receiver: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("a decision of {receiver}"), || {
        data(&server.get_json(&format!("/api/v1/decisions?receiver={receiver}")))
            .into_iter()
            .find(&f)
    })
}

/// The cascade every test but the leaf one starts from: db-1's p99 rises 8σ at the fault
/// (db-2 stays healthy); 45 s later every api and frontend instance fails 20-40% of its
/// requests and logs them: callers far louder than their failing dependency.
fn cascade(now: i64) -> Vec<Entity> {
    let fault = now - FAULT;
    let mut e = shop();
    // σ ≈ 0.74 × 0.01 (uniform noise of ±0.01): +0.07 is about +8σ.
    let db = get(&mut e, "db-1");
    db.p99 = db.p99.clone().step(fault, 0.07);
    for (instance, ratio) in [
        ("api-1", 0.25),
        ("api-2", 0.2),
        ("frontend-1", 0.4),
        ("frontend-2", 0.35),
    ] {
        let x = get(&mut e, instance);
        x.error_ratio = x.error_ratio.clone().step(fault + PROPAGATION, ratio);
        x.logged_errors = x.logged_errors.clone().step(fault + PROPAGATION, 0.6);
    }
    e
}

/// The suspects, checked to put the root, db-1, first, with its callers explained by it.
fn assert_db_1_is_the_cause(suspects: &[Value]) {
    let ranking = show(suspects);
    let top = &suspects[0];
    assert_eq!(
        (label(top, "service"), label(top, "instance")),
        ("db", "db-1"),
        "the root cause, not its louder callers:\n{ranking}"
    );
    assert!(
        reason(top).contains("causes: db on db-1: http_request_duration_seconds_p99"),
        "{ranking}"
    );
    assert!(reason(top).contains("before its callers"), "{ranking}");
    for caller in ["api-1", "api-2", "frontend-1", "frontend-2"] {
        let s = suspect(suspects, caller)
            .unwrap_or_else(|| panic!("{caller} is a suspect (explained):\n{ranking}"));
        assert!(
            reason(s).contains("explained by db") || reason(s).contains("explained by api"),
            "{caller} is explained away:\n{ranking}"
        );
        assert!(
            score(s) < score(top) - 0.1,
            "{caller} well below the root:\n{ranking}"
        );
    }
    assert!(
        suspect(suspects, "db-2").is_none_or(|s| score(s) < 0.1),
        "db's healthy instance is no suspect:\n{ranking}"
    );
}

const TOKEN: &str = "kube-t0ken";

fn kubernetes(dir: &RulesDir, api: &ApiServer) -> String {
    let token = dir.tmp.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    dir.config(&format!(
        "[connection.kubernetes]\nurl = \"{}\"\ntoken = {{ file = \"{}\" }}\n",
        api.url(),
        token.display()
    ))
}

// ---------------------------------------------------------------------------------------
// The tests.

/// db-1 slows down first; api and frontend then fail far louder (error ratios 20-40%, 60%
/// of their requests logged as 5xx, where db logs no error at all). The top suspect is
/// db-1, and the cordon receiver cordons db-1, not a frontend node.
#[test]
fn a_deep_root_cause_beats_its_louder_callers_and_is_the_one_acted_on() {
    let api = ["frontend-1", "frontend-2", "api-1", "api-2", "db-1", "db-2"]
        .iter()
        .fold(ApiServer::start(TOKEN), |api, node| api.with_node(node));
    let dir = RulesDir::new(&["topology", "log-hotspot", "kubernetes"]);
    dir.write("topology.json", SHOP);
    dir.write(
        "shop.toml",
        &format!(
            "{}{}{}",
            localizers(true, ""),
            route(&["alertname"], &["cordon"]),
            r#"
[[receiver]]
name = "cordon"
plugin = "kubernetes"
params = { action = "cordon", node = "{{ instance }}" }
grants = { connections = ["kubernetes"] }
send_resolved = false
rails = { target = ["instance"], min_score = 0.3 }
"#
        ),
    );
    let cfg = kubernetes(&dir, &api);
    let server = Server::start(&dir, &["--config", &cfg]);
    let now = faultline::model::time::now_ms();
    push(&server, now, &cascade(now), "");
    high_error_rate(&server, now, "frontend", &[]);

    let incident = incident(&server, &[("alertname", "HighErrorRate")]);
    let suspects = suspects(&incident);
    let ranking = show(&suspects);
    assert_db_1_is_the_cause(&suspects);
    // The trap was real: the error logs blame the callers (half of their requests fail),
    // and db-1 hardly (its usual 1%, give or take a record).
    for caller in ["api-1", "api-2", "frontend-1", "frontend-2"] {
        let s = suspect(&suspects, caller).unwrap();
        assert!(
            reason(s).contains("error-logs:"),
            "{caller}'s error logs were seen:\n{ranking}"
        );
    }
    assert_eq!(incident["ambiguous"], false, "{incident:#}");
    assert!(incident["margin"].as_f64().unwrap() >= 0.1, "{incident:#}");

    // The cordon acts on db-1, once, and on nothing else.
    let done = wait_for("the cordon to be done", || {
        data(&server.get_json("/api/v1/outbox?state=done"))
            .into_iter()
            .find(|a| a["receiver"] == "cordon")
    });
    assert_eq!(done["target"], r#"{instance="db-1"}"#, "{done:#}");
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("PATCH", "/api/v1/nodes/db-1")
    );
    assert!(api.node_unschedulable("db-1"));
    for node in ["frontend-1", "frontend-2", "api-1", "api-2", "db-2"] {
        assert!(!api.node_unschedulable(node), "{node} cordoned");
    }
    let queued = decision(&server, "cordon", |d| d["decision"] == "queued");
    assert_eq!(queued["target"], r#"{instance="db-1"}"#, "{queued:#}");
}

/// The fault is in frontend-1 itself and its dependencies are healthy: frontend-1 is the
/// root cause, scored as one (not as an explained symptom), and acted on; its healthy
/// sibling is no suspect.
#[test]
fn a_leaf_root_cause_is_blamed_on_its_faulty_instance() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["topology", "log-hotspot", "webhook"]);
    dir.write("topology.json", SHOP);
    dir.write(
        "shop.toml",
        &format!(
            "{}{}{}",
            localizers(true, ""),
            route(&["alertname"], &["restart"]),
            receiver(
                "restart",
                &hook,
                "",
                "rails = { target = [\"instance\"], min_score = 0.3 }"
            ),
        ),
    );
    let server = Server::start(&dir, &[]);
    let now = faultline::model::time::now_ms();
    let fault = now - FAULT;
    let mut entities = shop();
    let f = get(&mut entities, "frontend-1");
    f.error_ratio = f.error_ratio.clone().step(fault, 0.3);
    f.p99 = f.p99.clone().step(fault, 0.4);
    f.logged_errors = f.logged_errors.clone().step(fault, 0.5);
    push(&server, now, &entities, "");
    high_error_rate(&server, now, "frontend", &[]);

    let incident = incident(&server, &[("alertname", "HighErrorRate")]);
    let suspects = suspects(&incident);
    let ranking = show(&suspects);
    let top = &suspects[0];
    assert_eq!(
        (label(top, "service"), label(top, "instance")),
        ("frontend", "frontend-1"),
        "{ranking}"
    );
    assert!(
        reason(top).contains("its dependencies (api) are healthy"),
        "{ranking}"
    );
    assert!(
        reason(top).contains("no anomalous service depends on it"),
        "{ranking}"
    );
    // A root cause, not an explained symptom (those score at most 0.2 in the topology,
    // which weighs 3 of 4).
    assert!(score(top) > 0.5, "{ranking}");
    // The healthy instance, and the healthy dependencies, are not suspected by the
    // topology; the log hotspot may name one whose 1% of errors came out a record higher.
    for other in ["frontend-2", "api-1", "api-2", "db-1", "db-2"] {
        if let Some(s) = suspect(&suspects, other) {
            assert!(
                !reason(s).contains("causes:") && score(s) < 0.05,
                "{other} is no suspect:\n{ranking}"
            );
        }
    }
    assert_eq!(incident["ambiguous"], false, "{incident:#}");

    hook.next("the action on frontend-1");
    let done = wait_for("the action to be done", || {
        data(&server.get_json("/api/v1/outbox?state=done"))
            .into_iter()
            .find(|a| a["receiver"] == "restart")
    });
    assert_eq!(done["target"], r#"{instance="frontend-1"}"#, "{done:#}");
}

/// api-2 fails 45% of its requests, and logs them, all the time: the loudest instance by
/// far, in metrics and logs. The fault is db-1's latency, which api-1 and the frontends
/// relay. api-2 is compared with its own past, so it is not blamed: db-1 is.
#[test]
fn a_permanently_noisy_instance_is_not_blamed() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["topology", "log-hotspot", "webhook"]);
    dir.write("topology.json", SHOP);
    dir.write(
        "shop.toml",
        &format!(
            "{}{}{}",
            localizers(true, ""),
            route(&["alertname"], &["notify"]),
            receiver("notify", &hook, "", ""),
        ),
    );
    let server = Server::start(&dir, &[]);
    let now = faultline::model::time::now_ms();
    let fault = now - FAULT;
    let mut entities = shop();
    let db = get(&mut entities, "db-1");
    db.p99 = db.p99.clone().step(fault, 0.07);
    let noisy = get(&mut entities, "api-2");
    noisy.error_ratio = Curve::flat(0.45, 0.02);
    noisy.logged_errors = Curve::flat(0.45, 0.0);
    for (instance, ratio) in [("api-1", 0.2), ("frontend-1", 0.15), ("frontend-2", 0.1)] {
        let x = get(&mut entities, instance);
        x.error_ratio = x.error_ratio.clone().step(fault + PROPAGATION, ratio);
        x.logged_errors = x.logged_errors.clone().step(fault + PROPAGATION, 0.3);
    }
    push(&server, now, &entities, "");
    high_error_rate(&server, now, "api", &[]);

    let incident = incident(&server, &[("alertname", "HighErrorRate")]);
    let suspects = suspects(&incident);
    let ranking = show(&suspects);
    let top = &suspects[0];
    assert_eq!(
        (label(top, "service"), label(top, "instance")),
        ("db", "db-1"),
        "{ranking}"
    );
    if let Some(noisy) = suspect(&suspects, "api-2") {
        assert!(
            score(noisy) < score(top) / 2.0,
            "the always-noisy instance scores well below the root:\n{ranking}"
        );
        assert!(
            !reason(noisy).contains("causes:"),
            "the topology does not find it anomalous:\n{ranking}"
        );
    }
    assert_eq!(incident["ambiguous"], false, "{incident:#}");
    hook.next("the notification");
}

/// No graph file: the edges come from service-graph counters
/// (`traces_service_graph_request_total{client, server}`), and the cascade is still
/// localized to db-1.
#[test]
fn the_graph_from_service_graph_metrics_localizes_the_cascade() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["topology", "log-hotspot", "webhook"]);
    dir.write(
        "shop.toml",
        &format!(
            "{}{}{}",
            localizers(false, "traces_service_graph_request_total"),
            route(&["alertname"], &["notify"]),
            receiver("notify", &hook, "", ""),
        ),
    );
    let server = Server::start(&dir, &[]);
    let now = faultline::model::time::now_ms();
    let edges = service_graph(now, &[("frontend", "api"), ("api", "db")]);
    push(&server, now, &cascade(now), &edges);
    high_error_rate(&server, now, "frontend", &[]);

    let incident = incident(&server, &[("alertname", "HighErrorRate")]);
    assert_db_1_is_the_cause(&suspects(&incident));
    hook.next("the notification");
}

/// The graph follows the service-graph series at every localization, without a reload:
/// with no edge yet, every service stands alone and nothing explains the callers away; once
/// Istio's `istio_requests_total{source_workload, destination_workload}` shows who calls
/// whom, the next incident is localized to db-1 with its callers explained by it.
#[test]
fn the_graph_follows_a_changing_service_graph_without_a_reload() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["topology", "log-hotspot", "webhook"]);
    dir.write(
        "shop.toml",
        &format!(
            "{}{}{}",
            localizers(false, "istio_requests_total"),
            route(&["alertname", "cluster"], &["notify"]),
            receiver("notify", &hook, "", ""),
        ),
    );
    let server = Server::start(&dir, &[]);
    let now = faultline::model::time::now_ms();
    push(&server, now, &cascade(now), "");

    high_error_rate(&server, now, "frontend", &[("cluster", "a")]);
    let before = suspects(&incident(&server, &[("cluster", "a")]));
    let ranking = show(&before);
    let db = suspect(&before, "db-1").expect("db-1 is anomalous");
    assert!(
        reason(db).contains("no anomalous service depends on it"),
        "without edges, nothing depends on db:\n{ranking}"
    );
    assert!(
        before.iter().all(|s| !reason(s).contains("explained by")),
        "without edges, nothing is explained away:\n{ranking}"
    );
    hook.next("the first notification");

    // The mesh reports who calls whom; no reload, no rule change.
    let t = faultline::model::time::now_ms();
    let istio = format!(
        "istio_requests_total{{source_workload=\"frontend\",destination_workload=\"api\",response_code=\"200\"}} 5000 {t}\n\
         istio_requests_total{{source_workload=\"api\",destination_workload=\"db\",response_code=\"200\"}} 7000 {t}\n\
         istio_requests_total{{source_workload=\"unknown\",destination_workload=\"frontend\",response_code=\"200\"}} 9000 {t}\n"
    );
    let r = server.push("shop", &istio);
    assert!(r.status().is_success(), "{:?}", r.text());
    high_error_rate(&server, now, "frontend", &[("cluster", "b")]);
    let after = suspects(&incident(&server, &[("cluster", "b")]));
    assert_db_1_is_the_cause(&after);
    assert!(
        reason(&after[0]).contains("fail downstream of it"),
        "{}",
        show(&after)
    );
}

/// Two independent leaf services, search and payments, fail equally at the same moment:
/// the localization cannot tell which is the cause and says so (`ambiguous`). The cordon-like
/// receiver, which acts on one instance, does not act, and records why, naming both
/// candidates; a plain notification still goes out, saying the localization is ambiguous.
#[test]
fn two_equally_likely_causes_are_ambiguous_and_nothing_is_acted_on() {
    let cordon = Receiver::start();
    let chat = Receiver::start();
    let dir = RulesDir::new(&["topology", "log-hotspot", "webhook"]);
    dir.write(
        "topology.json",
        r#"{"frontend": ["search", "payments"], "search": [], "payments": []}"#,
    );
    dir.write(
        "shop.toml",
        &format!(
            "{}{}{}{}",
            localizers(true, ""),
            route(&["alertname"], &["cordon", "chat"]),
            receiver(
                "cordon",
                &cordon,
                "",
                "rails = { target = [\"instance\"], min_margin = 0.2 }"
            ),
            receiver(
                "chat",
                &chat,
                r#", body_template = { ambiguous = "{{ ambiguous }}", top = "{{ suspects.0.labels.instance }}" }"#,
                ""
            ),
        ),
    );
    let server = Server::start(&dir, &[]);
    let now = faultline::model::time::now_ms();
    let fault = now - FAULT;
    let mut entities = vec![
        healthy("frontend", "frontend-1"),
        healthy("frontend", "frontend-2"),
        healthy("search", "search-1"),
        healthy("search", "search-2"),
        healthy("payments", "payments-1"),
        healthy("payments", "payments-2"),
    ];
    // search-1 and payments-1: the same data, the same fault at the same moment.
    let twin_seed = fnv("twins");
    for instance in ["search-1", "payments-1"] {
        let x = get(&mut entities, instance);
        x.seed = twin_seed;
        x.error_ratio = x.error_ratio.clone().step(fault, 0.3);
        x.logged_errors = x.logged_errors.clone().step(fault, 0.5);
    }
    push(&server, now, &entities, "");
    let alert = |service: &'static str, instance: &'static str| {
        [
            ("alertname", "HighErrorRate"),
            ("job", "shop"),
            ("service", service),
            ("instance", instance),
        ]
    };
    fire(
        &server,
        fault + ALERT_AFTER,
        &[
            &alert("search", "search-1"),
            &alert("payments", "payments-1"),
        ],
    );

    let incident = incident(&server, &[("alertname", "HighErrorRate")]);
    let suspects = suspects(&incident);
    let ranking = show(&suspects);
    let top2: Vec<&str> = suspects[..2].iter().map(|s| label(s, "instance")).collect();
    assert!(
        top2.contains(&"search-1") && top2.contains(&"payments-1"),
        "{ranking}"
    );
    assert!(
        (score(&suspects[0]) - score(&suspects[1])).abs() < 1e-9,
        "{ranking}"
    );
    assert_eq!(incident["ambiguous"], true, "{incident:#}");
    assert!(incident["margin"].as_f64().unwrap() < 0.1, "{incident:#}");

    // The plain notification goes out, and says so.
    let got = chat.next("the chat notification");
    let body = got.json();
    assert_eq!(body["ambiguous"], true, "{body:#}");

    // The cordon does not act on a guess, and says why, naming both candidates.
    let d = decision(&server, "cordon", |d| d["decision"] == "ambiguous");
    let why = d["reason"].as_str().unwrap();
    assert!(
        why.contains(r#"instance="search-1""#) && why.contains(r#"instance="payments-1""#),
        "{d:#}"
    );
    let v = server.get_json("/api/v1/decisions?receiver=cordon");
    let kinds: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"queued"), "{kinds:?}");
    let actions = data(&server.get_json("/api/v1/outbox"));
    assert!(
        actions.iter().all(|a| a["receiver"] != "cordon"),
        "{actions:#?}"
    );
    // The chat action is done by now (its request arrived); the cordon got nothing.
    wait_for("the chat action to be done", || {
        data(&server.get_json("/api/v1/outbox?state=done"))
            .into_iter()
            .find(|a| a["receiver"] == "chat")
    });
    assert!(cordon.drain().is_empty(), "the cordon receiver was called");
}
