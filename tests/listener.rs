//! The listener exposed: HTTPS with a certificate from the configuration (Prometheus and
//! amtool talking to it with their own `tls_config`), requests a browser page could forge
//! refused (a foreign `Host` or `Origin`, a body type other than the route's), and slow or
//! many clients bounded (header and body read timeouts, turns for request bodies).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use faultline_system_tests::alertmanager::amtool;
use faultline_system_tests::programs::{free_port, require, start_prometheus};
use faultline_system_tests::{DEADLINE, RulesDir, Server, tls, wait_for};
use reqwest::blocking::Client;
use serde_json::json;

/// Faultline with `config` as its server configuration.
fn start(config: &str) -> (RulesDir, Server) {
    let dir = RulesDir::new(&[]);
    let cfg = dir.config(config);
    let server = Server::start(&dir, &["--config", &cfg]);
    (dir, server)
}

/// Opens a connection and sends `bytes`, leaving it open.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads until the server closes the connection; what it sent before, or why it did not
/// close it in time.
fn until_closed(s: &mut TcpStream) -> Result<String, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            Err(e) => return Err(format!("the connection is still open ({e})")),
        }
    }
}

#[test]
fn https_serves_the_api_and_prometheus_and_amtool_use_it() {
    let prometheus = require("prometheus", "apt-get install prometheus");
    let dir = RulesDir::new(&[]);
    tls::certificates(dir.tmp.path());
    let cfg = dir.config(
        r#"
[listener]
tls = { cert = "server.pem", key = "server.key" }
header_read_timeout = "1s"
"#,
    );
    let server = Server::start(&dir, &["--config", &cfg]);
    let ca_file = dir.tmp.path().join("ca.pem");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_file).unwrap()).unwrap();
    let https = Client::builder().add_root_certificate(ca).build().unwrap();
    let url = format!("https://{}", server.addr);

    let healthy = https.get(format!("{url}/-/healthy")).send().unwrap();
    assert_eq!(healthy.status(), 200);
    // Plain HTTP gets no answer, nor does a client that does not trust the certificate.
    assert!(Client::new().get(server.url("/-/healthy")).send().is_err());
    assert!(
        Client::new()
            .get(format!("{url}/-/healthy"))
            .send()
            .is_err()
    );
    // A connection that never starts its TLS handshake is closed.
    let mut idle = send_raw(server.addr, b"");
    until_closed(&mut idle).expect("a connection without a TLS handshake");

    // Prometheus sends its alerts and remote_write over TLS, trusting the CA.
    let prom_dir = tempfile::tempdir().unwrap();
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
    - scheme: https
      tls_config: {{ ca_file: {ca} }}
      static_configs:
        - targets: ["{faultline}"]
