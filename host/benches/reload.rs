//! Reload latency: loading a rules directory of 10 rules again and swapping it in, with the
//! compiled plugin in the on-disk cache (the usual case: a rule file edited) and without it
//! (a new plugin version: compiled once). The file watcher adds its 250 ms debounce on top.
//!
//! Needs the plugins built (`make plugins`); run with `cargo bench -p faultline --bench reload`.

use std::path::PathBuf;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use faultline::config::Config;
use faultline::service::Service;

fn setup() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("plugins")).unwrap();
    let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/plugin/threshold.wasm");
    std::fs::copy(&wasm, rules.join("plugins/threshold.wasm"))
        .unwrap_or_else(|e| panic!("{}: {e} (run `make plugins`)", wasm.display()));
    let mut text = String::from("[[group]]\nname = \"g\"\ninterval = \"1h\"\n");
    for i in 0..10 {
        text.push_str(&format!(
            "\n[[group.rule]]\nname = \"R{i}\"\nplugin = \"threshold\"\nselect = 'm{i}{{job=\"x\"}}'\nparams = {{ above = {i} }}\n"
        ));
    }
    std::fs::write(rules.join("r.toml"), text).unwrap();
    let config = Config {
        rules_dir: rules,
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    (dir, config)
}

fn reload(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_dir, config) = setup();
    let cache = config.data_dir.join("cache");
    let svc = rt.block_on(async { Service::new(config).unwrap() });
    let mut g = c.benchmark_group("reload_10_rules");
    g.sample_size(10);
    g.bench_function("compile_cache_warm", |b| {
        b.iter(|| rt.block_on(svc.reload()).unwrap())
    });
    g.bench_function("compile_cache_cold", |b| {
        b.iter_batched(
            || {
                for e in std::fs::read_dir(&cache).unwrap() {
                    std::fs::remove_file(e.unwrap().path()).unwrap();
                }
            },
            |()| rt.block_on(svc.reload()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
