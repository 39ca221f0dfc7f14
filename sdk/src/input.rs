//! The data a rule selected: samples grouped per series and log records, with their labels
//! resolved from the instance's label cache, and split by named input when the rule has
//! several (`select = { errors = '…', total = '…' }`).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::rc::Rc;

use crate::bindings::wit;
use crate::labels::{Labels, Strings};

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
    named: Vec<Named>,
}

/// Where a named input's data sits in the columns.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    name: String,
    rows: Range<usize>,
    logs: Range<usize>,
}

/// The names of a rule's inputs, as [`rule::settings`](crate::rule::settings) gives them:
/// what an instance needs to split each evaluation's input.
#[derive(Debug, Default)]
pub(crate) struct InputNames {
    pub(crate) series: Vec<String>,
    pub(crate) logs: Vec<String>,
}

impl InputNames {
    pub(crate) fn is_empty(&self) -> bool {
        self.series.is_empty() && self.logs.is_empty()
    }
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
    /// for instant rules, all of the range for range rules. With named inputs, the series
    /// of every input, input after input.
    pub fn series(&self) -> impl Iterator<Item = Series<'_>> {
        self.series_in(0..self.rows())
    }

    /// The selected log records, oldest first (with named inputs: input after input, each
    /// oldest first).
    pub fn logs(&self) -> impl ExactSizeIterator<Item = LogRecord<'_>> {
        self.logs_in(0..self.logs.len())
    }

    /// The data of the rule's input `name` (`select = { errors = '…', total = '…' }` or the
    /// same for `logs`); `None` if the rule has no input so named. The names are in
    /// [`rule::settings`](crate::rule::settings), to check in `new`.
    ///
    /// ```
    /// use faultline_sdk::Input;
    ///
    /// let input = Input::builder()
    ///     .input("errors")
    ///     .series([("code", "500")], &[(60_000, 3.0)])
    ///     .input("total")
    ///     .series([("code", "500")], &[(60_000, 3.0)])
    ///     .series([("code", "200")], &[(60_000, 97.0)])
    ///     .build();
    /// let total: f64 = input.selection("total").unwrap().series().map(|s| s.latest().value).sum();
    /// let errors = input.selection("errors").unwrap();
    /// assert_eq!(errors.series().count(), 1);
    /// assert_eq!(total, 100.0);
    /// assert!(input.selection("latency").is_none());
    /// ```
    pub fn selection(&self, name: &str) -> Option<Selection<'_>> {
        let named = self.named.iter().find(|n| n.name == name)?;
        Some(Selection {
            input: self,
            name: &named.name,
            rows: named.rows.clone(),
            logs: named.logs.clone(),
        })
    }

    /// Rows of the sample columns: they have one length; should the host ever disagree,
    /// read what all three have.
    fn rows(&self) -> usize {
        let s = &self.samples;
        s.ids.len().min(s.timestamps.len()).min(s.values.len())
    }

    fn series_in(&self, rows: Range<usize>) -> SeriesIter<'_> {
        let end = rows.end.min(self.rows());
        SeriesIter {
            input: self,
            ids: &self.samples.ids[..end],
            pos: rows.start.min(end),
        }
    }

    fn logs_in(&self, logs: Range<usize>) -> impl ExactSizeIterator<Item = LogRecord<'_>> {
        let end = logs.end.min(self.logs.len());
        self.logs[logs.start.min(end)..end]
            .iter()
            .map(|r| LogRecord {
                labels: self.cache.get(r.stream),
                record: r,
            })
    }

    /// Takes the host's input, first adding the labels of series new to this instance to
    /// its cache; `names` and `starts` split it by named input.
    pub(crate) fn from_wit(
        now: i64,
        new_series: Vec<wit::SeriesInfo>,
        samples: wit::Samples,
        logs: Vec<wit::LogRecord>,
        mut cache: LabelCache,
        names: &InputNames,
        starts: wit::rule::InputStart,
    ) -> Self {
        for info in new_series {
            cache.insert(info.id, info.labels);
        }
        let mut named = Vec::new();
        for (i, name) in names.series.iter().enumerate() {
            named.push(Named {
                name: name.clone(),
                rows: span(&starts.samples, i, samples.ids.len()),
                logs: 0..0,
            });
        }
        for (i, name) in names.logs.iter().enumerate() {
            let records = span(&starts.logs, i, logs.len());
            match named.iter_mut().find(|n| n.name == *name) {
                Some(n) => n.logs = records,
                None => named.push(Named {
                    name: name.clone(),
                    rows: 0..0,
                    logs: records,
                }),
            }
        }
        Self {
            now,
            samples,
            logs,
            cache,
            named,
        }
    }

    /// Gives the label cache back to the instance after the call.
    pub(crate) fn into_cache(self) -> LabelCache {
        self.cache
    }
}

