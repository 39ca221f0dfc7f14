//! The data a rule selected: samples grouped per series and log records, with their labels
//! resolved from the instance's label cache.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::bindings::wit;
use crate::labels::Labels;

/// What a detector is given at each evaluation (and a localizer, inside [`LocalizeInput`]):
/// the evaluation time, the selected samples per series and the selected log records.
///
/// Build one for tests with [`Input::builder`].
///
/// [`LocalizeInput`]: crate::localizer::LocalizeInput
#[derive(Debug)]
pub struct Input {
    now: i64,
    samples: wit::Samples,
    logs: Vec<wit::LogRecord>,
    cache: LabelCache,
}

impl Input {
    /// Starts building an input, for tests.
    pub fn builder() -> InputBuilder {
        InputBuilder::default()
    }

    /// The evaluation time, milliseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The selected series, each with its samples (oldest first): one sample per series
    /// for instant rules, all of the range for range rules.
    pub fn series(&self) -> impl Iterator<Item = Series<'_>> {
        let s = &self.samples;
        // The columns have one length; should the host ever disagree, read what all three have.
        let rows = s.ids.len().min(s.timestamps.len()).min(s.values.len());
        SeriesIter {
            input: self,
            ids: &s.ids[..rows],
            pos: 0,
        }
    }

    /// The selected log records, oldest first.
    pub fn logs(&self) -> impl ExactSizeIterator<Item = LogRecord<'_>> {
        self.logs.iter().map(|r| LogRecord {
            labels: self.cache.get(r.stream),
            record: r,
        })
    }

    /// Takes the host's input, first adding the labels of series new to this instance to
    /// its cache.
    pub(crate) fn from_wit(
        now: i64,
        new_series: Vec<wit::SeriesInfo>,
        samples: wit::Samples,
        logs: Vec<wit::LogRecord>,
        mut cache: LabelCache,
    ) -> Self {
        for info in new_series {
            cache.insert(info.id, Labels::from_wit(info.labels));
        }
        Self {
            now,
            samples,
            logs,
            cache,
        }
    }

    /// Gives the label cache back to the instance after the call.
    pub(crate) fn into_cache(self) -> LabelCache {
        self.cache
    }
}

/// One series of an [`Input`]: its labels and its samples.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub(crate) id: u32,
    pub(crate) labels: &'a Rc<Labels>,
    timestamps: &'a [i64],
    values: &'a [f64],
}

impl<'a> Series<'a> {
    /// The series' labels.
    pub fn labels(&self) -> &'a Labels {
        self.labels
    }

    /// Sample times, milliseconds since the Unix epoch, oldest first.
    pub fn timestamps(&self) -> &'a [i64] {
        self.timestamps
    }

    /// Sample values, in the order of [`timestamps`](Self::timestamps).
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = Sample> + 'a {
        self.timestamps
            .iter()
            .zip(self.values)
            .map(|(&timestamp, &value)| Sample { timestamp, value })
    }

    /// The newest sample. A series always has at least one.
    pub fn latest(&self) -> Sample {
        let last = self.values.len() - 1;
        Sample {
            timestamp: self.timestamps[last],
            value: self.values[last],
        }
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Always false: a series is in the input because it has samples.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The value (NaN for a Prometheus staleness marker).
    pub value: f64,
}

/// Walks the sample columns, one series per run of equal ids (rows come ordered by series,
/// then time), lending slices of the columns: nothing is copied.
struct SeriesIter<'a> {
    input: &'a Input,
    ids: &'a [u32],
    pos: usize,
}

impl<'a> Iterator for SeriesIter<'a> {
    type Item = Series<'a>;

