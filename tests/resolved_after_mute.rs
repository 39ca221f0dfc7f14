//! Resolved after mute: a receiver that was told an alert fired is told that it resolved,
//! even if a silence started in between. Alertmanager drops that resolution (its issues
//! #226 and #2754: remediations and pages left open); Faultline sends it unless the receiver
//! sets `send_resolved_after_mute = false`, which keeps Alertmanager's behaviour.

use faultline_system_tests::{Receiver, RulesDir, Server, wait_for, webhook};
use serde_json::{Value, json};

fn post(server: &Server, path: &str, body: Value) -> Value {
    let resp = reqwest::blocking::Client::new()
        .post(server.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let text = resp.text().unwrap();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn rfc3339(offset_ms: i64) -> String {
    faultline::model::time::rfc3339(faultline::model::time::now_ms() + offset_ms)
}

#[test]
fn a_silenced_alert_resolves_at_the_receiver_told_it_fired() {
    let fixer = Receiver::start();
    let am_like = Receiver::start();
    let dir = RulesDir::new(&["webhook"]);
    dir.write(
        "route.toml",
        &format!(
            r#"
[route]
receiver = "fixer"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"

[[route.routes]]
receiver = "fixer"
continue = true

[[route.routes]]
receiver = "am-like"
{}{}"#,
            webhook("fixer", fixer.addr, ""),
            webhook("am-like", am_like.addr, "send_resolved_after_mute = false"),
        ),
    );
    let server = Server::start(&dir, &[]);
    let labels = json!({"alertname": "DiskFull", "instance": "db1"});
    post(&server, "/api/v2/alerts", json!([{"labels": labels}]));
    for hook in [&fixer, &am_like] {
        let sent = hook.next_where("the firing notification", |v| v["status"] == "firing");
        assert_eq!(sent.json()["alerts"][0]["labels"], labels);
    }

    // An operator silences it; the alert is muted...
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false}],
        "startsAt": rfc3339(0), "endsAt": rfc3339(3_600_000),
        "createdBy": "test", "comment": "known, being fixed",
    });
    post(&server, "/api/v2/silences", silence);
    wait_for("the alert to be muted", || {
        let listed = server.get_json("/api/v2/alerts");
        (listed[0]["status"]["state"] == "suppressed").then_some(())
    });
    // ...and resolves while muted.
    let resolved = json!([{"labels": labels, "startsAt": rfc3339(-60_000), "endsAt": rfc3339(0)}]);
    post(&server, "/api/v2/alerts", resolved);

    let sent = fixer.next_where("the resolution at the receiver told it fired", |v| {
        v["status"] == "resolved"
    });
    let sent = sent.json();
    assert_eq!(sent["alerts"][0]["labels"], labels);
    assert_eq!(sent["alerts"][0]["status"], "resolved");
    // Both receivers are planned in the same dispatcher pass: by now, the one that keeps
    // Alertmanager's behaviour would have had its resolution planned too. It has not.
    let decisions = server.get_json("/api/v1/decisions?receiver=am-like");
    let queued = decisions["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "queued")
        .count();
    assert_eq!(queued, 1, "only the firing notification: {decisions}");
}
