//! Recovery actions keep their promises under faults: an action written to the outbox
//! survives SIGKILL and is delivered once, with the same idempotency key, after a restart;
//! a receiver that is down gets the action when it is back; one that never comes back ends
//! in the dead-letter list, from which it can be retried. The safety rails hold: a flapping
//! alert triggers no more actions than the rate limit, dry-run does nothing and records
//! everything. A plugin reaching for a host, topic or connection it was not granted is
//! refused.

use std::net::SocketAddr;

use faultline_system_tests::programs::free_port;
use faultline_system_tests::threshold_rule as rule;
use faultline_system_tests::{Receiver, RulesDir, Server, wait_for, webhook};
use serde_json::Value;

fn data(v: &Value) -> Vec<Value> {
    v["data"].as_array().expect("a data array").clone()
}

fn down_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

const GROUP: &str = "[[group]]\nname = \"g\"\ninterval = \"200ms\"\n";

fn actions(server: &Server, receiver: &str, state: &str) -> Vec<Value> {
    data(&server.get_json(&format!("/api/v1/outbox?state={state}")))
        .into_iter()
        .filter(|a| a["receiver"] == receiver)
        .collect()
}

/// The first pending action of `receiver` once it has been attempted `attempts` times.
fn attempted(server: &Server, receiver: &str, attempts: u64) -> Value {
    wait_for(
        &format!("a pending action of {receiver} attempted {attempts} times"),
        || {
            actions(server, receiver, "pending")
                .into_iter()
                .find(|a| a["attempts"].as_u64() >= Some(attempts))
        },
    )
}

fn decisions(server: &Server, receiver: &str) -> Vec<Value> {
    data(&server.get_json(&format!("/api/v1/decisions?receiver={receiver}")))
}

