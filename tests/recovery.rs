//! Localization and recovery as a whole: five nodes and a small service graph, detection,
//! one incident, localization that names the faulty node where naive rules would blame
//! another, and exactly one Kafka event (consumed back from a real broker, tansu) and one
//! Kubernetes call (to a stand-in API server that checks the documented API) for it.

use std::time::Duration;

use faultline_system_tests::k8s::ApiServer;
use faultline_system_tests::kafka::{Tansu, consume};
use faultline_system_tests::{RulesDir, Server, wait_for};
use serde_json::Value;

const TOKEN: &str = "kube-t0ken-never-logged";

/// The service graph: frontend -> api -> db, api -> cache.
const TOPOLOGY: &str = r#"{"frontend": ["api"], "api": ["db", "cache"], "db": [], "cache": []}"#;

/// Which service each node runs.
const NODES: [(&str, &str); 5] = [
    ("node1", "frontend"),
    ("node2", "api"),
    ("node3", "api"),
    ("node4", "db"),
    ("node5", "cache"),
];

fn rules(dir: &RulesDir) {
    dir.write("topology.json", TOPOLOGY);
    dir.write(
        "checkout.toml",
        r#"
[[group]]
name = "checkout"
interval = "200ms"

# A naive rule: every service whose error ratio is high alerts. node1 (frontend) has the
# highest ratio and the most error logs, but it only relays the failure of db.
[[group.rule]]
name = "HighErrorRate"
plugin = "threshold"
select = "http_error_ratio"
params = { above = 0.2 }

[[localizer]]
name = "services"
plugin = "topology"
match = ['alertname="HighErrorRate"']
files = { graph = "topology.json" }
params = { label = "service", carry = ["instance"] }

[[localizer]]
name = "error-logs"
plugin = "log-hotspot"
match = ['alertname="HighErrorRate"']
logs = '{job="checkout"}'
range = "1h"
params = { node_label = "instance" }

[[receiver]]
name = "events"
plugin = "kafka"
params = { topic = "incidents" }
grants = { kafka = ["incidents"], connections = ["events"] }
send_resolved = false
rails = { target = ["instance"] }

[[receiver]]
name = "cordon"
plugin = "kubernetes"
params = { action = "cordon", node = "{{ instance }}" }
grants = { connections = ["kubernetes"] }
send_resolved = false
rails = { target = ["instance"], min_score = 0.5, rate_limit = "1/1h" }

[route]
receiver = "events"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"

[[route.routes]]
receiver = "events"
matchers = ['alertname="HighErrorRate"']
continue = true

[[route.routes]]
receiver = "cordon"
matchers = ['alertname="HighErrorRate"']
"#,
    );
}

/// Log records of the checkout service: before the incident, node1 always fails 40% of its
/// requests and the others about 1%; in the incident, node4 (db) fails 90%.
fn logs(now_ms: i64) -> String {
    let mut out = String::new();
    let mut line = |ts: i64, node: &str, status: u16| {
        out.push_str(&format!(
            r#"{{"timestamp": {ts}, "labels": {{"job": "checkout", "instance": "{node}"}}, "message": "GET /cart status={status}", "fields": {{"status": "{status}"}}}}"#
        ));
        out.push('\n');
    };
    for i in 0..200i64 {
        let ts = now_ms - 30 * 60_000 + i * 6_000;
        for (node, _) in NODES {
            let status = match node {
                "node1" if i % 5 < 2 => 503,
                _ if i % 100 == 0 => 500,
                _ => 200,
            };
            line(ts, node, status);
        }
    }
    for i in 0..40i64 {
        let ts = now_ms - 20_000 + i * 400;
        for (node, _) in NODES {
            let status = match node {
                "node1" if i % 5 < 2 => 503,
                "node4" if i % 10 != 0 => 503,
                "node2" | "node3" if i % 10 == 0 => 502,
                _ => 200,
            };
            line(ts, node, status);
        }
    }
    out
}

fn config(dir: &RulesDir, api: &ApiServer, brokers: &str) -> String {
    let token = dir.tmp.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    dir.config(&format!(
        r#"
[connection.kubernetes]
url = "{}"
token = {{ file = "{}" }}

[connection.events]
brokers = "{brokers}"
"#,
        api.url(),
        token.display()
    ))
}

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().expect("a data array")
}

