//! The sandbox, with real Wasm plugins written to misbehave: an infinite loop is stopped
//! near its CPU deadline, endless allocation at its memory cap, a trap is reported; a rule
//! failing repeatedly is quarantined, and through all of it another rule keeps evaluating
//! and firing.

use std::time::{Duration, Instant};

use faultline::db::Db;
use faultline::runtime::instance::{Instance, Selection};
use faultline::runtime::{
    Failure, Grants, HostContext, Identity, Limits, Runtime, RuntimeConfig, World,
};
use faultline_system_tests::{RulesDir, Server, plugin, wait_for};

fn runtime() -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: None,
        max_instances: 8,
        max_memory: 256 << 20,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn instance(rt: &Runtime, name: &str, limits: Limits) -> Instance {
    instance_with(rt, name, limits, "{}")
}

fn instance_with(rt: &Runtime, name: &str, limits: Limits, params: &str) -> Instance {
    let p = rt.load(name, &plugin(name), World::Detector).unwrap();
    let ctx = HostContext {
        identity: Identity {
            rule: format!("test/{name}"),
            plugin: name.into(),
        },
        rule: Default::default(),
        state_scope: name.into(),
        db: Db::in_memory().unwrap(),
        grants: Grants::default(),
        io: None,
        http: reqwest::Client::new(),
        connections: Default::default(),
    };
    Instance::new(p, ctx, limits, params.into()).unwrap()
}

#[test]
fn infinite_loop_is_stopped_close_to_its_deadline() {
    let rt = runtime();
    let timeout = Duration::from_millis(200);
    let mut inst = instance(
        &rt,
        "sandbox-loop",
        Limits {
            timeout,
            ..Limits::default()
        },
    );
    for _ in 0..2 {
        let start = Instant::now();
        let err = inst.evaluate(0, &mut Selection::default()).unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.failure, Failure::Timeout(timeout), "{err}");
        assert_eq!(err.rule, "test/sandbox-loop");
        assert!(took >= timeout, "stopped before its deadline: {took:?}");
        // Generous: the point is that it is stopped at all, not a timing benchmark.
        assert!(
            took < Duration::from_secs(10),
            "not stopped near its deadline: {took:?}"
        );
    }
}

#[test]
fn endless_allocation_is_stopped_at_the_memory_cap() {
    let rt = runtime();
    let memory = 32 << 20;
    let mut inst = instance(
        &rt,
        "sandbox-alloc",
        Limits {
            memory,
            ..Limits::default()
        },
    );
    let err = inst.evaluate(0, &mut Selection::default()).unwrap_err();
    assert_eq!(err.failure, Failure::Memory(memory), "{err}");
    assert!(
        err.to_string()
            .contains("exceeded its memory cap of 33554432 bytes")
    );
}

