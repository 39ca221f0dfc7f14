//! Ingestion from Kafka: each `[[kafka_source]]` of the server config is a consumer in a
//! consumer group, reading one format from its topics into the same windows (and external
//! alerts) that the HTTP endpoints write to.
//!
//! ```toml
//! [[kafka_source]]
//! brokers = "kafka1:9092,kafka2:9092"
//! topics = ["metrics"]
//! format = "remote_write"       # or "json", "loki", "alerts"
//! group_id = "faultline"        # default
//! session_timeout = "45s"       # default, librdkafka's
//! # replay = "1h"               # default: the window the rules need (longest range, at
//! #                             # least the lookback)
//! ```
//!
//! Partitions spread what producers key alike onto one instance (see the README's "Ingesting
//! from Kafka and sharding rules"). Offsets are committed only once a message's data is in
//! the window, so delivery is at least once, and what is delivered again is held once (see
//! [`crate::store::Store::append`]). An instance that gains a partition replays it from the
//! start of the window it needs ([`consumer`]); meanwhile it is not ready and its rules wait.
//! One that gives a partition up forgets the series and streams it took from it, and hands
//! the alerts over them to the new holder: they are dropped here without resolving (see
//! [`crate::alerts::RuleAlerts::hand_over`]), so a receiver sees them fire on, not flap.

mod adapter_json;
mod consumer;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::ingest::alerts::PostableAlert;
use crate::ingest::{IngestError, Limits};
use crate::metrics::Metrics;
use crate::model::Label;
use crate::model::units::PromDuration;
use crate::store::Store;

/// One `[[kafka_source]]` of the server config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port`, comma-separated. Required.
    pub brokers: String,
    /// Topics read. Required, at least one.
    pub topics: Vec<String>,
    /// What the messages hold. Required.
    pub format: Format,
    /// The consumer group: instances with the same group share the topics' partitions.
    /// Default `faultline`.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// How long the group waits for a silent member before moving its partitions. Default
    /// 45s (librdkafka's); heartbeats go every third of it, at most every 3s.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: PromDuration,
    /// How far back a gained partition is replayed. Default: the window the rules need.
    pub replay: Option<PromDuration>,
}

fn default_group_id() -> String {
    "faultline".to_string()
}

fn default_session_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(45))
}

/// What the messages of a source hold, one body per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A snappy-compressed protobuf `prometheus.WriteRequest`, as remote_write sends it (the
    /// OpenTelemetry Collector's `prometheusremotewrite` encoding, and the Prometheus-to-Kafka
    /// adapters that forward remote_write bodies as they are).
    RemoteWrite,
    /// prometheus-kafka-adapter's JSON samples: `{"timestamp", "value", "name", "labels"}`,
    /// one object a line.
    Json,
    /// A Loki push body: JSON, or snappy-compressed protobuf.
    Loki,
    /// An Alertmanager alert array, as `POST /api/v2/alerts` takes it.
    Alerts,
}

impl Format {
    /// The name in the config, which is also the `format` label of the metrics.
    fn name(self) -> &'static str {
        match self {
            Format::RemoteWrite => "remote_write",
            Format::Json => "json",
            Format::Loki => "loki",
            Format::Alerts => "alerts",
        }
    }
}

