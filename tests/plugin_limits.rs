//! What a plugin cannot do, with the real binary: follow a redirect to a host it was not
//! granted, outgrow its state-store quota, flood or forge the server's log, ask for more
//! memory than the server's budget, or get a receiver's echo of a secret into the stored
//! errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use faultline_system_tests::{Receiver, RulesDir, Server, serve, wait_for};
use serde_json::Value;

const GROUP: &str = "[[group]]\nname = \"g\"\ninterval = \"200ms\"\n";

/// A rule `High` firing while `load` is above 2, routed to `receiver`.
fn high_load(receiver: &str) -> String {
    format!(
        r#"
[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = {{ above = 2 }}
recovery = "{receiver}"
"#
    )
}

/// The group `g` with the rule `High`, routed to the `webhook` receiver `hook` with these
/// params, grants and extra lines.
fn hooked(params: &str, grants: &str, extra: &str) -> String {
    format!(
        r#"{GROUP}{}
[[receiver]]
name = "hook"
plugin = "webhook"
params = {{ {params} }}
grants = {{ {grants} }}
{extra}
"#,
        high_load("hook")
    )
}

/// An action of `receiver` attempted at least once, in whatever state.
fn attempted_action(server: &Server, receiver: &str) -> Option<Value> {
    ["pending", "done", "dead"].into_iter().find_map(|state| {
        let v = server.get_json(&format!("/api/v1/outbox?state={state}"));
        v["data"]
            .as_array()?
            .iter()
            .find(|a| a["receiver"] == receiver && a["attempts"].as_u64() >= Some(1))
            .cloned()
    })
}

#[test]
fn a_redirect_to_a_host_that_is_not_granted_is_not_followed() {
    let elsewhere = Receiver::start();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let location = format!("http://{}/stolen", elsewhere.addr);
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", location)],
                "moved",
            )
        }
    });
    let (granted, _rt) = serve("127.0.0.1:0".parse().unwrap(), app);

    let dir = RulesDir::new(&["threshold", "webhook"]);
    std::fs::write(dir.rules().join("hook.secret"), "s3cret-hmac-key").unwrap();
    dir.write(
        "r.toml",
        &hooked(
            &format!("url = \"http://{granted}/\""),
            &format!("http = [\"{granted}\"], secret = {{ file = \"hook.secret\" }}"),
            "",
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    let action = wait_for("the attempt answered by a redirect", || {
        attempted_action(&server, "hook")
    });
    assert!(
        hits.load(Ordering::Relaxed) >= 1,
        "the granted host was asked"
    );
    assert!(
        action["lastError"].as_str().unwrap_or("").contains("307"),
        "the plugin saw the redirect itself: {action}"
    );
    // Had the host followed it, the signed request would be there by now.
    let leaked = elsewhere.drain();
    assert!(
        leaked.is_empty(),
        "the un-granted host got {} request(s), e.g. headers {:?}",
        leaked.len(),
        leaked[0].headers
    );
}

/// A group `abuse` evaluated every 100ms with one `sandbox-abuse` rule `name`, with these
/// extra TOML lines (params, limits).
fn abuse_rule(name: &str, extra: &str) -> String {
    format!(
        r#"
[[group]]
name = "abuse"
interval = "100ms"

[[group.rule]]
name = "{name}"
plugin = "sandbox-abuse"
select = "up"
{extra}
"#
    )
}

/// Bytes of every file under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => du(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_state_quota_overrun_fails_the_call_keeps_nothing_and_quarantines_the_rule() {
    let dir = RulesDir::new(&["sandbox-abuse"]);
    // 40 × 1 MiB per call against a quota of 4 MiB.
    dir.write(
        "r.toml",
        &abuse_rule(
            "Hoards",
            "state_bytes = \"4MiB\"\nparams = { state_writes = 40, state_value = 1048576 }",
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("svc/instance/a", "up 1\n");
    let rule = wait_for("the hoarding rule to be quarantined", || {
        let r = server.rule("abuse", "Hoards");
        (r["health"] == "quarantined").then_some(r)
    });
    let error = rule["lastError"].as_str().unwrap();
    assert!(
        error.contains("state quota exceeded: writing \"k")
            && error.contains("over the rule's limit of 4194304"),
        "{rule}"
    );
    assert!(
        server
            .metric(
                r#"faultline_rule_evaluation_failures_total{rule="abuse/Hoards",reason="state_quota"}"#
            )
            .unwrap_or(0.0)
            >= 3.0
    );
    // Every call went over, so none of its writes were kept: the data stays small where
    // unchecked it grows by 40 MiB a call.
    let size = du(&dir.data());
    assert!(size < 8 << 20, "the data directory holds {size} bytes");
}

#[test]
fn the_writes_of_a_trapping_call_are_not_kept() {
    let dir = RulesDir::new(&["sandbox-abuse"]);
    dir.write(
        "r.toml",
        &abuse_rule("Traps", "params = { trap_after_write = true }"),
    );
    let server = Server::start(&dir, &[]);
    server.push("svc/instance/a", "up 1\n");
    wait_for("three failed evaluations", || {
        let r = server.rule("abuse", "Traps");
        (r["consecutiveFailures"].as_u64()? >= 3).then_some(())
    });
    // Each call wrote `trapped` and then trapped; had a write been kept, the next call
    // would have failed saying so instead of trapping again.
    let rule = server.rule("abuse", "Traps");
    let error = rule["lastError"].as_str().unwrap();
    assert!(
        error.contains("sandbox-abuse: trapping after a write"),
        "{rule}"
    );
    let log = server.log();
    assert!(!log.contains("a trapped call's write was kept"), "{log}");
}

#[test]
fn plugin_log_lines_are_rate_limited_counted_and_cannot_forge_a_host_line() {
    let dir = RulesDir::new(&["sandbox-abuse"]);
    dir.write(
        "r.toml",
        &format!(
            "{}{}",
            abuse_rule(
                "Floods",
                "params = { log_lines = 1000, log_message = \"flood-line\" }"
            ),
            r#"
[[group.rule]]
name = "Forges"
plugin = "sandbox-abuse"
select = "up"
params = { log_lines = 1, log_message = "forged\nERROR faultline::service: rule quarantined" }
"#
        ),
    );
    let started = std::time::Instant::now();
    // The defaults: 100 lines a second, bursts of 200.
    let server = Server::start(&dir, &[]);
    server.push("svc/instance/a", "up 1\n");
    wait_for("20 evaluations: 20,000 lines asked for", || {
        let n = server.metric(r#"faultline_rule_evaluations_total{rule="abuse/Floods"}"#)?;
        (n >= 20.0).then_some(())
    });
    let log = server.log();
    let elapsed = started.elapsed().as_secs_f64();
    let written = log.lines().filter(|l| l.contains("flood-line ")).count();
    // The burst, and the rate for as long as the server ran (and a line of slack).
    let allowed = (200.0 + 100.0 * (elapsed + 1.0)) as usize;
    assert!(
        written <= allowed,
        "{written} lines in {elapsed:.1}s, over {allowed}"
    );
    assert!(written >= 200, "{written} lines: not even the burst");
    let dropped = server.metric(r#"faultline_plugin_log_dropped_total{rule="abuse/Floods"}"#);
    assert!(dropped >= Some(10_000.0), "{dropped:?}");
    // The forged line stays on the plugin's own line, escaped and attributed.
    let forged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rule quarantined"))
        .collect();
    assert!(!forged.is_empty(), "{log}");
    for line in forged {
        assert!(
            line.contains(r"forged\nERROR faultline::service: rule quarantined")
                && line.contains("plugin:")
                && line.contains("abuse/Forges"),
            "{line}"
        );
    }
}

#[test]
fn plugins_together_stay_within_the_memory_budget() {
    let dir = RulesDir::new(&["sandbox-abuse", "sandbox-alloc"]);
    let cfg = dir.config("plugin_memory = \"32MiB\"\nplugin_memory_budget = \"40MiB\"\n");
    dir.write(
        "r.toml",
        &format!(
            "{}{}",
            abuse_rule("Holds", "params = { hold = 25165824 }"),
            r#"
[[group.rule]]
name = "Hoards"
plugin = "sandbox-alloc"
select = "up"
"#
        ),
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("svc/instance/a", "up 1\n");
    // 24 MiB held by one rule leave the other less than its own 32 MiB cap.
    let rule = wait_for("the hoarder to hit the budget", || {
        let r = server.rule("abuse", "Hoards");
        r["lastError"].as_str()?.contains("budget").then_some(r)
    });
    assert!(
        rule["lastError"].as_str().unwrap().contains(
            "could not grow its memory: all plugins' memory budget of 41943040 bytes is used"
        ),
        "{rule}"
    );
    assert_eq!(server.rule("abuse", "Holds")["health"], "ok");

    // A rule may not ask for more than the budget.
    dir.write("r.toml", &abuse_rule("Greedy", "memory = \"64MiB\""));
    let reload = reqwest::blocking::Client::new()
        .post(server.url("/-/reload"))
        .send()
        .unwrap();
    let text = reload.text().unwrap();
    assert!(
        text.contains("Greedy")
            && text.contains("64MiB is above the most one plugin may have, 40MiB"),
        "{text}"
    );
}

#[test]
fn a_receivers_echo_of_a_token_is_redacted_and_long_errors_are_cut() {
    let token = "tok-7f3a9c-SECRET";
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("denied, you sent {auth}"),
        )
    });
    let (echo, _rt) = serve("127.0.0.1:0".parse().unwrap(), app);
    let dir = RulesDir::new(&["threshold", "webhook", "sandbox-abuse"]);
    std::fs::write(dir.tmp.path().join("token"), token).unwrap();
    let cfg = dir.config(&format!(
        "[connection.api]\nurl = \"http://{echo}\"\ntoken = {{ file = \"token\" }}\n"
    ));
    let long = "x".repeat(3000);
    dir.write(
        "r.toml",
        &hooked(
            "connection = \"api\", url = \"/hook\"",
            "connections = [\"api\"]",
            &abuse_rule("Long", &format!("params = {{ fail_with = \"{long}\" }}")),
        ),
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    server.push("node/instance/a", "load 5\nup 1\n");
    let action = wait_for("an attempt answered by the echo", || {
        attempted_action(&server, "hook")
    });
    let error = action["lastError"].as_str().unwrap();
    assert!(
        error.contains("denied, you sent Bearer <redacted>"),
        "{action}"
    );
    let decisions = server.get_json("/api/v1/decisions?receiver=hook");
    let text = decisions.to_string();
    assert!(text.contains("Bearer <redacted>"), "{text}");
    assert!(!text.contains(token), "{text}");
    let log = server.log();
    assert!(!log.contains(token), "the token is in the server's log");

    let rule = wait_for("the long error", || {
        let r = server.rule("abuse", "Long");
        r["lastError"].as_str()?.contains("xxx").then_some(r)
    });
    let error = rule["lastError"].as_str().unwrap();
    assert!(
        error.len() < 700 && error.ends_with("… [truncated from 3000 bytes]"),
        "{} bytes: {error}",
        error.len()
    );
}

#[test]
fn time_in_host_calls_counts_toward_the_deadline() {
    // Answers after 5s, well within the plugin's own 10s HTTP timeout.
    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        "ok"
    });
    let (slow, _rt) = serve("127.0.0.1:0".parse().unwrap(), app);
    let dir = RulesDir::new(&["threshold", "webhook"]);
    dir.write(
        "r.toml",
        &hooked(
            &format!("url = \"http://{slow}/\""),
            &format!("http = [\"{slow}\"]"),
            "timeout = \"1s\"",
        ),
    );
    let server = Server::start(&dir, &[]);
    server.push("node/instance/a", "load 5\n");
    let action = wait_for("the first attempt", || attempted_action(&server, "hook"));
    let error = action["lastError"].as_str().unwrap_or("");
    assert_ne!(action["state"], "done", "{action}");
    assert!(
        error.contains("timed out") || error.contains("exceeded its deadline of 1s"),
        "{action}"
    );
}