#[test]
fn a_trap_is_reported_and_the_next_call_gets_a_fresh_instance() {
    let rt = runtime();
    let mut inst = instance(&rt, "sandbox-trap", Limits::default());
    for _ in 0..3 {
        let err = inst.evaluate(0, &mut Selection::default()).unwrap_err();
        assert!(matches!(err.failure, Failure::Trap(_)), "{err}");
        // The panic's message and location, not a backtrace of numbered Wasm functions.
        assert!(
            err.to_string().starts_with(
                "rule \"test/sandbox-trap\" (plugin \"sandbox-trap\"): trapped: panicked at \
                 tests/plugins/sandbox-trap/src/lib.rs:"
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with(": sandbox-trap: evaluate always panics"),
            "{err}"
        );
    }
}

#[test]
fn a_stack_overflow_is_named_as_such() {
    let rt = runtime();
    let mut inst = instance_with(
        &rt,
        "sandbox-trap",
        Limits::default(),
        r#"{"overflow": true}"#,
    );
    let err = inst.evaluate(0, &mut Selection::default()).unwrap_err();
    assert!(
        matches!(&err.failure, Failure::Trap(m) if m.starts_with("stack overflow")),
        "{err}"
    );
}

#[test]
fn misbehaving_rules_are_stopped_and_quarantined_while_another_keeps_firing() {
    let dir = RulesDir::new(&["threshold", "sandbox-loop", "sandbox-alloc", "sandbox-trap"]);
    dir.write(
        "rules.toml",
        r#"
[[group]]
name = "good"
interval = "100ms"

[[group.rule]]
name = "TargetDown"
plugin = "threshold"
select = "up"
params = { below = 1 }

[[group]]
name = "bad"
interval = "100ms"

[[group.rule]]
name = "Loops"
plugin = "sandbox-loop"
select = "up"
timeout = "300ms"

[[group.rule]]
name = "Hoards"
plugin = "sandbox-alloc"
select = "up"
memory = "32MiB"

[[group.rule]]
name = "Traps"
plugin = "sandbox-trap"
select = "up"
"#,
    );
    let server = Server::start(&dir, &[]);
    assert_eq!(server.push("svc/instance/a", "up 0\n").status(), 200);

    wait_for("the good rule to fire", || {
        (server.alert_state("TargetDown", "a")? == "firing").then_some(())
    });
    let loops = wait_for("the loop to be stopped", || {
        let r = server.rule("bad", "Loops");
        r["lastError"]
            .as_str()?
            .contains("exceeded its deadline of 300ms")
            .then_some(r)
    });
    let took = loops["evaluationTime"].as_f64().unwrap();
    assert!((0.3..10.0).contains(&took), "loop stopped after {took}s");
    wait_for("the hoarder to be stopped", || {
        let r = server.rule("bad", "Hoards");
        r["lastError"]
            .as_str()?
            .contains("exceeded its memory cap of 33554432 bytes")
            .then_some(())
    });
    let traps = wait_for("the trapping rule to be quarantined", || {
        let r = server.rule("bad", "Traps");
        (r["health"] == "quarantined").then_some(r)
    });
    assert!(
        traps["lastError"]
            .as_str()
            .unwrap()
            .contains("trapped: panicked at tests/plugins/sandbox-trap/src/lib.rs:"),
        "{traps}"
    );
    assert!(
        traps["lastError"]
            .as_str()
            .unwrap()
            .ends_with("sandbox-trap: evaluate always panics"),
        "{traps}"
    );
    // The plugin's own report of the panic is in the log, with the rule it ran for.
    let log = server.log();
    assert!(
        log.lines().any(
            |l| l.contains("panicked at tests/plugins/sandbox-trap/src/lib.rs:")
                && l.contains("sandbox-trap: evaluate always panics")
                && l.contains("bad/Traps")
        ),
        "{log}"
    );
    assert!(traps["consecutiveFailures"].as_u64().unwrap() >= 3);
    assert!(traps["quarantinedUntil"].is_string());
    wait_for("the quarantine gauge", || {
        (server.metric(r#"faultline_rule_quarantined{rule="bad/Traps"}"#)? == 1.0).then_some(())
    });
    wait_for("skipped evaluations to be counted", || {
        (server.metric(r#"faultline_rule_evaluations_skipped_total{rule="bad/Traps"}"#)? >= 1.0)
            .then_some(())
    });

    // Meanwhile the good rule keeps evaluating and its alert keeps firing.
    let before = server
        .metric(r#"faultline_rule_evaluations_total{rule="good/TargetDown"}"#)
        .unwrap();
    wait_for("the good rule to keep evaluating", || {
        let now = server.metric(r#"faultline_rule_evaluations_total{rule="good/TargetDown"}"#)?;
        (now >= before + 5.0).then_some(())
    });
    assert_eq!(
        server.alert_state("TargetDown", "a").as_deref(),
        Some("firing")
    );
    assert_eq!(server.rule("good", "TargetDown")["health"], "ok");
    assert!(
        reqwest::blocking::get(server.url("/-/healthy"))
            .unwrap()
            .status()
            .is_success()
    );
}
