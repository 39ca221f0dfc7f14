//! Faultline as an Alertmanager: the real `amtool` queries its alerts and manages its
//! silences; inhibit rules mute alerts as Alertmanager's do; alerts and silences survive a
//! kill; its API answers the same requests as a real Alertmanager 0.25 does; and amtool
//! reads its routing configuration and routes test alerts as a real Alertmanager does.

use std::process::Command;

use faultline_system_tests::alertmanager::{Alertmanager, amtool};
use faultline_system_tests::{Receiver, RulesDir, Server, binary, wait_for, webhook};
use serde_json::{Value, json};

/// Sends a request and returns the status and the body as JSON (`null` when empty).
fn send(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new().request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
    };
    (status, value)
}

fn post_alerts(server: &Server, alerts: Value) {
    let (status, body) = send("POST", &server.url("/api/v2/alerts"), Some(&alerts));
    assert_eq!((status, body), (200, Value::Null));
}

/// `GET /api/v2/alerts` with a query string.
fn listed(server: &Server, query: &str) -> Vec<Value> {
    let (status, body) = send("GET", &server.url(&format!("/api/v2/alerts{query}")), None);
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

fn find<'a>(alerts: &'a [Value], alertname: &str, instance: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname && a["labels"]["instance"] == instance)
}

fn instances(alerts: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["instance"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn amtool_queries_alerts_and_manages_silences() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    let url = format!("http://{}", server.addr);

    amtool(
        &url,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "instance=db1",
            "severity=warning",
            "--annotation=summary=disk full on db1",
        ],
    );
    amtool(
        &url,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "instance=db2",
            "severity=warning",
        ],
    );
    let query = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["alert", "query", "-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&amtool(&url, &all)).unwrap()
    };
    assert_eq!(instances(&query(&[])), ["db1", "db2"]);
    assert_eq!(instances(&query(&["instance=~db1|db9"])), ["db1"]);
    // amtool's own table, as an operator reads it.
    let table = amtool(&url, &["alert", "query", "instance=db1"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["Alertname", "Starts At", "Summary", "State"]);
    let row = lines.next().unwrap();
    assert!(row.starts_with("DiskFull"), "{table}");
    assert!(
        row.contains("disk full on db1") && row.trim_end().ends_with("active"),
        "{table}"
    );
    assert_eq!(lines.next(), None, "{table}");

    // A silence, added by amtool, mutes db1.
    let id = amtool(
        &url,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "instance=~db1|db3",
            "--comment=replacing the disk",
            "--author=oncall",
            "--duration=1h",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "a silence ID: {id:?}");
    let silences: Vec<Value> =
        serde_json::from_str(&amtool(&url, &["silence", "query", "-o", "json"])).unwrap();
    assert_eq!(silences.len(), 1);
    let s = &silences[0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(s["createdBy"], "oncall");
    assert_eq!(s["comment"], "replacing the disk");
    assert_eq!(
        s["matchers"],
        json!([
            {"isEqual": true, "isRegex": false, "name": "alertname", "value": "DiskFull"},
            {"isEqual": true, "isRegex": true, "name": "instance", "value": "db1|db3"},
        ])
    );
    assert_eq!(amtool(&url, &["silence", "query", "-q"]).trim(), id);
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "alertname=DiskFull"]).trim(),
        id
    );
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "alertname=Other"]).trim(),
        ""
    );
    let table = amtool(&url, &["silence", "query"]);
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&id) && row.contains(r#"alertname="DiskFull" instance=~"db1|db3""#),
        "{table}"
    );

    // amtool hides silenced alerts unless asked; the API shows db1 suppressed.
    assert_eq!(instances(&query(&[])), ["db2"]);
    let silenced = query(&["--silenced"]);
    assert_eq!(instances(&silenced), ["db1"]);
    assert_eq!(silenced[0]["status"]["silencedBy"], json!([id]));
    let all = listed(&server, "");
    let db1 = find(&all, "DiskFull", "db1").unwrap();
    assert_eq!(db1["status"]["state"], "suppressed");
    assert_eq!(db1["status"]["silencedBy"], json!([id]));
    assert_eq!(db1["annotations"]["summary"], "disk full on db1");
    let db2 = find(&all, "DiskFull", "db2").unwrap();
    assert_eq!(
        db2["status"],
        json!({"inhibitedBy": [], "silencedBy": [], "state": "active"})
    );
    assert_eq!(instances(&listed(&server, "?silenced=false")), ["db2"]);

    // Expired: db1 is active again, and the silence is listed only among the expired.
    amtool(&url, &["silence", "expire", &id]);
    assert_eq!(amtool(&url, &["silence", "query", "-q"]).trim(), "");
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "--expired"]).trim(),
        id
    );
    assert_eq!(instances(&query(&[])), ["db1", "db2"]);
    let db1 = listed(&server, "?filter=instance%3Ddb1");
    assert_eq!(db1[0]["status"]["state"], "active");
}