    fn next(&mut self) -> Option<Series<'a>> {
        let start = self.pos;
        let id = *self.ids.get(start)?;
        let len = self.ids[start..]
            .iter()
            .position(|&other| other != id)
            .unwrap_or(self.ids.len() - start);
        self.pos = start + len;
        let s = &self.input.samples;
        Some(Series {
            id,
            labels: self.input.cache.get(id),
            timestamps: &s.timestamps[start..self.pos],
            values: &s.values[start..self.pos],
        })
    }
}

/// One log record of an [`Input`].
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    labels: &'a Labels,
    record: &'a wit::LogRecord,
}

impl<'a> LogRecord<'a> {
    /// The labels of the record's stream.
    pub fn labels(&self) -> &'a Labels {
        self.labels
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp
    }

    /// The log line.
    pub fn line(&self) -> &'a str {
        &self.record.line
    }

    /// The value of structured field `name` (Loki structured metadata, NDJSON fields).
    pub fn field(&self, name: &str) -> Option<&'a str> {
        self.fields().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The structured fields as `(name, value)`, in the order the host sent them.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> {
        self.record
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
    }
}

/// The labels of every series and stream an instance has seen, by host id: the host sends
/// them only the first time.
#[derive(Debug, Default)]
pub(crate) struct LabelCache {
    labels: HashMap<u32, Rc<Labels>, BuildHasherDefault<IdHasher>>,
    /// Lent for an id the host never described; not expected, but not worth a trap either.
    empty: Rc<Labels>,
}

impl LabelCache {
    fn insert(&mut self, id: u32, labels: Labels) {
        self.labels.insert(id, Rc::new(labels));
    }

    pub(crate) fn get(&self, id: u32) -> &Rc<Labels> {
        self.labels.get(&id).unwrap_or(&self.empty)
    }
}

/// Hashes a host-assigned id with one multiplication (Fibonacci hashing): ids are small
/// dense numbers chosen by the trusted host, so SipHash's flood resistance buys nothing and
/// would cost a few nanoseconds per series.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds an [`Input`] in tests, the way the host would send it.
///
/// ```
/// use faultline_sdk::{Input, Labels};
///
/// let input = Input::builder()
///     .now(60_000)
///     .series([("instance", "a")], &[(0, 1.0), (30_000, 2.0)])
///     .series([("instance", "b")], &[(30_000, 5.0)])
///     .log([("app", "api")], 45_000, "GET /health 500")
///     .build();
/// let latest: Vec<f64> = input.series().map(|s| s.latest().value).collect();
/// assert_eq!(latest, [2.0, 5.0]);
/// assert_eq!(input.logs().next().unwrap().labels().get("app"), Some("api"));
/// ```
#[derive(Debug, Default)]
pub struct InputBuilder {
    now: i64,
    /// Series and streams in the order first given; the index is the id.
    ids: Vec<Labels>,
    rows: Vec<(u32, i64, f64)>,
    logs: Vec<wit::LogRecord>,
}

