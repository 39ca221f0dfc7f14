//! The bundled detectors in `faultline serve`, fed by pushes: a ratio over two named inputs
//! fires and resolves, a burn-rate rule pages on a fast burn and not on a slow one, `absent`
//! fires when a pushed series stops; each plugin's own rule tests pass with `faultline test`;
//! and `faultline check` points at a bad named input by file, line and field.

use std::process::Command;

use faultline_system_tests::{RulesDir, Server, binary, plugin, root, wait_for};

/// Every alert of a rule, as `(labels, state)`.
fn alerts(server: &Server, alertname: &str) -> Vec<(serde_json::Value, String)> {
    let v = server.get_json("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .map(|a| {
            (
                a["labels"].clone(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The state of a rule's alert for `service`, if it has one.
fn state(server: &Server, alertname: &str, service: &str) -> Option<String> {
    alerts(server, alertname)
        .into_iter()
        .find(|(labels, _)| labels["service"] == service)
        .map(|(_, state)| state)
}

/// How many times a rule has been evaluated, as the server counts it.
fn evaluations(server: &Server, rule: &str) -> f64 {
    server
        .metric(&format!(
            r#"faultline_rule_evaluations_total{{rule="{rule}"}}"#
        ))
        .unwrap_or(0.0)
}

#[test]
fn ratio_over_two_named_inputs_fires_and_resolves() {
    let dir = RulesDir::new(&["ratio"]);
    dir.write(
        "slo.toml",
        r#"
[[group]]
name = "slo"
interval = "200ms"

[[group.rule]]
name = "HighErrorRatio"
plugin = "ratio"
select = { errors = 'app_errors', total = 'app_requests' }
params = { above = 0.1, by = ["service"] }
annotations = { summary = "{{ $labels.service }}: {{ $value | humanizePercentage }} fail" }
"#,
    );
    let server = Server::start(&dir, &[]);
    let push = |service: &str, errors: u32, total: u32| {
        let body = format!("app_errors {errors}\napp_requests {total}\n");
        let r = server.push(&format!("app/service/{service}"), &body);
        assert_eq!(r.status(), 200);
    };
    push("api", 30, 100);
    push("db", 1, 100);
    wait_for("api's ratio to fire", || {
        (state(&server, "HighErrorRatio", "api")? == "firing").then_some(())
    });
    let v = server.get_json("/api/v1/alerts");
    let api = v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["service"] == "api")
        .unwrap()
        .clone();
    assert_eq!(api["annotations"]["summary"], "api: 30% fail", "{api}");
    assert_eq!(
        state(&server, "HighErrorRatio", "db"),
        None,
        "1% is under 10%"
    );

    push("api", 2, 100);
    wait_for("api's alert to resolve", || {
        (state(&server, "HighErrorRatio", "api").as_deref() != Some("firing")).then_some(())
    });
}

#[test]
fn burn_rate_pages_on_a_fast_burn_and_not_on_a_slow_one() {
    let dir = RulesDir::new(&["burn-rate"]);
    // A 99% SLO with the fast pair shrunk from (1h, 5m) to (20s, 2s) so the test runs in
    // seconds: 14.4 × a 1% budget is a 14.4% error ratio.
    dir.write(
        "slo.toml",
        r#"
[[group]]
name = "slo"
interval = "200ms"

[[group.rule]]
name = "FastBurn"
plugin = "burn-rate"
select = { errors = 'requests_total{code="500"}', total = 'requests_total' }
range = "20s"
params = { objective = "99%", by = ["service"], windows = [{ factor = 14.4, long = "20s", short = "2s" }] }
"#,
    );
    let server = Server::start(&dir, &[]);
    // Counters pushed as time goes: `fast` fails half its requests, `slow` 5% (a burn
    // rate of 5, which a 14.4 pair must not page for).
    let mut served = 0u64;
    let mut push = || {
        served += 20;
        for (service, errors) in [("fast", served / 2), ("slow", served / 20)] {
            let body = format!(
                "requests_total{{code=\"200\"}} {}\nrequests_total{{code=\"500\"}} {errors}\n",
                served - errors
            );
            assert_eq!(
                server
                    .push(&format!("app/service/{service}"), &body)
                    .status(),
                200
            );
        }
    };
    wait_for("the fast burn to page", || {
        push();
        (state(&server, "FastBurn", "fast")? == "firing").then_some(())
    });
    // The slow burn stays quiet for ten more evaluations over the same data.
    let from = evaluations(&server, "slo/FastBurn");
    wait_for("ten more evaluations", || {
        push();
        assert_eq!(
            state(&server, "FastBurn", "slow"),
            None,
            "a slow burn paged"
        );
        (evaluations(&server, "slo/FastBurn") >= from + 10.0).then_some(())
    });
    let fast = alerts(&server, "FastBurn");
    assert_eq!(fast.len(), 1, "{fast:?}");
    assert_eq!(fast[0].0["severity"], "page");
}

#[test]
fn absent_fires_when_a_pushed_series_stops() {
    let dir = RulesDir::new(&["absent"]);
    dir.write(
        "heartbeat.toml",
        r#"
[[group]]
name = "heartbeats"
interval = "200ms"

[[group.rule]]
name = "HeartbeatMissing"
plugin = "absent"
select = 'heartbeat'
params = { after = "2s" }
"#,
    );
    let server = Server::start(&dir, &[]);
    let beat = |service: &str| {
        assert_eq!(
            server
                .push(&format!("app/service/{service}"), "heartbeat 1\n")
                .status(),
            200
        );
    };
    // Before any heartbeat, like PromQL's absent(), one alert without labels fires; once
    // both beat it resolves, and nothing fires while they keep beating.
    wait_for("absent() before any heartbeat", || {
        let all = alerts(&server, "HeartbeatMissing");
        all.iter()
            .any(|(l, s)| s == "firing" && l["service"].is_null())
            .then_some(())
    });
    let from = evaluations(&server, "heartbeats/HeartbeatMissing");
    wait_for("evaluations while both beat", || {
        beat("a");
        beat("b");
        let all = alerts(&server, "HeartbeatMissing");
        assert!(
            all.iter()
                .all(|(l, s)| s != "firing" || l["service"].is_null()),
            "{all:?}"
        );
        let quiet = all.iter().all(|(_, s)| s != "firing");
        (quiet && evaluations(&server, "heartbeats/HeartbeatMissing") >= from + 5.0).then_some(())
    });
    // b stops; a keeps beating.
    wait_for("b's heartbeat to be missed", || {
        beat("a");
        (state(&server, "HeartbeatMissing", "b")? == "firing").then_some(())
    });
    assert_eq!(state(&server, "HeartbeatMissing", "a"), None);
}

#[test]
fn each_detector_passes_its_rule_tests() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "ratio",
        "burn-rate",
        "absent",
        "rate",
        "frequency",
        "spike",
        "flatline",
        "new-term",
        "anomaly",
    ] {
        std::fs::copy(plugin(name), tmp.path().join(format!("{name}.wasm"))).unwrap();
        let test = root().join(format!("plugins/{name}/rules/{name}_test.toml"));
        let out = Command::new(binary())
            .arg("test")
            .arg(&test)
            .arg("--plugins")
            .arg(tmp.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains("tests passed"), "{name}: {text}");
    }
}

#[test]
fn check_names_the_file_line_and_field_of_a_bad_named_input() {
    let dir = RulesDir::new(&["ratio"]);
    dir.write(
        "slo.toml",
        r#"[[group]]
name = "slo"

[[group.rule]]
name = "HighErrorRatio"
plugin = "ratio"
select = { errors = 'app_errors{', total = 'app_requests' }
params = { above = 0.1 }
"#,
    );
    let out = Command::new(binary())
        .arg("check")
        .arg(dir.rules())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("slo.toml:7: rule \"HighErrorRatio\": select.errors: at char 12"),
        "{text}"
    );

    // A ratio rule whose inputs are not named as the plugin reads them is refused too.
    dir.write(
        "slo.toml",
        "[[group]]\nname = \"slo\"\n\n[[group.rule]]\nname = \"R\"\nplugin = \"ratio\"\nselect = 'app_errors'\nparams = { above = 0.1 }\n",
    );
    let out = Command::new(binary())
        .arg("check")
        .arg(dir.rules())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("slo.toml:5: rule \"R\""), "{text}");
    assert!(
        text.contains("the rule has no `select` input named \"errors\""),
        "{text}"
    );
}