#[test]
fn an_action_written_before_a_crash_is_delivered_once_after_restart() {
    let addr = down_addr();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &format!(
            "{GROUP}{}{}",
            rule("High", "load", "hook"),
            webhook("hook", addr, "max_age = \"10m\"")
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    // Written, attempted, not delivered: the receiver is down.
    let pending = attempted(&server, "hook", 1);
    let key = pending["idempotencyKey"].as_str().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    drop(server);

    let hook = Receiver::start_on(addr);
    let server = Server::start(&dir, &[]);
    let got = hook.next("the action, after the restart");
    assert_eq!(got.header("Idempotency-Key"), Some(&*key));
    assert_eq!(got.json()["status"], "firing");
    wait_for("the action to be done", || {
        actions(&server, "hook", "done").first().cloned()
    });
    let all = data(&server.get_json("/api/v1/outbox"));
    assert_eq!(all.len(), 1, "planned once, across the restart: {all:#?}");
    assert_eq!(all[0]["idempotencyKey"], key);
    // Delivered once: a later dispatcher pass, which delivers the action for another alert,
    // does not send it again.
    server.push("node/instance/b", "load 5\n");
    wait_for("the next action to be done", || {
        (actions(&server, "hook", "done").len() == 2).then_some(())
    });
    assert!(
        hook.drain()
            .iter()
            .all(|r| r.header("Idempotency-Key") != Some(&*key)),
        "delivered twice"
    );
}

#[test]
fn a_receiver_back_after_a_while_gets_the_action_and_one_never_back_is_dead_lettered() {
    let late_addr = down_addr();
    let gone_addr = down_addr();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &format!(
            "{GROUP}{}{}{}{}",
            rule("Late", "late", "late"),
            rule("Gone", "gone", "gone"),
            webhook("late", late_addr, "max_age = \"10m\""),
            webhook("gone", gone_addr, "max_age = \"2s\"")
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "late 5\ngone 5\n");

    let retried = attempted(&server, "late", 2);
    let hook = Receiver::start_on(late_addr);
    let got = hook.next("the late action");
    assert_eq!(
        got.header("Idempotency-Key"),
        retried["idempotencyKey"].as_str(),
        "the key is stable across attempts"
    );
    let done = wait_for("the late action to be done", || {
        actions(&server, "late", "done").first().cloned()
    });
    assert!(done["attempts"].as_u64().unwrap() >= 3, "{done:#}");

    let dead = wait_for("the gone action to be dead-lettered", || {
        actions(&server, "gone", "dead").first().cloned()
    });
    assert!(
        dead["lastError"].as_str().unwrap().contains("gave up"),
        "{dead:#}"
    );
    let kinds: Vec<String> = decisions(&server, "gone")
        .iter()
        .map(|d| d["decision"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"retry".into()) && kinds.contains(&"dead".into()),
        "{kinds:?}"
    );

    // Retried from the dead-letter list once the receiver is there.
    let back = Receiver::start_on(gone_addr);
    let id = dead["id"].as_i64().unwrap();
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(server.url(&format!("/api/v1/outbox/{id}/retry")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let got = back.next("the retried action");
    assert_eq!(
        got.header("Idempotency-Key"),
        dead["idempotencyKey"].as_str()
    );
    wait_for("the retried action to be done", || {
        actions(&server, "gone", "done").first().cloned()
    });
    let r = client
        .post(server.url(&format!("/api/v1/outbox/{id}/retry")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 409, "only dead actions can be retried");
    let r = client
        .post(server.url("/api/v1/outbox/999999/retry"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(server.url("/api/v1/outbox?state=lost"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("unknown state"));
}

#[test]
fn a_flapping_alert_is_held_to_the_rate_limit_and_dry_run_does_nothing() {
    let hook = Receiver::start();
    let rehearsal = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &format!(
            "{GROUP}{}{}{}{}{}{}{}{}",
            rule("Flap", "flap", "limited"),
            rule("FlapToo", "flap", "cool"),
            rule("FlapAgain", "flap", "picky"),
            rule("Quiet", "quiet", "rehearsal"),
            webhook(
                "limited",
                hook.addr,
                "send_resolved = false\nrails = { rate_limit = \"2/1h\" }"
            ),
            webhook(
                "cool",
                hook.addr,
                "send_resolved = false\nrails = { cooldown = \"1h\" }"
            ),
            webhook("picky", hook.addr, "rails = { min_score = 0.5 }"),
            webhook("rehearsal", rehearsal.addr, "rails = { dry_run = true }")
        ),
    );
    let server = Server::start(&dir, &[]);

    // Four episodes of the same alert: fire, resolve, fire again... For each of the three
    // receivers, each firing and each resolution is one planning decision (queued, or
    // skipped and why); every one is waited for before the alert changes again.
    let planned = |server: &Server| {
        ["limited", "cool", "picky"]
            .iter()
            .flat_map(|r| decisions(server, r))
            .filter(|d| d["decision"] == "queued" || d["decision"] == "skipped")
            .count()
    };
    for episode in 1..=4 {
        server.push("node/instance/a", "flap 5\n");
        wait_for("the episode to be decided on", || {
            (planned(&server) >= 6 * episode - 3).then_some(())
        });
        server.push("node/instance/a", "flap 0\n");
        wait_for("the resolution to be decided on", || {
            (planned(&server) >= 6 * episode).then_some(())
        });
    }
    let all = decisions(&server, "limited");
    let limited: Vec<&Value> = all
        .iter()
        .filter(|d| d["reason"].as_str().unwrap().starts_with("rate limit"))
        .collect();
    assert_eq!(limited.len(), 2, "{all:#?}");
    assert!(limited.iter().all(|d| d["decision"] == "skipped"));
    let queued = all.iter().filter(|d| d["decision"] == "queued").count();
    assert_eq!(queued, 2, "{all:#?}");
    wait_for("both allowed actions to be done", || {
        (actions(&server, "limited", "done").len() == 2).then_some(())
    });
    // The cooldown lets the first episode through and holds the others back.
    let cool = wait_for("every episode to be decided on for the cooldown", || {
        let d = decisions(&server, "cool");
        let skipped = d
            .iter()
            .filter(|d| d["reason"].as_str().unwrap().starts_with("cooldown"))
            .count();
        (skipped == 3).then_some(d)
    });
    assert_eq!(
        cool.iter().filter(|d| d["decision"] == "queued").count(),
        1,
        "{cool:#?}"
    );
    // Without suspects, nothing scores the minimum: never acted on, always said why.
    let picky = wait_for("the minimum score to hold the action back", || {
        let d = decisions(&server, "picky");
        (!d.is_empty()).then_some(d)
    });
    assert!(
        picky.iter().all(|d| d["decision"] == "skipped"
            && d["reason"]
                .as_str()
                .unwrap()
                .contains("no suspect scoring at least 0.5")),
        "{picky:#?}"
    );
    wait_for("the cooldown's action to be done", || {
        actions(&server, "cool", "done").first().cloned()
    });
    let mut got = vec![
        hook.next("the first action"),
        hook.next("the second action"),
        hook.next("the third action"),
    ];
    got.extend(hook.drain());
    assert_eq!(
        got.len(),
        3,
        "the receiver got more than the rate limit and the cooldown allow"
    );

    // Dry-run: recorded, logged, not performed.
    server.push("node/instance/a", "quiet 5\n");
    let d = wait_for("the dry-run decision", || {
        decisions(&server, "rehearsal")
            .into_iter()
            .find(|d| d["decision"] == "dry-run")
    });
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("would run rehearsal"),
        "{d:#}"
    );
    let rows = actions(&server, "rehearsal", "dry-run");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["attempts"], 0);
    assert!(server.log().contains("dry-run: would run rehearsal"));
    assert!(rehearsal.drain().is_empty(), "dry-run sent a request");
    assert!(actions(&server, "rehearsal", "pending").is_empty());
}

#[test]
fn hosts_topics_and_connections_that_were_not_granted_are_refused() {
    let hook = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook", "kafka", "kubernetes", "topology"]);
    // The Kubernetes action needs a suspect to act on.
    dir.write("graph.json", r#"{"svc": []}"#);
    dir.write(
        "r.toml",
        &format!(
            r#"{GROUP}{}{}{}
[[receiver]]
name = "sneaky-hook"
plugin = "webhook"
params = {{ url = "http://{addr}/" }}
grants = {{ http = ["127.0.0.1:1"] }}

[[receiver]]
name = "sneaky-topic"
plugin = "kafka"
params = {{ topic = "payments" }}
grants = {{ kafka = ["incidents"] }}

[[receiver]]
name = "sneaky-connection"
plugin = "kubernetes"
params = {{ action = "cordon", node = "{{{{ instance }}}}" }}

[[localizer]]
name = "services"
plugin = "topology"
files = {{ graph = "graph.json" }}
params = {{ carry = ["instance"] }}
"#,
            rule("A", "a", "sneaky-hook"),
            rule("B", "b", "sneaky-topic"),
            rule("C", "c", "sneaky-connection"),
            addr = hook.addr,
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("node/instance/n1", "a 5\nb 5\nc{service=\"svc\"} 5\n");
    for (receiver, refusal) in [
        ("sneaky-hook", "host \"127.0.0.1\" is not granted"),
        ("sneaky-topic", "topic \"payments\" is not granted"),
        (
            "sneaky-connection",
            "connection \"kubernetes\" is not granted",
        ),
    ] {
        let dead = wait_for(&format!("{receiver} to be refused"), || {
            actions(&server, receiver, "dead").first().cloned()
        });
        assert!(
            dead["lastError"].as_str().unwrap().contains(refusal),
            "{receiver}: {dead:#}"
        );
    }
    let log = server.log();
    assert!(log.contains("plugin tried an HTTP host it was not granted"));
    assert!(log.contains("plugin tried a Kafka topic it was not granted"));
    assert!(log.contains("plugin asked for a connection it was not granted"));
    assert!(hook.drain().is_empty(), "a refused request went out");
}

#[test]
fn actions_on_one_target_run_one_at_a_time() {
    let hook = Receiver::start();
    hook.set_status(503);
    let dir = RulesDir::new(&["threshold", "webhook", "topology"]);
    dir.write("graph.json", r#"{"svc": []}"#);
    dir.write(
        "r.toml",
        &format!(
            r#"{GROUP}{}{}{}
[[localizer]]
name = "services"
plugin = "topology"
files = {{ graph = "graph.json" }}
params = {{ carry = ["instance"] }}
"#,
            rule("A", "a", "serial"),
            rule("B", "b", "serial"),
            webhook("serial", hook.addr, "rails = { target = [\"instance\"] }"),
        ),
    );
    let server = Server::start(&dir, &[]);
    // Two incidents (alerts A and B), one target: node n1.
    server.push(
        "node/instance/n1",
        "a{service=\"svc\"} 5\nb{service=\"svc\"} 5\n",
    );
    let (first, waiting) = wait_for("one action retrying while the other waits", || {
        let pending = actions(&server, "serial", "pending");
        let retrying = pending
            .iter()
            .find(|a| a["attempts"].as_u64() >= Some(2))?
            .clone();
        let waiting = pending.iter().find(|a| a["id"] != retrying["id"])?.clone();
        Some((retrying, waiting))
    });
    assert_eq!(first["target"], r#"{instance="n1"}"#);
    assert_eq!(waiting["target"], first["target"]);
    assert_eq!(waiting["attempts"], 0, "{waiting:#}");
    hook.set_status(200);
    wait_for("both actions to be done", || {
        (actions(&server, "serial", "done").len() == 2).then_some(())
    });
    // Every attempt of the first came before the first attempt of the second.
    let keys: Vec<String> = hook
        .drain()
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap().to_string())
        .collect();
    let first_key = first["idempotencyKey"].as_str().unwrap();
    let second_key = waiting["idempotencyKey"].as_str().unwrap();
    let last_first = keys.iter().rposition(|k| k == first_key).unwrap();
    let first_second = keys.iter().position(|k| k == second_key).unwrap();
    assert!(last_first < first_second, "{keys:#?}");
    assert!(keys[..first_second].iter().all(|k| k == first_key));
}
