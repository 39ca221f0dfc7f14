//! Label sets: the identity of a series, a log stream, an alert or a suspect.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::bindings::wit;

/// A set of label pairs, sorted by name, each name at most once.
///
/// ```
/// use faultline_sdk::Labels;
///
/// let labels = Labels::from([("job", "node"), ("instance", "node3:9100")]);
/// assert_eq!(labels.get("instance"), Some("node3:9100"));
/// assert_eq!(labels.to_string(), r#"{instance="node3:9100", job="node"}"#);
/// ```
#[derive(Clone, Default)]
pub struct Labels {
    /// Shared strings: the labels an instance keeps for every series it has seen share
    /// each distinct name and value (see [`Strings`]).
    pairs: Vec<(Arc<str>, Arc<str>)>,
    /// `fingerprint()` memoized: detectors ask for it on every evaluation, and the SDK keeps
    /// a series' labels for the life of the instance.
    fingerprint: OnceCell<u64>,
}

impl Labels {
    /// An empty label set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of label `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| &*self.pairs[i].1)
    }

    /// Sets label `name` to `value`, replacing any previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value): (String, String) = (name.into(), value.into());
        match self.position(&name) {
            Ok(i) => self.pairs[i].1 = value.into(),
            Err(i) => self.pairs.insert(i, (name.into(), value.into())),
        }
        self.fingerprint = OnceCell::new();
    }

    /// Removes label `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name).ok()?;
        self.fingerprint = OnceCell::new();
        Some(self.pairs.remove(i).1.to_string())
    }

    /// The pairs as `(name, value)`, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the set has no label.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The label set's 64-bit fingerprint, the same number Prometheus and Alertmanager
    /// compute (`model.LabelSet.Fingerprint`): FNV-1a over each sorted name and value,
    /// each followed by the byte 0xff. Alertmanager shows it as 16 hex digits
    /// (`format!("{:016x}", labels.fingerprint())`).
    pub fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
            const PRIME: u64 = 0x0000_0100_0000_01b3;
            let mut hash = OFFSET;
            for (name, value) in &self.pairs {
                for part in [name.as_bytes(), value.as_bytes()] {
                    for &byte in part.iter().chain(&[0xff]) {
                        hash ^= u64::from(byte);
                        hash = hash.wrapping_mul(PRIME);
                    }
                }
            }
            hash
        })
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    /// Labels as the host sends them. The host sends each name once; sorting here makes
    /// `get` and the fingerprint independent of the host's order.
    pub(crate) fn from_wit(labels: Vec<wit::Label>) -> Self {
        Self::from_wit_shared(labels, &mut Strings::default())
    }

    /// [`Labels::from_wit`] with the strings shared through `strings`.
    pub(crate) fn from_wit_shared(labels: Vec<wit::Label>, strings: &mut Strings) -> Self {
        let mut pairs: Vec<_> = labels
            .into_iter()
            .map(|l| (strings.get(l.name), strings.get(l.value)))
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Self {
            pairs,
            fingerprint: OnceCell::new(),
        }
    }

    pub(crate) fn into_wit(self) -> Vec<wit::Label> {
        self.pairs
            .into_iter()
            .map(|(name, value)| wit::Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect()
    }
}

/// One shared copy of each distinct string: an instance's labels of a million series of one
/// job hold `job` and `node` once, not a million times.
#[derive(Debug, Default)]
pub(crate) struct Strings(HashSet<Arc<str>>);

impl Strings {
    /// The shared copy of `s`.
    pub(crate) fn get(&mut self, s: String) -> Arc<str> {
        if let Some(shared) = self.0.get(s.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        self.0.insert(shared.clone());
        shared
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.pairs == other.pairs
    }
}

impl Eq for Labels {}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    /// Collects pairs; a name given twice keeps its last value.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut labels = Labels::new();
        for (name, value) in pairs {
            labels.insert(name, value);
        }
        labels
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// `{a="1", b="2"}`, the notation of Prometheus and Alertmanager (values quoted as Go's `%q`
/// does for the characters that occur in labels).
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}=\"")?;
            for c in value.chars() {
                match c {
                    '"' => f.write_str("\\\"")?,
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A JSON object, names sorted: the shape of `labels` in Alertmanager's API and webhooks.
impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // From tests/fixtures/alertmanager-0.25/webhook-firing.json.
        let labels = Labels::from([
            ("alertname", "NodeExporterUp"),
            ("env", "peertest"),
            ("instance", "127.0.0.1:19100"),
            ("job", "node"),
            ("severity", "info"),
        ]);
        assert_eq!(format!("{:016x}", labels.fingerprint()), "bbb73ef5acaaf3a8");
    }

    #[test]
    fn fingerprint_of_empty_set_is_fnv_offset() {
        assert_eq!(Labels::new().fingerprint(), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn fingerprint_follows_changes() {
        let mut labels = Labels::from([("a", "1")]);
        let before = labels.fingerprint();
        labels.insert("a", "2");
        assert_ne!(labels.fingerprint(), before);
        labels.insert("a", "1");
        assert_eq!(labels.fingerprint(), before);
        labels.insert("b", "1");
        let with_b = labels.fingerprint();
        assert_ne!(with_b, before);
        assert_eq!(labels.remove("b").as_deref(), Some("1"));
        assert_eq!(labels.fingerprint(), before);
    }

    #[test]
    fn sorted_and_last_value_wins() {
        let labels: Labels = [("b", "1"), ("a", "2"), ("b", "3")].into_iter().collect();
        assert_eq!(labels.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
        assert_eq!(Labels::from_wit(labels.clone().into_wit()), labels);
    }

    #[test]
    fn labels_from_the_host_are_sorted_whatever_its_order() {
        let label = |name: &str, value: &str| wit::Label {
            name: name.into(),
            value: value.into(),
        };
        let labels = Labels::from_wit(vec![label("job", "node"), label("env", "prod")]);
        assert_eq!(labels.get("env"), Some("prod"));
        assert_eq!(labels.get("job"), Some("node"));
        assert_eq!(labels, Labels::from([("env", "prod"), ("job", "node")]));
    }

    #[test]
    fn labels_kept_from_the_host_share_their_strings() {
        let label = |name: &str, value: &str| wit::Label {
            name: name.into(),
            value: value.into(),
        };
        let mut strings = Strings::default();
        let a = Labels::from_wit_shared(vec![label("job", "node"), label("i", "a")], &mut strings);
        let b = Labels::from_wit_shared(vec![label("i", "b"), label("job", "node")], &mut strings);
        assert_eq!(a, Labels::from([("i", "a"), ("job", "node")]));
        assert_eq!(b, Labels::from([("i", "b"), ("job", "node")]));
        assert!(
            Arc::ptr_eq(&a.pairs[1].1, &b.pairs[1].1),
            "one copy of `node`"
        );
        assert!(Arc::ptr_eq(&a.pairs[0].0, &b.pairs[0].0), "one copy of `i`");
        assert_eq!(strings.0.len(), 5);
    }

    #[test]
    fn display_quotes_like_go() {
        let labels = Labels::from([("msg", "say \"hi\"\n"), ("a", "x\\y")]);
        assert_eq!(labels.to_string(), r#"{a="x\\y", msg="say \"hi\"\n"}"#);
        assert_eq!(Labels::new().to_string(), "{}");
    }

    #[test]
    fn serializes_as_object() {
        let labels = Labels::from([("job", "node"), ("env", "prod")]);
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            r#"{"env":"prod","job":"node"}"#
        );
    }
}
