//! The query API against a real Prometheus 2.42: both scrape the same real node_exporter,
//! and `/api/v1/query` (instant and range selectors), `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`, `/api/v1/targets` and
//! `/api/v1/status/buildinfo` answer the same JSON shape, with the same series labels;
//! a full PromQL expression gets a 400 in Prometheus's error shape; `faultline query`
//! prints the series.

use std::collections::BTreeMap;
use std::process::Command;

use faultline_system_tests::programs::{Program, answers, free_port, require, start_prometheus};
use faultline_system_tests::{RulesDir, Server, binary, wait_for};
use serde_json::{Value, json};

/// The shape of a JSON value: object keys with the shapes of their values, the shape of
/// an array's first element, the type of anything else.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(format!("{base}{path}")).unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap())
}

#[test]
fn the_query_api_answers_as_prometheus_does() {
    let prometheus_bin = require("prometheus", "apt-get install prometheus");
    let exporter_bin = require(
        "prometheus-node-exporter",
        "apt-get install prometheus-node-exporter",
    );
    let exporter_addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(exporter_bin);
    cmd.arg(format!("--web.listen-address={exporter_addr}"))
        .args(["--collector.disable-defaults", "--collector.loadavg"]);
    let _exporter = Program::start("node_exporter", cmd);
    wait_for("node_exporter to answer", || {
        answers(&format!("http://{exporter_addr}/metrics")).then_some(())
    });

    let tmp = tempfile::tempdir().unwrap();
    let prom_config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{exporter_addr}']\n"
        ),
    )
    .unwrap();
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let _prometheus = start_prometheus(&prometheus_bin, &prom_config, tmp.path(), &prom_addr);
    let prom = format!("http://{prom_addr}");
    wait_for("prometheus to be ready", || {
        answers(&format!("{prom}/-/ready")).then_some(())
    });

    let dir = RulesDir::new(&[]);
    let config = dir.config(&format!(
        "[[scrape]]\njob = \"node\"\ntargets = [\"{exporter_addr}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n"
    ));
    let server = Server::start(&dir, &["--config", &config]);
    let ours = server.url("");

    // Both hold a few samples of node_load1.
    for base in [&prom, &ours] {
        wait_for("node_load1 with 3 samples", || {
            let (status, v) = get(base, "/api/v1/query?query=node_load1[10s]");
            let n = v["data"]["result"][0]["values"]
                .as_array()
                .map_or(0, Vec::len);
            (status == 200 && n >= 3).then_some(())
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let paths = [
        "/api/v1/query?query=node_load1".to_string(),
        "/api/v1/query?query=node_load1%7Bjob%3D%22node%22%7D%5B10s%5D".to_string(),
        format!(
            "/api/v1/query_range?query=node_load1&start={}&end={now}&step=1",
            now - 3
        ),
        "/api/v1/series?match%5B%5D=node_load1".to_string(),
        "/api/v1/labels".to_string(),
        "/api/v1/labels?match%5B%5D=node_load1".to_string(),
        "/api/v1/label/job/values".to_string(),
        "/api/v1/targets".to_string(),
        "/api/v1/status/buildinfo".to_string(),
        "/api/v1/query?query=node_load1%7B".to_string(),
    ];
    for path in &paths {
        let (prom_status, theirs) = get(&prom, path);
        let (our_status, mine) = get(&ours, path);
        assert_eq!(our_status, prom_status, "{path}: {mine}");
        assert_eq!(
            shape(&mine),
            shape(&theirs),
            "{path}:\nours: {mine}\nprometheus: {theirs}"
        );
    }

    // The same series, with the same labels.
    let labels = |base: &str| -> Vec<BTreeMap<String, String>> {
        let (_, v) = get(base, "/api/v1/series?match%5B%5D=node_load1");
        serde_json::from_value(v["data"].clone()).unwrap()
    };
    assert_eq!(labels(&ours), labels(&prom));
    let names = |base: &str| get(base, "/api/v1/labels?match%5B%5D=node_load1").1["data"].clone();
    assert_eq!(names(&ours), json!(["__name__", "instance", "job"]));
    assert_eq!(names(&ours), names(&prom));

    // Full PromQL is refused with a 400 that says so.
    let (status, v) = get(&ours, "/api/v1/query?query=rate(node_load1%5B1m%5D)");
    assert_eq!(status, 400);
    assert_eq!(v["errorType"], "bad_data");
    assert!(
        v["error"].as_str().unwrap().contains("not full PromQL"),
        "{v}"
    );

    // The command line prints the same series.
    let out = Command::new(binary())
        .args(["query", "node_load1", "--server", &ours])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "node_load1{{instance=\"{exporter_addr}\", job=\"node\"}} => "
        )),
        "{text}"
    );
}
