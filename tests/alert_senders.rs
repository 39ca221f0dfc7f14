//! Real programs send Faultline their alerts: a Prometheus with Faultline as its
//! Alertmanager, and an Alertmanager whose webhook receiver is Faultline. The alerts join
//! Faultline's alerts, are routed on with their sender's `generatorURL`, and resolve when
//! their sender resolves them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use faultline_system_tests::alertmanager::{Alertmanager, amtool};
use faultline_system_tests::programs::{free_port, require, start_prometheus};
use faultline_system_tests::{Receiver, RulesDir, Server, serve, wait_for, webhook};
use serde_json::{Value, json};

/// `GET /api/v2/alerts`, the alerts named `alertname`.
fn listed(server: &Server, alertname: &str) -> Vec<Value> {
    server
        .get_json(&format!("/api/v2/alerts?filter=alertname%3D{alertname}"))
        .as_array()
        .unwrap()
        .clone()
}

/// A scrape target whose one series, `faultline_test_flag`, the test sets.
struct FlagTarget {
    addr: std::net::SocketAddr,
    flag: Arc<AtomicU8>,
    _rt: tokio::runtime::Runtime,
}

impl FlagTarget {
    fn start() -> FlagTarget {
        let flag = Arc::new(AtomicU8::new(0));
        let f = flag.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let v = f.load(Ordering::Relaxed);
                async move {
                    format!("# TYPE faultline_test_flag gauge\nfaultline_test_flag {v}\n")
                }
            }),
        );
        let (addr, rt) = serve("127.0.0.1:0".parse().unwrap(), app);
        FlagTarget {
            addr,
            flag,
            _rt: rt,
        }
    }

    fn set(&self, v: u8) {
        self.flag.store(v, Ordering::Relaxed);
    }
}

#[test]
fn a_prometheus_alert_fires_and_resolves_in_faultline() {
    let prometheus = require("prometheus", "apt-get install prometheus");
    let hook = Receiver::start();
    let dir = RulesDir::new(&["webhook"]);
    dir.write(
        "route.toml",
        &format!(
            "[route]\nreceiver = \"hook\"\ngroup_wait = \"0s\"\n{}",
            webhook("hook", hook.addr, "")
        ),
    );
    let server = Server::start(&dir, &[]);
    let target = FlagTarget::start();
    target.set(1);

    let prom_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        prom_dir.path().join("rules.yml"),
        r#"
groups:
  - name: flags
    rules:
      - alert: FlagRaised
        expr: faultline_test_flag == 1
        labels:
          severity: page
        annotations:
          summary: "flag raised on {{ $labels.instance }}"
"#,
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
  external_labels:
    env: systest
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{faultline}"]
scrape_configs:
  - job_name: flag
    static_configs:
      - targets: ["{target}"]
"#,
            faultline = server.addr,
            target = target.addr,
        ),
    )
    .unwrap();
    let _prometheus = start_prometheus(&prometheus, &config, prom_dir.path(), &prom_address);

    let alert = wait_for("Prometheus's alert in Faultline", || {
        listed(&server, "FlagRaised").into_iter().next()
    });
    let instance = target.addr.to_string();
    assert_eq!(
        alert["labels"],
        json!({"alertname": "FlagRaised", "env": "systest", "instance": instance,
               "job": "flag", "severity": "page"})
    );
    assert_eq!(
        alert["annotations"]["summary"],
        format!("flag raised on {instance}")
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{prom_address}/graph?g0.expr=")),
        "{alert}"
    );
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        server.metric(r#"faultline_external_alerts{state="firing"}"#),
        Some(1.0)
    );

    // Routed to the webhook, the alert keeps its link to Prometheus's graph, and the
    // notification is counted under Alertmanager's name.
    let sent = hook.next("the notification of Prometheus's alert").json();
    assert_eq!(
        sent["alerts"][0]["generatorURL"], alert["generatorURL"],
        "{sent}"
    );
    wait_for("alertmanager_notifications_total to count it", || {
        (server.metric(r#"alertmanager_notifications_total{integration="webhook"}"#) == Some(1.0))
            .then_some(())
    });
    let received = r#"alertmanager_alerts_received_total{status="firing",version="v2"}"#;
    assert!(server.metric(received).is_some_and(|n| n >= 1.0));

    // The series drops: Prometheus resolves the alert and tells Faultline.
    target.set(0);
    wait_for("the alert to resolve in Faultline", || {
        (listed(&server, "FlagRaised").is_empty()
            && server.metric(r#"faultline_external_alerts{state="resolved"}"#) == Some(1.0))
        .then_some(())
    });
    assert_eq!(
        server.metric(r#"faultline_external_alerts{state="firing"}"#),
        Some(0.0)
    );
    resolved_counted(&server, "api");
}

/// Waits until a resolved alert from `source` is counted. Memory shows the alert resolved
/// before the request that brought it is durable, and only then is it counted.
fn resolved_counted(server: &Server, source: &str) {
    let series =
        format!(r#"faultline_alerts_received_total{{source="{source}",status="resolved"}}"#);
    wait_for(
        &format!("a resolved alert from {source} to be counted"),
        || (server.metric(&series).unwrap_or(0.0) >= 1.0).then_some(()),
    );
}

#[test]
fn an_alertmanager_forwards_its_alerts_by_webhook() {
    let dir = RulesDir::new(&[]);
    let server = Server::start(&dir, &[]);
    let am = Alertmanager::start(&format!(
        r#"
route:
  receiver: faultline
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: faultline
    webhook_configs:
      - url: http://{}/api/v1/alertmanager/webhook
        send_resolved: true
"#,
        server.addr
    ));

    amtool(
        &am.url,
        &[
            "alert",
            "add",
            "alertname=ForwardedDown",
            "instance=node7",
            "--annotation=summary=node7 is down",
        ],
    );
    let alert = wait_for("the forwarded alert in Faultline", || {
        listed(&server, "ForwardedDown").into_iter().next()
    });
    assert_eq!(
        alert["labels"],
        json!({"alertname": "ForwardedDown", "instance": "node7"})
    );
    assert_eq!(alert["annotations"]["summary"], "node7 is down");
    // The same alert in both: Alertmanager's fingerprint is Faultline's.
    let upstream = reqwest::blocking::get(format!("{}/api/v2/alerts", am.url))
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(upstream[0]["fingerprint"], alert["fingerprint"]);
    assert_eq!(upstream[0]["startsAt"], alert["startsAt"]);

    // Resolved upstream: Alertmanager notifies the resolution and Faultline resolves it.
    let now = faultline::model::time::rfc3339(faultline::model::time::now_ms());
    let resolved = json!([{"labels": {"alertname": "ForwardedDown", "instance": "node7"},
                           "startsAt": alert["startsAt"], "endsAt": now}]);
    let status = reqwest::blocking::Client::new()
        .post(format!("{}/api/v2/alerts", am.url))
        .header("Content-Type", "application/json")
        .body(resolved.to_string())
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    wait_for("the resolution in Faultline", || {
        (listed(&server, "ForwardedDown").is_empty()
            && server.metric(r#"faultline_external_alerts{state="resolved"}"#) == Some(1.0))
        .then_some(())
    });
    resolved_counted(&server, "webhook");
}
