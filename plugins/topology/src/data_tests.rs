//! Data mode: health series, onsets and the causal ranking, on synthetic incidents.

use faultline_sdk::localizer::*;

use crate::Topology;

/// 2026-11-26T10:00:00Z: the series start here, one sample every 15 s for an hour.
const T0: i64 = 1_795_687_200_000;
const MIN: i64 = 60_000;
/// The alerts fire at 10:50; the call is at 10:55.
const ALERT: i64 = T0 + 50 * MIN;
const NOW: i64 = T0 + 55 * MIN;

/// Deterministic noise, roughly standard normal: the sum of 12 uniforms minus 6.
fn noise(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        (0..12)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .sum::<f64>()
            - 6.0
    }
}

/// An hour of samples: `base` plus `sd` × noise plus `extra(ms since T0)`.
fn points(seed: u64, base: f64, sd: f64, extra: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    let mut noise = noise(seed);
    (0..=240)
        .map(|i| {
            let t = T0 + i * 15_000;
            (t, base + sd * noise() + extra(t - T0))
        })
        .collect()
}

/// `size` from `at` (ms since T0) on.
fn step(at: i64, size: f64) -> impl Fn(i64) -> f64 {
    move |dt| if dt >= at { size } else { 0.0 }
}

fn flat(_: i64) -> f64 {
    0.0
}

fn labels(name: &str, service: &str, instance: &str) -> Labels {
    Labels::from([
        ("__name__", name),
        ("service", service),
        ("instance", instance),
    ])
}

const LATENCY: &str = "http_request_duration_seconds_p99";
const ERRORS: &str = "http_error_ratio";

