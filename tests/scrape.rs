//! Faultline scrapes a real `prometheus-node-exporter`: the series arrive with `job`,
//! `instance` and the job's extra labels; when the exporter is killed, `up` drops to 0 and a
//! rule on it fires, while staleness markers end the exporter's series at once; when the
//! exporter is started again on the same port, the rule resolves.

use std::process::Command;

use faultline_system_tests::programs::{Program, answers, free_port, require};
use faultline_system_tests::{RulesDir, Server, wait_for};

const RULES: &str = r#"
[[group]]
name = "node"
interval = "200ms"

[[group.rule]]
name = "TargetDown"
plugin = "threshold"
select = 'up{job="node"}'
for = "1s"
params = { below = 1 }

# Fires while the exporter's own series is there: it ends when the series goes stale.
[[group.rule]]
name = "ExporterSeen"
plugin = "threshold"
select = 'node_exporter_build_info{job="node"}'
params = { above = 0 }
"#;

fn start_exporter(address: &str) -> Program {
    let mut cmd = Command::new(require(
        "prometheus-node-exporter",
        "apt-get install prometheus-node-exporter",
    ));
    cmd.arg(format!("--web.listen-address={address}"))
        .args(["--collector.disable-defaults", "--collector.loadavg"])
        .args(["--collector.meminfo", "--collector.cpu"]);
    let exporter = Program::start("node_exporter", cmd);
    let url = format!("http://{address}/metrics");
    wait_for("node_exporter to answer", || answers(&url).then_some(()));
    exporter
}

/// The labels of the first alert of rule `alertname`, once it is in `state`.
fn alert_labels(server: &Server, alertname: &str, state: &str) -> Option<serde_json::Value> {
    let v = server.get_json("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname && a["state"] == state)
        .map(|a| a["labels"].clone())
}

#[test]
fn a_killed_node_exporter_fires_up_below_1_and_resolves_when_it_returns() {
    let address = format!("127.0.0.1:{}", free_port());
    let mut exporter = start_exporter(&address);

    let dir = RulesDir::new(&["threshold"]);
    dir.write("node.toml", RULES);
    let config = dir.config(&format!(
        r#"
[[scrape]]
job = "node"
targets = ["{address}"]
interval = "500ms"
timeout = "500ms"
labels = {{ env = "test" }}
"#
    ));
    let server = Server::start(&dir, &["--config", &config]);

    // Scraped series carry the target's labels; the scrape's own series say it is up.
    let labels = wait_for("the exporter's series to be scraped", || {
        alert_labels(&server, "ExporterSeen", "firing")
    });
    assert_eq!(labels["instance"], address.as_str());
    assert_eq!(labels["job"], "node");
    assert_eq!(labels["env"], "test");
    assert!(
        labels["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{labels}"
    );
    assert_eq!(server.alert_state("TargetDown", &address), None);
    assert!(
        server
            .metric(r#"faultline_samples_ingested_total{source="scrape"}"#)
            .unwrap()
            > 50.0
    );

    exporter.stop();
    wait_for("TargetDown to fire", || {
        (server.alert_state("TargetDown", &address)? == "firing").then_some(())
    });
    let down = alert_labels(&server, "TargetDown", "firing").unwrap();
    assert_eq!(down["env"], "test");
    // The exporter's series ended with the failed scrape, not five minutes later.
    wait_for("the exporter's series to go stale", || {
        alert_labels(&server, "ExporterSeen", "resolved")
    });

    let _exporter = start_exporter(&address);
    wait_for("TargetDown to resolve", || {
        (server.alert_state("TargetDown", &address)? == "resolved").then_some(())
    });
    wait_for("the exporter's series to be back", || {
        alert_labels(&server, "ExporterSeen", "firing")
    });
}