/// Input `i`'s rows, from where it starts to where the next starts (or the end); empty if
/// the host gave no start for it.
fn span(starts: &[u32], i: usize, len: usize) -> Range<usize> {
    let at = |i: usize| starts.get(i).map(|&s| (s as usize).min(len));
    match at(i) {
        Some(start) => start..at(i + 1).unwrap_or(len).max(start),
        None => 0..0,
    }
}

/// The data of one named input of an [`Input`], from [`Input::selection`].
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    input: &'a Input,
    name: &'a str,
    rows: Range<usize>,
    logs: Range<usize>,
}

impl<'a> Selection<'a> {
    /// The input's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The input's series, as [`Input::series`].
    pub fn series(&self) -> impl Iterator<Item = Series<'a>> + use<'a> {
        self.input.series_in(self.rows.clone())
    }

    /// The input's log records, oldest first.
    pub fn logs(&self) -> impl ExactSizeIterator<Item = LogRecord<'a>> + use<'a> {
        self.input.logs_in(self.logs.clone())
    }

    /// Pairs each series of this input with each series of `other` that has the same values
    /// of the labels `on` (with `on` empty: the same labels, `__name__` aside), as PromQL's
    /// `a / on(...) b` matches them. Series without a partner are left out.
    ///
    /// ```
    /// use faultline_sdk::Input;
    ///
    /// let input = Input::builder()
    ///     .input("errors")
    ///     .series([("__name__", "errors_total"), ("job", "api")], &[(0, 5.0)])
    ///     .input("total")
    ///     .series([("__name__", "requests_total"), ("job", "api")], &[(0, 100.0)])
    ///     .series([("__name__", "requests_total"), ("job", "db")], &[(0, 10.0)])
    ///     .build();
    /// let (errors, total) = (input.selection("errors").unwrap(), input.selection("total").unwrap());
    /// let pairs = errors.join(&total, &[]);
    /// assert_eq!(pairs.len(), 1);
    /// let (e, t) = pairs[0];
    /// assert_eq!(t.labels().get("job"), Some("api"));
    /// assert_eq!(e.latest().value / t.latest().value, 0.05);
    /// assert_eq!(errors.join(&total, &["job"]).len(), 1);
    /// ```
    pub fn join(&self, other: &Selection<'a>, on: &[&str]) -> Vec<(Series<'a>, Series<'a>)> {
        let mut right: HashMap<Vec<(&str, &str)>, Vec<Series<'a>>> = HashMap::new();
        for s in other.series() {
            right.entry(join_key(s.labels(), on)).or_default().push(s);
        }
        let mut pairs = Vec::new();
        for s in self.series() {
            if let Some(partners) = right.get(&join_key(s.labels(), on)) {
                pairs.extend(partners.iter().map(|&p| (s, p)));
            }
        }
        pairs
    }
}

impl<'a> Selection<'a> {
    /// Sums `value` of this input's series by the labels `by`, as PromQL's
    /// `sum by (by) (...)`: one `(labels, sum)` per distinct combination of their values,
    /// sorted by labels. Series for which `value` is `None` (too few samples) count for
    /// nothing, and a group with none is left out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use faultline_sdk::Input;
    ///
    /// let input = Input::builder()
    ///     .now(60_000)
    ///     .input("errors")
    ///     .series([("job", "api"), ("code", "500")], &[(1_000, 0.0), (60_000, 6.0)])
    ///     .series([("job", "api"), ("code", "503")], &[(1_000, 0.0), (60_000, 3.0)])
    ///     .build();
    /// let errors = input.selection("errors").unwrap();
    /// let sums = errors.sum_by(&["job"], |s| s.increase(Duration::from_secs(60)));
    /// assert_eq!(sums.len(), 1);
    /// assert_eq!(sums[0].0.get("job"), Some("api"));
    /// assert_eq!(sums[0].1, 9.0);
    /// ```
    pub fn sum_by(
        &self,
        by: &[&str],
        value: impl Fn(&Series<'a>) -> Option<f64>,
    ) -> Vec<(Labels, f64)> {
        let mut sums: Vec<(Labels, f64)> = Vec::new();
        for s in self.series() {
            let Some(v) = value(&s) else { continue };
            let mut key = Labels::new();
            for &name in by {
                if let Some(v) = s.labels().get(name) {
                    key.insert(name, v);
                }
            }
            match sums.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum += v,
                None => sums.push((key, v)),
            }
        }
        sums.sort_by(|a, b| a.0.iter().cmp(b.0.iter()));
        sums
    }
}