fn incident(firing_services: &[&str]) -> Incident {
    Incident {
        id: "inc".into(),
        status: "firing".into(),
        alerts: firing_services
            .iter()
            .map(|&service| Alert {
                labels: Labels::from([("alertname", "HighErrorRate"), ("service", service)]),
                state: "firing".into(),
                active_at: ALERT,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A cascade frontend -> api -> db: db's node7 slows by ~8σ at 10:48:00; api's two
/// instances error (and slow) loudly from 10:48:40, frontend from 10:49:00. db's node8 is
/// healthy.
fn cascade(mut b: InputBuilder) -> InputBuilder {
    b = b
        .series(
            labels(LATENCY, "db", "node7"),
            &points(1, 0.05, 0.002, step(48 * MIN, 0.017)),
        )
        .series(
            labels(ERRORS, "db", "node7"),
            &points(2, 0.001, 0.0002, flat),
        )
        .series(
            labels(LATENCY, "db", "node8"),
            &points(3, 0.05, 0.002, flat),
        )
        .series(
            labels(ERRORS, "db", "node8"),
            &points(4, 0.001, 0.0002, flat),
        );
    for (i, node) in ["node2", "node3"].into_iter().enumerate() {
        let seed = 10 + 2 * i as u64;
        let at = 48 * MIN + 40_000;
        b = b
            .series(
                labels(ERRORS, "api", node),
                &points(seed, 0.01, 0.002, step(at, 0.2)),
            )
            .series(
                labels(LATENCY, "api", node),
                &points(seed + 1, 0.1, 0.01, step(at, 0.2)),
            );
    }
    b.series(
        labels(ERRORS, "frontend", "node1"),
        &points(20, 0.01, 0.002, step(49 * MIN, 0.3)),
    )
    .series(
        labels(LATENCY, "frontend", "node1"),
        &points(21, 0.3, 0.01, flat),
    )
}

const CHAIN: &str = r#"{"graph": {"frontend": ["api"], "api": ["db"], "db": []}}"#;

fn localize(rule: &mut Topology, alerts: &[&str], b: InputBuilder) -> Vec<Suspect> {
    let input = LocalizeInput::new(incident(alerts), b.now(NOW).build());
    let suspects = rule.localize(&input).unwrap();
    for s in &suspects {
        assert!(
            s.score.is_finite() && (0.0..=1.0).contains(&s.score),
            "{s:?}"
        );
        assert!(
            !s.reason.contains("NaN") && !s.reason.contains("inf"),
            "{s:?}"
        );
    }
    suspects
}

fn named(suspects: &[Suspect]) -> Vec<String> {
    suspects.iter().map(|s| s.labels.to_string()).collect()
}

fn score_of(suspects: &[Suspect], labels: &str) -> Option<f64> {
    suspects
        .iter()
        .find(|s| s.labels.to_string() == labels)
        .map(|s| s.score)
}

const DB7: &str = r#"{instance="node7", service="db"}"#;

/// The cascade's ranking, whatever the graph's source.
fn assert_db_node7_leads(suspects: &[Suspect]) {
    assert_eq!(named(suspects)[0], DB7, "{suspects:#?}");
    let top = &suspects[0];
    assert!(top.score > 0.6, "{top:?}");
    // A clear margin over the loud symptoms, which are explained away, not added up.
    assert!(
        suspects[1..].iter().all(|s| s.score <= 0.2),
        "{suspects:#?}"
    );
    assert!(
        top.reason
            .starts_with("db on node7: http_request_duration_seconds_p99 +"),
        "{}",
        top.reason
    );
    assert!(
        top.reason
            .contains("before its callers; api, frontend fail downstream of it")
    );
    // The healthy instance of the root service is not a suspect.
    assert_eq!(
        score_of(suspects, r#"{instance="node8", service="db"}"#),
        None
    );
    let api = suspects
        .iter()
        .find(|s| s.labels.get("service") == Some("api"))
        .unwrap();
    assert!(
        api.reason.contains("http_error_ratio +") && api.reason.contains("; explained by db ("),
        "{}",
        api.reason
    );
    let frontend = suspects
        .iter()
        .find(|s| s.labels.get("service") == Some("frontend"))
        .unwrap();
    assert!(
        frontend
            .reason
            .contains("explained by db via api (anomalous "),
        "{}",
        frontend.reason
    );
}

#[test]
fn a_cascade_blames_the_deepest_first_anomaly_not_the_loudest() {
    let mut rule = Topology::configure(CHAIN).unwrap();
    // The alerts name only the loud callers: db never alerted.
    let suspects = localize(&mut rule, &["api", "frontend"], cascade(Input::builder()));
    assert_db_node7_leads(&suspects);
    // Every anomalous entity is returned: db node7, api node2 and node3, frontend node1.
    assert_eq!(suspects.len(), 4, "{suspects:#?}");
    let top = &suspects[0];
    // The onset is at the step (10:48:00), give or take a sample of noise.
    assert!(
        top.reason.contains("since 10:48:00") || top.reason.contains("since 10:47:45"),
        "{}",
        top.reason
    );
    // 8.5σ: c = 1 - exp(-6.5 / 4) ≈ 0.8.
    assert!((0.7..0.9).contains(&top.score), "{top:?}");
}

#[test]
fn a_leaf_root_cause_is_the_caller_itself() {
    let mut rule = Topology::configure(CHAIN).unwrap();
    let b = Input::builder()
        .series(
            labels(LATENCY, "frontend", "node1"),
            &points(1, 0.3, 0.01, step(48 * MIN, 0.1)),
        )
        .series(
            labels(ERRORS, "frontend", "node1"),
            &points(2, 0.01, 0.002, step(48 * MIN, 0.05)),
        )
        .series(labels(LATENCY, "api", "node2"), &points(3, 0.1, 0.01, flat))
        .series(
            labels(ERRORS, "api", "node2"),
            &points(4, 0.01, 0.002, flat),
        )
        .series(
            labels(LATENCY, "db", "node7"),
            &points(5, 0.05, 0.002, flat),
        );
    let suspects = localize(&mut rule, &["frontend"], b);
    assert_eq!(
        named(&suspects),
        [r#"{instance="node1", service="frontend"}"#]
    );
    assert!(suspects[0].score > 0.9, "{suspects:?}");
    assert!(
        suspects[0]
            .reason
            .ends_with("; no anomalous service depends on it; its dependencies (api) are healthy"),
        "{}",
        suspects[0].reason
    );
}

/// Service-graph edges, as counters.
fn edges(b: InputBuilder, name: &str, keys: (&str, &str), pairs: &[(&str, &str)]) -> InputBuilder {
    pairs.iter().fold(b, |b, &(client, server)| {
        let samples: Vec<(i64, f64)> = (0..=240)
            .map(|i| (T0 + i * 15_000, 100.0 * i as f64))
            .collect();
        b.series(
            Labels::from([("__name__", name), (keys.0, client), (keys.1, server)]),
            &samples,
        )
    })
}

const CALLS: &[(&str, &str)] = &[("frontend", "api"), ("api", "db")];

#[test]
fn the_graph_comes_from_tempo_service_graph_series() {
    let mut rule =
        Topology::configure(r#"{"label": "service", "instance_label": "instance"}"#).unwrap();
    let b = edges(
        cascade(Input::builder()),
        "traces_service_graph_request_total",
        ("client", "server"),
        CALLS,
    );
    assert_db_node7_leads(&localize(&mut rule, &["api", "frontend"], b));
}

#[test]
fn the_graph_comes_from_istio_series_and_is_rebuilt_at_each_call() {
    let mut rule = Topology::configure("{}").unwrap();
    let with_edges = edges(
        cascade(Input::builder()),
        "istio_requests_total",
        ("source_workload", "destination_workload"),
        CALLS,
    );
    assert_db_node7_leads(&localize(&mut rule, &["api"], with_edges));
    // The same rule, the edges gone: nothing explains anything away any more, and the
    // loudest anomalies (frontend's and api's errors, which started later) no longer score
    // as symptoms.
    let suspects = localize(&mut rule, &["api"], cascade(Input::builder()));
    assert!(suspects.iter().all(|s| !s.reason.contains("explained by")));
    assert!(score_of(&suspects, r#"{instance="node1", service="frontend"}"#).unwrap() > 0.2);
}

#[test]
fn a_permanently_noisy_instance_is_not_blamed() {
    let mut rule = Topology::configure(CHAIN).unwrap();
    // api's node4 always errors at 40%: its own alert fires all the time.
    let b = cascade(Input::builder())
        .series(labels(ERRORS, "api", "node4"), &points(30, 0.4, 0.02, flat))
        .series(
            labels(LATENCY, "api", "node4"),
            &points(31, 0.1, 0.01, flat),
        );
    let suspects = localize(&mut rule, &["api"], b);
    assert_db_node7_leads(&suspects);
    assert_eq!(
        score_of(&suspects, r#"{instance="node4", service="api"}"#),
        None
    );
}

#[test]
fn independent_equal_roots_score_alike() {
    let graph = r#"{"graph": {"frontend": ["cache", "db"], "cache": [], "db": []}}"#;
    let mut rule = Topology::configure(graph).unwrap();
    // Same noise and the same 8σ step at the same time: nothing tells them apart.
    let b = Input::builder()
        .series(
            labels(LATENCY, "cache", "node5"),
            &points(1, 0.05, 0.002, step(48 * MIN, 0.016)),
        )
        .series(
            labels(LATENCY, "db", "node7"),
            &points(1, 0.05, 0.002, step(48 * MIN, 0.016)),
        )
        .series(
            labels(ERRORS, "frontend", "node1"),
            &points(2, 0.01, 0.002, step(49 * MIN, 0.3)),
        );
    let suspects = localize(&mut rule, &["frontend"], b);
    let top: Vec<&str> = suspects[..2]
        .iter()
        .map(|s| s.labels.get("service").unwrap())
        .collect();
    assert_eq!(top, ["cache", "db"], "{suspects:#?}");
    assert!(
        (suspects[0].score - suspects[1].score).abs() < 0.02,
        "{suspects:#?}"
    );
    assert!(suspects[1].score > 0.5);
    assert!(suspects[2].score <= 0.2, "{suspects:#?}");
    assert_eq!(suspects[2].labels.get("service"), Some("frontend"));
}

#[test]
fn zero_variance_baselines_stay_finite() {
    let mut rule = Topology::configure(CHAIN).unwrap();
    let constant = |value: f64, extra: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..=240)
            .map(|i| (T0 + i * 15_000, value + extra(i * 15_000)))
            .collect()
    };
    let b = Input::builder()
        .series(
            labels(LATENCY, "db", "node7"),
            &constant(0.05, &step(48 * MIN, 0.03)),
        )
        .series(labels(ERRORS, "db", "node7"), &constant(0.0, &flat))
        .series(
            labels(ERRORS, "api", "node2"),
            &constant(0.0, &step(48 * MIN + 30_000, 0.2)),
        )
        .series(labels(ERRORS, "frontend", "node1"), &constant(0.0, &flat))
        .series(labels(LATENCY, "frontend", "node1"), &constant(0.3, &flat));
    // `localize` checks every score is finite and in [0, 1], and no reason shows NaN or inf.
    let suspects = localize(&mut rule, &["api"], b);
    assert_eq!(
        named(&suspects),
        [DB7, r#"{instance="node2", service="api"}"#],
        "{suspects:#?}"
    );
    assert!(
        suspects[0].reason.contains("since 10:48:00"),
        "{}",
        suspects[0].reason
    );
}

#[test]
fn a_slow_leak_is_dated_from_where_its_ramp_begins() {
    let mut rule = Topology::configure(CHAIN).unwrap();
    // db's memory grows by 4 MB a minute from 10:30 (2σ a minute); its callers only fail
    // from 10:47, when memory runs short.
    let leak = |dt: i64| (dt - 30 * MIN).max(0) as f64 / MIN as f64 * 4e6;
    let b = Input::builder()
        .series(
            labels("process_resident_memory_bytes", "db", "node7"),
            &points(1, 5e8, 2e6, leak),
        )
        .series(
            labels(LATENCY, "db", "node7"),
            &points(2, 0.05, 0.002, flat),
        )
        .series(
            labels(ERRORS, "api", "node2"),
            &points(3, 0.01, 0.002, step(47 * MIN, 0.2)),
        )
        .series(
            labels(ERRORS, "frontend", "node1"),
            &points(4, 0.01, 0.002, step(47 * MIN, 0.3)),
        );
    let suspects = localize(&mut rule, &["api", "frontend"], b);
    assert_eq!(named(&suspects)[0], DB7, "{suspects:#?}");
    let reason = &suspects[0].reason;
    assert!(
        reason.starts_with("db on node7: process_resident_memory_bytes +"),
        "{reason}"
    );
    // The ramp passes k = 0.5σ within a minute of its start.
    assert!(
        reason.contains("since 10:30:") || reason.contains("since 10:31:"),
        "{reason}"
    );
    assert!(
        suspects[1..].iter().all(|s| s.score <= 0.2),
        "{suspects:#?}"
    );
}
