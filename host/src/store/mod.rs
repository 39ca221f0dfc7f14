//! Windows of recent data: samples per series and records per log stream, in memory and
//! bounded. Series and streams get numeric ids that are never reused, which is what crosses
//! into plugins. Selection follows Prometheus: an instant selector takes each series' latest
//! sample within the lookback (5 minutes by default) unless that sample is a staleness
//! marker; a range selector takes the samples in `(now - range, now]`.

mod table;

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashbrown::{Equivalent, HashMap};

use crate::model::{Label, LabelPairs, Labels, LogRecord, Sample, SeriesBatch, SeriesSamples};
use crate::rules::selector::{LogSelector, Selector};
use crate::runtime::instance::Selection;
use crate::runtime::types;
use table::Table;

/// A series' labels as a batch gives them: owned, or borrowed pairs that the index is
/// probed with as they are.
trait SeriesKey: Hash + Equivalent<Labels> {
    fn into_labels(self) -> Labels;
}

impl SeriesKey for Labels {
    fn into_labels(self) -> Labels {
        self
    }
}

impl SeriesKey for LabelPairs<'_, '_> {
    fn into_labels(self) -> Labels {
        self.to_labels()
    }
}

/// Bounds on what the store keeps.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    /// Series kept at most; samples of new series beyond it are dropped.
    pub max_series: usize,
    /// Log streams kept at most.
    pub max_streams: usize,
    /// Records kept per log stream (oldest dropped first).
    pub max_records_per_stream: usize,
    /// How far back an instant selector looks for a series' latest sample.
    pub lookback: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_series: 2_000_000,
            max_streams: 100_000,
            max_records_per_stream: 10_000,
            lookback: Duration::from_secs(300),
        }
    }
}

/// Counts of data the store refused, by reason: shown on `/metrics`.
#[derive(Debug, Default)]
pub struct Dropped {
    pub series_limit: AtomicU64,
    pub stream_limit: AtomicU64,
    pub out_of_order: AtomicU64,
    /// Samples and log records already held (same series and time; for a record, the same
    /// line and fields too): a Kafka source's re-delivery, or a sender's retry.
    pub duplicate: AtomicU64,
    pub too_old: AtomicU64,
    pub records_per_stream: AtomicU64,
}

/// The windows.
pub struct Store {
    inner: RwLock<Inner>,
    limits: StoreLimits,
    /// How much history is kept (at least the lookback; raised to the largest rule range).
    retention_ms: AtomicU64,
    pub dropped: Dropped,
    pub samples_appended: AtomicU64,
    pub records_appended: AtomicU64,
}

struct SeriesEntry {
    labels: Labels,
    samples: VecDeque<Sample>,
}

/// A log record in a stream's window: time (ms), line, fields.
type Record = (i64, String, Vec<(String, String)>);

struct StreamEntry {
    labels: Labels,
    records: VecDeque<Record>,
}

#[derive(Default)]
struct Inner {
    next_id: u32,
    series: Table<SeriesEntry>,
    series_by_labels: HashMap<Labels, u32>,
    /// Series ids by metric name, ascending.
    by_name: HashMap<String, Vec<u32>>,
    streams: HashMap<u32, StreamEntry>,
    streams_by_labels: HashMap<Labels, u32>,
    /// Bumped whenever a series or stream is added or removed.
    generation: u64,
}

impl Inner {
    /// The labels of `ids` (ascending, series and streams) with each id, taken from `had` (a
    /// previous selection's, ascending) where it holds them: a rule that selects the same
    /// series each evaluation shares no label set again. Ids are never reused, so an id
    /// names the same labels for as long as it is held.
    fn with_labels(&self, ids: &[u32], had: Vec<(u32, Labels)>) -> Vec<(u32, Labels)> {
        let mut had = had.into_iter().peekable();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            while had.next_if(|(h, _)| *h < id).is_some() {}
            let labels = match had.next_if(|(h, _)| *h == id) {
                Some((_, labels)) => labels,
                None => match self.series.get(&id) {
                    Some(e) => e.labels.clone(),
                    None => self.streams[&id].labels.clone(),
                },
            };
            out.push((id, labels));
        }
        out
    }
}

