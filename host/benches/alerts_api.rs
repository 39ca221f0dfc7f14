//! `GET /api/v2/alerts` with 10,000 alerts and 100 inhibit rules, as Alertmanager users
//! report it taking seconds: through the router (no socket), and the muting pass alone.
//! `python3 scripts/bench/run.py --only listing` times the same listing against a real
//! Alertmanager 0.25.
//! Also `POST /api/v2/alerts` intake, durable (each answer after its commit), with many
//! senders at once, one alert and a hundred alerts per request.
//!
//! `cargo bench -p faultline --bench alerts_api` (add `-- --quick` for a short run).

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use faultline::config::Config;
use faultline::ingest::alerts::PostableAlert;
use faultline::model::Labels;
use faultline::service::Service;
use tower::ServiceExt;

const ALERTS: usize = 10_000;
const RULES: usize = 100;

/// Alert `i`: one of 100 alert names on one of 100 hosts; one in seven is critical.
fn alert(i: usize) -> PostableAlert {
    let severity = if i.is_multiple_of(7) {
        "critical"
    } else {
        "warning"
    };
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
        generator_url: Some(format!(
            "http://prometheus:9090/graph?g0.expr=rule{}",
            i % 100
        )),
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
        Service::new(Config {
            rules_dir: rules,
            data_dir: dir.path().join("data"),
            ..Config::default()
        })
        .unwrap()
    });
    let app = faultline::server::app(svc.clone());
    // Posted as senders post them, a thousand per request (their memory is laid out as in
    // a running server, which matters to the listing's speed).
    rt.block_on(async {
        for from in (0..ALERTS).step_by(1000) {
            let req = Request::post("/api/v2/alerts")
                .header("content-type", "application/json")
                .body(Body::from(body(from, from + 1000)))
                .unwrap();
            assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
        }
    });
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
    let alerts = svc.external().alerts(faultline::model::time::now_ms());
    g.bench_function("muting_pass_10k_alerts_100_inhibit_rules", |b| {
        b.iter(|| {
            let now = faultline::model::time::now_ms();
            let muter = svc.muter(alerts.iter().map(|(_, a)| &**a), now);
            alerts
                .iter()
                .filter(|(_, a)| muter.is_muted(&a.labels))
                .count()
        })
    });
    g.finish();
}

/// The JSON body of a `POST /api/v2/alerts` with alerts `from..to`.
fn body(from: usize, to: usize) -> String {
    let alerts: Vec<serde_json::Value> = (from..to)
        .map(|i| {
            let a = alert(i);
            serde_json::json!({
                "labels": a.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "annotations": a.annotations.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "generatorURL": a.generator_url,
            })
        })
        .collect();
    serde_json::to_string(&alerts).unwrap()
}

fn intake(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    let svc = rt.block_on(async {
        Service::new(Config {
            rules_dir: dir.path().join("rules"),
            data_dir: dir.path().join("data"),
            ..Config::default()
        })
        .unwrap()
    });
    let app = faultline::server::app(svc);
    let mut g = c.benchmark_group("alerts_api");
    g.sample_size(20);
    // (alerts per request, requests per iteration, senders at once)
    for (per_request, requests, senders) in [(1, 512, 64), (100, 64, 16)] {
        let bodies: Arc<Vec<String>> = Arc::new(
            (0..requests)
                .map(|r| body(r * per_request, (r + 1) * per_request))
                .collect(),
        );
        g.throughput(Throughput::Elements((per_request * requests) as u64));
        let name = format!("post_api_v2_alerts_{per_request}_per_request_{senders}_senders");
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..senders)
                        .map(|s| {
                            let (app, bodies) = (app.clone(), bodies.clone());
                            tokio::spawn(async move {
                                for body in bodies.iter().skip(s).step_by(senders) {
                                    let req = Request::post("/api/v2/alerts")
                                        .header("content-type", "application/json")
                                        .body(Body::from(body.clone()))
                                        .unwrap();
                                    let resp = app.clone().oneshot(req).await.unwrap();
                                    assert_eq!(resp.status(), 200);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, listing, intake);
criterion_main!(benches);
