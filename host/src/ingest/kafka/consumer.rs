//! The consumer-group loop of one Kafka source, on a thread of its own.
//!
//! - Offsets are committed (every second, and before a partition is given up) only up to
//!   the messages whose data is in the window: at least once.
//! - Partitions are assigned with librdkafka's `cooperative-sticky` assignor, so when an
//!   instance leaves, only its partitions move and the others keep theirs (and their windows).
//! - A partition this instance gains (at start, or from an instance that left) is replayed
//!   from the start of the window the rules need, or from the group's committed offset if
//!   that is earlier, up to the end it had when gained. Until every gained partition is
//!   replayed, [`Replaying`] holds rule evaluations and `/-/ready`.
//! - A partition an eager rebalance takes and gives straight back resumes where it was: its
//!   window stayed whole.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::{Format, KafkaSourceConfig, Replaying, Sink, Taken};
use crate::model::time::now_ms;

/// A topic and a partition of it.
type Partition = (String, i32);

/// How long one broker request made while gaining partitions may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the offsets of the messages taken are committed.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// How long to wait before storing a message's alerts again after the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs the source's consumer until the process ends.
pub(super) fn run(
    source: &KafkaSourceConfig,
    sink: Arc<Sink>,
    replay: Arc<dyn Fn() -> Duration + Send + Sync>,
    replaying: &Arc<Replaying>,
) {
    let name = source.name();
    let context = Context {
        source: name.clone(),
        replay,
        replaying: replaying.clone(),
        sink: sink.clone(),
        state: Mutex::default(),
    };
    let session = source.session_timeout.0.as_millis();
    let consumer: BaseConsumer<Context> = match ClientConfig::new()
        .set("bootstrap.servers", &source.brokers)
        .set("group.id", &source.group_id)
        .set("client.id", "faultline")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 3).min(3000).to_string())
        .create_with_context(context)
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(source = %name, "Kafka source is off: {e}");
            return;
        }
    };
    let topics: Vec<&str> = source.topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&topics) {
        tracing::error!(source = %name, "Kafka source is off: subscribing: {e}");
        return;
    }
    tracing::info!(source = %name, group = %source.group_id, format = source.format.name(), "consuming from Kafka");
    let context = consumer.context().clone();
    context.export();
    let mut last_commit = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let keys = take(&sink, &name, source.format, &m);
                context.taken(m.topic(), m.partition(), m.offset() + 1, keys);
            }
            Some(Err(e)) => tracing::warn!(source = %name, "Kafka: {e}"),
            // Nothing more to read for now: a replay that ended on a gap is over too.
            None => context.caught_up(&consumer),
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            context.commit(&consumer, CommitMode::Async, |_| true);
            last_commit = Instant::now();
        }
    }
}

/// Puts one message's data in the window, returning the label fingerprints of its series
/// or streams; a refused message is counted, logged and skipped, one whose alerts could not
/// be stored is tried again until they are.
fn take(sink: &Sink, source: &str, format: Format, m: &BorrowedMessage<'_>) -> Vec<u64> {
    let payload = m.payload().unwrap_or_default();
    let m_ = &sink.metrics;
    loop {
        match sink.take(format, payload) {
            Ok((n, keys)) => {
                // Alerts are counted where they are stored, as the API's are.
                let counter = match format {
                    Format::RemoteWrite | Format::Json => Some("faultline_samples_ingested_total"),
                    Format::Loki => Some("faultline_log_records_ingested_total"),
                    Format::Alerts => None,
                };
                if let Some(counter) = counter {
                    m_.add(counter, &[("source", "kafka")], n as f64);
                }
                m_.inc(
                    "faultline_kafka_messages_total",
                    &[("source", source), ("outcome", "taken")],
                );
                return keys;
            }
            Err(Taken::Refused(e)) => {
                tracing::warn!(
                    source,
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "Kafka message refused: {e}"
                );
                m_.inc(
                    "faultline_kafka_messages_total",
                    &[("source", source), ("outcome", "refused")],
                );
                return Vec::new();
            }
            Err(Taken::Retry(e)) => {
                tracing::error!(source, "storing a Kafka message's alerts, retrying: {e}");
                std::thread::sleep(RETRY_AFTER);
            }
        }
    }
}

