//! Hot reload: a rule file edited while the server evaluates under load is picked up by the
//! watcher, with no evaluation lost and the rule's alerts kept; a broken file leaves the old
//! version running and reports the error; fixing it loads the new version. SIGHUP and
//! `POST /-/reload` reload too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use faultline_system_tests::{RulesDir, Server, wait_for};

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