impl KafkaSourceConfig {
    /// Refuses a source that cannot work, naming it.
    pub fn check(&self) -> Result<(), String> {
        let name = self.name();
        if self.brokers.trim().is_empty() {
            return Err(format!("kafka_source {name:?}: `brokers` is empty"));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(format!(
                "kafka_source {name:?}: `topics` must name at least one topic, none empty"
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(format!("kafka_source {name:?}: `group_id` is empty"));
        }
        if self.session_timeout.0 < Duration::from_secs(1) {
            return Err(format!(
                "kafka_source {name:?}: `session_timeout` must be at least 1s"
            ));
        }
        Ok(())
    }

    /// The `source` label of the source's metrics: its topics, comma-separated.
    pub fn name(&self) -> String {
        self.topics.join(",")
    }
}

/// Hands the alerts over series given up to their new holder, given the label pairs that
/// only those series had (see [`crate::alerts::RuleAlerts::hand_over`]).
pub type HandOver = dyn Fn(&HashSet<Label>) + Send + Sync;

/// Where the messages go: the same store and external alerts as HTTP ingestion.
pub struct Sink {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Stores received alerts durably (as `POST /api/v2/alerts` does); an error is retried.
    pub alerts: Box<dyn Fn(Vec<PostableAlert>) -> Result<(), String> + Send + Sync>,
    /// Told the label pairs that only the series of partitions given up had, so the rules'
    /// alerts over them are handed over to the instance that has them now, not resolved.
    pub hand_over: Box<HandOver>,
}

impl Sink {
    /// Decodes one message and puts its data in the window, returning how many samples,
    /// records or alerts it held and the label fingerprints of its series or streams. A
    /// message that cannot be decoded is refused (and must not be retried); one whose
    /// alerts could not be stored is an `Err(Retry)`.
    fn take(&self, format: Format, payload: &[u8]) -> Result<(usize, Vec<u64>), Taken> {
        match format {
            Format::RemoteWrite => {
                let raw = crate::ingest::unsnappy(payload, &self.limits)?;
                let series = crate::ingest::remote_write::decode(&raw, &self.limits)?;
                let keys = series.iter().map(|(l, _)| l.fingerprint()).collect();
                self.store.append_batch(&series);
                Ok((series.sample_count(), keys))
            }
            Format::Json => Ok(self.append(adapter_json::parse(payload, &self.limits)?)),
            Format::Loki => {
                let json = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let records = match json {
                    true => crate::ingest::loki::decode_json(payload, &self.limits)?,
                    false => crate::ingest::loki::decode_protobuf(payload, &self.limits)?,
                };
                let n = records.len();
                let keys = records.iter().map(|r| r.labels.fingerprint()).collect();
                self.store.append_logs(records);
                Ok((n, keys))
            }
            Format::Alerts => {
                let posted = crate::ingest::alerts::parse_postable(payload, &self.limits)?;
                let n = posted.valid.len();
                (self.alerts)(posted.valid).map_err(Taken::Retry)?;
                match posted.invalid {
                    Some(invalid) => Err(Taken::Refused(invalid)),
                    None => Ok((n, Vec::new())),
                }
            }
        }
    }

    /// Forgets the series and streams of partitions given up (by their label fingerprints)
    /// and hands their alerts over; returns how many went.
    fn forget(&self, keys: &HashSet<u64>) -> usize {
        let forgotten = self.store.forget(keys);
        (self.hand_over)(&forgotten.only_theirs);
        forgotten.count
    }

    fn append(&self, series: Vec<crate::model::SeriesSamples>) -> (usize, Vec<u64>) {
        let n = series.iter().map(|s| s.samples.len()).sum();
        let keys = series.iter().map(|s| s.labels.fingerprint()).collect();
        self.store.append(series);
        (n, keys)
    }
}

/// Why a message was not (wholly) taken.
#[derive(Debug)]
enum Taken {
    /// Its body is malformed or over a limit: skipped, counted and logged.
    Refused(IngestError),
    /// Its data could not be stored: tried again.
    Retry(String),
}

impl From<IngestError> for Taken {
    fn from(e: IngestError) -> Self {
        Taken::Refused(e)
    }
}

/// How many gained partitions are still being replayed, over every source: while any is,
/// `/-/ready` answers 503 and rule evaluations wait, so no rule sees half a window.
#[derive(Debug, Default)]
pub struct Replaying(AtomicUsize);

impl Replaying {
    /// Partitions being replayed now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn done(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Starts a consumer thread per source. `replay` is how far back a gained partition is
/// replayed where its source does not say (the window the rules need, asked at each gain).
pub fn start(
    sources: &[KafkaSourceConfig],
    sink: Arc<Sink>,
    replay: impl Fn() -> Duration + Send + Sync + 'static,
    replaying: &Arc<Replaying>,
) {
    let replay: Arc<dyn Fn() -> Duration + Send + Sync> = Arc::new(replay);
    for source in sources {
        let (source, sink, replaying) = (source.clone(), sink.clone(), replaying.clone());
        let replay = match source.replay {
            Some(d) => Arc::new(move || d.0),
            None => replay.clone(),
        };
        let name = source.name();
        let spawned = std::thread::Builder::new()
            .name(format!("kafka {name}"))
            .spawn(move || consumer::run(&source, sink, replay, &replaying));
        if let Err(e) = spawned {
            tracing::error!(source = %name, "cannot start the Kafka consumer's thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_reads_with_its_defaults_and_bad_ones_are_refused() {
        let c: crate::config::Config = toml::from_str(
            r#"
            [[kafka_source]]
            brokers = "k:9092"
            topics = ["metrics"]
            format = "remote_write"
            "#,
        )
        .unwrap();
        let s = &c.kafka_source[0];
        assert_eq!(
            (s.format, s.group_id.as_str()),
            (Format::RemoteWrite, "faultline")
        );
        assert_eq!(s.session_timeout.0, Duration::from_secs(45));
        assert_eq!(s.replay, None);
        assert_eq!(s.check(), Ok(()));
        let empty = KafkaSourceConfig {
            topics: vec![],
            ..s.clone()
        };
        assert_eq!(
            empty.check().unwrap_err(),
            "kafka_source \"\": `topics` must name at least one topic, none empty"
        );
        let e = toml::from_str::<crate::config::Config>(
            "[[kafka_source]]\nbrokers = \"k\"\ntopics = [\"t\"]\nformat = \"avro\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `avro`"), "{e}");
    }
}
