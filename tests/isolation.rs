//! A receiver that never answers, or answers slowly, delays only its own actions: another
//! receiver's alert still arrives, rule groups keep evaluating on schedule, `/-/ready` says
//! which receiver is behind and `/metrics` shows the lag; and a slow receiver delivers up
//! to its `concurrency` actions at once instead of one at a time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use faultline_system_tests::faulty::{Hung, Slow};
use faultline_system_tests::{Receiver, RulesDir, Server, wait_for, webhook};
use serde_json::{Value, json};

/// `n` alerts named `name`, one per `instance`, with `team` for routing.
fn alerts(name: &str, team: &str, n: usize) -> Value {
    (0..n)
        .map(|i| json!({"labels": {"alertname": name, "team": team, "instance": format!("i{i}")}}))
        .collect()
}

fn post_alerts(server: &Server, body: &Value) {
    let r = reqwest::blocking::Client::new()
        .post(server.url("/api/v2/alerts"))
        .json(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
}

fn pending(server: &Server, receiver: &str) -> usize {
    server.get_json("/api/v1/outbox?state=pending")["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["receiver"] == receiver)
        .count()
}

#[test]
fn a_hung_receiver_delays_only_its_own_actions() {
    let hung = Hung::start();
    let healthy = Receiver::start();
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "rules.toml",
        &format!(
            r#"
[[group]]
name = "watch"
interval = "1s"
[[group.rule]]
name = "Hot"
plugin = "threshold"
select = "temperature"
params = {{ above = 100 }}

[route]
receiver = "healthy"
group_by = ["alertname", "instance"]
group_wait = "0s"
[[route.routes]]
receiver = "hung"
matchers = ['team="hung"']
{}{}"#,
            webhook("hung", hung.addr, "timeout = \"60s\""),
            webhook("healthy", healthy.addr, ""),
        ),
    );
    let config = dir.config("ready_max_lag = \"3s\"\n");
    let server = Server::start(&dir, &["--config", &config]);
    // A dispatcher pass writes its actions in one transaction: 1,000 plan at once, and are
    // 250 times the receiver's slots.
    post_alerts(&server, &alerts("Stuck", "hung", 1000));
    wait_for("1,000 actions pending for the hung receiver", || {
        (pending(&server, "hung") >= 1000).then_some(())
    });
    wait_for("the hung receiver holding its connections", || {
        (hung.connections() >= 2).then_some(())
    });

    // Another receiver's alert still arrives...
    post_alerts(&server, &alerts("Fine", "ok", 1));
    let got = healthy.next_where("the healthy receiver's alert", |body| {
        body["alerts"][0]["labels"]["alertname"] == "Fine"
    });
    assert_eq!(got.json()["alerts"][0]["labels"]["instance"], "i0");

    // ...the rule group keeps its schedule...
    let evaluations = |s: &Server| {
        s.metric(r#"faultline_rule_evaluations_total{rule="watch/Hot"}"#)
            .unwrap_or(0.0)
    };
    let before = evaluations(&server);
    wait_for("three more evaluations of the rule group", || {
        (evaluations(&server) >= before + 3.0).then_some(())
    });
    let lag = server
        .metric(r#"faultline_evaluation_lag_seconds{group="watch"}"#)
        .expect("an evaluation lag gauge");
    assert!(lag <= 3.0, "the rule group is {lag}s behind");

    // ...and readiness names the receiver that is behind, with its lag in /metrics.
    let why = wait_for("/-/ready to report the hung receiver", || {
        let r = reqwest::blocking::get(server.url("/-/ready")).ok()?;
        (r.status() == 503).then(|| r.text().unwrap())
    });
    assert!(why.contains(r#"receiver "hung""#), "{why}");
    assert!(!why.contains("rule group"), "{why}");
    let lag = server
        .metric(r#"faultline_delivery_lag_seconds{receiver="hung"}"#)
        .expect("a delivery lag gauge");
    assert!(lag > 0.0, "{lag}");
    // The hung receiver holds no more requests than its concurrency (4 by default).
    assert!(hung.open() <= 4, "{} connections open", hung.open());
}

#[test]
fn a_slow_receiver_delivers_up_to_its_concurrency_at_once() {
    let slow = Slow::start(Duration::from_millis(1500));
    let dir = RulesDir::new(&["webhook"]);
    dir.write(
        "rules.toml",
        &format!(
            r#"
[route]
receiver = "slow"
group_by = ["alertname", "instance"]
group_wait = "0s"
{}"#,
            webhook("slow", slow.addr, "concurrency = 5"),
        ),
    );
    let server = Server::start(&dir, &[]);
    post_alerts(&server, &alerts("Busy", "any", 20));
    wait_for("20 deliveries", || {
        (slow.served.load(Ordering::SeqCst) >= 20).then_some(())
    });
    let most = slow.most.load(Ordering::SeqCst);
    assert!(
        (2..=5).contains(&most),
        "{most} requests at once (concurrency 5)"
    );
    assert_eq!(slow.now.load(Ordering::SeqCst), 0);
}
