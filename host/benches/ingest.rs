//! Ingestion throughput on one core: samples per second for exposition text and for
//! remote_write, log lines per second for Loki JSON and protobuf pushes, each parsed alone
//! and parsed then appended to the store (as the HTTP handlers do).
//!
//! `cargo bench -p faultline --bench ingest` (add `-- --quick` for a short run). Criterion
//! reports the rate as `thrpt` in elements per second: samples or log lines.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use faultline::ingest::remote_write::proto as rw;
use faultline::ingest::{Limits, exposition, loki, remote_write, unsnappy};
use faultline::store::{Store, StoreLimits};
use prost::Message;

/// Series (or log lines) per request: Prometheus 2.42 sends up to 2,000 samples per
/// remote_write request by default.
const PER_REQUEST: usize = 2_000;

/// The labels of series `i`: node_exporter-like, five labels with the name.
fn series_labels(i: usize) -> [(&'static str, String); 5] {
    [
        ("__name__", format!("node_metric_{}_total", i % 50)),
        ("cpu", (i / 50 % 8).to_string()),
        ("instance", format!("host-{}:9100", i / 400)),
        ("job", "node".to_string()),
        (
            "mode",
            ["idle", "user", "system", "iowait"][i % 4].to_string(),
        ),
    ]
}

/// An exposition text body of `PER_REQUEST` samples, stamped `ts`.
fn exposition_body(ts: i64) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..PER_REQUEST {
        let l = series_labels(i);
        s.push_str(&format!(
            "{}{{cpu=\"{}\",instance=\"{}\",job=\"{}\",mode=\"{}\"}} {} {ts}\n",
            l[0].1,
            l[1].1,
            l[2].1,
            l[3].1,
            l[4].1,
            i as f64 * 1.25
        ));
    }
    s.into_bytes()
}

/// A remote_write request of `PER_REQUEST` series with one sample each, stamped `ts`.
fn remote_write_body(ts: i64) -> Vec<u8> {
    let req = rw::WriteRequest {
        timeseries: (0..PER_REQUEST)
            .map(|i| rw::TimeSeries {
                labels: series_labels(i)
                    .into_iter()
                    .map(|(name, value)| rw::Label {
                        name: name.to_string(),
                        value,
                    })
                    .collect(),
                samples: vec![rw::Sample {
                    value: i as f64 * 1.25,
                    timestamp: ts,
                }],
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

/// 20 streams of 100 lines each (`PER_REQUEST` lines), from `ts_ms` on.
fn log_lines(ts_ms: i64) -> Vec<(String, Vec<(i64, String)>)> {
    (0..20)
        .map(|s| {
            let labels = format!(
                "{{app=\"api\", instance=\"web-{s}\", level=\"{}\"}}",
                ["info", "error"][s % 2]
            );
            let lines = (0..PER_REQUEST / 20)
                .map(|e| {
                    (
                        (ts_ms + e as i64) * 1_000_000,
                        format!(
                            "GET /api/v1/orders/{e} status={} duration_ms={} user=u{s}",
                            [200, 500][e % 2],
                            e * 3
                        ),
                    )
                })
                .collect();
            (labels, lines)
        })
        .collect()
}

fn loki_json_body(ts_ms: i64) -> Vec<u8> {
    let streams: Vec<serde_json::Value> = log_lines(ts_ms)
        .into_iter()
        .map(|(labels, lines)| {
            let stream: serde_json::Map<String, serde_json::Value> = loki::parse_selector(&labels)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect();
            let values: Vec<serde_json::Value> = lines
                .into_iter()
                .map(|(ns, line)| serde_json::json!([ns.to_string(), line]))
                .collect();
            serde_json::json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "streams": streams })).unwrap()
}

fn loki_protobuf_body(ts_ms: i64) -> Vec<u8> {
    let req = loki::proto::PushRequest {
        streams: log_lines(ts_ms)
            .into_iter()
            .map(|(labels, lines)| loki::proto::StreamAdapter {
                labels,
                entries: lines
                    .into_iter()
                    .map(|(ns, line)| loki::proto::EntryAdapter {
                        timestamp: Some(loki::proto::Timestamp {
                            seconds: ns / 1_000_000_000,
                            nanos: (ns % 1_000_000_000) as i32,
                        }),
                        line,
                        structured_metadata: vec![],
                    })
                    .collect(),
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

/// Each iteration gets a body stamped later than the previous one, so that appends are
/// never dropped as out of order; building it is not measured.
fn stamped(make: fn(i64) -> Vec<u8>) -> impl FnMut() -> Vec<u8> {
    let mut ts = 1_700_000_000_000i64;
    move || {
        ts += 15_000;
        make(ts)
    }
}

fn samples(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("samples");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));

    let body = exposition_body(1_700_000_000_000);
    g.bench_function("exposition_text/parse", |b| {
        b.iter(|| exposition::parse_text(&body, 0, &[], &limits).unwrap())
    });
    let store = Store::new(StoreLimits::default());
    g.bench_function("exposition_text/parse+append", |b| {
        b.iter_batched(
            stamped(exposition_body),
            |body| store.append(exposition::parse_text(&body, 0, &[], &limits).unwrap()),
            BatchSize::SmallInput,
        )
    });

    let body = remote_write_body(1_700_000_000_000);
    g.bench_function("remote_write/decode", |b| {
        b.iter(|| {
            let raw = unsnappy(&body, &limits).unwrap();
            remote_write::decode(&raw, &limits).unwrap().sample_count()
        })
    });
    let store = Store::new(StoreLimits::default());
    g.bench_function("remote_write/decode+append", |b| {
        b.iter_batched(
            stamped(remote_write_body),
            |body| {
                let raw = unsnappy(&body, &limits).unwrap();
                store.append_batch(&remote_write::decode(&raw, &limits).unwrap())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn log_lines_per_second(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("log_lines");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));

    let body = loki_json_body(1_700_000_000_000);
    g.bench_function("loki_json/decode", |b| {
        b.iter(|| loki::decode_json(&body, &limits).unwrap())
    });
    let store = Store::new(StoreLimits::default());
    g.bench_function("loki_json/decode+append", |b| {
        b.iter_batched(
            stamped(loki_json_body),
            |body| store.append_logs(loki::decode_json(&body, &limits).unwrap()),
            BatchSize::SmallInput,
        )
    });

    let body = loki_protobuf_body(1_700_000_000_000);
    g.bench_function("loki_protobuf/decode", |b| {
        b.iter(|| loki::decode_protobuf(&body, &limits).unwrap())
    });
    let store = Store::new(StoreLimits::default());
    g.bench_function("loki_protobuf/decode+append", |b| {
        b.iter_batched(
            stamped(loki_protobuf_body),
            |body| store.append_logs(loki::decode_protobuf(&body, &limits).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, samples, log_lines_per_second);
criterion_main!(benches);
