//! Benchmarks of the Wasm data path: a threshold detector called over 1, 100 and 10,000
//! series; instantiation from the pre-instantiated component; compiling a component cold
//! versus loading it from the on-disk cache; and one evaluation cycle of 10 rules over
//! 100,000 series (the cycle Prometheus 2.42 takes ~6 s for on this machine size).
//!
//! Needs the plugins built (`make plugins`); run with `make bench` or
//! `cargo bench -p faultline --bench runtime`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use faultline::db::Db;
use faultline::model::{Labels, Sample, SeriesSamples};
use faultline::rules::selector::Selector;
use faultline::runtime::instance::{Instance, Selection};
use faultline::runtime::{
    Grants, HostContext, Identity, Limits, Plugin, Runtime, RuntimeConfig, World,
};
use faultline::store::{MatchCache, Store, StoreLimits};

fn threshold_wasm() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/plugin/threshold.wasm");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `make plugins`)", p.display()))
}

fn runtime(cache: Option<PathBuf>) -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: cache,
        max_instances: 64,
        max_memory: 256 << 20,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn instance(plugin: &Arc<Plugin>, db: &Db) -> Instance {
    let ctx = HostContext {
        identity: Identity {
            rule: "bench/threshold".into(),
            plugin: "threshold".into(),
        },
        rule: Default::default(),
        state_scope: "bench".into(),
        db: db.clone(),
        grants: Grants::default(),
        io: None,
        http: reqwest::Client::new(),
        connections: Default::default(),
    };
    Instance::new(
        plugin.clone(),
        ctx,
        Limits::default(),
        r#"{"above": 0.9}"#.into(),
    )
    .unwrap()
}

/// A store with `n` series of `metric`, one sample each at t=1000, every tenth above 0.9.
fn store_with(metric: &str, n: usize, store: &Store) {
    let batch = (0..n)
        .map(|i| SeriesSamples {
            labels: Labels::from_pairs([
                ("__name__", metric.to_string()),
                ("instance", format!("node{i}")),
                ("job", "node".to_string()),
            ]),
            samples: vec![Sample {
                ts: 1000,
                value: if i % 10 == 0 { 1.0 } else { 0.5 },
            }],
        })
        .collect();
    store.append(batch);
}

fn detector_call(c: &mut Criterion) {
    let rt = runtime(None);
    let plugin = rt
        .load_bytes("threshold", &threshold_wasm(), World::Detector)
        .unwrap();
    let db = Db::in_memory().unwrap();
    let mut g = c.benchmark_group("detector_call");
    for n in [1usize, 100, 10_000] {
        let store = Store::new(StoreLimits::default());
        store_with("load", n, &store);
        let sel = Selector::parse("load").unwrap();
        let mut cache = MatchCache::default();
        let mut selection = Selection::default();
        store.select(
            std::slice::from_ref(&sel),
            None,
            &[],
            Duration::ZERO,
            2000,
            &mut cache,
            &mut selection,
        );
        let mut inst = instance(&plugin, &db);
        // The first call sends every series' labels; measure the steady state after it.
        let first = inst.evaluate(2000, &mut selection).unwrap();
        assert_eq!(first.len(), n.div_ceil(10));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("threshold", n), &n, |b, _| {
            b.iter(|| inst.evaluate(2000, &mut selection).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("select_and_threshold", n), &n, |b, _| {
            b.iter(|| {
                store.select(
                    std::slice::from_ref(&sel),
                    None,
                    &[],
                    Duration::ZERO,
                    2000,
                    &mut cache,
                    &mut selection,
                );
                inst.evaluate(2000, &mut selection).unwrap()
            })
        });
    }
    g.finish();
}

fn instantiation(c: &mut Criterion) {
    let rt = runtime(None);
    let plugin = rt
        .load_bytes("threshold", &threshold_wasm(), World::Detector)
        .unwrap();
    let db = Db::in_memory().unwrap();
    c.bench_function("instantiate_and_configure", |b| {
        b.iter(|| instance(&plugin, &db))
    });
}

fn compile(c: &mut Criterion) {
    let wasm = threshold_wasm();
    let mut g = c.benchmark_group("load_component");
    g.sample_size(10);
    let cold = runtime(None);
    g.bench_function("compile_cold", |b| {
        b.iter(|| {
            cold.load_bytes("threshold", &wasm, World::Detector)
                .unwrap()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let cached = runtime(Some(dir.path().to_path_buf()));
    assert!(
        !cached
            .load_bytes("threshold", &wasm, World::Detector)
            .unwrap()
            .cached
    );
    g.bench_function("from_cache", |b| {
        b.iter(|| {
            let p = cached
                .load_bytes("threshold", &wasm, World::Detector)
                .unwrap();
            assert!(p.cached);
            p
        })
    });
    g.finish();
}

fn cycle(c: &mut Criterion) {
    let rt = runtime(None);
    let plugin = rt
        .load_bytes("threshold", &threshold_wasm(), World::Detector)
        .unwrap();
    let db = Db::in_memory().unwrap();
    let store = Store::new(StoreLimits::default());
    // 10 metrics of 10,000 series each: 100,000 series; each rule selects one metric.
    let mut rules = Vec::new();
    for m in 0..10 {
        let name = format!("metric_{m}");
        store_with(&name, 10_000, &store);
        rules.push((
            Selector::parse(&name).unwrap(),
            MatchCache::default(),
            Selection::default(),
            instance(&plugin, &db),
        ));
    }
    let mut g = c.benchmark_group("cycle");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("10_rules_100k_series", |b| {
        b.iter(|| {
            let mut findings = 0;
            for (sel, cache, selection, inst) in rules.iter_mut() {
                store.select(
                    std::slice::from_ref(sel),
                    None,
                    &[],
                    Duration::ZERO,
                    2000,
                    cache,
                    selection,
                );
                findings += inst.evaluate(2000, selection).unwrap().len();
            }
            assert_eq!(findings, 10_000);
        })
    });
    g.finish();
}

criterion_group!(benches, detector_call, instantiation, compile, cycle);
criterion_main!(benches);