const INHIBIT: &str = r#"
[[inhibit]]
source_matchers = ['severity="critical"']
target_matchers = ["severity=warning"]
equal = ["instance"]
"#;

#[test]
fn a_critical_alert_inhibits_the_warnings_of_its_instance_only() {
    let dir = RulesDir::new(&[]);
    dir.write("inhibit.toml", INHIBIT);
    let server = Server::start(&dir, &[]);
    post_alerts(
        &server,
        json!([
            {"labels": {"alertname": "NodeDown", "severity": "critical", "instance": "a"}},
            {"labels": {"alertname": "HighLatency", "severity": "warning", "instance": "a"}},
            {"labels": {"alertname": "HighLatency", "severity": "warning", "instance": "b"}},
        ]),
    );
    let all = listed(&server, "");
    let critical = find(&all, "NodeDown", "a").unwrap();
    let fp = critical["fingerprint"].as_str().unwrap();
    assert_eq!(critical["status"]["state"], "active");
    let inhibited = find(&all, "HighLatency", "a").unwrap();
    assert_eq!(
        inhibited["status"],
        json!({"inhibitedBy": [fp], "silencedBy": [], "state": "suppressed"})
    );
    let other = find(&all, "HighLatency", "b").unwrap();
    assert_eq!(other["status"]["state"], "active");
    assert_eq!(other["status"]["inhibitedBy"], json!([]));

    assert_eq!(listed(&server, "?inhibited=false").len(), 2);
    let url = format!("http://{}", server.addr);
    let only: Vec<Value> = serde_json::from_str(&amtool(
        &url,
        &["alert", "query", "--inhibited", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["labels"]["alertname"], "HighLatency");
    assert_eq!(only[0]["labels"]["instance"], "a");

    // The source resolves: its target is no longer inhibited.
    post_alerts(
        &server,
        json!([{"labels": {"alertname": "NodeDown", "severity": "critical", "instance": "a"},
                "endsAt": from_now(0)}]),
    );
    let all = listed(&server, "");
    assert!(
        find(&all, "NodeDown", "a").is_none(),
        "resolved alerts are not listed"
    );
    assert_eq!(
        find(&all, "HighLatency", "a").unwrap()["status"]["state"],
        "active"
    );
}

/// The time `offset_ms` from now, as RFC 3339.
fn from_now(offset_ms: i64) -> String {
    faultline::model::time::rfc3339(faultline::model::time::now_ms() + offset_ms)
}

#[test]
fn invalid_inhibit_rules_are_refused_naming_file_rule_and_field() {
    let dir = RulesDir::new(&[]);
    dir.write(
        "inhibit.toml",
        "[[inhibit]]\nsource_matchers = ['severity=\"critical\"']\n\n[[inhibit]]\ntarget_matchers = ['a=\"(']\n",
    );
    let out = Command::new(binary())
        .arg("check")
        .arg(dir.rules())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("inhibit.toml:4: inhibit rule 2: field `target_matchers[0]`: matcher value contains unescaped double quote"),
        "{stderr}"
    );
}

#[test]
fn alerts_and_silences_survive_a_kill() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    post_alerts(
        &server,
        json!([{"labels": {"alertname": "Kept", "instance": "x"},
                "annotations": {"summary": "still here"},
                "startsAt": "2026-01-01T00:00:00Z"}]),
    );
    let before = listed(&server, "");
    let ends = from_now(3_600_000);
    let (status, body) = send(
        "POST",
        &server.url("/api/v2/silences"),
        Some(&json!({
            "matchers": [{"name": "alertname", "value": "Kept", "isRegex": false}],
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": ends,
            "createdBy": "test",
            "comment": "survives",
        })),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["silenceID"].as_str().unwrap().to_string();
    drop(server); // SIGKILL: nothing is flushed on the way out.

    let server = Server::start(&dir, &[]);
    let after = listed(&server, "");
    assert_eq!(after.len(), 1);
    for field in ["labels", "annotations", "startsAt", "endsAt", "fingerprint"] {
        assert_eq!(after[0][field], before[0][field], "{field}");
    }
    assert_eq!(after[0]["startsAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(after[0]["status"]["silencedBy"], json!([id]));
    let (status, s) = send("GET", &server.url(&format!("/api/v2/silence/{id}")), None);
    assert_eq!(status, 200);
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(s["comment"], "survives");
}

/// Drops what differs between two Alertmanagers by nature: times and generated IDs.
fn normalized(mut v: Value) -> Value {
    match &mut v {
        Value::Array(items) => {
            for i in items {
                *i = normalized(i.take());
            }
        }
        Value::Object(map) => {
            for k in ["startsAt", "endsAt", "updatedAt", "id", "receivers"] {
                map.remove(k);
            }
            for (_, x) in map.iter_mut() {
                *x = normalized(x.take());
            }
        }
        _ => {}
    }
    v
}

#[test]
fn answers_the_same_requests_as_alertmanager() {
    let am = Alertmanager::start(
        "route:\n  receiver: default\nreceivers:\n  - name: default\ninhibit_rules:\n  \
         - source_matchers: ['severity=\"critical\"']\n    target_matchers: [severity=warning]\n    \
         equal: [instance]\n",
    );
    let dir = RulesDir::new(&[]);
    dir.write("inhibit.toml", INHIBIT);
    let server = Server::start(&dir, &[]);
    let fl = format!("http://{}", server.addr);

    let future = from_now(3_600_000);
    let silence = |extra: Value| {
        let mut s = json!({
            "matchers": [{"name": "alertname", "value": "A", "isRegex": false}],
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": future,
            "createdBy": "test",
            "comment": "parity",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                s.as_object_mut().unwrap().remove(k);
            } else {
                s[k] = v.clone();
            }
        }
        s
    };
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/api/v2/alerts".into(), Some(json!([]))),
        (
            "POST",
            "/api/v2/alerts".into(),
            Some(json!([{"labels": {"alertname": "Valid"}}, {"labels": {}}])),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            Some(
                json!([{"labels": {"a": "1"}, "startsAt": "2026-01-01T00:00:01Z",
                         "endsAt": "2026-01-01T00:00:00Z"}]),
            ),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            Some(json!([{"labels": {"a-b": "1"}}])),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            Some(json!([{"annotations": {}}])),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(json!({"comment": null}))),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(json!({"matchers": []}))),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(json!({"matchers": [{"name": "a", "value": "x"}]}))),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(
                json!({"startsAt": future, "endsAt": "2026-01-01T00:00:00Z"}),
            )),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(json!({"endsAt": "2026-01-01T00:00:01Z"}))),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(
                json!({"matchers": [{"name": "a", "value": ".*", "isRegex": true}]}),
            )),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(
                json!({"matchers": [{"name": "a-b", "value": "x", "isRegex": false}]}),
            )),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            Some(silence(
                json!({"id": "6c9b5d63-0f8e-4b8e-9d57-3a1d2f6e1c11"}),
            )),
        ),
        ("GET", "/api/v2/silence/nope".into(), None),
        (
            "GET",
            "/api/v2/silence/6c9b5d63-0f8e-4b8e-9d57-3a1d2f6e1c11".into(),
            None,
        ),
        (
            "DELETE",
            "/api/v2/silence/6c9b5d63-0f8e-4b8e-9d57-3a1d2f6e1c11".into(),
            None,
        ),
        ("GET", "/api/v2/nothing".into(), None),
        // API v1 intake, as a Prometheus with `api_version: v1` posts (resolved, so the
        // listings below stay the same).
        (
            "POST",
            "/api/v1/alerts".into(),
            Some(
                json!([{"labels": {"alertname": "V1"}, "startsAt": "2026-01-01T00:00:00Z",
                         "endsAt": "2026-01-01T00:00:01Z"}]),
            ),
        ),
        (
            "POST",
            "/api/v1/alerts".into(),
            Some(json!([{"labels": {}}])),
        ),
        ("GET", "/api/v2/alerts?filter=-".into(), None),
        ("GET", "/api/v2/alerts?filter=a%3D%22%28".into(), None),
        ("GET", "/api/v2/silences?filter=-".into(), None),
        ("GET", "/api/v2/receivers".into(), None),
    ];
    for (method, path, body) in &cases {
        let want = send(method, &format!("{}{path}", am.url), body.as_ref());
        let got = send(method, &format!("{fl}{path}"), body.as_ref());
        if path == "/api/v2/receivers" {
            // Faultline's receivers are its recovery actions: none here.
            assert_eq!(got, (200, json!([])));
            continue;
        }
        assert_eq!(got, want, "{method} {path} {body:?}");
    }

    // The same alerts, listed: fingerprints, labels, inhibition and silencing agree.
    let alerts = json!([
        {"labels": {"alertname": "NodeDown", "severity": "critical", "instance": "a"},
         "annotations": {"summary": "down"}, "generatorURL": "http://prometheus/graph"},
        {"labels": {"alertname": "HighLatency", "severity": "warning", "instance": "a"}},
        {"labels": {"alertname": "HighLatency", "severity": "warning", "instance": "b"}},
    ]);
    for base in [&am.url, &fl] {
        assert_eq!(
            send("POST", &format!("{base}/api/v2/alerts"), Some(&alerts)),
            (200, Value::Null)
        );
        let (status, _) = send(
            "POST",
            &format!("{base}/api/v2/silences"),
            Some(&silence(json!({"matchers": [
                {"name": "instance", "value": "b", "isRegex": false}]}))),
        );
        assert_eq!(status, 200);
    }
    for query in [
        "",
        "?active=false",
        "?silenced=false&inhibited=false",
        "?filter=instance%3D~%22a%22",
    ] {
        // Alertmanager settles an alert's status on its first pass: ask until it has.
        let want = wait_for("Alertmanager to process its alerts", || {
            let (_, v) = send("GET", &format!("{}/api/v2/alerts{query}", am.url), None);
            let settled = v
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["status"]["state"] != "unprocessed");
            settled.then_some(v)
        });
        let (status, got) = send("GET", &format!("{fl}/api/v2/alerts{query}"), None);
        assert_eq!(status, 200);
        let silence_ids = |v: &Value| -> Vec<usize> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|a| a["status"]["silencedBy"].as_array().unwrap().len())
                .collect()
        };
        assert_eq!(silence_ids(&got), silence_ids(&want), "{query}");
        let strip = |v: Value| {
            let mut v = normalized(v);
            for a in v.as_array_mut().unwrap() {
                a["status"]["silencedBy"] = json!(null);
            }
            v
        };
        assert_eq!(strip(got), strip(want), "GET /api/v2/alerts{query}");
    }
    let (_, want) = send("GET", &format!("{}/api/v2/silences", am.url), None);
    let (_, got) = send("GET", &format!("{fl}/api/v2/silences"), None);
    assert_eq!(normalized(got), normalized(want));
}

