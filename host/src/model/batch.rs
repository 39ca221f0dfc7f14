//! Samples of many series whose labels are borrowed from the request body they were decoded
//! from: what remote_write hands the store, which probes its index with the borrowed pairs
//! and allocates labels only for series it does not hold yet.

use std::hash::{Hash, Hasher};

use super::{Labels, Sample, Str};

/// Series with their samples; labels borrowed from `'a`, samples copied. Each series' pairs
/// are sorted by name, names unique, values not empty: what the decoder checked.
#[derive(Debug, Default)]
pub struct SeriesBatch<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<Sample>,
    /// Per series, where its pairs and its samples end.
    ends: Vec<(usize, usize)>,
}

impl<'a> SeriesBatch<'a> {
    /// Adds a series; `pairs` must be sorted by name, names unique, values not empty.
    pub fn push(&mut self, pairs: &[(&'a str, &'a str)], samples: &[Sample]) {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        self.pairs.extend_from_slice(pairs);
        self.samples.extend_from_slice(samples);
        self.ends.push((self.pairs.len(), self.samples.len()));
    }

    /// The series in the order they were pushed: labels and samples.
    pub fn iter(&self) -> impl Iterator<Item = (LabelPairs<'_, 'a>, &[Sample])> {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|((p, s), &(p_end, s_end))| {
            (LabelPairs(&self.pairs[p..p_end]), &self.samples[s..s_end])
        })
    }

    /// Number of samples over every series.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }
}

/// A label set borrowed as pairs sorted by name. It hashes as the [`Labels`] of the same
/// pairs and compares equal to them, so a map keyed by labels is probed with it directly.
#[derive(Clone, Copy, Debug)]
pub struct LabelPairs<'p, 'a>(pub &'p [(&'a str, &'a str)]);

impl LabelPairs<'_, '_> {
    /// The owned label set.
    pub fn to_labels(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .map(|&(n, v)| (Str::from(n), Str::from(v)))
                .collect(),
        )
    }

    /// The fingerprint [`Labels::fingerprint`] gives the same pairs.
    pub fn fingerprint(&self) -> u64 {
        super::fingerprint(self.0.iter().copied())
    }
}

impl Hash for LabelPairs<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A slice of string pairs hashes as its length, then each string: as the shared
        // slice of shared strings inside `Labels` does.
        self.0.hash(state);
    }
}

impl hashbrown::Equivalent<Labels> for LabelPairs<'_, '_> {
    fn equivalent(&self, labels: &Labels) -> bool {
        let held = labels.as_slice();
        held.len() == self.0.len()
            && held
                .iter()
                .zip(self.0)
                .all(|((n, v), (bn, bv))| **n == **bn && **v == **bv)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn borrowed_pairs_hash_and_compare_as_their_labels() {
        let pairs = [("__name__", "up"), ("instance", "a:9100"), ("job", "node")];
        let labels = Labels::from_pairs(pairs);
        let borrowed = LabelPairs(&pairs);
        let hasher = hashbrown::DefaultHashBuilder::default();
        assert_eq!(hasher.hash_one(borrowed), hasher.hash_one(&labels));
        assert!(hashbrown::Equivalent::equivalent(&borrowed, &labels));
        assert_eq!(borrowed.to_labels(), labels);
        assert_eq!(borrowed.fingerprint(), labels.fingerprint());
        // One pair fewer, or one value other, is another set.
        let fewer = LabelPairs(&pairs[..2]);
        assert!(!hashbrown::Equivalent::equivalent(&fewer, &labels));
        let other = [("__name__", "up"), ("instance", "b:9100"), ("job", "node")];
        assert!(!hashbrown::Equivalent::equivalent(
            &LabelPairs(&other),
            &labels
        ));
        let mut map = hashbrown::HashMap::new();
        map.insert(labels, 7u32);
        assert_eq!(map.get(&borrowed), Some(&7));
        assert_eq!(map.get(&LabelPairs(&other)), None);
    }

    #[test]
    fn series_come_back_in_order_with_their_samples() {
        let mut batch = SeriesBatch::default();
        let s = |ts| Sample { ts, value: 1.0 };
        batch.push(&[("__name__", "a")], &[s(1), s(2)]);
        batch.push(&[("__name__", "b"), ("job", "x")], &[s(3)]);
        let got: Vec<(Labels, Vec<i64>)> = batch
            .iter()
            .map(|(l, samples)| (l.to_labels(), samples.iter().map(|s| s.ts).collect()))
            .collect();
        assert_eq!(
            got,
            [
                (Labels::from_pairs([("__name__", "a")]), vec![1, 2]),
                (
                    Labels::from_pairs([("__name__", "b"), ("job", "x")]),
                    vec![3]
                ),
            ]
        );
        assert_eq!((batch.iter().count(), batch.sample_count()), (2, 3));
    }
}
