//! `GET /api/v2/alerts` with 10,000 alerts and 100 inhibit rules, as Alertmanager users
//! report it taking seconds: through the router (no socket), and the muting pass alone.
//! `scripts/bench-am-listing.sh` times the same listing against a real Alertmanager 0.25.
//!
//! `cargo bench -p faultline --bench alerts_api` (add `-- --quick` for a short run).

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use faultline::config::Config;
use faultline::ingest::alerts::PostableAlert;
use faultline::model::Labels;
use faultline::service::Service;
use tower::ServiceExt;

const ALERTS: usize = 10_000;
const RULES: usize = 100;

/// Alert `i`: one of 100 alert names on one of 100 hosts; one in seven is critical.
fn alert(i: usize) -> PostableAlert {
    let severity = if i % 7 == 0 { "critical" } else { "warning" };
    PostableAlert {
        labels: Labels::from_pairs([
            ("alertname", format!("Alert{}", i % 100)),
            ("env", "prod".to_string()),
            ("instance", format!("host{}:9100", i / 100)),
            ("job", "node".to_string()),
            ("severity", severity.to_string()),
        ]),
        annotations: Labels::from_pairs([(
            "summary",
            format!("Alert{} on host{}", i % 100, i / 100),
        )]),
        starts_at: None,
        ends_at: None,
        generator_url: Some(format!("http://prometheus:9090/graph?g0.expr=rule{}", i % 100)),
    }
}

/// Rule `r`: a critical `Alert{r}` inhibits warnings `Alert{r+1}` of the same instance.
fn inhibit_rules() -> String {
    (0..RULES)
        .map(|r| {
            format!(
                "[[inhibit]]\nsource_matchers = ['alertname=\"Alert{r}\"', 'severity=\"critical\"']\n\
                 target_matchers = ['alertname=\"Alert{}\"', 'severity=\"warning\"']\nequal = [\"instance\"]\n\n",
                (r + 1) % 100
            )
        })
        .collect()
}

fn listing(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("inhibit.toml"), inhibit_rules()).unwrap();
    let svc: Arc<Service> = rt.block_on(async {
        let svc = Service::new(Config {
            rules_dir: rules,
            data_dir: dir.path().join("data"),
            ..Config::default()
        })
        .unwrap();
        svc.external
            .receive(
                (0..ALERTS).map(alert).collect(),
                faultline::now_ms(),
                std::time::Duration::from_secs(3600),
            )
            .await
            .unwrap();
        svc
    });
    let app = faultline::server::app(svc.clone());
    let get = |app: axum::Router| async move {
        let resp = app
            .oneshot(Request::get("/api/v2/alerts").body(Body::empty()).unwrap())
            .await
            .unwrap();
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
    };
    let body = rt.block_on(get(app.clone()));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    let inhibited = listed
        .iter()
        .filter(|a| !a["status"]["inhibitedBy"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(listed.len(), ALERTS);
    eprintln!(
        "{} alerts listed ({} inhibited), {} KiB",
        listed.len(),
        inhibited,
        body.len() / 1024
    );

    let mut g = c.benchmark_group("alerts_api");
    g.sample_size(20);
    g.bench_function("get_api_v2_alerts_10k_alerts_100_inhibit_rules", |b| {
        b.iter(|| rt.block_on(get(app.clone())))
    });
    let alerts = svc.external.alerts(faultline::now_ms());
    g.bench_function("muting_pass_10k_alerts_100_inhibit_rules", |b| {
        b.iter(|| {
            let now = faultline::now_ms();
            let muter = svc.muter(alerts.iter(), now);
            alerts
                .iter()
                .filter(|a| muter.is_muted(&a.labels))
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, listing);
criterion_main!(benches);
