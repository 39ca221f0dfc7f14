//! Prometheus remote_write 1.0: a snappy block-compressed protobuf `prometheus.WriteRequest`
//! into series.
//!
//! Requests that carry only metadata are valid and give no series. Staleness markers are kept
//! bit for bit ([`crate::model::STALE_NAN_BITS`]): the caller ends the series. Exemplars and
//! native histograms are not read; a series with no float samples is left out.

use super::{IngestError, Limits, Location, check_pairs};
use crate::model::{Sample, SeriesBatch};

/// The messages of Prometheus's `prompb/remote.proto` and `types.proto` that Faultline reads,
/// as prost types: what tests, benchmarks and tools encode requests with. [`decode`] reads
/// the same fields in place (prost would allocate every string); fields not declared here
/// (exemplars, histograms, metadata details) are skipped unread.
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

/// Checks a remote_write request's headers, then decompresses its body into the protobuf
/// that [`decode`] reads (a Kafka message, headerless, goes through [`super::unsnappy`]
/// alone). Content-Type must be `application/x-protobuf`, as Prometheus sends (none, or a
/// type a browser page may send, gets 415; a `proto=` parameter other than
/// `prometheus.WriteRequest`, i.e. remote_write 2.0, gets 415 so that the sender can fall
/// back to 1.0); Content-Encoding must be `snappy` or absent (Prometheus's own receiver
/// assumes snappy either way).
pub fn unpack(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, IngestError> {
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
        None | Some("") | Some("snappy") => super::unsnappy(body, limits),
        Some(other) => Err(IngestError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported for remote_write: send snappy"
        ))),
    }
}

/// Decodes a decompressed `prometheus.WriteRequest` into series, in request order, their
/// labels borrowed from `raw`: nothing is allocated per label, so the store allocates only
/// for the series it does not hold yet. Label names must match `[a-zA-Z_][a-zA-Z0-9_]*` and
/// be unique within a series. Fields not read (metadata, exemplars, histograms) are skipped
/// unchecked.
pub fn decode<'a>(raw: &'a [u8], limits: &Limits) -> Result<SeriesBatch<'a>, IngestError> {
    let malformed = |e: String| {
        IngestError::malformed(
            Location::Body,
            format!("protobuf prometheus.WriteRequest: {e}"),
        )
    };
    let mut batch = SeriesBatch::default();
    let (mut pairs, mut samples) = (Vec::new(), Vec::new());
    let mut req = Wire(raw);
    let mut i = 0;
    while !req.is_empty() {
        let (field, wire) = req.field().map_err(malformed)?;
        if field != 1 {
            req.skip(wire).map_err(malformed)?;
            continue;
        }
        let series = req.message(wire, "WriteRequest.timeseries");
        i += 1;
        pairs.clear();
        samples.clear();
        series
            .and_then(|s| read_series(s, &mut pairs, &mut samples))
            .map_err(malformed)?;
        if samples.is_empty() {
            continue;
        }
        let at = Location::Series(i);
        check_pairs(&mut pairs, at, limits)?;
        if pairs.is_empty() {
            return Err(IngestError::malformed(at, "series has no labels"));
        }
        batch.push(&pairs, &samples);
    }
    Ok(batch)
}

/// Reads a `prometheus.TimeSeries`: its labels into `pairs`, its samples into `samples`.
/// Exemplars and histograms are skipped.
fn read_series<'a>(
    mut series: Wire<'a>,
    pairs: &mut Vec<(&'a str, &'a str)>,
    samples: &mut Vec<Sample>,
) -> Result<(), String> {
    while !series.is_empty() {
        match series.field()? {
            (1, wire) => {
                let mut label = series.message(wire, "TimeSeries.labels")?;
                let (mut name, mut value) = ("", "");
                while !label.is_empty() {
                    match label.field()? {
                        (1, wire) => name = label.string(wire, "Label.name")?,
                        (2, wire) => value = label.string(wire, "Label.value")?,
                        (_, wire) => label.skip(wire)?,
                    }
                }
                pairs.push((name, value));
            }
            (2, wire) => {
                let mut sample = series.message(wire, "TimeSeries.samples")?;
                let mut s = Sample { ts: 0, value: 0.0 };
                while !sample.is_empty() {
                    match sample.field()? {
                        (1, wire) => s.value = sample.double(wire, "Sample.value")?,
                        (2, wire) => s.ts = sample.int64(wire, "Sample.timestamp")?,
                        (_, wire) => sample.skip(wire)?,
                    }
                }
                samples.push(s);
            }
            (_, wire) => series.skip(wire)?,
        }
    }
    Ok(())
}

