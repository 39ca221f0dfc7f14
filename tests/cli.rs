//! The command line as a newcomer meets it: `faultline new` scaffolds a plugin crate that
//! builds and passes its tests as generated, `faultline test` runs rule tests against the
//! real plugin and reports a broken expectation with expected versus got, and the bundled
//! rules pass `check` and their own tests; `check` warns when alerts can reach no receiver.

use std::path::Path;
use std::process::Command;

use faultline_system_tests::{binary, root, target_dir};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn new_then_build_then_test_from_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, out) = run(Command::new(binary())
        .args(["new", "detector", "queue-depth"])
        .current_dir(tmp.path()));
    assert!(ok, "{out}");
    assert!(out.contains("created"), "{out}");
    let dir = tmp.path().join("queue-depth");

    // The printed next step, run as printed: no faultline on the PATH, nothing edited.
    // Only the target dir is shared with the workspace's, to reuse its compiled crates.
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("next: "))
        .unwrap_or_else(|| panic!("no next step printed: {out}"));
    let path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !Path::new(d).join("faultline").exists())
        .collect::<Vec<_>>()
        .join(":");
    let (ok, out) = run(Command::new("sh")
        .args(["-c", next])
        .current_dir(tmp.path())
        .env("PATH", &path)
        .env("CARGO_TARGET_DIR", target_dir()));
    assert!(ok, "{next}: {out}");
    assert!(out.contains("test result: ok. 2 passed"), "{out}");
    assert!(
        out.contains("queue-depth_test.toml: 1 tests passed"),
        "{out}"
    );

    // A wrong expectation fails, saying what was expected and what came.
    let test_file = dir.join("rules/queue-depth_test.toml");
    let text = std::fs::read_to_string(&test_file).unwrap();
    std::fs::write(
        &test_file,
        text.replace("instance = \"a\"", "instance = \"b\""),
    )
    .unwrap();
    let (ok, out) = run(Command::new(binary()).arg("test").arg(&test_file));
    assert!(!ok, "{out}");
    assert!(out.contains("alertname \"QueueDepth\" at 2m"), "{out}");
    assert!(
        out.contains("expected:\n    {alertname=\"QueueDepth\", instance=\"b\""),
        "{out}"
    );
    assert!(
        out.contains("got:\n    {alertname=\"QueueDepth\", instance=\"a\""),
        "{out}"
    );
    assert!(
        out.contains("1 of 1 tests failed (1 failed checks)"),
        "{out}"
    );
    // Both sides in label notation, annotations included: no JSON maps.
    assert!(!out.contains("{\""), "{out}");
}

#[test]
fn bundled_rules_check_and_pass_their_tests() {
    let rules = root().join("rules");
    let (ok, out) = run(Command::new(binary()).arg("check").arg(&rules));
    assert!(ok, "{out}");
    assert!(out.contains("all valid"), "{out}");
    let tests: Vec<_> = std::fs::read_dir(&rules)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| faultline::rules::is_test_file(p))
        .collect();
    let rule_files = std::fs::read_dir(&rules)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml") && !faultline::rules::is_test_file(p)
        })
        .count();
    assert_eq!(
        tests.len(),
        rule_files,
        "every bundled rule file has a test file"
    );
    let (ok, out) = run(Command::new(binary()).arg("test").args(&tests));
    assert!(ok, "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn a_test_file_that_cannot_run_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("x_test.toml");
    std::fs::write(
        &f,
        "rule_files = [\"missing.toml\"]\n[[test]]\nname = \"t\"\n",
    )
    .unwrap();
    let (ok, out) = run(Command::new(binary()).arg("test").arg(&f));
    assert!(!ok);
    assert!(out.contains("missing.toml"), "{out}");
    std::fs::write(&f, "rule_files = []\n[[test]]\nnmae = \"t\"\n").unwrap();
    let (ok, out) = run(Command::new(binary()).arg("test").arg(&f));
    assert!(!ok);
    assert!(out.contains("unknown field `nmae`"), "{out}");
}

#[test]
fn check_warns_when_alerts_can_reach_no_receiver() {
    let dir = faultline_system_tests::RulesDir::new(&["webhook"]);
    let hook = faultline_system_tests::webhook("hook", "127.0.0.1:9".parse().unwrap(), "");
    dir.write("hook.toml", &hook);
    let (ok, out) = run(Command::new(binary()).arg("check").arg(dir.rules()));
    assert!(ok, "a warning, not an error: {out}");
    assert!(
        out.contains("warning: no [route] in the rules directory: alerts posted to /api/v2/alerts"),
        "{out}"
    );
    dir.write("route.toml", "[route]\nreceiver = \"hook\"\n");
    let (ok, out) = run(Command::new(binary()).arg("check").arg(dir.rules()));
    assert!(ok && !out.contains("warning"), "{out}");
}

#[test]
fn check_refuses_a_memory_cap_above_the_engine_maximum() {
    let dir = faultline_system_tests::RulesDir::new(&["threshold"]);
    dir.write(
        "node.toml",
        "[[group]]\nname = \"node\"\n\n[[group.rule]]\nname = \"HighLoad\"\nplugin = \"threshold\"\nselect = 'node_load1'\nparams = { above = 4 }\nmemory = \"4GiB\"\n",
    );
    let (ok, out) = run(Command::new(binary()).arg("check").arg(dir.rules()));
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "node.toml:5: rule \"HighLoad\": field `memory`: 4GiB is above the most one plugin \
             may have, 1GiB (the engine's maximum, or the server's plugin_memory_budget if lower)"
        ),
        "{out}"
    );
}
