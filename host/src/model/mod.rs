//! The data every stage shares: label sets, samples and log records.

pub mod batch;
pub mod incident;
pub mod matcher;
pub mod time;
pub mod units;

mod intern;

pub use batch::{LabelPairs, SeriesBatch};
pub(crate) use intern::name as shared_name;
pub use intern::purge_unused as purge_interned;

use std::fmt;
use std::sync::Arc;

/// One label name or value: shared, so that a label set is cloned without copying its
/// strings and the store keeps one copy of each distinct string (see [`Labels::interned`]).
pub type Str = Arc<str>;

/// One label: its name and its value.
pub type Label = (Str, Str);

/// A label set, sorted by name, names unique. Cheap to compare and hash, and to clone (a
/// reference count): the pairs are one shared slice of shared strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[(Str, Str)]>);

impl Labels {
    /// Builds a label set from pairs in any order; a later pair with the same name wins;
    /// pairs with an empty value are dropped, as in Prometheus.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut v: Vec<(K, V)> = pairs.into_iter().collect();
        // Stable sort, then keep the last pair of each name: O(n log n) on any input.
        v.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut out: Vec<(Str, Str)> = Vec::with_capacity(v.len());
        let mut last: Option<(K, V)> = None;
        for pair in v {
            if let Some(prev) = last.take()
                && prev.0.as_ref() != pair.0.as_ref()
            {
                push_pair(&mut out, prev);
            }
            last = Some(pair);
        }
        if let Some(prev) = last {
            push_pair(&mut out, prev);
        }
        Labels(out.into())
    }

    /// The one shared copy of these labels held by the process-wide interner, its strings
    /// shared too: what a long-lived holder (the store) keeps, so that a million series of
    /// one job hold `job="node"` once, and the scraper's and the store's copies of a series'
    /// labels are one.
    pub fn interned(&self) -> Labels {
        intern::intern(self)
    }

    /// The same labels, each name and value the process-wide shared copy, the set itself
    /// not: what a holder of many distinct label sets that are looked up by name keeps, such
    /// as the stored alerts, so that [`Labels::get`] with a shared name compares pointers and
    /// a pass over them reads each common string once.
    pub fn with_shared_strings(&self) -> Labels {
        intern::intern_strings(self)
    }

    /// The value of a label, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        // Most label sets are small: a scan that compares lengths first beats a binary
        // search whose every step is a full string comparison. A shared name (a matcher's,
        // against labels with shared names) is found by its address, without reading it.
        if self.0.len() <= 12 {
            return self
                .0
                .iter()
                .find(|(n, _)| {
                    n.len() == name.len()
                        && (std::ptr::eq(n.as_ptr(), name.as_ptr()) || **n == *name)
                })
                .map(|(_, v)| &**v);
        }
        self.0
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The metric name (`__name__`), if any.
    pub fn name(&self) -> Option<&str> {
        self.get("__name__")
    }

    /// Iterates over (name, value) pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (&**n, &**v))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a label (an empty value removes it).
    pub fn set(&mut self, name: &str, value: &str) {
        let mut b = self.builder();
        b.set(name, value);
        *self = b.build();
    }

    /// Removes a label.
    pub fn remove(&mut self, name: &str) {
        if self.get(name).is_some() {
            let mut b = self.builder();
            b.remove(name);
            *self = b.build();
        }
    }

    /// A copy to edit, as Prometheus's `labels.Builder`: the set is copied once however
    /// many of its labels change.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder(self.0.to_vec())
    }

    /// A stable 64-bit fingerprint (FNV-1a over names and values), as Alertmanager shows.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(self.iter())
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[(Str, Str)] {
        &self.0
    }
}

/// A label set being edited (see [`Labels::builder`]): sorted by name, names unique.
#[derive(Debug, Default)]
pub struct LabelsBuilder(Vec<Label>);

impl LabelsBuilder {
    /// Sets a label (an empty value removes it).
    pub fn set(&mut self, name: &str, value: &str) {
        self.put(name, || name.into(), value, || value.into());
    }

    /// Sets a label from shared strings, which the set then shares.
    pub fn set_shared(&mut self, (name, value): &Label) {
        self.put(name, || name.clone(), value, || value.clone());
    }

