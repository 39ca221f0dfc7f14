//! A log shipper no one here wrote pushes logs into Faultline's Loki endpoint:
//! python-logging-loki 0.3.1 (PyPI), driven by Python's own `logging`. A `log-count` rule
//! counting error lines per instance over one minute fires for the instance above the bound
//! and not for the one below it.

use std::process::Command;

use faultline_system_tests::programs::require;
use faultline_system_tests::{RulesDir, Server, wait_for};

const RULES: &str = r#"
[[group]]
name = "logs"
interval = "200ms"

[[group.rule]]
name = "ErrorBurst"
plugin = "log-count"
logs = '{app="api"} |= "error"'
range = "1m"
params = { above = 3, by = "instance" }
labels = { severity = "page" }
annotations = { summary = "{{ $value }} error lines from {{ $labels.instance }} in a minute" }
"#;

/// Logs errors through python-logging-loki as an application would; exits non-zero if
/// any push was refused (the handler itself only prints such errors).
const SHIPPER: &str = r#"
import logging
import sys

import logging_loki

failures = []

class Checked(logging_loki.LokiHandler):
    def handleError(self, record):
        failures.append(record)
        super().handleError(record)

handler = Checked(url=sys.argv[1], tags={"app": "api"}, version="1")
log = logging.getLogger("checkout")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(handler)

for instance, errors in (("web1", 5), ("web2", 2)):
    tags = {"tags": {"instance": instance}}
    for i in range(errors):
        log.error("order %d failed: error 502 from payments", i, extra=tags)
    log.info("order placed", extra=tags)
    log.warning("slow response", extra=tags)

sys.exit(1 if failures else 0)
"#;

#[test]
fn python_logging_loki_pushes_and_a_log_rule_fires() {
    let python = require("python3", "apt-get install python3");
    let check = Command::new(&python)
        .args(["-c", "import logging_loki"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "python-logging-loki is not installed; this test needs it. \
         Install it with: python3 -m pip install python-logging-loki==0.3.1\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let dir = RulesDir::new(&["log-count"]);
    dir.write("logs.toml", RULES);
    let server = Server::start(&dir, &[]);

    let script = dir.tmp.path().join("shipper.py");
    std::fs::write(&script, SHIPPER).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(server.url("/loki/api/v1/push"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the shipper failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Two evaluations after the last line was acknowledged: the value is that of all lines,
    // not of an evaluation that ran while the shipper was still sending.
    let evaluations = || {
        server
            .metric(r#"faultline_rule_evaluations_total{rule="logs/ErrorBurst"}"#)
            .unwrap_or(0.0)
    };
    let shipped = evaluations();
    wait_for("two evaluations after the shipper ended", || {
        (evaluations() >= shipped + 2.0).then_some(())
    });
    wait_for("ErrorBurst to fire for web1", || {
        (server.alert_state("ErrorBurst", "web1")? == "firing").then_some(())
    });
    let v = server.get_json("/api/v1/alerts");
    let alerts = v["data"]["alerts"].as_array().unwrap();
    let web1 = alerts
        .iter()
        .find(|a| a["labels"]["instance"] == "web1")
        .unwrap();
    assert_eq!(
        web1["value"], "5",
        "five error lines, not the info and warning"
    );
    assert_eq!(web1["labels"]["severity"], "page");
    assert_eq!(
        web1["annotations"]["summary"],
        "5 error lines from web1 in a minute"
    );
    assert_eq!(
        server.alert_state("ErrorBurst", "web2"),
        None,
        "two error lines are under the bound"
    );
    assert_eq!(
        server
            .metric(r#"faultline_log_records_ingested_total{source="loki"}"#)
            .unwrap(),
        11.0,
        "every line pushed was accepted"
    );
}
