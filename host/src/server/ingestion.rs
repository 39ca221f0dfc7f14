//! The ingestion endpoints: Prometheus remote_write 1.0, NDJSON logs, Loki push and the
//! Elasticsearch bulk API (in [`elasticsearch`], with the rest of the Elasticsearch API that
//! shippers call first). Each reads the body within the size limit, decodes it with its parser
//! in [`crate::ingest`], appends to the store and counts what it accepted or refused on
//! `/metrics`.
//!
//! Status codes are the ones senders act on: 204 when accepted (as Prometheus's receiver and
//! Loki answer; the bulk API answers 200 with its items), the parser's 400 / 413 / 415 for a
//! body that must not be retried, never a 5xx for a client's mistake. Appending to the store
//! cannot fail, so there is no transient failure of ours to answer 5xx for yet.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::routing::post;

use super::{ApiError, body, header_str, ingest_limits};
use crate::ingest::{self, IngestError};
use crate::service::Service;

pub(super) mod elasticsearch;

/// The ingestion routes, merged into [`super::app`].
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/api/v1/write", post(remote_write))
        .route("/api/v1/logs", post(logs_ndjson))
        .route("/loki/api/v1/push", post(loki_push))
        .merge(elasticsearch::routes())
}

/// Copies the store's counts of dropped data into `faultline_dropped_total{reason}`.
pub fn export_dropped(svc: &Service) {
    let d = &svc.store().dropped;
    for (reason, n) in [
        ("series_limit", &d.series_limit),
        ("stream_limit", &d.stream_limit),
        ("out_of_order", &d.out_of_order),
        ("duplicate", &d.duplicate),
        ("too_old", &d.too_old),
        ("records_per_stream", &d.records_per_stream),
    ] {
        svc.metrics().set(
            "faultline_dropped_total",
            &[("reason", reason)],
            n.load(Ordering::Relaxed) as f64,
        );
    }
}

/// A request's body and the two headers that select its format, read within the limit.
struct Received {
    content_type: Option<String>,
    content_encoding: Option<String>,
    body: bytes::Bytes,
}

/// Reads a request; a body over the limit is counted as refused with 413.
async fn receive(svc: &Service, source: &str, req: Request) -> Result<Received, ApiError> {
    let h = req.headers();
    let content_type = header_str(h, header::CONTENT_TYPE).map(str::to_string);
    let content_encoding = header_str(h, header::CONTENT_ENCODING).map(str::to_string);
    let body = body(svc, req.into_body())
        .await
        .inspect_err(|e| reject(svc, source, e.status.as_u16()))?;
    Ok(Received {
        content_type,
        content_encoding,
        body,
    })
}

fn reject(svc: &Service, source: &str, code: u16) {
    svc.metrics().inc(
        "faultline_ingest_rejected_total",
        &[("source", source), ("code", &code.to_string())],
    );
}

/// Counts a parser's refusal and turns it into the answer.
fn refused(svc: &Service, source: &str) -> impl FnOnce(IngestError) -> ApiError {
    move |e| {
        reject(svc, source, e.status());
        tracing::debug!(source, "ingest refused: {e}");
        ApiError::from(e)
    }
}

