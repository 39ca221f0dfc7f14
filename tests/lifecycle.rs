//! The alert lifecycle across restarts, and Alertmanager's routing semantics: a restart
//! neither re-fires nor re-notifies nor forgets; the routing tree sends alerts to the
//! right receivers, grouped as configured; the repeat interval holds across a restart.

use std::time::{Duration, Instant};

use faultline_system_tests::{Receiver, RulesDir, Server, wait_for, webhook};

fn config(dir: &RulesDir) -> String {
    dir.config("restore_grace = \"3s\"\n")
}

/// Rule `High` (load above 2) in group `g`, routed to webhook `hook` at `hook` with no group
/// wait; `route` adds lines to the route.
fn high_routed_to_hook(hook: std::net::SocketAddr, route: &str) -> String {
    format!(
        r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = {{ above = 2 }}

[route]
receiver = "hook"
group_wait = "0s"
group_interval = "200ms"
{route}
{}"#,
        webhook("hook", hook, "")
    )
}

/// The alert of rule `alertname` (one instance in the test using it).
fn alert(server: &Server, alertname: &str) -> serde_json::Value {
    let v = server.get_json("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname)
        .unwrap_or_else(|| panic!("no {alertname} alert: {v}"))
        .clone()
}

#[test]
fn a_restart_neither_refires_nor_renotifies_nor_forgets() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &format!(
            r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
for = "1s"
params = {{ above = 2 }}
recovery = "hook"

[[group.rule]]
name = "Slow"
plugin = "threshold"
select = "load"
for = "1h"
params = {{ above = 2 }}
{}"#,
            webhook("hook", hook.addr, "")
        ),
    );
    let cfg = config(&dir);
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("node/instance/a", "load 5\n");
    wait_for("firing", || {
        (server.alert_state("High", "a")? == "firing").then_some(())
    });
    let first = hook.next("the first notification");
    assert_eq!(first.json()["status"], "firing");
    wait_for("the delivery to be logged", || {
        (server.metric(r#"faultline_notifications_total{receiver="hook",outcome="done"}"#)? >= 1.0)
            .then_some(())
    });
    let fired_active_at = alert(&server, "High")["activeAt"].clone();
    assert!(fired_active_at.is_string(), "{fired_active_at}");
    let pending_active_at = alert(&server, "Slow")["activeAt"].clone();
    drop(server);

    // Restarted with the same data directory, and the data comes back.
    let server = Server::start(&dir, &["--config", &cfg]);
    assert_eq!(
        server.alert_state("High", "a").as_deref(),
        Some("firing"),
        "restored at once"
    );
    server.push("node/instance/a", "load 5\n");
    wait_for("evaluations after the restart", || {
        (server.metric(r#"faultline_rule_evaluations_total{rule="g/High"}"#)? >= 5.0).then_some(())
    });
    assert_eq!(
        alert(&server, "High")["activeAt"],
        fired_active_at,
        "the alert kept its active time"
    );
    let slow = alert(&server, "Slow");
    assert_eq!(slow["state"], "pending");
    assert_eq!(
        slow["activeAt"], pending_active_at,
        "`for` keeps counting from before the restart"
    );

    // The next notification is the resolution: nothing was re-sent for the restart.
    server.push("node/instance/a", "load 1\n");
    let next = hook.next("the resolved notification");
    assert_eq!(next.json()["status"], "resolved", "{}", next.json());
}

#[test]
fn routing_tree_sends_to_the_right_receivers_grouped_as_configured() {
    let general = Receiver::start();
    let pager = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &format!(
            r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = {{ above = 2 }}
labels = {{ severity = "warning" }}

[[group.rule]]
name = "VeryHigh"
plugin = "threshold"
select = "load"
params = {{ above = 8 }}
labels = {{ severity = "page" }}

[route]
receiver = "general"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"

[[route.routes]]
receiver = "pager"
matchers = ['severity="page"']
group_by = ["..."]
{}{}"#,
            webhook("general", general.addr, ""),
            webhook("pager", pager.addr, "")
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    server.push("node/instance/b", "load 9\n");

    // `general` gets High for both instances in one group (grouped by alertname).
    let n = general.next_where("High grouped", |v| {
        v["alerts"].as_array().is_some_and(|a| a.len() == 2)
    });
    let body = n.json();
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({"alertname": "High"})
    );
    assert_eq!(body["commonLabels"]["severity"], "warning");
    assert_eq!(body["groupKey"], r#"{}:{alertname="High"}"#);
    // `pager` gets VeryHigh only, grouped by all labels.
    let p = pager.next("the page");
    let body = p.json();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "VeryHigh");
    assert_eq!(body["groupLabels"]["instance"], "b");
    assert!(
        body["groupKey"]
            .as_str()
            .unwrap()
            .starts_with(r#"{}/{severity="page"}:{"#),
        "{body}"
    );
    // VeryHigh went to the pager route only, not to `general` as well; High to `general`.
    let listed = server.get_json("/api/v2/alerts");
    let receivers = |alertname: &str, instance: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == alertname && a["labels"]["instance"] == instance)
            .map(|a| a["receivers"].clone())
            .unwrap_or_else(|| panic!("{alertname} on {instance} not listed: {listed}"))
    };
    assert_eq!(
        receivers("VeryHigh", "b"),
        serde_json::json!([{"name": "pager"}])
    );
    assert_eq!(
        receivers("High", "b"),
        serde_json::json!([{"name": "general"}])
    );
}

#[test]
fn repeat_interval_holds_across_a_restart() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &high_routed_to_hook(hook.addr, "repeat_interval = \"6s\""),
    );
    let cfg = config(&dir);
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("node/instance/a", "load 5\n");
    let first = hook.next("the first notification");
    let t0 = Instant::now();
    assert_eq!(first.json()["status"], "firing");
    wait_for("the delivery to be logged", || {
        (server.metric(r#"faultline_notifications_total{receiver="hook",outcome="done"}"#)? >= 1.0)
            .then_some(())
    });
    drop(server);
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("node/instance/a", "load 5\n");
    // The restarted server knows it notified: the next one is the repeat, not a re-send.
    let second = hook.next("the repeated notification");
    assert_eq!(second.json()["status"], "firing");
    assert_eq!(second.json()["alerts"][0]["labels"]["instance"], "a");
    assert!(
        t0.elapsed() >= Duration::from_millis(5500),
        "re-notified {:?} after the first notification, before the repeat interval",
        t0.elapsed()
    );
}

#[test]
fn silenced_alerts_are_not_notified() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &high_routed_to_hook(hook.addr, "group_by = [\"instance\"]"),
    );
    let server = Server::start(&dir, &[]);
    let now = chrono_like_now();
    let silence = serde_json::json!({
        "matchers": [{"name": "instance", "value": "a", "isRegex": false, "isEqual": true}],
        "startsAt": now.0,
        "endsAt": now.1,
        "createdBy": "test",
        "comment": "maintenance on a",
    });
    let r = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/silences"))
        .json(&silence)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    server.push("node/instance/a", "load 5\n");
    server.push("node/instance/b", "load 5\n");
    wait_for("both alerts firing", || {
        (server.alert_state("High", "a")? == "firing"
            && server.alert_state("High", "b")? == "firing")
            .then_some(())
    });
    let n = hook.next("a notification");
    assert_eq!(
        n.json()["alerts"][0]["labels"]["instance"],
        "b",
        "{}",
        n.json()
    );
    // The silenced one stays quiet while the other group keeps being evaluated.
    let before = server
        .metric(r#"faultline_rule_evaluations_total{rule="g/High"}"#)
        .unwrap();
    wait_for("more evaluations", || {
        (server.metric(r#"faultline_rule_evaluations_total{rule="g/High"}"#)? >= before + 10.0)
            .then_some(())
    });
    assert_eq!(
        server.metric(r#"faultline_notifications_total{receiver="hook",outcome="done"}"#),
        Some(1.0),
        "only b's group was notified"
    );
}

/// Now and an hour from now, as RFC 3339.
fn chrono_like_now() -> (String, String) {
    let now = faultline::model::time::now_ms();
    (
        faultline::model::time::rfc3339(now - 1000),
        faultline::model::time::rfc3339(now + 3_600_000),
    )
}

#[test]
fn a_reloaded_route_sends_alerts_already_firing_to_its_new_receiver() {
    let first = Receiver::start();
    let second = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    let rules = |receiver: &str| {
        format!(
            r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = {{ above = 2 }}

[route]
receiver = "{receiver}"
group_wait = "0s"
group_interval = "200ms"
repeat_interval = "1h"
{}{}"#,
            webhook("first", first.addr, ""),
            webhook("second", second.addr, "")
        )
    };
    dir.write("r.toml", &rules("first"));
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    first.next("High, to the first receiver");

    // The same alert, still firing, goes where the reloaded tree says: a new group there.
    dir.write("r.toml", &rules("second"));
    let r = reqwest::blocking::Client::new()
        .post(server.url("/-/reload"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let n = second.next_where("High, to the second receiver after the reload", |v| {
        v["alerts"][0]["labels"]["alertname"] == "High"
    });
    assert_eq!(n.json()["status"], "firing");
}
