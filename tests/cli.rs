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
    let dir = tmp.path().join("queue-depth");
    let (ok, out) = run(Command::new(binary())
        .args(["new", "detector", "queue-depth", "--dir"])
        .arg(&dir));
    assert!(ok, "{out}");
    assert!(out.contains("created"), "{out}");

    // `make test` in the new crate: build the component, run its unit tests and its rule
    // tests with this faultline. Sharing the workspace's target dir reuses compiled crates.
    let bin_dir = binary().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let make = |dir: &Path| {
        run(Command::new("make")
            .arg("test")
            .current_dir(dir)
            .env("PATH", &path)
            .env("CARGO_TARGET_DIR", target_dir()))
    };
    let (ok, out) = make(&dir);
    assert!(ok, "{out}");
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
