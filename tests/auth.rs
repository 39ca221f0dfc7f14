//! An API with tokens: each role may do what it should and no more, and the real programs
//! that talk to Faultline do so with their own authorization options: Prometheus's
//! `alerting.alertmanagers[].authorization` and `remote_write[].authorization`, and amtool's
//! `--http.config.file`.

use faultline_system_tests::alertmanager::{amtool, amtool_output};
use faultline_system_tests::programs::{free_port, require, start_prometheus};
use faultline_system_tests::{RulesDir, Server, wait_for};
use reqwest::blocking::Client;
use serde_json::json;

const READ: &str = "read-t0ken";
const WRITE: &str = "write-t0ken";
const ADMIN: &str = "admin-t0ken";

/// Faultline with three tokens, one per role, in files beside its configuration.
fn start() -> (RulesDir, Server) {
    let dir = RulesDir::new(&[]);
    for (name, token) in [("read", READ), ("write", WRITE), ("admin", ADMIN)] {
        std::fs::write(dir.tmp.path().join(name), format!("{token}\n")).unwrap();
    }
    let cfg = dir.config(
        r#"
[auth]
tokens = [
  { role = "read", token = { file = "read" } },
  { role = "write", token = { file = "write" } },
  { role = "admin", token = { file = "admin" } },
]
"#,
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    (dir, server)
}

/// The status of a request with `token` (or none).
fn status(server: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> u16 {
    let mut request = Client::new()
        .request(method.parse().unwrap(), server.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().unwrap().status().as_u16()
}

#[test]
fn each_role_may_do_what_it_should_and_no_more() {
    let (_dir, server) = start();
    let alert = r#"[{"labels": {"alertname": "Disk", "instance": "db1"}}]"#;
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "Disk", "isRegex": false, "isEqual": true}],
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test", "comment": "auth",
    })
    .to_string();
    let push = "node_load1 3\n";
    // (method, path, body, the least role that may)
    let cases = [
        ("GET", "/api/v2/alerts", "", "read"),
        ("GET", "/api/v1/rules", "", "read"),
        ("GET", "/metrics", "", "read"),
        ("POST", "/api/v2/alerts", alert, "write"),
        ("POST", "/metrics/job/node/instance/a", push, "write"),
        ("POST", "/api/v2/silences", &silence, "admin"),
        ("POST", "/-/reload", "", "admin"),
    ];
    let rank = |role: &str| ["read", "write", "admin"].iter().position(|r| *r == role);
    for (method, path, body, least) in cases {
        assert_eq!(
            status(&server, method, path, None, body),
            401,
            "{method} {path}"
        );
        assert_eq!(
            status(&server, method, path, Some("wrong"), body),
            401,
            "{method} {path}"
        );
        for (role, token) in [("read", READ), ("write", WRITE), ("admin", ADMIN)] {
            let got = status(&server, method, path, Some(token), body);
            let may = rank(role) >= rank(least);
            assert_eq!(
                (200..300).contains(&got),
                may,
                "{method} {path} with the {role} token answered {got}"
            );
            if !may {
                assert_eq!(got, 403, "{method} {path} with the {role} token");
            }
        }
    }
    // Probes stay open, and a refusal says why.
    assert_eq!(status(&server, "GET", "/-/healthy", None, ""), 200);
    assert_eq!(status(&server, "GET", "/-/ready", None, ""), 200);
    let refused = Client::new()
        .post(server.url("/-/reload"))
        .bearer_auth(WRITE)
        .send()
        .unwrap();
    assert_eq!(
        refused.text().unwrap(),
        "this token's role is write; this request needs admin\n"
    );
    let unauthenticated = Client::new()
        .get(server.url("/api/v2/alerts"))
        .send()
        .unwrap();
    assert_eq!(
        unauthenticated.headers()["www-authenticate"],
        "Bearer realm=\"faultline\""
    );
    assert!(!server.log().contains(ADMIN), "a token reached the log");
}

#[test]
fn prometheus_and_amtool_send_their_tokens_with_their_own_options() {
    let prometheus = require("prometheus", "apt-get install prometheus");
    let (dir, server) = start();
    let prom_dir = tempfile::tempdir().unwrap();
    let write_token = dir.tmp.path().join("write");
    std::fs::write(
        prom_dir.path().join("rules.yml"),
        "groups:\n  - name: always\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n",
    )
    .unwrap();
    let prom_address = format!("127.0.0.1:{}", free_port());
    let config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{faultline}"]
      authorization:
        credentials_file: {token}
remote_write:
  - url: http://{faultline}/api/v1/write
    authorization:
      credentials_file: {token}
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["{prom_address}"]
"#,
            faultline = server.addr,
            token = write_token.display(),
        ),
    )
    .unwrap();
    let _prometheus = start_prometheus(&prometheus, &config, prom_dir.path(), &prom_address);

    let url = format!("http://{}", server.addr);
    let http_config = |token: &str| {
        let path = dir.tmp.path().join(format!("http-{token}.yml"));
        std::fs::write(&path, format!("authorization:\n  credentials: {token}\n")).unwrap();
        format!("--http.config.file={}", path.display())
    };
    let (read, admin) = (http_config(READ), http_config(ADMIN));

    // Prometheus's alert arrives with its token, as amtool (with a read token) shows.
    wait_for("Prometheus's alert, listed by amtool", || {
        amtool(&url, &["alert", "query", "alertname=AlwaysFiring", &read])
            .contains("AlwaysFiring")
            .then_some(())
    });
    // Its remote_write samples arrive too.
    wait_for("remote_write samples", || {
        let metrics = Client::new()
            .get(server.url("/metrics"))
            .bearer_auth(READ)
            .send()
            .unwrap()
            .text()
            .unwrap();
        metrics
            .lines()
            .any(|l| l.starts_with("faultline_samples_ingested_total{source=\"remote_write\"}"))
            .then_some(())
    });
    // amtool may add a silence with the admin token, not with the read one.
    let refused = amtool_output(
        &url,
        &[
            "silence",
            "add",
            "alertname=AlwaysFiring",
            "--comment=no",
            &read,
        ],
    );
    assert!(!refused.status.success());
    amtool(
        &url,
        &[
            "silence",
            "add",
            "alertname=AlwaysFiring",
            "--comment=auth test",
            &admin,
        ],
    );
    let listed = amtool(&url, &["silence", "query", &read]);
    assert!(listed.contains("auth test"), "{listed}");
    let anonymous = amtool_output(&url, &["alert", "query"]);
    assert!(
        !anonymous.status.success(),
        "amtool without a token was served"
    );
}