/// What [`Store::forget`] removed.
#[derive(Debug, Default)]
pub struct Forgotten {
    /// Series and streams forgotten.
    pub count: usize,
    /// The label pairs that only the forgotten series and streams had.
    pub only_theirs: HashSet<Label>,
}

/// What a rule matched last time, reused while no series came or went.
#[derive(Debug, Default)]
pub struct MatchCache {
    generation: Option<u64>,
    /// Per input, the series it matched: their ids, ascending, with their slots.
    series: Vec<Vec<(u32, u32)>>,
    /// Per input, the ids of the streams it matched.
    streams: Vec<Vec<u32>>,
    /// The series and streams one selection took, before their labels are added.
    taken: Vec<u32>,
}

impl Store {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Store {
        let retention_ms = limits.lookback.as_millis() as u64;
        Store {
            inner: RwLock::new(Inner::default()),
            limits,
            retention_ms: AtomicU64::new(retention_ms),
            dropped: Dropped::default(),
            samples_appended: AtomicU64::new(0),
            records_appended: AtomicU64::new(0),
        }
    }

    /// Keeps at least `range` of history (the largest range any rule selects).
    pub fn retain_at_least(&self, range: Duration) {
        let ms = range.max(self.limits.lookback).as_millis() as u64;
        self.retention_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How much history the windows keep: the largest rule range, at least the lookback.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.retention_ms.load(Ordering::Relaxed))
    }

    fn retention(&self) -> i64 {
        self.retention_ms.load(Ordering::Relaxed) as i64
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.read().series.len()
    }

    /// Number of log streams held.
    pub fn stream_count(&self) -> usize {
        self.read().streams.len()
    }

    /// Appends samples. Samples older than a series' newest are dropped (and counted): as
    /// duplicates when the series holds a sample at that time, else as out of order. So a
    /// batch appended twice is held once.
    pub fn append(&self, batch: Vec<SeriesSamples>) {
        self.append_each(batch.into_iter().map(|s| (s.labels, s.samples)));
    }

    /// Appends a batch whose labels are borrowed from a request, as [`Store::append`]
    /// does: labels are built only for the series not held yet.
    pub fn append_batch(&self, batch: &SeriesBatch<'_>) {
        self.append_each(batch.iter().map(|(l, s)| (l, s.iter().copied())));
    }

    fn append_each<K, S>(&self, batch: impl Iterator<Item = (K, S)>)
    where
        K: SeriesKey,
        S: IntoIterator<Item = Sample>,
    {
        let retention = self.retention();
        let mut inner = self.write();
        let inner = &mut *inner;
        let mut appended = 0u64;
        for (labels, samples) in batch {
            let id = match inner.series_by_labels.get(&labels) {
                Some(id) => *id,
                None => {
                    if inner.series.len() >= self.limits.max_series {
                        self.dropped.series_limit.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let id = inner.next_id;
                    inner.next_id += 1;
                    let labels = labels.into_labels().interned();
                    if let Some(name) = labels.name() {
                        inner.by_name.entry(name.to_string()).or_default().push(id);
                    }
                    inner.series_by_labels.insert(labels.clone(), id);
                    inner.series.insert(
                        id,
                        SeriesEntry {
                            labels,
                            samples: VecDeque::new(),
                        },
                    );
                    inner.generation += 1;
                    id
                }
            };
            let entry = inner.series.get_mut(&id).expect("indexed series exists");
            for s in samples {
                if entry.samples.back().is_some_and(|last| s.ts <= last.ts) {
                    let held = entry.samples.binary_search_by_key(&s.ts, |h| h.ts).is_ok();
                    let reason = match held {
                        true => &self.dropped.duplicate,
                        false => &self.dropped.out_of_order,
                    };
                    reason.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                entry.samples.push_back(s);
                appended += 1;
            }
            if let Some(newest) = entry.samples.back().map(|s| s.ts) {
                while entry
                    .samples
                    .front()
                    .is_some_and(|s| s.ts < newest - retention)
                {
                    entry.samples.pop_front();
                }
            }
        }
        self.samples_appended.fetch_add(appended, Ordering::Relaxed);
    }

    /// Removes the series and log streams whose label fingerprints are in `keys`: a Kafka
    /// source gave up the partition they came from, and the instance that took it over
    /// holds them now. Returns how many went, and the label pairs that only they had (what
    /// names them, such as their service, and no series or stream still held).
    pub fn forget(&self, keys: &HashSet<u64>) -> Forgotten {
        let mut guard = self.write();
        let inner = &mut *guard;
        let series: Vec<u32> = inner
            .series
            .iter()
            .filter(|(_, e)| keys.contains(&e.labels.fingerprint()))
            .map(|(id, _)| *id)
            .collect();
        let mut only_theirs = HashSet::new();
        for id in &series {
            if let Some(e) = inner.series.remove(id) {
                only_theirs.extend(e.labels.as_slice().iter().cloned());
                inner.series_by_labels.remove(&e.labels);
                if let Some(ids) = e.labels.name().and_then(|n| inner.by_name.get_mut(n)) {
                    ids.retain(|i| i != id);
                }
            }
        }
        inner.by_name.retain(|_, ids| !ids.is_empty());
        let streams: Vec<u32> = inner
            .streams
            .iter()
            .filter(|(_, e)| keys.contains(&e.labels.fingerprint()))
            .map(|(id, _)| *id)
            .collect();
        for id in &streams {
            if let Some(e) = inner.streams.remove(id) {
                only_theirs.extend(e.labels.as_slice().iter().cloned());
                inner.streams_by_labels.remove(&e.labels);
            }
        }
        let count = series.len() + streams.len();
        if count > 0 {
            inner.generation += 1;
        }
        drop(guard);
        // What is still held is read without holding up appends.
        let inner = self.read();
        let held = inner.series.values().map(|e| &e.labels);
        for labels in held.chain(inner.streams.values().map(|e| &e.labels)) {
            if only_theirs.is_empty() {
                break;
            }
            for pair in labels.as_slice() {
                only_theirs.remove(pair);
            }
        }
        Forgotten { count, only_theirs }
    }

    /// Appends log records. A record already held (same stream, time, line and fields) is
    /// dropped as a duplicate, as Loki drops one, so a batch appended twice is held once.
    pub fn append_logs(&self, records: Vec<LogRecord>) {
        let retention = self.retention();
        let mut inner = self.write();
        let inner = &mut *inner;
        let mut appended = 0u64;
        for LogRecord {
            labels,
            ts,
            line,
            fields,
        } in records
        {
            let id = match inner.streams_by_labels.get(&labels) {
                Some(id) => *id,
                None => {
                    if inner.streams.len() >= self.limits.max_streams {
                        self.dropped.stream_limit.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let id = inner.next_id;
                    inner.next_id += 1;
                    let labels = labels.interned();
                    inner.streams_by_labels.insert(labels.clone(), id);
                    inner.streams.insert(
                        id,
                        StreamEntry {
                            labels,
                            records: VecDeque::new(),
                        },
                    );
                    inner.generation += 1;
                    id
                }
            };
            let entry = inner.streams.get_mut(&id).expect("indexed stream exists");
            // Records may arrive slightly out of order; keep them sorted by time.
            let pos = entry.records.partition_point(|r| r.0 <= ts);
            let same_time = entry.records.partition_point(|r| r.0 < ts)..pos;
            if entry
                .records
                .range(same_time)
                .any(|r| r.1 == line && r.2 == fields)
            {
                self.dropped.duplicate.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            entry.records.insert(pos, (ts, line, fields));
            appended += 1;
            if entry.records.len() > self.limits.max_records_per_stream {
                entry.records.pop_front();
                self.dropped
                    .records_per_stream
                    .fetch_add(1, Ordering::Relaxed);
            }
            let newest = entry.records.back().map_or(ts, |r| r.0);
            while entry
                .records
                .front()
                .is_some_and(|r| r.0 < newest - retention)
            {
                entry.records.pop_front();
            }
        }
        self.records_appended.fetch_add(appended, Ordering::Relaxed);
    }

    /// Removes series and streams with nothing newer than the retention before `now`.
    pub fn gc(&self, now: i64) {
        if self.remove_dead(now) {
            // Labels of removed series that nothing else holds leave the interner.
            crate::model::purge_interned();
        }
    }

    /// Removes the series and streams [`Store::gc`] removes; returns whether any were.
    fn remove_dead(&self, now: i64) -> bool {
        let horizon = now - self.retention() - self.limits.lookback.as_millis() as i64;
        let mut inner = self.write();
        let inner = &mut *inner;
        let before = inner.series.len() + inner.streams.len();
        let dead: Vec<u32> = inner
            .series
            .iter()
            .filter(|(_, e)| e.samples.back().is_none_or(|s| s.ts < horizon))
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(e) = inner.series.remove(&id) {
                inner.series_by_labels.remove(&e.labels);
                if let Some(ids) = e.labels.name().and_then(|n| inner.by_name.get_mut(n)) {
                    ids.retain(|i| *i != id);
                }
            }
        }
        inner.by_name.retain(|_, ids| !ids.is_empty());
        let dead: Vec<u32> = inner
            .streams
            .iter()
            .filter(|(_, e)| e.records.back().is_none_or(|r| r.0 < horizon))
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(e) = inner.streams.remove(&id) {
                inner.streams_by_labels.remove(&e.labels);
            }
        }
        let removed = inner.series.len() + inner.streams.len() != before;
        if removed {
            inner.generation += 1;
        }
        removed
    }

    /// Fills `out` with what a rule selects at `now`: for each of `series`, the latest
    /// sample per matching series (instant) or all samples in the range; for each of `logs`,
    /// the matching records in `(now - log_range, now]`. Inputs come one after the other,
    /// each starting at the row `out.bounds` gives (a series matched by two inputs appears
    /// in both).
    #[allow(clippy::too_many_arguments)]
    pub fn select(
        &self,
        series: &[Selector],
        range: Option<Duration>,
        logs: &[LogSelector],
        log_range: Duration,
        now: i64,
        cache: &mut MatchCache,
        out: &mut Selection,
    ) {
        let inner = self.read();
        if cache.generation != Some(inner.generation) {
            cache.series = series
                .iter()
                .map(|sel| {
                    let mut ids: Vec<u32> = match sel.metric_name() {
                        Some(name) => inner.by_name.get(name).cloned().unwrap_or_default(),
                        None => inner.series.keys().copied().collect(),
                    };
                    ids.sort_unstable();
                    let slots = ids.into_iter().filter_map(|id| {
                        let slot = inner.series.slot(id)?;
                        sel.matches(&inner.series.at(slot).labels)
                            .then_some((id, slot))
                    });
                    slots.collect()
                })
                .collect();
            cache.streams = logs
                .iter()
                .map(|sel| {
                    let mut ids: Vec<u32> = inner
                        .streams
                        .iter()
                        .filter(|(_, e)| sel.matches_stream(&e.labels))
                        .map(|(id, _)| *id)
                        .collect();
                    ids.sort_unstable();
                    ids
                })
                .collect();
            cache.generation = Some(inner.generation);
        }
        cache.taken.clear();
        out.bounds.samples.clear();
        out.bounds.logs.clear();
        let types::Samples {
            ids,
            timestamps,
            values,
        } = &mut out.samples;
        ids.clear();
        timestamps.clear();
        values.clear();
        out.logs.clear();
        let lookback = self.limits.lookback.as_millis() as i64;
        let MatchCache {
            series: inputs,
            streams,
            taken,
            ..
        } = cache;
        for input in inputs.iter() {
            out.bounds.samples.push(row(ids.len()));
            for &(id, slot) in input {
                let e = inner.series.at(slot);
                let before = ids.len();
                match range {
                    None => {
                        // The latest sample at or before `now`, within the lookback: most
                        // often the last one, found without a search.
                        let end = match e.samples.back() {
                            Some(last) if last.ts <= now => e.samples.len(),
                            _ => e.samples.partition_point(|s| s.ts <= now),
                        };
                        if let Some(s) = end.checked_sub(1).map(|i| e.samples[i])
                            && s.ts > now - lookback
                            && !s.is_stale_marker()
                        {
                            ids.push(id);
                            timestamps.push(s.ts);
                            values.push(s.value);
                        }
                    }
                    Some(r) => {
                        let start = now - r.as_millis() as i64;
                        let from = e.samples.partition_point(|s| s.ts <= start);
                        for s in e.samples.range(from..) {
                            if s.ts > now {
                                break;
                            }
                            if !s.is_stale_marker() {
                                ids.push(id);
                                timestamps.push(s.ts);
                                values.push(s.value);
                            }
                        }
                    }
                }
                if ids.len() > before {
                    taken.push(id);
                }
            }
        }
        let start = now - log_range.as_millis() as i64;
        for (sel, input) in logs.iter().zip(streams.iter()) {
            let first = out.logs.len();
            out.bounds.logs.push(row(first));
            for id in input {
                let e = &inner.streams[id];
                let before = out.logs.len();
                let from = e.records.partition_point(|r| r.0 <= start);
                for (ts, line, fields) in e.records.range(from..) {
                    if *ts > now {
                        break;
                    }
                    if sel.matches_line(line) {
                        out.logs.push(types::LogRecord {
                            stream: *id,
                            timestamp: *ts,
                            line: line.clone(),
                            fields: fields
                                .iter()
                                .map(|(n, v)| types::Label {
                                    name: n.clone(),
                                    value: v.clone(),
                                })
                                .collect(),
                        });
                    }
                }
                if out.logs.len() > before {
                    taken.push(*id);
                }
            }
            out.logs[first..].sort_by_key(|r| r.timestamp);
        }
        // One entry per series or stream, however many inputs selected it.
        taken.sort_unstable();
        taken.dedup();
        out.series = inner.with_labels(taken, std::mem::take(&mut out.series));
    }
}

impl Store {
    /// The series matching `selector` with their samples in `(from, to]`, staleness
    /// markers included, sorted by labels: what the query API reads.
    pub fn series_matching(
        &self,
        selector: &Selector,
        from: i64,
        to: i64,
    ) -> Vec<(Labels, Vec<Sample>)> {
        let inner = self.read();
        let ids: Vec<u32> = match selector.metric_name() {
            Some(name) => inner.by_name.get(name).cloned().unwrap_or_default(),
            None => inner.series.keys().copied().collect(),
        };
        let mut out: Vec<(Labels, Vec<Sample>)> = ids
            .iter()
            .map(|id| &inner.series[id])
            .filter(|e| selector.matches(&e.labels))
            .map(|e| {
                let start = e.samples.partition_point(|s| s.ts <= from);
                let samples = e.samples.range(start..).take_while(|s| s.ts <= to);
                (e.labels.clone(), samples.copied().collect())
            })
            .collect();
        out.sort_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()));
        out
    }

    /// How far back an instant selection looks for a series' latest sample.
    pub fn lookback(&self) -> Duration {
        self.limits.lookback
    }
}