remote_write:
  - url: https://{faultline}/api/v1/write
    tls_config: {{ ca_file: {ca} }}
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["{prom_address}"]
"#,
            faultline = server.addr,
            ca = ca_file.display(),
        ),
    )
    .unwrap();
    let _prometheus = start_prometheus(&prometheus, &config, prom_dir.path(), &prom_address);
    // amtool reads them back over TLS, with its own --http.config.file.
    let http_config = dir.tmp.path().join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("tls_config:\n  ca_file: {}\n", ca_file.display()),
    )
    .unwrap();
    let http_config = format!("--http.config.file={}", http_config.display());
    wait_for("Prometheus's alert, listed by amtool over TLS", || {
        amtool(
            &url,
            &["alert", "query", "alertname=AlwaysFiring", &http_config],
        )
        .contains("AlwaysFiring")
        .then_some(())
    });
    wait_for("remote_write samples over TLS", || {
        let metrics = https
            .get(format!("{url}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        metrics
            .lines()
            .any(|l| l.starts_with("faultline_samples_ingested_total{source=\"remote_write\"}"))
            .then_some(())
    });
}

#[test]
fn a_bad_certificate_is_a_clear_error_at_start() {
    let dir = RulesDir::new(&[]);
    std::fs::write(dir.tmp.path().join("empty.pem"), "").unwrap();
    let cfg = dir.config("[listener]\ntls = { cert = \"empty.pem\", key = \"missing.key\" }\n");
    let out = Server::command(&dir)
        .args(["--config", &cfg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[listener] tls:") && stderr.contains("empty.pem"),
        "{stderr}"
    );
}

/// A request with these headers; its status and body.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut r = Client::new()
        .request(method.parse().unwrap(), server.url(path))
        .body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

#[test]
fn requests_a_browser_page_could_forge_are_refused() {
    let (_dir, server) = start(
        r#"
[listener]
allowed_hosts = ["faultline.test"]
allowed_origins = ["https://grafana.test"]
"#,
    );
    let port = server.addr.port();
    let json = ("Content-Type", "application/json");
    let alert = r#"[{"labels": {"alertname": "Forged"}}]"#;

    // DNS rebinding: a name that is not this server's is refused, reads included.
    let evil = format!("evil.example:{port}");
    let (status, text) = request(&server, "GET", "/api/v2/alerts", &[("Host", &evil)], "");
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("allowed_hosts"), "{text}");
    let (status, _) = request(&server, "POST", "/-/reload", &[("Host", &evil)], "");
    assert_eq!(status, 421);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("faultline.test:{port}"),
    ] {
        let (status, _) = request(&server, "GET", "/api/v2/alerts", &[("Host", &host)], "");
        assert_eq!(status, 200, "{host}");
    }

    // A page of another origin may read (the browser keeps the answer from it) but not
    // change anything; the API's own origin and the allowed ones may.
    let evil_origin = ("Origin", "http://evil.example");
    let (status, text) = request(
        &server,
        "POST",
        "/api/v2/alerts",
        &[json, evil_origin],
        alert,
    );
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("allowed_origins"), "{text}");
    let (status, _) = request(&server, "POST", "/-/reload", &[evil_origin], "");
    assert_eq!(status, 403);
    let (status, _) = request(&server, "GET", "/api/v2/alerts", &[evil_origin], "");
    assert_eq!(status, 200);
    let own = format!("http://127.0.0.1:{port}");
    let allowed = r#"[{"labels": {"alertname": "FromAllowedOrigin"}}]"#;
    for origin in [own.as_str(), "https://grafana.test"] {
        let (status, text) = request(
            &server,
            "POST",
            "/api/v2/alerts",
            &[json, ("Origin", origin)],
            allowed,
        );
        assert_eq!(status, 200, "{origin}: {text}");
    }

    // A body type a page may send without asking (or none) is refused where the API defines
    // one, with the type to send.
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "Forged", "isRegex": false}],
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "page", "comment": "forged",
    })
    .to_string();
    let routes = [
        ("/api/v2/alerts", alert, "application/json"),
        ("/api/v1/alerts", alert, "application/json"),
        ("/api/v2/silences", silence.as_str(), "application/json"),
        (
            "/api/v1/alertmanager/webhook",
            r#"{"version": "4", "alerts": []}"#,
            "application/json",
        ),
        (
            "/api/v1/logs",
            r#"{"labels": {"app": "a"}, "message": "m"}"#,
            "application/x-ndjson",
        ),
        ("/api/v1/write", "", "application/x-protobuf"),
        (
            "/loki/api/v1/push",
            r#"{"streams": []}"#,
            "application/json",
        ),
        (
            "/_bulk",
            "{\"index\": {}}\n{\"message\": \"m\"}\n",
            "application/x-ndjson",
        ),
    ];
    let simple = [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ];
    for (path, body, expected) in routes {
        for ct in simple {
            let headers: Vec<_> = ct.map(|ct| ("Content-Type", ct)).into_iter().collect();
            let (status, text) = request(&server, "POST", path, &headers, body);
            assert_eq!(status, 415, "{path} with {ct:?}: {text}");
            assert!(text.contains(expected), "{path} with {ct:?}: {text}");
        }
    }
    // Nothing of it was taken.
    let (_, alerts) = request(&server, "GET", "/api/v2/alerts", &[], "");
    assert!(alerts.contains("FromAllowedOrigin"), "{alerts}");
    assert!(!alerts.contains("Forged"), "{alerts}");
    let (_, silences) = request(&server, "GET", "/api/v2/silences", &[], "");
    assert!(!silences.contains("forged"), "{silences}");
}

#[test]
fn slow_clients_are_cut_off() {
    let (_dir, server) = start(
        r#"
[listener]
header_read_timeout = "1s"
body_read_timeout = "2s"
"#,
    );
    // Slow loris: connections that never finish their headers, or send nothing.
    let half = b"POST /api/v2/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut slow: Vec<_> = (0..20).map(|_| send_raw(server.addr, half)).collect();
    slow.push(send_raw(server.addr, b""));
    for (i, s) in slow.iter_mut().enumerate() {
        until_closed(s).unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
    }
    // A body that trickles is cut: 408, and the connection closed.
    let mut trickle = send_raw(
        server.addr,
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n[{\"labels\":",
    );
    let answer = until_closed(&mut trickle).expect("a trickling body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");
    // The server still answers.
    assert_eq!(request(&server, "GET", "/-/healthy", &[], "").0, 200);
}

#[test]
fn request_bodies_wait_for_a_turn() {
    let (_dir, server) = start("[listener]\nmax_concurrent_bodies = 2\n");
    let gauge = |state: &str| {
        server
            .metric(&format!("faultline_request_bodies{{state=\"{state}\"}}"))
            .unwrap_or(0.0)
    };
    // Two large bodies still arriving hold both turns.
    let large = b"POST /api/v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: application/x-ndjson\r\nContent-Length: 15000000\r\n\r\n{\"labels\":";
    let holders: Vec<_> = (0..2).map(|_| send_raw(server.addr, large)).collect();
    wait_for("two bodies being read", || {
        (gauge("reading") == 2.0).then_some(())
    });
    // A third waits for a turn...
    let url = server.url("/api/v1/logs");
    let third = std::thread::spawn(move || {
        Client::new()
            .post(url)
            .header("Content-Type", "application/x-ndjson")
            .body(r#"{"labels": {"app": "third"}, "message": "waited"}"#)
            .send()
            .unwrap()
            .status()
            .as_u16()
    });
    wait_for("a body waiting for a turn", || {
        (gauge("waiting") == 1.0).then_some(())
    });
    assert!(!third.is_finished());
    assert_eq!(gauge("reading"), 2.0);
    // ...and is read once one is free.
    drop(holders);
    assert_eq!(third.join().unwrap(), 204);
    wait_for("no bodies held", || {
        (gauge("reading") == 0.0 && gauge("waiting") == 0.0).then_some(())
    });
}