impl InputBuilder {
    /// Sets the evaluation time, milliseconds since the Unix epoch (default 0).
    pub fn now(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    /// Adds samples `(timestamp, value)` of the series with `labels`. Samples given for the
    /// same labels in several calls belong to one series.
    pub fn series(mut self, labels: impl Into<Labels>, samples: &[(i64, f64)]) -> Self {
        let id = self.id(labels.into());
        self.rows
            .extend(samples.iter().map(|&(ts, value)| (id, ts, value)));
        self
    }

    /// Adds a log record of the stream with `labels`.
    pub fn log(self, labels: impl Into<Labels>, timestamp: i64, line: impl Into<String>) -> Self {
        self.log_with_fields(labels, timestamp, line, Labels::new())
    }

    /// Adds a log record with structured fields.
    pub fn log_with_fields(
        mut self,
        labels: impl Into<Labels>,
        timestamp: i64,
        line: impl Into<String>,
        fields: impl Into<Labels>,
    ) -> Self {
        let stream = self.id(labels.into());
        self.logs.push(wit::LogRecord {
            stream,
            timestamp,
            line: line.into(),
            fields: fields.into().into_wit(),
        });
        self
    }

    /// The input, ordered as the host orders it (samples by series then time, logs by time).
    pub fn build(mut self) -> Input {
        self.rows.sort_by_key(|&(id, ts, _)| (id, ts));
        self.logs.sort_by_key(|r| r.timestamp);
        let new_series = self
            .ids
            .into_iter()
            .zip(0..)
            .map(|(labels, id)| wit::SeriesInfo {
                id,
                labels: labels.into_wit(),
            })
            .collect();
        let samples = wit::Samples {
            ids: self.rows.iter().map(|r| r.0).collect(),
            timestamps: self.rows.iter().map(|r| r.1).collect(),
            values: self.rows.iter().map(|r| r.2).collect(),
        };
        Input::from_wit(
            self.now,
            new_series,
            samples,
            self.logs,
            LabelCache::default(),
        )
    }

    fn id(&mut self, labels: Labels) -> u32 {
        let index = match self.ids.iter().position(|l| *l == labels) {
            Some(index) => index,
            None => {
                self.ids.push(labels);
                self.ids.len() - 1
            }
        };
        u32::try_from(index).expect("fewer than 2^32 series in a test")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ids: &[u32]) -> wit::Samples {
        wit::Samples {
            ids: ids.to_vec(),
            timestamps: (0..ids.len() as i64).collect(),
            values: (0..ids.len()).map(|i| i as f64).collect(),
        }
    }

    fn info(id: u32, instance: &str) -> wit::SeriesInfo {
        wit::SeriesInfo {
            id,
            labels: Labels::from([("instance", instance)]).into_wit(),
        }
    }

    #[test]
    fn groups_runs_of_ids() {
        let input = Input::from_wit(
            0,
            vec![info(7, "a"), info(3, "b")],
            samples(&[7, 7, 7, 3, 9, 9]),
            vec![],
            LabelCache::default(),
        );
        let series: Vec<_> = input
            .series()
            .map(|s| (s.labels().get("instance"), s.values().to_vec()))
            .collect();
        assert_eq!(
            series,
            [
                (Some("a"), vec![0.0, 1.0, 2.0]),
                (Some("b"), vec![3.0]),
                // Never described by the host: empty labels rather than a trap.
                (None, vec![4.0, 5.0]),
            ]
        );
        assert_eq!(input.series().next().unwrap().latest().timestamp, 2);
    }

    #[test]
    fn labels_are_remembered_across_calls() {
        let first = Input::from_wit(
            0,
            vec![info(1, "a")],
            samples(&[1]),
            vec![],
            LabelCache::default(),
        );
        let second = Input::from_wit(0, vec![], samples(&[1]), vec![], first.into_cache());
        let s = second.series().next().unwrap();
        assert_eq!(s.labels().get("instance"), Some("a"));
    }

    #[test]
    fn uneven_columns_do_not_panic() {
        let mut s = samples(&[1, 1, 2]);
        s.values.pop();
        let input = Input::from_wit(0, vec![], s, vec![], LabelCache::default());
        assert_eq!(input.series().map(|s| s.len()).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn builder_orders_and_shares_ids() {
        let input = Input::builder()
            .series([("i", "a")], &[(20, 2.0)])
            .series([("i", "b")], &[(10, 9.0)])
            .series([("i", "a")], &[(10, 1.0)])
            .log_with_fields([("i", "a")], 5, "x", [("level", "error")])
            .build();
        let a = input.series().next().unwrap();
        assert_eq!(a.timestamps(), [10, 20]);
        assert_eq!(a.values(), [1.0, 2.0]);
        assert_eq!(input.series().count(), 2);
        let log = input.logs().next().unwrap();
        assert_eq!(log.labels().get("i"), Some("a"));
        assert_eq!(log.field("level"), Some("error"));
        assert_eq!((log.timestamp(), log.line()), (5, "x"));
    }
}