/// The consumer's view of its partitions, updated by rebalances and by the loop.
struct Context {
    source: String,
    replay: Arc<dyn Fn() -> Duration + Send + Sync>,
    replaying: Arc<Replaying>,
    sink: Arc<Sink>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The partitions assigned now.
    assigned: HashSet<Partition>,
    /// Gained partitions still replaying, with the offset that ends their replay.
    replaying: HashMap<Partition, i64>,
    /// Per assigned partition, the offset after the last message whose data is in the window.
    taken: HashMap<Partition, i64>,
    /// What was last committed of `taken`.
    committed: HashMap<Partition, i64>,
    /// Per partition, the label fingerprints of the series and streams taken from it.
    keys: HashMap<Partition, HashSet<u64>>,
    /// What the last eager rebalance took: given straight back, they resume where they were.
    revoked: HashSet<Partition>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    /// Gains or gives up partitions: commits what was taken of those given up, and sets
    /// where each gained partition's replay starts before assigning it.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.gain(consumer, tpl);
                match cooperative {
                    true => consumer.incremental_assign(tpl),
                    false => consumer.assign(tpl),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.lose(consumer, tpl, cooperative);
                match cooperative {
                    true => consumer.incremental_unassign(tpl),
                    false => consumer.unassign(),
                }
            }
            other => {
                tracing::error!(source = %self.source, "Kafka rebalance failed: {other:?}");
                self.lose(consumer, tpl, false);
                consumer.unassign()
            }
        };
        if let Err(e) = done {
            tracing::error!(source = %self.source, "Kafka rebalance: {e}");
        }
        self.export();
    }
}

impl Context {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the start of every partition of `tpl` that is new here, and marks it replaying
    /// up to the end it has now.
    fn gain(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let mut state = self.state();
        let all: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let gained: Vec<Partition> = all
            .iter()
            .filter(|p| !state.assigned.contains(*p) && !state.revoked.contains(*p))
            .cloned()
            .collect();
        let revoked = std::mem::take(&mut state.revoked);
        let gone: Vec<Partition> = revoked.into_iter().filter(|p| !all.contains(p)).collect();
        self.forget(&mut state, &gone);
        state.assigned.extend(all);
        if gained.is_empty() {
            return;
        }
        let since = now_ms() - (self.replay)().as_millis() as i64;
        let (mut ask, mut times) = (TopicPartitionList::new(), TopicPartitionList::new());
        for (topic, partition) in &gained {
            ask.add_partition(topic, *partition);
            // offsets_for_times reads the time from the offset field.
            times
                .add_partition_offset(topic, *partition, Offset::Offset(since))
                .ok();
        }
        let committed = consumer
            .committed_offsets(ask, REQUEST_TIMEOUT)
            .inspect_err(
                |e| tracing::warn!(source = %self.source, "reading committed offsets: {e}"),
            )
            .ok();
        let by_time = consumer
            .offsets_for_times(times, REQUEST_TIMEOUT)
            .inspect_err(|e| tracing::warn!(source = %self.source, "finding offsets by time: {e}"))
            .ok();
        let offset = |list: &Option<TopicPartitionList>, (topic, partition): &Partition| {
            list.as_ref()
                .and_then(|l| l.find_partition(topic, *partition))
                .map(|e| e.offset())
        };
        for p in gained {
            let (low, high) = match consumer.fetch_watermarks(&p.0, p.1, REQUEST_TIMEOUT) {
                Ok(marks) => marks,
                Err(e) => {
                    // Unknown ends: the committed offset (or the earliest), nothing to wait for.
                    tracing::warn!(source = %self.source, topic = %p.0, partition = p.1, "reading offsets, not replaying: {e}");
                    continue;
                }
            };
            let from_time = match offset(&by_time, &p) {
                Some(Offset::Offset(o)) => o,
                Some(Offset::End) => high,
                _ => low,
            };
            let start = match offset(&committed, &p) {
                Some(Offset::Offset(c)) => c.min(from_time),
                _ => from_time,
            }
            .max(low);
            tpl.set_partition_offset(&p.0, p.1, Offset::Offset(start))
                .ok();
            tracing::info!(source = %self.source, topic = %p.0, partition = p.1, from = start, to = high, "gained a partition: replaying");
            if start < high {
                state.replaying.insert(p, high);
                self.replaying.add(1);
            }
        }
    }

