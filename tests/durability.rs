//! What is written stays written, and what fails to be written is tried again: an action the
//! database refused (a full disk, a write error) is planned again on a later pass and
//! delivered, instead of being marked notified and lost until `repeat_interval`; and
//! `faultline backup` copies a running server's database so that a new server started on
//! the copy has its alerts.

use std::process::Command;

use faultline_system_tests::{Receiver, RulesDir, Server, binary, wait_for, webhook};
use serde_json::Value;

const RULE: &str = r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = { above = 2 }
recovery = "hook"
"#;

/// The server's database, opened beside it as another process would.
fn database(dir: &RulesDir) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.data().join("faultline.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    c
}

fn log_has(server: &Server, text: &str) -> Option<()> {
    server.log().contains(text).then_some(())
}

#[test]
fn an_action_the_database_refused_is_planned_again_and_delivered() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    // A repeat far away: only a plan that is tried again can deliver within the test.
    dir.write(
        "r.toml",
        &format!("{RULE}{}", webhook("hook", hook.addr, "")),
    );
    let server = Server::start(&dir, &[]);
    wait_for("the server to be ready", || {
        reqwest::blocking::get(server.url("/-/ready"))
            .ok()
            .filter(|r| r.status().is_success())
    });
    // Every write of an action fails, as on a full disk.
    database(&dir)
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox
             BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;",
        )
        .unwrap();
    server.push("node/instance/a", "load 5\n");
    wait_for("a refused outbox write", || {
        log_has(&server, "simulated write failure")
    });
    // The disk has room again.
    database(&dir).execute_batch("DROP TRIGGER refuse").unwrap();
    let delivered = hook.next("the action, planned again after the failed write");
    let body: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(body["status"], "firing", "{body}");
    wait_for("the action counted as done on /metrics", || {
        (server.metric("faultline_outbox_actions{state=\"done\"}") == Some(1.0)).then_some(())
    });
    assert_eq!(
        server.metric("faultline_outbox_actions{state=\"pending\"}"),
        Some(0.0)
    );
}

#[test]
fn a_backup_of_a_running_server_restores_its_alerts() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    let alerts: Vec<Value> = (0..50)
        .map(|i| serde_json::json!({"labels": {"alertname": "Disk", "instance": format!("n{i}")}}))
        .collect();
    let r = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());

    let copy = dir.tmp.path().join("backup.db");
    let backup = || {
        Command::new(binary())
            .arg("backup")
            .arg(&copy)
            .arg("--data")
            .arg(dir.data())
            .output()
            .unwrap()
    };
    let out = backup();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up"));
    // A second backup to the same path is refused, not overwritten.
    let again = backup();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Restore: a new server whose data directory holds the copy.
    let restored = RulesDir::new(&[]);
    std::fs::create_dir_all(restored.data()).unwrap();
    std::fs::copy(&copy, restored.data().join("faultline.db")).unwrap();
    let second = Server::start(&restored, &[]);
    let listed = second.get_json("/api/v2/alerts?filter=alertname%3DDisk");
    assert_eq!(listed.as_array().map(Vec::len), Some(50), "{listed}");
    drop(server);
}