/// A row number as the contract carries it: selections stay far below 2^32 rows, which
/// the cap on a plugin's memory enforces long before.
fn row(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
impl Store {
    /// What an instant selector picks at `now`: each series' labels and latest value.
    pub(crate) fn instant(&self, selector: &str, now: i64) -> Vec<(String, f64)> {
        let mut out = Selection::default();
        self.select(
            &[Selector::parse(selector).unwrap()],
            None,
            &[],
            Duration::ZERO,
            now,
            &mut MatchCache::default(),
            &mut out,
        );
        out.series
            .iter()
            .zip(&out.samples.values)
            .map(|((_, l), v)| (l.to_string(), *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(code: &str, samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs([("__name__", "requests_total"), ("code", code)]),
            samples: samples
                .iter()
                .map(|&(ts, value)| Sample { ts, value })
                .collect(),
        }
    }

    #[test]
    fn samples_stay_in_order_and_leave_the_window() {
        let store = Store::new(StoreLimits {
            lookback: Duration::from_secs(10),
            ..StoreLimits::default()
        });
        store.append(vec![series("500", &[(1_000, 1.0), (5_000, 5.0)])]);
        // An older sample than the newest is refused; a newer one far ahead pushes the
        // first two out of the 10 s window.
        store.append(vec![series("500", &[(4_000, 4.0), (14_000, 14.0)])]);
        assert_eq!(store.dropped.out_of_order.load(Ordering::Relaxed), 1);
        let sel = Selector::parse("requests_total").unwrap();
        let kept = store.series_matching(&sel, 0, 20_000);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].0.to_string(),
            r#"{__name__="requests_total", code="500"}"#
        );
        let samples: Vec<(i64, f64)> = kept[0].1.iter().map(|s| (s.ts, s.value)).collect();
        assert_eq!(samples, [(5_000, 5.0), (14_000, 14.0)]);
    }

    #[test]
    fn a_series_removed_by_gc_comes_back_with_its_labels() {
        let store = Store::new(StoreLimits {
            lookback: Duration::from_secs(10),
            ..StoreLimits::default()
        });
        store.append(vec![series("503", &[(1_000, 1.0)])]);
        store.gc(100_000);
        assert_eq!(store.series_count(), 0);
        store.append(vec![series("503", &[(100_000, 2.0)])]);
        assert_eq!(
            store.instant("requests_total", 100_000),
            [(
                r#"{__name__="requests_total", code="503"}"#.to_string(),
                2.0
            )]
        );
    }

    #[test]
    fn named_inputs_come_one_after_the_other_with_their_starts() {
        let store = Store::new(StoreLimits::default());
        store.append(vec![
            series("500", &[(1_000, 1.0), (2_000, 2.0)]),
            series("200", &[(1_000, 10.0), (2_000, 20.0)]),
        ]);
        let log = |ts, line: &str, app: &str| LogRecord {
            labels: Labels::from_pairs([("app", app)]),
            ts,
            line: line.into(),
            fields: vec![],
        };
        store.append_logs(vec![
            log(1_500, "error b", "b"),
            log(1_000, "error a", "a"),
            log(1_200, "ok a", "a"),
        ]);
        let (mut cache, mut out) = (MatchCache::default(), Selection::default());
        let errors = Selector::parse(r#"requests_total{code="500"}"#).unwrap();
        let total = Selector::parse("requests_total").unwrap();
        let all = LogSelector::parse(r#"{app=~".+"}"#).unwrap();
        let failing = LogSelector::parse(r#"{app=~".+"} |= "error""#).unwrap();
        store.select(
            &[errors, total],
            Some(Duration::from_secs(10)),
            &[all, failing],
            Duration::from_secs(10),
            2_000,
            &mut cache,
            &mut out,
        );
        // errors: the 500 series; total: both, the 500 series again.
        assert_eq!(out.bounds.samples, [0, 2]);
        assert_eq!(out.samples.values, [1.0, 2.0, 1.0, 2.0, 10.0, 20.0]);
        // Each input's records oldest first; the error lines again in the second input.
        assert_eq!(out.bounds.logs, [0, 3]);
        let lines: Vec<&str> = out.logs.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(lines, ["error a", "ok a", "error b", "error a", "error b"]);
        // One entry per series or stream however many inputs selected it.
        assert_eq!(out.series.len(), 4);
    }

    #[test]
    fn a_selection_reused_follows_the_series_that_end_and_begin() {
        let store = Store::new(StoreLimits::default());
        store.append(vec![
            series("500", &[(1_000, 1.0)]),
            series("200", &[(1_000, 2.0)]),
        ]);
        let (mut cache, mut out) = (MatchCache::default(), Selection::default());
        let total = [Selector::parse("requests_total").unwrap()];
        let mut select = |now| {
            let (c, o) = (&mut cache, &mut out);
            store.select(&total, None, &[], Duration::ZERO, now, c, o);
            let codes = o
                .series
                .iter()
                .map(|(_, l)| l.get("code").unwrap().to_string());
            codes.collect::<Vec<_>>()
        };
        assert_eq!(select(1_000), ["500", "200"]);
        // 200 ends (a staleness marker) and 404 begins: the labels the selection held are
        // kept or let go, and the new series' taken.
        let stale = f64::from_bits(crate::model::STALE_NAN_BITS);
        store.append(vec![
            series("500", &[(2_000, 1.0)]),
            series("200", &[(2_000, stale)]),
            series("404", &[(2_000, 3.0)]),
        ]);
        assert_eq!(select(2_000), ["500", "404"]);
        // 500 is forgotten, and the last series takes its slot: the next selection finds
        // each series where it is now.
        let keys = [series("500", &[]).labels.fingerprint()];
        assert_eq!(store.forget(&keys.into_iter().collect()).count, 1);
        assert_eq!(select(2_000), ["404"]);
        assert_eq!(out.samples.values, [3.0]);
    }

    /// What a Kafka source's re-delivery sends again is held once: samples at times a series
    /// holds and records a stream holds are counted as duplicates, not stored twice.
    #[test]
    fn a_batch_appended_twice_is_held_once() {
        let store = Store::new(StoreLimits::default());
        let batch = || vec![series("500", &[(1_000, 1.0), (2_000, 2.0), (3_000, 3.0)])];
        let logs = || {
            vec![LogRecord {
                labels: Labels::from_pairs([("app", "a")]),
                ts: 1_000,
                line: "error".into(),
                fields: vec![("code".into(), "500".into())],
            }]
        };
        store.append(batch());
        store.append_logs(logs());
        store.append(batch());
        store.append_logs(logs());
        // A different sample at a held time is a duplicate too; one between two held ones is
        // out of order.
        store.append(vec![series("500", &[(2_000, 9.0), (2_500, 9.0)])]);
        let mut out = Selection::default();
        store.select(
            &[Selector::parse("requests_total").unwrap()],
            Some(Duration::from_secs(10)),
            &[LogSelector::parse(r#"{app="a"}"#).unwrap()],
            Duration::from_secs(10),
            3_000,
            &mut MatchCache::default(),
            &mut out,
        );
        assert_eq!(out.samples.values, [1.0, 2.0, 3.0]);
        assert_eq!(out.logs.len(), 1);
        assert_eq!(store.dropped.duplicate.load(Ordering::Relaxed), 3 + 1 + 1);
        assert_eq!(store.dropped.out_of_order.load(Ordering::Relaxed), 1);
        // The same line at the same time with other fields is another record.
        let mut other = logs();
        other[0].fields.clear();
        store.append_logs(other);
        assert_eq!(store.stream_count(), 1);
        assert_eq!(store.records_appended.load(Ordering::Relaxed), 2);
    }

    /// A series sent with borrowed labels (remote_write) and with owned ones (a scrape) is
    /// one series: the borrowed pairs find the labels the store holds.
    #[test]
    fn borrowed_and_owned_labels_find_the_same_series() {
        let store = Store::new(StoreLimits::default());
        let mut batch = SeriesBatch::default();
        let pairs = [("__name__", "requests_total"), ("code", "500")];
        batch.push(
            &pairs,
            &[Sample {
                ts: 1_000,
                value: 1.0,
            }],
        );
        store.append_batch(&batch);
        store.append(vec![series("500", &[(2_000, 2.0)])]);
        let mut again = SeriesBatch::default();
        again.push(
            &pairs,
            &[Sample {
                ts: 3_000,
                value: 3.0,
            }],
        );
        store.append_batch(&again);
        assert_eq!(store.series_count(), 1);
        let sel = Selector::parse("requests_total").unwrap();
        let held = store.series_matching(&sel, 0, 10_000);
        let values: Vec<f64> = held[0].1.iter().map(|s| s.value).collect();
        assert_eq!(values, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn forgotten_series_and_streams_are_gone() {
        let store = Store::new(StoreLimits::default());
        store.append(vec![
            series("500", &[(1_000, 1.0)]),
            series("200", &[(1_000, 2.0)]),
        ]);
        let app = Labels::from_pairs([("app", "a")]);
        store.append_logs(vec![LogRecord {
            labels: app.clone(),
            ts: 1_000,
            line: "x".into(),
            fields: vec![],
        }]);
        let keys = [series("500", &[]).labels.fingerprint(), app.fingerprint()];
        let forgotten = store.forget(&keys.into_iter().collect());
        assert_eq!(forgotten.count, 2);
        // `__name__` and `code="500"` named only what went; the app only its stream.
        let mut only: Vec<String> = (forgotten.only_theirs.iter())
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        only.sort();
        assert_eq!(only, ["app=a", "code=500"]);
        assert_eq!(
            store.instant("requests_total", 1_000),
            [(
                r#"{__name__="requests_total", code="200"}"#.to_string(),
                2.0
            )]
        );
        assert_eq!(store.stream_count(), 0);
    }
}
