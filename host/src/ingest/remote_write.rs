//! Prometheus remote_write 1.0: a snappy block-compressed protobuf `prometheus.WriteRequest`
//! into series.
//!
//! Requests that carry only metadata are valid and give no series. Staleness markers are kept
//! bit for bit ([`crate::model::STALE_NAN_BITS`]): the caller ends the series. Exemplars and
//! native histograms are not read; a series with no float samples is left out.

use super::{IngestError, Limits, Location, build_labels};
use crate::model::{Sample, SeriesSamples};

/// The messages of Prometheus's `prompb/remote.proto` and `types.proto` that Faultline reads.
/// Fields not declared here (exemplars, histograms, metadata details) are skipped unread.
pub mod proto {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// `prometheus.TimeSeries`: labels sorted by name, samples in time order.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`: a value and milliseconds since the epoch.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// `prometheus.MetricMetadata`; `type` is the `MetricType` enum (0 unknown, 1 counter,
    /// 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7 stateset).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// Decodes a remote_write request after checking its headers: Content-Type must be
/// `application/x-protobuf`, as Prometheus sends (none, or a type a browser page may send,
/// gets 415; a `proto=` parameter other than `prometheus.WriteRequest`, i.e.
/// remote_write 2.0, gets 415 so that the sender can fall back to 1.0); Content-Encoding must
/// be `snappy` or absent (Prometheus's own receiver assumes snappy either way).
pub fn decode(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<SeriesSamples>, IngestError> {
    let media = super::media_type(content_type);
    if media != "application/x-protobuf" {
        let given = content_type.map_or("none".to_string(), |c| format!("{c:?}"));
        return Err(IngestError::UnsupportedMediaType(format!(
            "Content-Type {given} is not supported for remote_write: send application/x-protobuf"
        )));
    }
    let proto = content_type.unwrap_or("").split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("proto")).then(|| v.trim().trim_matches('"').to_string())
    });
    if let Some(proto) = proto.filter(|p| p != "prometheus.WriteRequest") {
        return Err(IngestError::UnsupportedMediaType(format!(
            "remote_write message {proto:?} is not supported: send prometheus.WriteRequest (remote_write 1.0)"
        )));
    }
    match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("snappy") => decode_body(body, limits),
        Some(other) => Err(IngestError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported for remote_write: send snappy"
        ))),
    }
}