/// `POST /api/v1/write`: a snappy-compressed protobuf `prometheus.WriteRequest`. Requests
/// that carry only metadata are accepted and store nothing. Staleness markers are stored as
/// they come and end their series for selection.
async fn remote_write(
    State(svc): State<Arc<Service>>,
    req: Request,
) -> Result<StatusCode, ApiError> {
    const SOURCE: &str = "remote_write";
    let r = receive(&svc, SOURCE, req).await?;
    let n = append_remote_write(&svc, &r).map_err(refused(&svc, SOURCE))?;
    svc.metrics().add(
        "faultline_samples_ingested_total",
        &[("source", SOURCE)],
        n as f64,
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Decodes a remote_write request into the store: how many samples it held. The series'
/// labels are borrowed from the decompressed body, which lives as long as this call.
fn append_remote_write(svc: &Service, r: &Received) -> Result<usize, ingest::IngestError> {
    let limits = ingest_limits(svc);
    let (ct, ce) = (r.content_type.as_deref(), r.content_encoding.as_deref());
    let raw = ingest::remote_write::unpack(ct, ce, &r.body, &limits)?;
    let series = ingest::remote_write::decode(&raw, &limits)?;
    svc.store().append_batch(&series);
    Ok(series.sample_count())
}

/// `POST /api/v1/logs`: newline-delimited JSON records (plain or gzip), sent as
/// `application/x-ndjson` or `application/json`; records without a timestamp are stamped with
/// the time of receipt.
async fn logs_ndjson(
    State(svc): State<Arc<Service>>,
    req: Request,
) -> Result<StatusCode, ApiError> {
    const SOURCE: &str = "ndjson";
    super::require(req.headers(), &["application/x-ndjson", "application/json"])
        .inspect_err(|e| reject(&svc, SOURCE, e.status.as_u16()))?;
    let r = receive(&svc, SOURCE, req).await?;
    let limits = ingest_limits(&svc);
    let records = ingest::decode_content_encoding(r.content_encoding.as_deref(), &r.body, &limits)
        .and_then(|body| ingest::ndjson::parse(&body, crate::model::time::now_ms(), &limits))
        .map_err(refused(&svc, SOURCE))?;
    append_logs(&svc, SOURCE, records);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /loki/api/v1/push`: Loki's JSON or snappy-compressed protobuf push, told apart by
/// Content-Type as Loki does (winston-loki sends protobuf without Content-Encoding).
async fn loki_push(State(svc): State<Arc<Service>>, req: Request) -> Result<StatusCode, ApiError> {
    const SOURCE: &str = "loki";
    let r = receive(&svc, SOURCE, req).await?;
    let records = ingest::loki::decode(
        r.content_type.as_deref(),
        r.content_encoding.as_deref(),
        &r.body,
        &ingest_limits(&svc),
    )
    .map_err(refused(&svc, SOURCE))?;
    append_logs(&svc, SOURCE, records);
    Ok(StatusCode::NO_CONTENT)
}

fn append_logs(svc: &Service, source: &str, records: Vec<crate::model::LogRecord>) {
    let n = records.len();
    svc.store().append_logs(records);
    svc.metrics().add(
        "faultline_log_records_ingested_total",
        &[("source", source)],
        n as f64,
    );
}

#[cfg(test)]
pub(super) mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::ingest::testing::{fixture, headers, remote_write_request, snappy, snappy_bomb};
    use crate::model::STALE_NAN_BITS;
    use crate::rules::selector::LogSelector;
    use crate::runtime::instance::Selection;
    use crate::store::MatchCache;

    /// A service with no rules in a temporary directory.
    pub(super) fn service() -> (Arc<Service>, tempfile::TempDir) {
        service_with(Config::default())
    }

    /// A service with `config`, no rules, and its directories in a temporary one.
    pub(in crate::server) fn service_with(config: Config) -> (Arc<Service>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let svc = Service::new(Config {
            rules_dir: dir.path().join("rules"),
            data_dir: dir.path().join("data"),
            ..config
        })
        .unwrap();
        (svc, dir)
    }

    /// POSTs `body` with `headers` to the app; the status and the response body.
    async fn post(
        svc: &Arc<Service>,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = Request::post(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = crate::server::app(svc.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The headers a captured request was sent with (Content-Type, Content-Encoding and,
    /// for remote_write, the protocol version).
    fn captured(path: &str) -> Vec<(&'static str, String)> {
        let (ct, ce) = headers(path);
        let mut h = Vec::new();
        h.extend(ct.map(|v| ("content-type", v)));
        h.extend(ce.map(|v| ("content-encoding", v)));
        h
    }

    fn as_refs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        h.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    const NDJSON: [(&str, &str); 1] = [("content-type", "application/x-ndjson")];

    const REMOTE_WRITE: [(&str, &str); 3] = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ];

    /// The log lines a log selector picks in the hour before `now`.
    pub(super) fn lines(svc: &Service, selector: &str, now: i64) -> Vec<String> {
        let mut out = Selection::default();
        svc.store().select(
            &[],
            None,
            &[LogSelector::parse(selector).unwrap()],
            std::time::Duration::from_secs(3600),
            now,
            &mut MatchCache::default(),
            &mut out,
        );
        out.logs.into_iter().map(|r| r.line).collect()
    }

    fn metric(svc: &Service, name: &'static str, labels: &[(&str, &str)]) -> Option<f64> {
        svc.metrics().get(name, labels)
    }

    /// A remote_write request of one series `{__name__="m", job="j"}` with these samples.
    fn write_request(samples: &[(f64, i64)]) -> Vec<u8> {
        remote_write_request(&[(&[("__name__", "m"), ("job", "j")], samples)])
    }

    #[tokio::test]
    async fn prometheus_remote_write_fixtures_are_stored() {
        let (svc, _dir) = service();
        let h = captured("prometheus-2.42/remote-write.headers.txt");
        assert_eq!(
            h,
            [
                ("content-type", "application/x-protobuf".to_string()),
                ("content-encoding", "snappy".to_string())
            ]
        );
        for name in [
            "remote-write-series.snappy.pb",
            "remote-write-large.snappy.pb",
        ] {
            let body = fixture(&format!("prometheus-2.42/{name}"));
            let (status, text) = post(&svc, "/api/v1/write", &as_refs(&h), body).await;
            assert_eq!((status, text.as_str()), (204, ""), "{name}");
        }
        assert_eq!(
            svc.store().instant(r#"node_load1{job="node"}"#, 1795684994458),
            [(
                r#"{__name__="node_load1", env="peertest", instance="127.0.0.1:19100", job="node"}"#
                    .to_string(),
                1.57
            )]
        );
        assert!(svc.store().series_count() >= 200);
        let ingested = metric(
            &svc,
            "faultline_samples_ingested_total",
            &[("source", "remote_write")],
        )
        .unwrap();
        assert!(ingested >= 200.0, "{ingested}");
    }

    #[tokio::test]
    async fn metadata_only_requests_are_accepted() {
        let (svc, _dir) = service();
        let body = fixture("prometheus-2.42/remote-write-metadata-only.snappy.pb");
        let (status, _) = post(&svc, "/api/v1/write", &REMOTE_WRITE, body).await;
        assert_eq!(status, 204);
        assert_eq!(svc.store().series_count(), 0);
        assert_eq!(
            metric(
                &svc,
                "faultline_samples_ingested_total",
                &[("source", "remote_write")]
            ),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn a_remote_written_stale_marker_ends_the_series() {
        let (svc, _dir) = service();
        let (status, _) = post(
            &svc,
            "/api/v1/write",
            &REMOTE_WRITE,
            write_request(&[(3.0, 1_000)]),
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(svc.store().instant("m", 2_000).len(), 1);
        let stale = f64::from_bits(STALE_NAN_BITS);
        let (status, _) = post(
            &svc,
            "/api/v1/write",
            &REMOTE_WRITE,
            write_request(&[(stale, 1_500)]),
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(
            svc.store().instant("m", 2_000),
            [],
            "within the lookback, but ended by the marker"
        );
        assert_eq!(
            svc.store().instant("m", 1_200).len(),
            1,
            "before the marker"
        );
        // A new sample brings the series back.
        post(
            &svc,
            "/api/v1/write",
            &REMOTE_WRITE,
            write_request(&[(4.0, 2_500)]),
        )
        .await;
        assert_eq!(
            svc.store().instant("m", 3_000),
            [(r#"{__name__="m", job="j"}"#.to_string(), 4.0)]
        );
    }

    #[tokio::test]
    async fn a_snappy_bomb_is_413() {
        let (svc, _dir) = service();
        let (status, text) = post(&svc, "/api/v1/write", &REMOTE_WRITE, snappy_bomb(1 << 30)).await;
        assert_eq!(status, 413);
        assert_eq!(
            text,
            "snappy: decompressed length 1073741824 exceeds the limit of 67108864 bytes\n"
        );
        assert_eq!(
            metric(
                &svc,
                "faultline_ingest_rejected_total",
                &[("source", "remote_write"), ("code", "413")]
            ),
            Some(1.0)
        );
        // The same for a Loki protobuf push.
        let (status, text) = post(
            &svc,
            "/loki/api/v1/push",
            &[("content-type", "application/x-protobuf")],
            snappy_bomb(1 << 30),
        )
        .await;
        assert_eq!(status, 413);
        assert!(text.starts_with("snappy: decompressed length"), "{text}");
    }

    #[tokio::test]
    async fn invalid_utf8_and_oversized_labels_are_400() {
        let (svc, _dir) = service();
        // Series 1 > label 1 > value "\xff": not UTF-8.
        let (status, text) = post(
            &svc,
            "/api/v1/write",
            &REMOTE_WRITE,
            snappy(b"\x0a\x05\x0a\x03\x12\x01\xff"),
        )
        .await;
        assert_eq!(status, 400);
        assert!(text.contains("UTF-8"), "{text}");

        let long = "x".repeat(2049);
        let body = remote_write_request(&[(&[("__name__", "m"), ("path", &long)], &[(1.0, 1)])]);
        let (status, text) = post(&svc, "/api/v1/write", &REMOTE_WRITE, body).await;
        assert_eq!(
            (status, text.as_str()),
            (
                400,
                "series 1: value of label \"path\" is over max_label_value_bytes (2049 > 2048)\n"
            )
        );

        let (status, text) = post(
            &svc,
            "/api/v1/logs",
            &NDJSON,
            b"{\"labels\": {\"app\": \"a\"}, \"message\": \"ok\"}\n\xff\n".to_vec(),
        )
        .await;
        assert_eq!(
            (status, text.as_str()),
            (400, "line 2: invalid UTF-8 at byte 1 of the line\n")
        );
        assert_eq!(
            svc.store().stream_count(),
            0,
            "nothing of a refused body is kept"
        );
        assert_eq!(svc.store().series_count(), 0);
        assert_eq!(
            metric(
                &svc,
                "faultline_ingest_rejected_total",
                &[("source", "remote_write"), ("code", "400")]
            ),
            Some(2.0)
        );
    }

    #[tokio::test]
    async fn remote_write_2_and_other_encodings_are_415() {
        let (svc, _dir) = service();
        let (status, text) = post(
            &svc,
            "/api/v1/write",
            &[(
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            )],
            write_request(&[(1.0, 1)]),
        )
        .await;
        assert_eq!(status, 415, "{text}");
        let (status, _) = post(
            &svc,
            "/api/v1/write",
            &[("content-encoding", "zstd")],
            write_request(&[(1.0, 1)]),
        )
        .await;
        assert_eq!(status, 415);
    }

    #[tokio::test]
    async fn a_body_over_max_body_is_413() {
        let (svc, _dir) = service_with(Config {
            max_body: crate::model::units::ByteSize(100),
            ..Config::default()
        });
        let (status, text) = post(&svc, "/api/v1/logs", &NDJSON, vec![b' '; 101]).await;
        assert_eq!(status, 413, "{text}");
        assert_eq!(
            metric(
                &svc,
                "faultline_ingest_rejected_total",
                &[("source", "ndjson"), ("code", "413")]
            ),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn winston_loki_protobuf_without_content_encoding_is_stored() {
        let (svc, _dir) = service();
        let h = captured("loki-clients/winston-loki-6.1.7-push.headers.txt");
        assert_eq!(h, [("content-type", "application/x-protobuf".to_string())]);
        let body = fixture("loki-clients/winston-loki-6.1.7-push.snappy.pb");
        let (status, text) = post(&svc, "/loki/api/v1/push", &as_refs(&h), body).await;
        assert_eq!((status, text.as_str()), (204, ""));
        assert_eq!(
            lines(
                &svc,
                r#"{app="winston-peer"} |= "failed""#,
                1795685139889 + 1
            ),
            [r#"payment failed for order 42 {"level":"error"}"#]
        );
        assert_eq!(
            metric(
                &svc,
                "faultline_log_records_ingested_total",
                &[("source", "loki")]
            ),
            Some(2.0)
        );
    }

    #[tokio::test]
    async fn loki_json_pushes_are_stored() {
        let (svc, _dir) = service();
        for (body, headers) in [
            ("python-logging-loki-0.3.1-push.json", None),
            (
                "syslog-ng-3.38-push.json",
                Some("syslog-ng-3.38-push.headers.txt"),
            ),
            ("winston-loki-6.1.7-push-json.json", None),
        ] {
            let h = headers.map_or_else(
                || vec![("content-type", "application/json".to_string())],
                |h| captured(&format!("loki-clients/{h}")),
            );
            let body = fixture(&format!("loki-clients/{body}"));
            let (status, text) = post(&svc, "/loki/api/v1/push", &as_refs(&h), body).await;
            assert_eq!((status, text.as_str()), (204, ""), "{h:?}");
        }
        assert_eq!(
            lines(&svc, r#"{app="pylogging"}"#, 1795685309087 + 1),
            ["db latency high"]
        );
        assert!(svc.store().stream_count() >= 3);
    }

    #[tokio::test]
    async fn ndjson_logs_are_stored_plain_or_gzipped() {
        use std::io::Write;
        let (svc, _dir) = service();
        let now = crate::model::time::now_ms();
        let body = br#"{"labels": {"app": "api", "instance": "web1"}, "message": "GET / 500 error", "status": 500}
{"labels": {"app": "api", "instance": "web2"}, "message": "GET / 200"}
"#;
        let (status, _) = post(&svc, "/api/v1/logs", &NDJSON, body.to_vec()).await;
        assert_eq!(status, 204);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(
            br#"{"labels": {"app": "api", "instance": "web1"}, "message": "second error"}"#,
        )
        .unwrap();
        let (status, _) = post(
            &svc,
            "/api/v1/logs",
            &[NDJSON[0], ("content-encoding", "gzip")],
            gz.finish().unwrap(),
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(
            lines(&svc, r#"{app="api"} |= "error""#, now + 60_000),
            ["GET / 500 error", "second error"]
        );
        assert_eq!(
            metric(
                &svc,
                "faultline_log_records_ingested_total",
                &[("source", "ndjson")]
            ),
            Some(3.0)
        );
        let (status, text) =
            post(&svc, "/api/v1/logs", &NDJSON, b"{\"labels\": {}}".to_vec()).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.starts_with("line 1: "), "{text}");
        // A body type a browser page may send is refused, and counted.
        for forgeable in [&[][..], &[("content-type", "text/plain")]] {
            let (status, text) = post(&svc, "/api/v1/logs", forgeable, body.to_vec()).await;
            assert_eq!(status, 415, "{text}");
            assert!(text.contains("send application/x-ndjson"), "{text}");
        }
    }

    #[tokio::test]
    async fn dropped_data_is_counted_on_metrics() {
        let (svc, _dir) = service();
        // The second request's sample is older than the first's: dropped, out of order.
        for ts in [2_000, 1_000] {
            let (status, _) = post(
                &svc,
                "/api/v1/write",
                &REMOTE_WRITE,
                write_request(&[(1.0, ts)]),
            )
            .await;
            assert_eq!(status, 204);
        }
        let resp = crate::server::app(svc.clone())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(
            text.contains("faultline_dropped_total{reason=\"out_of_order\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("faultline_dropped_total{reason=\"series_limit\"} 0\n"));
        assert!(text.contains("faultline_samples_ingested_total{source=\"remote_write\"} 2\n"));
    }
}
