//! The operator's console in a real browser: Debian's chromium, driven by playwright-core
//! (`tests/console/console.mjs`), against the real binary. The script checks what a user
//! sees (a live alert, a silence made on the page, suspects in order, a retry, plots, phone
//! width, no console errors); this test sets the scene and checks what the receivers got.
//!
//! A second run checks that with `[auth]` a read-only token sees every page and can
//! change nothing.
//!
//! With `FAULTLINE_SCREENSHOTS=<folder>` the script writes a screenshot of each page there
//! (the README's come from `docs/console/`).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_system_tests::{Receiver, RulesDir, Server, root, wait_for, webhook};
use serde_json::Value;

/// A child process killed when dropped, so a failing test leaves no browser behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the browser script against `server` with `env`; returns its findings, or panics
/// with its output.
fn drive(server: &Server, env: &[(&str, &str)]) -> Value {
    let dir = root().join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `make test` (scripts/install-deps.sh installs it)"
    );
    let mut command = Command::new("node");
    command
        .arg("console.mjs")
        .current_dir(&dir)
        .env("FAULTLINE_URL", server.url(""))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Ok(shots) = std::env::var("FAULTLINE_SCREENSHOTS") {
        command.env("FAULTLINE_SCREENSHOTS", shots);
    }
    let mut child = Guard(command.spawn().expect("node runs"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the browser script did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "the browser script failed: {err}\n{out}\nFaultline's log:\n{}",
        server.log()
    );
    serde_json::from_str(out.lines().last().unwrap_or("")).expect("the script's findings")
}

#[test]
fn an_operator_sees_acts_and_is_answered_live_in_the_console() {
    let hook = Receiver::start();
    let breaker = Receiver::start();
    // The incident's receiver refuses everything: its action is dead-lettered at once.
    breaker.set_status(400);
    let dir = RulesDir::new(&["threshold", "topology", "webhook"]);
    dir.write(
        "graph.json",
        r#"{"frontend": ["api"], "api": ["db"], "db": []}"#,
    );
    dir.write(
        "checkout.toml",
        &format!(
            r#"
[[group]]
name = "checkout"
interval = "500ms"

[[group.rule]]
name = "HighErrorRate"
plugin = "threshold"
select = "http_error_ratio"
params = {{ above = 0.2 }}

[[localizer]]
name = "services"
plugin = "topology"
match = ['alertname="HighErrorRate"']
files = {{ graph = "graph.json" }}
params = {{ label = "service" }}
{}{}
[route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"

[[route.routes]]
receiver = "breaker"
matchers = ['alertname="HighErrorRate"']
"#,
            webhook("hook", hook.addr, ""),
            webhook("breaker", breaker.addr, "send_resolved = false"),
        ),
    );
    let server = Server::start(&dir, &[]);
    for (service, ratio) in [("frontend", 0.5), ("api", 0.6), ("db", 0.9)] {
        let pushed = server.push(
            &format!("checkout/instance/{service}-1"),
            &format!("http_error_ratio{{service=\"{service}\"}} {ratio}\n"),
        );
        assert!(pushed.status().is_success());
    }
    wait_for("the incident's action to be dead-lettered", || {
        let v = server.get_json("/api/v1/outbox?state=dead");
        (!v["data"].as_array().unwrap().is_empty()).then_some(())
    });

    let findings = drive(&server, &[]);
    assert_eq!(
        findings["steps"].as_array().unwrap().len(),
        12,
        "{findings:#}"
    );
    assert!(findings["suspects"].as_array().unwrap().len() >= 2);

    // The alert muted from the page never reached the receiver; the one that fired with
    // it, unmuted, did.
    let names = |body: &Value| -> Vec<String> {
        body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
            .collect()
    };
    let mut received = Vec::new();
    while !received
        .iter()
        .any(|body| names(body).contains(&"Loud".to_string()))
    {
        received.push(hook.next("the notification of alert Loud").json());
    }
    received.extend(hook.drain().iter().map(|r| r.json()));
    let muted = received
        .iter()
        .any(|body| names(body).contains(&"Muted".to_string()));
    assert!(!muted, "a silenced alert was notified: {received:#?}");
    let silenced = server.get_json("/api/v2/alerts?filter=alertname%3D%22Muted%22");
    let by = silenced[0]["status"]["silencedBy"][0].as_str().unwrap();
    let silence = server.get_json(&format!("/api/v2/silence/{by}"));
    assert_eq!(silence["comment"], "muted from the console, edited");

    // The retry the page asked for is in the decision log, and was attempted again.
    let retried = server.get_json("/api/v1/decisions?receiver=breaker&decision=retried");
    assert_eq!(retried["data"].as_array().unwrap().len(), 1, "{retried:#}");
}

#[test]
fn a_read_only_token_sees_every_page_and_changes_nothing() {
    let dir = RulesDir::new(&[]);
    std::fs::write(dir.tmp.path().join("read"), "console-read-t0ken").unwrap();
    std::fs::write(dir.tmp.path().join("admin"), "console-admin-t0ken").unwrap();
    let cfg = dir.config(
        r#"
[auth]
tokens = [
  { role = "read", token = { file = "read" } },
  { role = "admin", token = { file = "admin" } },
]
"#,
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    let findings = drive(&server, &[("FAULTLINE_READ_TOKEN", "console-read-t0ken")]);
    assert_eq!(
        findings["steps"].as_array().unwrap().len(),
        3,
        "{findings:#}"
    );
    let silences: Value = reqwest::blocking::Client::new()
        .get(server.url("/api/v2/silences"))
        .bearer_auth("console-admin-t0ken")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        silences,
        serde_json::json!([]),
        "a read token made a silence"
    );
}