    /// Commits what was taken of the partitions of `tpl` and forgets them. After an eager
    /// revocation they are remembered, in case the same rebalance gives them back.
    fn lose(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, cooperative: bool) {
        let lost: HashSet<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        if !consumer.assignment_lost() {
            self.commit(consumer, CommitMode::Sync, |p| lost.contains(p));
        }
        let mut state = self.state();
        for p in &lost {
            state.assigned.remove(p);
            state.taken.remove(p);
            state.committed.remove(p);
            if state.replaying.remove(p).is_some() {
                self.replaying.done(1);
            }
        }
        match cooperative {
            true => self.forget(&mut state, &Vec::from_iter(lost)),
            false => state.revoked = lost,
        }
        tracing::info!(source = %self.source, partitions = tpl.count(), "gave up partitions");
    }

    /// Forgets what was taken from partitions given up for good: the instance that has them
    /// now holds their series, and a rule here must not go on seeing them, or a stale copy.
    /// The alerts over them are handed over to it, not resolved.
    fn forget(&self, state: &mut State, gone: &[Partition]) {
        let mut keys = HashSet::new();
        for p in gone {
            keys.extend(state.keys.remove(p).unwrap_or_default());
        }
        if !keys.is_empty() {
            let n = self.sink.forget(&keys);
            tracing::info!(source = %self.source, partitions = gone.len(), series_and_streams = n, "forgot the data of partitions given up");
        }
    }

    /// Records that the data of every message before `next` of a partition is in the window,
    /// and the series and streams it held.
    fn taken(&self, topic: &str, partition: i32, next: i64, keys: Vec<u64>) {
        let mut state = self.state();
        let p = (topic.to_string(), partition);
        if !state.assigned.contains(&p) {
            return;
        }
        state.keys.entry(p.clone()).or_default().extend(keys);
        if state.replaying.get(&p).is_some_and(|end| next >= *end) {
            state.replaying.remove(&p);
            self.replaying.done(1);
            tracing::info!(source = %self.source, topic, partition, "partition replayed");
            drop(state);
            self.export();
            state = self.state();
        }
        state.taken.insert(p, next);
    }

    /// Ends the replays whose partitions' positions reached their ends.
    fn caught_up(&self, consumer: &BaseConsumer<Self>) {
        if self.state().replaying.is_empty() {
            return;
        }
        let Ok(positions) = consumer.position() else {
            return;
        };
        let mut state = self.state();
        let before = state.replaying.len();
        state.replaying.retain(|(topic, p), end| {
            !matches!(
                positions.find_partition(topic, *p).map(|e| e.offset()),
                Some(Offset::Offset(o)) if o >= *end
            )
        });
        let done = before - state.replaying.len();
        drop(state);
        if done > 0 {
            self.replaying.done(done);
            tracing::info!(source = %self.source, partitions = done, "partitions replayed");
            self.export();
        }
    }

    /// Commits the taken offsets of the partitions `which` picks that moved since their
    /// last commit.
    fn commit(
        &self,
        consumer: &BaseConsumer<Self>,
        mode: CommitMode,
        which: impl Fn(&Partition) -> bool,
    ) {
        let mut tpl = TopicPartitionList::new();
        let moved: Vec<(Partition, i64)> = {
            let state = self.state();
            state
                .taken
                .iter()
                .filter(|(p, next)| which(p) && state.committed.get(*p) != Some(*next))
                .map(|(p, next)| (p.clone(), *next))
                .collect()
        };
        for ((topic, partition), next) in &moved {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .ok();
        }
        if moved.is_empty() {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => self.state().committed.extend(moved),
            Err(e) => tracing::warn!(source = %self.source, "committing offsets: {e}"),
        }
    }

    /// Sets the source's partition gauges.
    fn export(&self) {
        let (assigned, replaying) = {
            let state = self.state();
            (state.assigned.len(), state.replaying.len())
        };
        let labels = [("source", self.source.as_str())];
        self.sink.metrics.set(
            "faultline_kafka_partitions_assigned",
            &labels,
            assigned as f64,
        );
        self.sink.metrics.set(
            "faultline_kafka_partitions_replaying",
            &labels,
            replaying as f64,
        );
    }
}
