//! Time intervals, as Alertmanager's: a route with `mute_time_intervals` notifies nothing
//! while one of them holds and notifies what it owes once none does; a route with
//! `active_time_intervals` notifies only while one holds; a recurring silence (a silence with
//! a schedule in the same syntax) mutes only inside its schedule. The intervals are chosen
//! around the test's own clock (whole years), so the test holds at any time.

use faultline_system_tests::alertmanager::amtool;
use faultline_system_tests::{Receiver, RulesDir, Server, webhook};
use serde_json::{Value, json};

/// The rules: `maintenance` spans `years`; `pager` is muted during it, `office` active
/// during it, and `control` (neither) tells when a dispatcher pass has handled the alert.
fn rules(years: &str, hooks: &[(&str, &Receiver)]) -> String {
    let receivers: String = hooks
        .iter()
        .map(|(name, hook)| webhook(name, hook.addr, ""))
        .collect();
    format!(
        r#"
[[time_interval]]
name = "maintenance"

  [[time_interval.time_intervals]]
  years = ["{years}"]
  location = "Europe/Amsterdam"

[[time_interval]]
name = "never"
time_intervals = []

[route]
receiver = "control"
group_wait = "0s"
group_interval = "1s"

[[route.routes]]
receiver = "pager"
mute_time_intervals = ["maintenance"]
continue = true

[[route.routes]]
receiver = "office"
active_time_intervals = ["maintenance"]
continue = true

[[route.routes]]
receiver = "nights"
active_time_intervals = ["never"]
continue = true

[[route.routes]]
receiver = "control"
{receivers}"#
    )
}

fn queued(server: &Server, receiver: &str) -> usize {
    let decisions = server.get_json(&format!("/api/v1/decisions?receiver={receiver}"));
    decisions["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "queued")
        .count()
}

#[test]
fn a_muted_route_is_silent_inside_its_interval_and_notifies_outside_it() {
    let (pager, office, nights, control) = (
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
    );
    let hooks = [
        ("pager", &pager),
        ("office", &office),
        ("nights", &nights),
        ("control", &control),
    ];
    let now = faultline::model::time::rfc3339(faultline::model::time::now_ms());
    let year: i32 = now[..4].parse().unwrap();
    let dir = RulesDir::new(&["webhook"]);
    dir.write(
        "routing.toml",
        &rules(&format!("{}:{}", year - 1, year + 1), &hooks),
    );
    let server = Server::start(&dir, &[]);
    let shown = amtool(&server.url(""), &["config", "show"]);
    assert!(
        shown.contains("mute_time_intervals: [maintenance]") && shown.contains("time_intervals:"),
        "amtool reads the intervals: {shown}"
    );

    let resp = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(json!([{"labels": {"alertname": "Deploy", "severity": "page"}}]).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let firing = |v: &Value| v["alerts"][0]["labels"]["alertname"] == "Deploy";
    control.next_where("the control notification", firing);
    office.next_where("the notification of the route active now", firing);
    // Every route of the alert was flushed in the pass that notified `control`: the muted
    // one and the one active `never` planned nothing.
    assert_eq!(queued(&server, "pager"), 0, "muted inside its interval");
    assert_eq!(
        queued(&server, "nights"),
        0,
        "inactive outside its interval"
    );
    assert_eq!(queued(&server, "control"), 1);

    // The maintenance moves to the future: the muted route notifies what it held back.
    dir.write(
        "routing.toml",
        &rules(&format!("{}:{}", year + 5, year + 6), &hooks),
    );
    let resp = reqwest::blocking::Client::new()
        .post(server.url("/-/reload"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap_or_default());
    let sent = pager.next_where("the notification once the interval has ended", firing);
    assert_eq!(sent.json()["status"], "firing");
}

#[test]
fn a_recurring_silence_mutes_only_inside_its_schedule() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: Value| -> Value {
        let resp = client
            .post(server.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().unwrap_or(Value::Null)
    };
    post(
        "/api/v2/alerts",
        json!([{"labels": {"alertname": "Backup", "host": "a"}},
               {"labels": {"alertname": "Backup", "host": "b"}}]),
    );
    let now = faultline::model::time::now_ms();
    let year: i32 = faultline::model::time::rfc3339(now)[..4].parse().unwrap();
    let silence = |host: &str, years: String| {
        json!({
            "matchers": [{"name": "host", "value": host, "isRegex": false}],
            "startsAt": faultline::model::time::rfc3339(now),
            "endsAt": faultline::model::time::rfc3339(now + 3_600_000),
            "createdBy": "test", "comment": format!("backups of {host}"),
            "schedule": [{"years": [years]}],
        })
    };
    // Host a's schedule holds now; host b's only in years to come.
    let on = post(
        "/api/v2/silences",
        silence("a", format!("{}:{}", year - 1, year + 1)),
    )["silenceID"]
        .clone();
    let off = post(
        "/api/v2/silences",
        silence("b", format!("{}:{}", year + 5, year + 6)),
    )["silenceID"]
        .clone();

    let alerts = server.get_json("/api/v2/alerts");
    let state = |host: &str| {
        let a = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["host"] == host)
            .unwrap();
        (
            a["status"]["state"].clone(),
            a["status"]["silencedBy"].clone(),
        )
    };
    assert_eq!(state("a"), (json!("suppressed"), json!([on])));
    assert_eq!(state("b"), (json!("active"), json!([])));

    // The API shows the one between its windows as pending, with its schedule; amtool lists
    // both.
    let silences = server.get_json("/api/v2/silences");
    let shown = |id: &Value| {
        silences
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == *id)
            .unwrap()
            .clone()
    };
    assert_eq!(shown(&on)["status"]["state"], "active");
    assert_eq!(shown(&off)["status"]["state"], "pending");
    assert_eq!(
        shown(&off)["schedule"],
        json!([{"years": [format!("{}:{}", year + 5, year + 6)]}])
    );
    let listed = amtool(&server.url(""), &["silence", "query", "-q"]);
    for id in [&on, &off] {
        assert!(listed.contains(id.as_str().unwrap()), "{listed}");
    }
}
