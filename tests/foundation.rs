//! The minimal loop, end to end: exposition text pushed to a running Faultline, a threshold
//! rule goes pending then firing, a real HTTP listener receives the webhook (Alertmanager's
//! payload, signed with HMAC-SHA256), then the resolved notification once the value drops.

use faultline_system_tests::{Receiver, RulesDir, Server, hmac_hex, wait_for};

const SECRET: &str = "s3cret-for-the-test";

fn rules(hook: std::net::SocketAddr) -> String {
    format!(
        r#"
[[group]]
name = "node"
interval = "200ms"

[[group.rule]]
name = "HighLoad"
plugin = "threshold"
select = 'node_load1{{job="node"}}'
for = "3s"
params = {{ above = 2.0 }}
labels = {{ severity = "page" }}
annotations = {{ summary = "load {{{{ $value }}}} on {{{{ $labels.instance }}}}" }}
recovery = "hook"

[[receiver]]
name = "hook"
plugin = "webhook"
params = {{ url = "http://{hook}/hook" }}
grants = {{ http = ["{hook}"], secret = {{ file = "hook.secret" }} }}
"#
    )
}

#[test]
fn push_detect_fire_notify_resolve() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write("node.toml", &rules(hook.addr));
    dir.write("hook.secret", &format!("{SECRET}\n"));
    let server = Server::start(&dir, &[]);

    let push = server.push(
        "node/instance/web1",
        "# TYPE node_load1 gauge\nnode_load1 5.5\n",
    );
    assert_eq!(push.status(), 200);
    // A series that stays below the bound never alerts.
    assert_eq!(
        server
            .push("node/instance/web2", "node_load1 0.5\n")
            .status(),
        200
    );

    wait_for("the alert to be pending", || {
        (server.alert_state("HighLoad", "web1")? == "pending").then_some(())
    });
    wait_for("the alert to fire", || {
        (server.alert_state("HighLoad", "web1")? == "firing").then_some(())
    });
    assert_eq!(server.alert_state("HighLoad", "web2"), None);

    let firing = hook.next_where("the firing webhook", |v| v["status"] == "firing");
    assert_eq!(firing.path, "/hook");
    assert_eq!(
        firing.header("X-Faultline-Signature"),
        Some(hmac_hex(SECRET.as_bytes(), &firing.body).as_str()),
        "the signature must be the HMAC-SHA256 of the body with the granted secret"
    );
    assert!(
        firing
            .header("Idempotency-Key")
            .is_some_and(|k| !k.is_empty())
    );
    let body = firing.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["groupLabels"]["alertname"], "HighLoad");
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["instance"], "web1");
    assert_eq!(alerts[0]["labels"]["job"], "node");
    assert_eq!(alerts[0]["labels"]["severity"], "page");
    assert_eq!(alerts[0]["labels"].get("__name__"), None);
    assert_eq!(alerts[0]["annotations"]["summary"], "load 5.5 on web1");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alerts[0]["fingerprint"].as_str().unwrap().len(), 16);

    // The value drops below the bound: the alert resolves and the resolution is delivered.
    assert_eq!(
        server
            .push("node/instance/web1", "node_load1 0.3\n")
            .status(),
        200
    );
    let resolved = hook.next_where("the resolved webhook", |v| v["status"] == "resolved");
    assert_eq!(
        resolved.header("X-Faultline-Signature"),
        Some(hmac_hex(SECRET.as_bytes(), &resolved.body).as_str())
    );
    let body = resolved.json();
    assert_eq!(body["alerts"][0]["status"], "resolved");
    assert_eq!(body["alerts"][0]["labels"]["instance"], "web1");
    assert_ne!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(
        resolved.header("Idempotency-Key"),
        firing.header("Idempotency-Key"),
        "a new notification has a new idempotency key"
    );
    wait_for("the alert to be resolved", || {
        (server.alert_state("HighLoad", "web1")? == "resolved").then_some(())
    });

    // Faultline's own metrics count the evaluations and deliveries.
    assert!(
        server
            .metric(r#"faultline_rule_evaluations_total{rule="node/HighLoad"}"#)
            .unwrap()
            >= 2.0
    );
    assert!(
        server
            .metric(r#"faultline_notifications_total{receiver="hook",outcome="done"}"#)
            .unwrap()
            >= 2.0
    );
}

#[test]
fn health_and_readiness() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    let get = |p: &str| reqwest::blocking::get(server.url(p)).unwrap();
    assert_eq!(get("/-/healthy").status(), 200);
    wait_for("readiness", || {
        (get("/-/ready").status() == 200).then_some(())
    });
    let metrics = get("/metrics").text().unwrap();
    assert!(metrics.contains("# TYPE faultline_rule_evaluations_total counter"));
}