#[test]
fn rule_alerts_are_listed_and_inhibited_by_external_ones() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "node.toml",
        &format!(
            r#"
[[group]]
name = "node"
interval = "200ms"

[[group.rule]]
name = "HighLoad"
plugin = "threshold"
select = 'node_load1'
params = {{ above = 2.0 }}
labels = {{ severity = "warning" }}
annotations = {{ summary = "load on {{{{ $labels.instance }}}}" }}
recovery = "hook"
{}{INHIBIT}"#,
            webhook("hook", hook.addr, "")
        ),
    );
    let server = Server::start(&dir, &[]);
    for instance in ["web1", "web2"] {
        let r = server.push(&format!("node/instance/{instance}"), "node_load1 5.5\n");
        assert_eq!(r.status(), 200);
    }
    let all = wait_for("both rule alerts in GET /api/v2/alerts", || {
        let all = listed(&server, "");
        (all.len() == 2).then_some(all)
    });
    let web1 = find(&all, "HighLoad", "web1").unwrap();
    assert_eq!(web1["receivers"], json!([{"name": "hook"}]));
    assert_eq!(web1["annotations"]["summary"], "load on web1");
    assert_eq!(web1["labels"]["job"], "node");
    assert_eq!(web1["status"]["state"], "active");
    assert_eq!(
        listed(&server, "?receiver=ho.*").len(),
        2,
        "the receiver filter is a regex"
    );
    assert!(listed(&server, "?receiver=ho").is_empty(), "anchored");

    // An external critical alert on web1 inhibits web1's rule alert, not web2's.
    post_alerts(
        &server,
        json!([{"labels": {"alertname": "NodeDown", "severity": "critical", "instance": "web1"}}]),
    );
    let all = listed(&server, "");
    let critical = find(&all, "NodeDown", "web1").unwrap();
    assert_eq!(critical["receivers"], json!([{"name": "(unrouted)"}]));
    assert!(
        server.log().contains("no [route] in the rules directory"),
        "serve warns that alerts can arrive that no route takes:\n{}",
        server.log()
    );
    let web1 = find(&all, "HighLoad", "web1").unwrap();
    assert_eq!(
        web1["status"]["inhibitedBy"],
        json!([critical["fingerprint"]])
    );
    assert_eq!(web1["status"]["state"], "suppressed");
    let web2 = find(&all, "HighLoad", "web2").unwrap();
    assert_eq!(web2["status"]["state"], "active");

    // Groups: the rule's own receiver groups its alerts by alertname; the external alert
    // has no route (no routing tree here), so no group.
    let (status, groups) = send("GET", &server.url("/api/v2/alerts/groups"), None);
    assert_eq!(status, 200);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["receiver"], json!({"name": "hook"}));
    assert_eq!(groups[0]["labels"], json!({"alertname": "HighLoad"}));
    assert_eq!(
        instances(groups[0]["alerts"].as_array().unwrap()),
        ["web1", "web2"]
    );
    let (_, active_only) = send(
        "GET",
        &server.url("/api/v2/alerts/groups?inhibited=false"),
        None,
    );
    assert_eq!(
        instances(active_only[0]["alerts"].as_array().unwrap()),
        ["web2"]
    );
}