#[test]
fn one_incident_is_localized_to_the_faulty_node_and_recovered_once() {
    let tansu = Tansu::start();
    tansu.create_topic("incidents");
    let api = NODES
        .iter()
        .fold(ApiServer::start(TOKEN), |api, (node, _)| {
            api.with_node(node)
        });
    let dir = RulesDir::new(&[
        "threshold",
        "topology",
        "log-hotspot",
        "kafka",
        "kubernetes",
    ]);
    rules(&dir);
    let cfg = config(&dir, &api, &tansu.brokers());
    let server = Server::start(&dir, &["--config", &cfg]);

    let now = faultline::model::time::now_ms();
    let resp = reqwest::blocking::Client::new()
        .post(server.url("/api/v1/logs"))
        .header("Content-Type", "application/x-ndjson")
        .body(logs(now))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
    let ratios = [
        ("node1", 0.9),
        ("node2", 0.5),
        ("node3", 0.45),
        ("node4", 0.3),
        ("node5", 0.0),
    ];
    for ((node, service), (_, ratio)) in NODES.iter().zip(ratios) {
        let r = server.push(
            &format!("checkout/instance/{node}"),
            &format!("http_error_ratio{{service=\"{service}\"}} {ratio}\n"),
        );
        assert!(r.status().is_success());
    }

    // Both actions are carried out.
    let actions = wait_for("both actions to be done", || {
        let v = server.get_json("/api/v1/outbox?state=done");
        (data(&v).len() >= 2).then(|| data(&v).clone())
    });
    assert_eq!(actions.len(), 2, "{actions:#?}");
    for a in &actions {
        assert_eq!(a["target"], r#"{instance="node4"}"#, "{a:#}");
    }

    // One incident, four alerts, and node4 named as the suspect where naive rules (the
    // highest error ratio, the most error logs) would name node1.
    let v = server.get_json("/api/v1/incidents");
    let incidents = data(&v);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = &incidents[0];
    assert_eq!(incident["alerts"].as_array().unwrap().len(), 4);
    let suspects = incident["suspects"].as_array().unwrap();
    let top = &suspects[0];
    let label = |s: &Value, name: &str| s["labels"][name].as_str().map(str::to_string);
    assert_eq!(
        label(top, "instance").as_deref(),
        Some("node4"),
        "{suspects:#?}"
    );
    assert_eq!(
        label(top, "service").as_deref(),
        Some("db"),
        "{suspects:#?}"
    );
    assert!(
        top["reason"]
            .as_str()
            .unwrap()
            .contains("frontend -> api -> db"),
        "the reason names the path: {top:#}"
    );
    // The log hotspot names node4 too: its evidence merged into the same entity (the
    // `instance`), with its own reason.
    assert!(
        top["reason"]
            .as_str()
            .unwrap()
            .contains("; error-logs: node4"),
        "both localizers' evidence on node4: {top:#}"
    );
    let incident_id = incident["id"].as_str().unwrap();

    // Exactly one Kubernetes call, as kubectl cordon makes it, for node4.
    let requests = api.wait_requests(1);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let call = &requests[0];
    assert_eq!(call.method, "PATCH");
    assert_eq!(call.path, "/api/v1/nodes/node4");
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        call.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(
        call.body,
        Some(serde_json::json!({"spec": {"unschedulable": true}}))
    );
    assert!(api.node_unschedulable("node4"));
    assert!(!api.node_unschedulable("node1"));
    let cordon = actions.iter().find(|a| a["receiver"] == "cordon").unwrap();
    assert_eq!(
        call.idempotency_key.as_deref(),
        cordon["idempotencyKey"].as_str()
    );

    // Exactly one Kafka event, consumed back with its key, headers and body.
    let events = consume(&tansu.brokers(), "incidents", 2, Duration::from_secs(10));
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e.key.as_deref(), Some(incident_id.as_bytes()));
    let header = |name: &str| {
        e.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    let sent = actions.iter().find(|a| a["receiver"] == "events").unwrap();
    assert_eq!(
        header("idempotency-key").as_deref(),
        sent["idempotencyKey"].as_str()
    );
    assert_eq!(header("type").as_deref(), Some("faultline.incident"));
    let body: Value = serde_json::from_slice(&e.payload).unwrap();
    assert_eq!(body["incident"]["id"], incident_id);
    assert_eq!(body["alerts"].as_array().unwrap().len(), 4);
    let first = &body["suspects"][0];
    assert_eq!(first["labels"]["instance"], "node4", "{body:#}");

    // Decisions are recorded, and the token appears nowhere.
    let v = server.get_json("/api/v1/decisions?receiver=cordon");
    let decisions: Vec<&str> = data(&v)
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert!(
        decisions.contains(&"queued") && decisions.contains(&"done"),
        "{decisions:?}"
    );
    assert!(!server.log().contains(TOKEN));
    let everything = format!(
        "{}{}{}",
        server.get_json("/api/v1/outbox"),
        server.get_json("/api/v1/decisions"),
        server.get_json("/api/v1/incidents")
    );
    assert!(!everything.contains(TOKEN));
}