/// Protobuf's wire format, read in place: the part of it `prometheus.WriteRequest` uses.
/// Errors say what is wrong, for the 400 answer.
struct Wire<'a>(&'a [u8]);

/// Wire types: varint, 64-bit, length-delimited, group start and end (deprecated), 32-bit.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const I32: u8 = 5;

impl<'a> Wire<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next field's number and wire type.
    fn field(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        match key >> 3 {
            0 => Err("field number 0 is invalid".to_string()),
            _ if key > u64::from(u32::MAX) => Err(format!("field key {key} is invalid")),
            n => Ok((n, (key & 7) as u8)),
        }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.0.split_first() else {
                return Err("a varint runs past the end of its message".to_string());
            };
            self.0 = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // The tenth byte holds the 64th bit alone.
                return match i == 9 && b > 1 {
                    true => Err("a varint overflows 64 bits".to_string()),
                    false => Ok(v),
                };
            }
        }
        Err("a varint is longer than 10 bytes".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!(
                "a field of {n} bytes runs past the end of its message ({} left)",
                self.0.len()
            ));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Checks that `field` came as it is declared.
    fn expect(wire: u8, want: u8, field: &str) -> Result<(), String> {
        match wire == want {
            true => Ok(()),
            false => Err(format!("{field}: wire type {wire}, expected {want}")),
        }
    }

    /// An embedded message.
    fn message(&mut self, wire: u8, field: &str) -> Result<Wire<'a>, String> {
        Self::expect(wire, LEN, field)?;
        self.bytes().map(Wire)
    }

    fn string(&mut self, wire: u8, field: &str) -> Result<&'a str, String> {
        Self::expect(wire, LEN, field)?;
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("{field} is not UTF-8: {e}"))
    }

    fn double(&mut self, wire: u8, field: &str) -> Result<f64, String> {
        Self::expect(wire, I64, field)?;
        let bytes = self.take(8)?.try_into().expect("8 bytes taken");
        Ok(f64::from_le_bytes(bytes))
    }

    fn int64(&mut self, wire: u8, field: &str) -> Result<i64, String> {
        Self::expect(wire, VARINT, field)?;
        // int64 is the varint of the two's complement, as `as` converts.
        self.varint().map(|v| v as i64)
    }

    /// Skips a field not read.
    fn skip(&mut self, wire: u8) -> Result<(), String> {
        self.skip_nested(wire, 0)
    }

    /// Skips a field; a (deprecated) group up to its end, groups nested at most 100 deep,
    /// as prost does.
    fn skip_nested(&mut self, wire: u8, depth: usize) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            I32 => self.take(4).map(drop),
            START_GROUP if depth < 100 => loop {
                match self.field()? {
                    (_, END_GROUP) => return Ok(()),
                    (_, wire) => self.skip_nested(wire, depth + 1)?,
                }
            },
            START_GROUP => Err("groups nest more than 100 deep".to_string()),
            other => Err(format!("wire type {other} is not expected here")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use crate::ingest::testing::{fixture, headers, remote_write_request, snappy, snappy_bomb};
    use crate::model::STALE_NAN_BITS;
    use crate::model::SeriesSamples;
    use proptest::prelude::*;
    use prost::Message;

    const CT: Option<&str> = Some("application/x-protobuf");
    const SNAPPY: Option<&str> = Some("snappy");

    /// Unpacks and decodes as the handler does; the series with owned labels.
    fn received(
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Vec<SeriesSamples>, IngestError> {
        let raw = unpack(content_type, content_encoding, body, limits)?;
        let batch = decode(&raw, limits)?;
        Ok(batch
            .iter()
            .map(|(labels, samples)| SeriesSamples {
                labels: labels.to_labels(),
                samples: samples.to_vec(),
            })
            .collect())
    }

    /// What prost decodes, checked as the handler checks series: the reference the
    /// in-place decoder is held to.
    fn decoded_by_prost(raw: &[u8]) -> Result<Vec<SeriesSamples>, String> {
        let req = WriteRequest::decode(raw).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (i, ts) in req.timeseries.into_iter().enumerate() {
            if ts.samples.is_empty() {
                continue;
            }
            let pairs = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
            let at = Location::Series(i + 1);
            let labels = crate::ingest::build_labels(pairs, at, &Limits::default())
                .map_err(|e| e.to_string())?;
            let samples = ts.samples.iter();
            let samples = samples.map(|s| crate::model::Sample {
                ts: s.timestamp,
                value: s.value,
            });
            out.push(SeriesSamples {
                labels,
                samples: samples.collect(),
            });
        }
        Ok(out)
    }

    fn decode_err(body: &[u8]) -> (u16, String) {
        let e = received(CT, SNAPPY, body, &Limits::default()).unwrap_err();
        (e.status(), e.to_string())
    }

    #[test]
    fn prometheus_series_fixture() {
        let (ct, ce) = headers("prometheus-2.42/remote-write.headers.txt");
        let out = received(
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
                received(CT, SNAPPY, &body, &Limits::default())
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
        let out = received(CT, SNAPPY, &body, &Limits::default()).unwrap();
        assert_eq!(out[0].samples[1].value.to_bits(), STALE_NAN_BITS);
        assert!(out[0].samples[1].is_stale_marker());
        assert!(!out[0].samples[0].is_stale_marker());
    }

    /// Exemplars, histograms, metadata and fields unknown to this version are skipped, and
    /// fields may come in any order.
    #[test]
    fn fields_not_read_are_skipped() {
        let series = TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: "up".into(),
            }],
            samples: vec![proto::Sample {
                value: 2.5,
                timestamp: -7,
            }],
        };
        let mut ts = series.encode_to_vec();
        // An exemplar (field 3) and a histogram (field 4), then a second label before more
        // samples, and a fixed32 of some later version (field 9).
        ts.extend_from_slice(b"\x1a\x02\x08\x01\x22\x00");
        ts.extend_from_slice(b"\x0a\x0c\x0a\x03job\x12\x03api\x18\x05");
        ts.extend_from_slice(b"\x4d\x01\x02\x03\x04");
        let mut raw = b"\x1a\x02\x08\x01".to_vec();
        raw.push(0x0a);
        prost::encoding::encode_varint(ts.len() as u64, &mut raw);
        raw.extend_from_slice(&ts);
        let batch = decode(&raw, &Limits::default()).unwrap();
        let got: Vec<_> = batch
            .iter()
            .map(|(l, s)| (l.to_labels(), s.to_vec()))
            .collect();
        assert_eq!(
            got,
            [(
                crate::model::Labels::from_pairs([("__name__", "up"), ("job", "api")]),
                vec![crate::model::Sample { ts: -7, value: 2.5 }]
            )]
        );
        assert_eq!(
            Ok(batch.iter().count()),
            decoded_by_prost(&raw).map(|s| s.len())
        );
    }

    #[test]
    fn series_without_samples_are_left_out() {
        let body = remote_write_request(&[
            (&[("__name__", "a")], &[]),
            (&[("__name__", "b")], &[(1.0, 1)]),
        ]);
        let out = received(CT, SNAPPY, &body, &Limits::default()).unwrap();
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
        let e = received(CT, SNAPPY, &[0u8; 11], &limits).unwrap_err();
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
            let e = received(forgeable, None, &body, &l).unwrap_err();
            assert_eq!(e.status(), 415, "{forgeable:?}");
            assert!(e.to_string().contains("send application/x-protobuf"), "{e}");
        }
        assert_eq!(received(CT, None, &body, &l).unwrap().len(), 1);
        let v1 = Some("application/x-protobuf;proto=prometheus.WriteRequest");
        assert_eq!(received(v1, SNAPPY, &body, &l).unwrap().len(), 1);
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
            let e = received(ct, ce, &body, &l).unwrap_err();
            assert_eq!((e.status(), e.to_string().as_str()), (415, want));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body, &Limits::default());
            let _ = received(CT, SNAPPY, &body, &Limits::default());
            let _ = received(CT, SNAPPY, &snappy(&body), &Limits::default());
        }

        #[test]
        fn mutated_requests_never_panic_and_decode_as_prost_does(
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
            let bits = |out: Vec<SeriesSamples>| {
                let bits = |s: &[crate::model::Sample]| -> Vec<(i64, u64)> {
                    s.iter().map(|s| (s.ts, s.value.to_bits())).collect()
                };
                out.into_iter().map(|s| (s.labels, bits(&s.samples))).collect::<Vec<_>>()
            };
            let read = received(CT, SNAPPY, &snappy(&raw), &Limits::default());
            match decoded_by_prost(&raw) {
                // What prost reads is read in place the same, bit for bit (NaN too).
                Ok(theirs) => prop_assert_eq!(read.map(bits), Ok(bits(theirs))),
                // Fields that are not read (metadata) are not checked: prost may refuse
                // more.
                Err(_) => {
                    if let Err(e) = read {
                        prop_assert_eq!(e.status(), 400);
                    }
                }
            }
        }
    }
}
