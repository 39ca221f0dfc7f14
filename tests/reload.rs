//! Hot reload: a rule file edited while the server evaluates under load is picked up by the
//! watcher, with no evaluation lost and the rule's alerts kept; a broken file leaves the old
//! version running and reports the error; fixing it loads the new version. SIGHUP and
//! `POST /-/reload` reload too.
//!
//! Reload safety: a file saved in two writes a second apart is loaded once, whole; a rule
//! missing for one reload keeps its incident (no resolution, no new episode); a deleted
//! rule's alerts resolve after the grace period, and its own `recovery` receiver hears it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use faultline_system_tests::{Receiver, RulesDir, Server, wait_for, webhook};
use serde_json::Value;

fn rule(version: &str, above: f64) -> String {
    format!(
        r#"
[[group]]
name = "g"
interval = "100ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = {{ above = {above} }}
annotations = {{ version = "{version}" }}
"#
    )
}

fn annotation(server: &Server, instance: &str) -> Option<(String, String, String)> {
    let v = server.get_json("/api/v1/alerts");
    v["data"]["alerts"].as_array()?.iter().find_map(|a| {
        (a["labels"]["instance"] == instance).then(|| {
            (
                a["annotations"]["version"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
                a["activeAt"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

/// Pushes samples continuously until dropped: the load the server reloads under.
struct Load(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Load {
    fn start(url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let body = format!("load 5\nother_metric {i}\n");
                client
                    .post(format!("{url}/metrics/job/node/instance/a"))
                    .body(body)
                    .send()
                    .ok();
                client
                    .post(format!("{url}/metrics/job/node/instance/b"))
                    .body("load 1.5\n")
                    .send()
                    .ok();
            }
        });
        Load(stop, Some(h))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            h.join().ok();
        }
    }
}

fn evaluations(server: &Server) -> f64 {
    server
        .metric(r#"faultline_rule_evaluations_total{rule="g/High"}"#)
        .unwrap_or(0.0)
}

#[test]
fn edit_under_load_then_break_then_fix() {
    let dir = RulesDir::new(&["threshold"]);
    dir.write("r.toml", &rule("1", 2.0));
    let server = Server::start(&dir, &[]);
    let _load = Load::start(server.url(""));
    let (_, _, active_at) = wait_for("version 1 to fire", || {
        annotation(&server, "a").filter(|(v, s, _)| v == "1" && s == "firing")
    });
    assert_eq!(
        annotation(&server, "b"),
        None,
        "1.5 is under the first bound"
    );

    // An edit: a lower bound, a new annotation. The watcher reloads it.
    dir.write("r.toml", &rule("2", 1.0));
    wait_for("version 2 to be active", || {
        annotation(&server, "b").filter(|(v, _, _)| v == "2")
    });
    let (v, state, active) = annotation(&server, "a").unwrap();
    assert_eq!((v.as_str(), state.as_str()), ("2", "firing"));
    assert_eq!(
        active, active_at,
        "the firing alert carried over the reload"
    );
    let status = server.get_json("/api/v1/status/reload");
    assert_eq!(status["data"]["success"], true);

    // A broken file: the old version keeps running and the error is reported.
    dir.write("r.toml", &rule("3", 1.0).replace("params =", "parms ="));
    let status = wait_for("the failed reload to be reported", || {
        let s = server.get_json("/api/v1/status/reload");
        (s["data"]["success"] == false).then_some(s)
    });
    let errors = status["data"]["errors"].to_string();
    assert!(
        errors.contains("r.toml") && errors.contains("unknown field `parms`"),
        "{errors}"
    );
    assert!(server.metric("faultline_reload_failures_total").unwrap() >= 1.0);
    assert_eq!(
        server.metric("faultline_config_last_reload_successful"),
        Some(0.0)
    );
    let before = evaluations(&server);
    wait_for("the old version to keep evaluating", || {
        (evaluations(&server) >= before + 5.0).then_some(())
    });
    let (v, state, _) = annotation(&server, "a").unwrap();
    assert_eq!((v.as_str(), state.as_str()), ("2", "firing"));
    let rules = server.get_json("/api/v1/rules");
    assert_eq!(rules["data"]["rules"][0]["health"], "ok");

    // Fixed: the new version loads.
    dir.write("r.toml", &rule("4", 1.0));
    wait_for("version 4 to be active", || {
        annotation(&server, "a").filter(|(v, _, _)| v == "4")
    });
    assert_eq!(
        server.get_json("/api/v1/status/reload")["data"]["success"],
        true
    );
    assert_eq!(
        annotation(&server, "a").unwrap().2,
        active_at,
        "still the same alert"
    );
}

#[test]
fn reload_endpoint_and_sighup() {
    let dir = RulesDir::new(&["threshold"]);
    dir.write("r.toml", &rule("1", 2.0));
    let server = Server::start(&dir, &[]);
    let client = reqwest::blocking::Client::new();
    let r = client.post(server.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 200);

    // Bypass the watcher's debounce by asking at once: a broken file gives 500 and the errors.
    dir.write("r.toml", "[[group]\n");
    let r = client.post(server.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().unwrap();
    assert!(text.contains("r.toml:1"), "{text}");
    assert!(text.contains("previous rules keep running"), "{text}");

    dir.write("r.toml", &rule("5", 2.0));
    let pid = server.pid();
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    server.push("node/instance/a", "load 9\n");
    wait_for("version 5 after SIGHUP", || {
        annotation(&server, "a").filter(|(v, _, _)| v == "5")
    });
    // The watcher sees the same write: the log shows that the signal itself reloaded.
    wait_for("the SIGHUP reload to be logged", || {
        server.log().contains("SIGHUP: reloading").then_some(())
    });
}

/// A rule file with the `High` rule sending to its own `hook` receiver, which is in the file
/// too unless `hook` is empty.
fn own_recovery_rule(version: &str, hook: &str) -> String {
    format!("{hook}{}recovery = \"hook\"\n", rule(version, 2.0))
}

/// The alerts of a webhook notification: (instance, status, startsAt).
fn notified(body: &Value) -> Vec<(String, String, String)> {
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&a["labels"]["instance"]),
                s(&a["status"]),
                s(&a["startsAt"]),
            )
        })
        .collect()
}

#[test]
fn a_file_saved_in_two_writes_is_loaded_once_whole() {
    let dir = RulesDir::new(&["threshold"]);
    dir.write("r.toml", &rule("1", 2.0));
    // The default quiet period (2s) is longer than the gap between the writes.
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    let (_, _, active_at) = wait_for("version 1 to fire", || {
        annotation(&server, "a").filter(|(v, s, _)| v == "1" && s == "firing")
    });

    // An editor's save in two writes a second apart: the first half cuts the rule short.
    let whole = rule("2", 1.0);
    let (first, rest) = whole.split_at(whole.find("params").unwrap());
    dir.write("r.toml", first);
    std::thread::sleep(std::time::Duration::from_secs(1));
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.rules().join("r.toml"))
        .unwrap()
        .write_all(rest.as_bytes())
        .unwrap();

    wait_for("version 2 to be active", || {
        annotation(&server, "a").filter(|(v, _, _)| v == "2")
    });
    let log = server.log();
    assert_eq!(
        log.matches("rules directory changed: reloading").count(),
        1,
        "one reload, of the whole file:\n{log}"
    );
    assert_eq!(server.metric("faultline_reload_failures_total"), None);
    let (_, state, active) = annotation(&server, "a").unwrap();
    assert_eq!((state.as_str(), active), ("firing", active_at));
}

#[test]
fn a_rule_missing_for_one_reload_keeps_its_incident() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write("hooks.toml", &webhook("hook", hook.addr, ""));
    dir.write("r.toml", &own_recovery_rule("1", ""));
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    let first = hook.next("the firing notification");
    let fired = notified(&first.json());
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].1, "firing");

    // A two-step save, each step reloaded at once: the rule is missing, then back.
    let client = reqwest::blocking::Client::new();
    let reload = || {
        let r = client.post(server.url("/-/reload")).send().unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    };
    dir.write("r.toml", "");
    reload();
    assert_eq!(server.metric("faultline_rules_loaded"), Some(0.0));
    assert_eq!(server.alert_state("High", "a").as_deref(), Some("firing"));
    assert_eq!(server.metric("faultline_rules_vanished"), Some(1.0));
    dir.write("r.toml", &own_recovery_rule("2", ""));
    reload();
    wait_for("version 2 to be active", || {
        annotation(&server, "a").filter(|(v, _, _)| v == "2")
    });

    // Another alert joins the group: the next notification is that, with `a` as it was,
    // neither resolved nor fired again in between.
    server.push("node/instance/b", "load 5\n");
    let next = notified(&hook.next("the notification of b").json());
    assert_eq!(next.len(), 2, "{next:?}");
    assert_eq!(next[0], ("a".into(), "firing".into(), fired[0].2.clone()));
    assert_eq!((next[1].0.as_str(), next[1].1.as_str()), ("b", "firing"));
    let incidents = server.get_json("/api/v1/incidents");
    let ids: std::collections::BTreeSet<&str> = incidents["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one incident: {incidents}");
    assert_eq!(server.metric("faultline_rules_vanished"), Some(0.0));
}

#[test]
fn a_deleted_rules_resolution_reaches_its_own_recovery_receiver() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    // The receiver is in the rule's file: deleting the file removes both.
    dir.write(
        "r.toml",
        &own_recovery_rule("1", &webhook("hook", hook.addr, "")),
    );
    let cfg = dir.config("[reload]\nvanished_grace = \"1s\"\n");
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("node/instance/a", "load 5\n");
    let fired = notified(&hook.next("the firing notification").json());
    assert_eq!(fired[0].1, "firing");

    std::fs::remove_file(dir.rules().join("r.toml")).unwrap();
    let resolved = hook.next_where("the resolution", |b| b["status"] == "resolved");
    assert_eq!(
        notified(&resolved.json()),
        [("a".to_string(), "resolved".to_string(), fired[0].2.clone())]
    );
    assert_eq!(server.metric("faultline_rules_loaded"), Some(0.0));
    assert!(server.log().contains("alerts of a vanished rule resolved"));
}