/// The same routing configuration for Alertmanager (YAML) and Faultline (TOML).
const ROUTING_YAML: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - receiver: audit
      matchers: ['team=~".+"']
      continue: true
    - receiver: pager
      matchers: ['severity="page"']
      routes:
        - receiver: db-team
          matchers: [service="db", 'env!~"dev|test"']
          group_by: ['...']
    - receiver: db-team
      matchers: ['service="db"']
receivers:
  - name: default
  - name: audit
  - name: pager
  - name: db-team
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="warning"']
    equal: [instance]
"#;

const ROUTING_TOML: &str = r#"
[route]
receiver = "default"
group_by = ["alertname"]

[[route.routes]]
receiver = "audit"
matchers = ['team=~".+"']
continue = true

[[route.routes]]
receiver = "pager"
matchers = ['severity="page"']

  [[route.routes.routes]]
  receiver = "db-team"
  matchers = ['service="db"', 'env!~"dev|test"']
  group_by = ["..."]

[[route.routes]]
receiver = "db-team"
matchers = ['service="db"']

[[inhibit]]
source_matchers = ['severity="page"']
target_matchers = ['severity="warning"']
equal = ["instance"]
"#;

#[test]
fn amtool_routes_alerts_as_alertmanager_does() {
    let am = Alertmanager::start(ROUTING_YAML);
    let dir = RulesDir::new(&["webhook"]);
    let hook = Receiver::start();
    let receivers: String = ["default", "audit", "pager", "db-team"]
        .iter()
        .map(|name| webhook(name, hook.addr, ""))
        .collect();
    dir.write("routing.toml", &format!("{ROUTING_TOML}{receivers}"));
    let server = Server::start(&dir, &[]);
    let fl = format!("http://{}", server.addr);

    // `config show` parses Faultline's configuration (amtool fails on one it cannot load).
    let shown = amtool(&fl, &["config", "show"]);
    assert!(shown.contains("receiver: db-team"), "{shown}");
    assert!(shown.contains("inhibit_rules:"), "{shown}");
    assert_eq!(
        amtool(&fl, &["config", "routes"]),
        amtool(&am.url, &["config", "routes"])
    );
    for labels in [
        vec!["alertname=A"],
        vec!["severity=page"],
        vec!["severity=page", "team=x"],
        vec!["severity=page", "service=db"],
        vec!["severity=page", "service=db", "env=dev"],
        vec!["service=db", "team=y"],
        vec!["service=web"],
    ] {
        let args: Vec<&str> = ["config", "routes", "test"]
            .into_iter()
            .chain(labels.iter().copied())
            .collect();
        let want = amtool(&am.url, &args);
        assert!(!want.trim().is_empty());
        assert_eq!(amtool(&fl, &args), want, "{labels:?}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    let resp = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body("{{{")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(
        body["message"],
        "parsing alerts body from \"\" failed, because JSON: key must be a string at line 1 column 2"
    );
    let resp = reqwest::blocking::get(server.url("/no/such/path")).unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().unwrap(), "path /no/such/path was not found\n");
    // amtool prints Alertmanager's own message for an unknown silence.
    let out = faultline_system_tests::alertmanager::amtool_output(
        &server.url(""),
        &["silence", "expire", "6c9b5d63-0f8e-4b8e-9d57-3a1d2f6e1c11"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("silence not found"), "{stderr}");
}