    /// Removes a label.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.find(name) {
            self.0.remove(i);
        }
    }

    /// The edited label set.
    pub fn build(self) -> Labels {
        Labels(self.0.into())
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    /// Sets `name` to `value`, making the shared strings only where they are new.
    fn put(
        &mut self,
        name: &str,
        new_name: impl FnOnce() -> Str,
        value: &str,
        new_value: impl FnOnce() -> Str,
    ) {
        match self.find(name) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) if *self.0[i].1 != *value => self.0[i].1 = new_value(),
            Ok(_) => {}
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (new_name(), new_value())),
        }
    }
}

/// FNV-1a over names and values, each followed by 0xff.
fn fingerprint<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (n, v) in pairs {
        for b in n.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Adds a pair unless its value is empty.
fn push_pair<K: AsRef<str>, V: AsRef<str>>(out: &mut Vec<(Str, Str)>, (k, v): (K, V)) {
    if !v.as_ref().is_empty() {
        out.push((k.as_ref().into(), v.as_ref().into()));
    }
}

/// A label set serializes as a JSON object in name order, as Prometheus's and Alertmanager's
/// APIs show labels: `{"alertname": "HighLoad", "instance": "web1"}`.
impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(&**k, &**v)?;
        }
        map.end()
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// One sample: milliseconds since the Unix epoch and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub ts: i64,
    pub value: f64,
}

/// The NaN bit pattern Prometheus uses as a staleness marker: the series has ended.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

impl Sample {
    /// Whether this sample is a Prometheus staleness marker.
    pub fn is_stale_marker(&self) -> bool {
        self.value.to_bits() == STALE_NAN_BITS
    }
}

/// Samples of one series, as ingestion produces them.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// One log record of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// The stream's labels (`{app="api", instance="node1"}`).
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub line: String,
    /// Structured fields (Loki structured metadata, extra NDJSON keys).
    pub fields: Vec<(String, String)>,
}

/// Whether `name` is a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Whether `name` is a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builder_sets_and_removes_and_shares_the_strings_it_is_given() {
        let base = Labels::from_pairs([("__name__", "up"), ("job", "node"), ("zone", "a")]);
        let rule: Label = ("severity".into(), "page".into());
        let mut b = base.builder();
        b.remove("__name__");
        b.set("zone", "b");
        b.set("job", "");
        b.set("instance", "n1");
        b.set("gone", "");
        b.set_shared(&rule);
        let built = b.build();
        let expected = [("instance", "n1"), ("severity", "page"), ("zone", "b")];
        assert_eq!(built, Labels::from_pairs(expected));
        let severity = &built.as_slice()[1].1;
        assert!(
            Arc::ptr_eq(severity, &rule.1),
            "the rule's value is shared, not copied"
        );
        assert_eq!(base.len(), 3, "the base set is unchanged");
    }

    #[test]
    fn labels_are_sorted_deduplicated_and_drop_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "3")]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
    }

    #[test]
    fn get_finds_labels_in_small_and_large_sets() {
        for n in [1, 12, 13, 40] {
            let l = Labels::from_pairs((0..n).map(|i| (format!("l{i:02}"), format!("v{i}"))));
            for i in 0..n {
                assert_eq!(l.get(&format!("l{i:02}")), Some(format!("v{i}").as_str()));
            }
            assert_eq!(l.get("l"), None);
            assert_eq!(l.get("zz"), None);
            // A shared name, against shared and plain strings; another of the same length.
            let shared = l.with_shared_strings();
            for set in [&l, &shared] {
                assert_eq!(set.get(&shared_name("l00")), Some("v0"));
                assert_eq!(set.get(&shared_name("l99")), None);
            }
        }
    }

    #[test]
    fn fingerprint_depends_on_every_pair() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("a", "1"), ("b", "3")]);
        let c = Labels::from_pairs([("a", "12")]);
        let d = Labels::from_pairs([("a", "1"), ("2", "")]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(c.fingerprint(), d.fingerprint());
        assert_eq!(
            a.fingerprint(),
            Labels::from_pairs([("b", "2"), ("a", "1")]).fingerprint()
        );
    }
}