/// What [`Selection::join`] matches series on.
fn join_key<'k>(labels: &'k Labels, on: &[&'k str]) -> Vec<(&'k str, &'k str)> {
    if on.is_empty() {
        labels.iter().filter(|(n, _)| *n != "__name__").collect()
    } else {
        on.iter()
            .map(|&n| (n, labels.get(n).unwrap_or("")))
            .collect()
    }
}

/// One series of an [`Input`]: its labels and its samples.
#[derive(Clone, Copy)]
pub struct Series<'a> {
    pub(crate) id: u32,
    /// Where its labels are: looked up only when asked for, as a rule that reads the
    /// labels of the few series that fire should not pay for the many that do not.
    cache: &'a LabelCache,
    pub(crate) timestamps: &'a [i64],
    pub(crate) values: &'a [f64],
    /// The evaluation time: where the windows of the counter helpers end.
    pub(crate) now: i64,
}

impl fmt::Debug for Series<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Series")
            .field("id", &self.id)
            .field("labels", self.labels())
            .field("timestamps", &self.timestamps)
            .field("values", &self.values)
            .field("now", &self.now)
            .finish()
    }
}

impl<'a> Series<'a> {
    /// The series' labels.
    pub fn labels(&self) -> &'a Labels {
        self.cache.get(self.id)
    }

    /// The series' labels, shared.
    pub(crate) fn shared_labels(&self) -> &'a Rc<Labels> {
        self.cache.get(self.id)
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
        // A run also ends where a named input starts: a series in two inputs is two runs.
        let end = self
            .input
            .named
            .iter()
            .map(|n| n.rows.start)
            .filter(|&s| s > start)
            .fold(self.ids.len(), usize::min);
        let len = self.ids[start..end]
            .iter()
            .position(|&other| other != id)
            .unwrap_or(end - start);
        self.pos = start + len;
        let s = &self.input.samples;
        Some(Series {
            id,
            now: self.input.now,
            cache: &self.input.cache,
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
    /// The names and values of those labels, one copy each.
    strings: Strings,
    /// Lent for an id the host never described; not expected, but not worth a trap either.
    empty: Rc<Labels>,
}

impl LabelCache {
    fn insert(&mut self, id: u32, labels: Vec<wit::Label>) {
        let labels = Labels::from_wit_shared(labels, &mut self.strings);
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
    /// The input that series and records given next belong to; "" for none.
    input: String,
    rows: Vec<(String, u32, i64, f64)>,
    logs: Vec<(String, wit::LogRecord)>,
}

impl InputBuilder {
    /// Sets the evaluation time, milliseconds since the Unix epoch (default 0).
    pub fn now(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    /// Makes the series and log records given next part of the named input `name`, as a
    /// rule's `select = { name = '…' }` (or `logs = { name = '…' }`) would: read it with
    /// [`Input::selection`].
    pub fn input(mut self, name: impl Into<String>) -> Self {
        self.input = name.into();
        self
    }

    /// Adds samples `(timestamp, value)` of the series with `labels`. Samples given for the
    /// same labels in several calls (of one input) belong to one series.
    pub fn series(mut self, labels: impl Into<Labels>, samples: &[(i64, f64)]) -> Self {
        let id = self.id(labels.into());
        let input = &self.input;
        self.rows.extend(
            samples
                .iter()
                .map(|&(ts, value)| (input.clone(), id, ts, value)),
        );
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
        let record = wit::LogRecord {
            stream,
            timestamp,
            line: line.into(),
            fields: fields.into().into_wit(),
        };
        self.logs.push((self.input.clone(), record));
        self
    }

    /// The input, ordered as the host orders it: samples by input (by name), series, then
    /// time; logs by input, then time.
    pub fn build(mut self) -> Input {
        self.rows
            .sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        self.logs
            .sort_by(|a, b| (&a.0, a.1.timestamp).cmp(&(&b.0, b.1.timestamp)));
        let mut names = InputNames::default();
        let mut starts = wit::rule::InputStart {
            samples: Vec::new(),
            logs: Vec::new(),
        };
        for (i, (input, ..)) in self.rows.iter().enumerate() {
            if !input.is_empty() && names.series.last() != Some(input) {
                names.series.push(input.clone());
                starts
                    .samples
                    .push(u32::try_from(i).expect("fewer than 2^32 rows in a test"));
            }
        }
        for (i, (input, _)) in self.logs.iter().enumerate() {
            if !input.is_empty() && names.logs.last() != Some(input) {
                names.logs.push(input.clone());
                starts
                    .logs
                    .push(u32::try_from(i).expect("fewer than 2^32 records in a test"));
            }
        }
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
            ids: self.rows.iter().map(|r| r.1).collect(),
            timestamps: self.rows.iter().map(|r| r.2).collect(),
            values: self.rows.iter().map(|r| r.3).collect(),
        };
        let logs = self.logs.into_iter().map(|(_, r)| r).collect();
        Input::from_wit(
            self.now,
            new_series,
            samples,
            logs,
            LabelCache::default(),
            &names,
            starts,
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

    fn no_starts() -> wit::rule::InputStart {
        wit::rule::InputStart {
            samples: vec![],
            logs: vec![],
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
            &InputNames::default(),
            no_starts(),
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
            &InputNames::default(),
            no_starts(),
        );
        let second = Input::from_wit(
            0,
            vec![],
            samples(&[1]),
            vec![],
            first.into_cache(),
            &InputNames::default(),
            no_starts(),
        );
        let s = second.series().next().unwrap();
        assert_eq!(s.labels().get("instance"), Some("a"));
    }

    #[test]
    fn uneven_columns_do_not_panic() {
        let mut s = samples(&[1, 1, 2]);
        s.values.pop();
        let input = Input::from_wit(
            0,
            vec![],
            s,
            vec![],
            LabelCache::default(),
            &InputNames::default(),
            no_starts(),
        );
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

    #[test]
    fn named_inputs_split_the_columns() {
        let names = InputNames {
            series: vec!["errors".into(), "total".into()],
            logs: vec!["app".into()],
        };
        let starts = wit::rule::InputStart {
            samples: vec![0, 2],
            logs: vec![0],
        };
        let log = |stream| wit::LogRecord {
            stream,
            timestamp: 1,
            line: "x".into(),
            fields: vec![],
        };
        // Series 7 is in both inputs: its run is cut where `total` starts.
        let input = Input::from_wit(
            0,
            vec![info(7, "a"), info(3, "b")],
            samples(&[3, 7, 7, 9]),
            vec![log(3), log(3)],
            LabelCache::default(),
            &names,
            starts,
        );
        let values = |name| {
            input
                .selection(name)
                .unwrap()
                .series()
                .map(|s| s.values().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(values("errors"), [vec![0.0], vec![1.0]]);
        assert_eq!(values("total"), [vec![2.0], vec![3.0]]);
        assert_eq!(input.selection("app").unwrap().logs().len(), 2);
        assert_eq!(input.selection("errors").unwrap().logs().len(), 0);
        assert_eq!(input.series().count(), 4);
        assert!(input.selection("other").is_none());
    }

    #[test]
    fn missing_or_wild_starts_do_not_panic() {
        let names = InputNames {
            series: vec!["a".into(), "b".into()],
            logs: vec![],
        };
        let starts = wit::rule::InputStart {
            samples: vec![3, 1],
            logs: vec![],
        };
        let input = Input::from_wit(
            0,
            vec![],
            samples(&[1, 1, 2]),
            vec![],
            LabelCache::default(),
            &names,
            starts,
        );
        assert_eq!(input.selection("a").unwrap().series().count(), 0);
        assert_eq!(input.selection("b").unwrap().series().count(), 2);
    }

    #[test]
    fn builder_names_inputs_as_the_host_does() {
        let input = Input::builder()
            .input("total")
            .series([("i", "a")], &[(1, 10.0)])
            .input("errors")
            .series([("i", "a")], &[(1, 1.0)])
            .log([("app", "x")], 5, "boom")
            .build();
        let errors = input.selection("errors").unwrap();
        assert_eq!(errors.series().next().unwrap().values(), [1.0]);
        assert_eq!(errors.logs().next().unwrap().line(), "boom");
        assert_eq!(
            input.series().map(|s| s.latest().value).collect::<Vec<_>>(),
            [1.0, 10.0]
        );
        let pairs = errors.join(&input.selection("total").unwrap(), &["i"]);
        assert_eq!(pairs.len(), 1);
    }
}
