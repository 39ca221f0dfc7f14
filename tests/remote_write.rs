//! A real Prometheus remote-writes into Faultline: Faultline detectors fire on the series it
//! sends (with its external labels), its metadata-only requests are accepted, and the
//! staleness markers it writes when a scrape target dies end that target's series in
//! Faultline too.

use std::process::Command;

use faultline_system_tests::programs::{Program, answers, free_port, require, start_prometheus};
use faultline_system_tests::{RulesDir, Server, wait_for};

const APT: &str = "apt-get install prometheus prometheus-node-exporter";

const RULES: &str = r#"
[[group]]
name = "remote"
interval = "200ms"

[[group.rule]]
name = "PrometheusSeen"
plugin = "threshold"
select = 'prometheus_build_info{job="prometheus"}'
params = { above = 0 }

[[group.rule]]
name = "NodeSeen"
plugin = "threshold"
select = 'node_exporter_build_info{job="node"}'
params = { above = 0 }

[[group.rule]]
name = "NodeDown"
plugin = "threshold"
select = 'up{job="node"}'
params = { below = 1 }
"#;

fn alert(server: &Server, alertname: &str, state: &str) -> Option<serde_json::Value> {
    let v = server.get_json("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname && a["state"] == state)
        .cloned()
}

#[test]
fn prometheus_remote_writes_and_faultline_detects() {
    let prometheus = require("prometheus", APT);
    let node_exporter = require("prometheus-node-exporter", APT);

    let dir = RulesDir::new(&["threshold"]);
    dir.write("remote.toml", RULES);
    let server = Server::start(&dir, &[]);

    let node_address = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(node_exporter);
    cmd.arg(format!("--web.listen-address={node_address}"))
        .args(["--collector.disable-defaults", "--collector.loadavg"]);
    let mut node = Program::start("node_exporter", cmd);
    let node_url = format!("http://{node_address}/metrics");
    wait_for("node_exporter to answer", || {
        answers(&node_url).then_some(())
    });

    let prom_address = format!("127.0.0.1:{}", free_port());
    let prom_dir = tempfile::tempdir().unwrap();
    let prom_config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: peertest
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["{prom_address}"]
  - job_name: node
    static_configs:
      - targets: ["{node_address}"]
remote_write:
  - url: http://{faultline}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 1s
"#,
            faultline = server.addr
        ),
    )
    .unwrap();
    let _prometheus = start_prometheus(&prometheus, &prom_config, prom_dir.path(), &prom_address);

    // A detector fires on a series that only Prometheus has: its own build info.
    let a = wait_for("a Faultline alert on a remote-written series", || {
        alert(&server, "PrometheusSeen", "firing")
    });
    assert_eq!(a["labels"]["instance"], prom_address.as_str());
    assert_eq!(
        a["labels"]["cluster"], "peertest",
        "external labels come along"
    );
    assert_eq!(a["value"], "1");
    let n = wait_for("node_exporter's series to arrive", || {
        alert(&server, "NodeSeen", "firing")
    });
    assert_eq!(n["labels"]["instance"], node_address.as_str());
    assert!(
        server
            .metric(r#"faultline_samples_ingested_total{source="remote_write"}"#)
            .unwrap()
            > 100.0
    );

    // Prometheus marks the dead target's series stale and writes `up 0`: in Faultline the
    // series end at once (the lookback would keep them five minutes) and `up` fires.
    node.stop();
    wait_for("up{job=\"node\"} 0 to fire", || {
        alert(&server, "NodeDown", "firing")
    });
    wait_for(
        "the staleness markers to end node_exporter's series",
        || alert(&server, "NodeSeen", "resolved"),
    );

    // Every request was accepted, the metadata-only ones included.
    let metrics = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !metrics.contains(r#"faultline_ingest_rejected_total{source="remote_write""#),
        "{metrics}"
    );
}