/// Decodes a snappy-compressed `prometheus.WriteRequest` into series, in request order.
/// Label names must match `[a-zA-Z_][a-zA-Z0-9_]*` and be unique within a series.
pub fn decode_body(body: &[u8], limits: &Limits) -> Result<Vec<SeriesSamples>, IngestError> {
    let raw = super::unsnappy(body, limits)?;
    let req = <proto::WriteRequest as prost::Message>::decode(raw.as_slice()).map_err(|e| {
        IngestError::malformed(
            Location::Body,
            format!("protobuf prometheus.WriteRequest: {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        let at = Location::Series(i + 1);
        if ts.samples.is_empty() {
            continue;
        }
        let pairs = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
        let labels = build_labels(pairs, at, limits)?;
        if labels.is_empty() {
            return Err(IngestError::malformed(at, "series has no labels"));
        }
        let samples = ts
            .samples
            .into_iter()
            .map(|s| Sample {
                ts: s.timestamp,
                value: s.value,
            })
            .collect();
        out.push(SeriesSamples { labels, samples });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use crate::ingest::testing::{fixture, headers, remote_write_request, snappy, snappy_bomb};
    use crate::model::STALE_NAN_BITS;
    use proptest::prelude::*;
    use prost::Message;

    const CT: Option<&str> = Some("application/x-protobuf");
    const SNAPPY: Option<&str> = Some("snappy");

    fn decode_err(body: &[u8]) -> (u16, String) {
        let e = decode(CT, SNAPPY, body, &Limits::default()).unwrap_err();
        (e.status(), e.to_string())
    }

    #[test]
    fn prometheus_series_fixture() {
        let (ct, ce) = headers("prometheus-2.42/remote-write.headers.txt");
        let out = decode(
            ct.as_deref(),
            ce.as_deref(),
            &fixture("prometheus-2.42/remote-write-series.snappy.pb"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.len(), 200);
        assert!(out.iter().all(|s| s.samples.len() == 1));
        let load = out
            .iter()
            .find(|s| s.labels.name() == Some("node_load1"))
            .unwrap();
        assert_eq!(
            load.labels.to_string(),
            r#"{__name__="node_load1", env="peertest", instance="127.0.0.1:19100", job="node"}"#
        );
        assert_eq!(load.samples[0].value, 1.57);
        assert_eq!(load.samples[0].ts, 1795684994458);
        // Prometheus's own ALERTS series ride along, without job or instance.
        let alerts = out
            .iter()
            .find(|s| s.labels.name() == Some("ALERTS"))
            .unwrap();
        assert_eq!(alerts.labels.get("alertname"), Some("AlwaysFiring"));
        assert_eq!(alerts.labels.get("job"), None);
        // Every series carries the external label.
        assert!(out.iter().all(|s| s.labels.get("env") == Some("peertest")));
    }

    /// Both metadata fixtures (the "large" one too) carry the same 461 metadata entries and
    /// no series: Prometheus sends metadata in requests of its own.
    #[test]
    fn metadata_only_requests_give_no_series() {
        for path in [
            "prometheus-2.42/remote-write-metadata-only.snappy.pb",
            "prometheus-2.42/remote-write-large.snappy.pb",
        ] {
            let body = fixture(path);
            assert!(
                decode(CT, SNAPPY, &body, &Limits::default())
                    .unwrap()
                    .is_empty()
            );
            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            let req = WriteRequest::decode(raw.as_slice()).unwrap();
            assert!(req.timeseries.is_empty());
            assert_eq!(req.metadata.len(), 461);
            let sent = req
                .metadata
                .iter()
                .find(|m| m.metric_family_name == "prometheus_notifications_sent_total")
                .unwrap();
            assert_eq!(sent.r#type, 1);
            assert_eq!(sent.help, "Total number of alerts sent.");
        }
    }

    #[test]
    fn stale_markers_are_kept_bit_exact() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let body = remote_write_request(&[(&[("__name__", "up")], &[(1.0, 1000), (stale, 2000)])]);
        let out = decode(CT, SNAPPY, &body, &Limits::default()).unwrap();
        assert_eq!(out[0].samples[1].value.to_bits(), STALE_NAN_BITS);
        assert!(out[0].samples[1].is_stale_marker());
        assert!(!out[0].samples[0].is_stale_marker());
    }

    #[test]
    fn series_without_samples_are_left_out() {
        let body = remote_write_request(&[
            (&[("__name__", "a")], &[]),
            (&[("__name__", "b")], &[(1.0, 1)]),
        ]);
        let out = decode_body(&body, &Limits::default()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.name(), Some("b"));
    }

    #[test]
    fn label_errors_name_the_series() {
        let ok: &[(&str, &str)] = &[("__name__", "a")];
        let s: &[(f64, i64)] = &[(1.0, 1)];
        let cases: Vec<(&[(&str, &str)], &str)> = vec![
            (
                &[("__name__", "b"), ("1abc", "x")],
                "series 2: label name \"1abc\" is invalid",
            ),
            (
                &[("__name__", "b"), ("", "x")],
                "series 2: label name is empty",
            ),
            (
                &[("a", "1"), ("a", "2")],
                "series 2: label name \"a\" appears more than once",
            ),
            (&[], "series 2: series has no labels"),
            (&[("a", "")], "series 2: series has no labels"),
        ];
        for (labels, want) in cases {
            let (status, msg) = decode_err(&remote_write_request(&[(ok, s), (labels, s)]));
            assert_eq!((status, msg.as_str()), (400, want));
        }
    }

    #[test]
    fn snappy_bomb_is_413() {
        let (status, msg) = decode_err(&snappy_bomb(300_000_000));
        assert_eq!(status, 413);
        assert_eq!(
            msg,
            "snappy: decompressed length 300000000 exceeds the limit of 67108864 bytes"
        );
    }

    #[test]
    fn body_over_the_limit_is_413() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let e = decode_body(&[0u8; 11], &limits).unwrap_err();
        assert_eq!(e.status(), 413);
    }

    #[test]
    fn bad_payloads_are_400() {
        let (status, msg) = decode_err(b"\x05not snappy at all");
        assert_eq!(status, 400);
        assert!(msg.starts_with("snappy: "), "{msg}");
        let (status, msg) = decode_err(&snappy(b"\x0a\xff\xff\xff\xff\x0f"));
        assert_eq!(status, 400);
        assert!(
            msg.starts_with("protobuf prometheus.WriteRequest: "),
            "{msg}"
        );
        // A label value that is not UTF-8: field 1 (series) > field 1 (label) > field 2.
        let (status, msg) = decode_err(&snappy(b"\x0a\x05\x0a\x03\x12\x01\xff"));
        assert_eq!(status, 400);
        assert!(msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn headers_are_checked() {
        let body = remote_write_request(&[(&[("__name__", "a")], &[(1.0, 1)])]);
        let l = Limits::default();
        // No Content-Type, or one a browser page may send, is refused.
        for forgeable in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let e = decode(forgeable, None, &body, &l).unwrap_err();
            assert_eq!(e.status(), 415, "{forgeable:?}");
            assert!(e.to_string().contains("send application/x-protobuf"), "{e}");
        }
        assert_eq!(decode(CT, None, &body, &l).unwrap().len(), 1);
        let v1 = Some("application/x-protobuf;proto=prometheus.WriteRequest");
        assert_eq!(decode(v1, SNAPPY, &body, &l).unwrap().len(), 1);
        let cases = [
            (
                CT,
                Some("gzip"),
                "Content-Encoding \"gzip\" is not supported for remote_write: send snappy",
            ),
            (
                Some("application/json"),
                SNAPPY,
                "Content-Type \"application/json\" is not supported for remote_write: send application/x-protobuf",
            ),
            (
                Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
                SNAPPY,
                "remote_write message \"io.prometheus.write.v2.Request\" is not supported: send prometheus.WriteRequest (remote_write 1.0)",
            ),
        ];
        for (ct, ce, want) in cases {
            let e = decode(ct, ce, &body, &l).unwrap_err();
            assert_eq!((e.status(), e.to_string().as_str()), (415, want));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body(&body, &Limits::default());
            let _ = decode_body(&snappy(&body), &Limits::default());
        }

        #[test]
        fn mutated_requests_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
        ) {
            let stale = f64::from_bits(STALE_NAN_BITS);
            let mut raw = WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: vec![
                        Label { name: "__name__".into(), value: "up".into() },
                        Label { name: "job".into(), value: "node".into() },
                    ],
                    samples: vec![proto::Sample { value: 1.0, timestamp: 5 }, proto::Sample { value: stale, timestamp: 6 }],
                }],
                metadata: vec![],
            }
            .encode_to_vec();
            for (pos, byte) in edits {
                let i = pos % raw.len();
                raw[i] = byte;
            }
            match decode_body(&snappy(&raw), &Limits::default()) {
                Ok(out) => prop_assert!(out.len() <= 1),
                Err(e) => prop_assert_eq!(e.status(), 400),
            }
        }
    }
}
