//! Bad input gets a clear error and loses nothing: a bad rule file names its file, rule and
//! what is wrong, and `faultline serve` refuses to start on it; bad pushes get 400 or 413
//! with a message, and the server goes on working.

use std::process::Command;

use faultline_system_tests::{RulesDir, Server, binary, wait_for};

const GOOD_RULE: &str = r#"
[[group]]
name = "g"
interval = "100ms"

[[group.rule]]
name = "Down"
plugin = "threshold"
select = 'up{job="node"}'
params = { below = 1 }
"#;

/// Runs `faultline check` on a rules directory holding `text` as `bad.toml`.
fn check(text: &str) -> (bool, String) {
    let dir = RulesDir::new(&["threshold"]);
    dir.write("bad.toml", text);
    let out = Command::new(binary())
        .arg("check")
        .arg(dir.rules())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_rejected(text: &str, expected: &[&str]) {
    let (ok, stderr) = check(text);
    assert!(!ok, "check accepted a bad file:\n{text}");
    assert!(stderr.contains("bad.toml"), "no file name in: {stderr}");
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
}

#[test]
fn a_good_rules_directory_passes_check() {
    let (ok, stderr) = check(GOOD_RULE);
    assert!(ok, "{stderr}");
}

#[test]
fn unknown_field() {
    assert_rejected(
        &GOOD_RULE.replace("params =", "sellect = \"x\"\nparams ="),
        &["rule \"Down\"", "unknown field `sellect`"],
    );
}

#[test]
fn bad_selector() {
    assert_rejected(
        &GOOD_RULE.replace(r#"'up{job="node"}'"#, r#"'up{job=~"("}'"#),
        &["rule \"Down\"", "invalid regex"],
    );
}

#[test]
fn bad_duration() {
    assert_rejected(
        &GOOD_RULE.replace("params =", "for = \"5 minutes\"\nparams ="),
        &["rule \"Down\"", "5 minutes"],
    );
}

#[test]
fn missing_plugin() {
    assert_rejected(
        &GOOD_RULE.replace("\"threshold\"", "\"thresold\""),
        &[
            "rule \"Down\"",
            "field `plugin`",
            "no plugin \"thresold\" found",
        ],
    );
}

#[test]
fn params_the_plugin_rejects() {
    assert_rejected(
        &GOOD_RULE.replace("{ below = 1 }", "{ abvoe = 3 }"),
        &["rule \"Down\"", "field `params`", "rejected its params"],
    );
}

#[test]
fn unknown_receiver() {
    assert_rejected(
        &GOOD_RULE.replace("params =", "recovery = \"pager\"\nparams ="),
        &["rule \"Down\"", "no receiver named \"pager\""],
    );
}

#[test]
fn serve_refuses_to_start_on_a_bad_rule() {
    let dir = RulesDir::new(&["threshold"]);
    dir.write(
        "bad.toml",
        &GOOD_RULE.replace("{ below = 1 }", "{ abvoe = 3 }"),
    );
    let out = Server::command(&dir).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml")
            && stderr.contains("rule \"Down\"")
            && stderr.contains("rejected its params"),
        "{stderr}"
    );
}

#[test]
fn bad_pushes_get_a_clear_error_and_the_server_keeps_working() {
    let dir = RulesDir::new(&["threshold"]);
    dir.write("good.toml", GOOD_RULE);
    let cfg = dir.config("max_body = \"64KiB\"\n");
    let server = Server::start(&dir, &["--config", &cfg]);
    let client = reqwest::blocking::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(server.url("/metrics/job/node/instance/a"))
            .body(body)
            .send()
            .unwrap()
    };

    let r = post(b"up 1\nup{job=\"node\" 1\n".to_vec());
    assert_eq!(r.status(), 400);
    let msg = r.text().unwrap();
    assert!(msg.contains("line 2"), "{msg}");

    let r = post(b"up \xff\xfe 1\n".to_vec());
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().to_lowercase().contains("utf-8"));

    let big = "up 1\n".repeat(20_000).into_bytes();
    let r = post(big);
    assert_eq!(r.status(), 413);
    assert!(r.text().unwrap().contains("65536"));

    // Still working: a good push is accepted and drives an alert.
    assert_eq!(post(b"up 0\n".to_vec()).status(), 200);
    wait_for("the alert after good input", || {
        (server.alert_state("Down", "a")? == "firing").then_some(())
    });
    assert!(
        server
            .metric(r#"faultline_ingest_rejected_total{source="push",code="400"}"#)
            .unwrap()
            >= 2.0
    );
    assert!(
        server
            .metric(r#"faultline_ingest_rejected_total{source="push",code="413"}"#)
            .unwrap()
            >= 1.0
    );
}
