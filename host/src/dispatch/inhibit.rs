//! Inhibition, as Alertmanager's: while a firing *source* alert matches an inhibit rule's
//! `source_matchers`, alerts matching its `target_matchers` whose values of the `equal`
//! labels are the same as the source's (a missing label counts as empty) are inhibited.
//! When an alert matches both sides of a rule, sources that also match the target side are
//! ignored for it, so an alert never inhibits itself, nor its peers of the same kind.
//! Alertmanager reports one inhibiting alert per inhibited alert: the first rule (in file
//! order) that inhibits it, and one of that rule's sources.
//!
//! Cost. Alertmanager tests every rule's target matchers on every alert and then scans the
//! rule's whole source list; with thousands of alerts and dozens of rules that is seconds per
//! listing. Here, once per pass ([`Inhibitor::index`]):
//! - rules are found through a [`MatcherIndex`] on each side, so an alert is tested only
//!   against the rules whose rarest equality matcher it satisfies;
//! - each rule's firing sources are filed in a hash map by a hash of their `equal` label
//!   values, so finding a source for a target is one probe (then the values are compared, so
//!   a hash collision cannot inhibit wrongly).
//!
//! A pass costs O(alerts × candidate rules) to build and as much to query, independent of
//! how many sources a rule has.

use std::hash::Hasher;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::alerts::{Alert, Status};
use crate::model::matcher::Matcher;
use crate::model::matcher::{Fnv, FnvMap, MatcherIndex, matches_all, parse_matchers};
use crate::model::{Labels, Str, shared_name};
use crate::rules::error::RuleError;

/// A validated inhibit rule.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    /// Shared names ([`crate::model::shared_name`]), found in label sets by their address.
    pub equal: Vec<Str>,
}

/// A problem in an inhibit rule: the field (`source_matchers[1]`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InhibitRuleError {
    pub field: String,
    pub message: String,
}

impl InhibitRule {
    /// Validates an inhibit rule of a rule file. Each matcher string may hold one matcher
    /// or several (`'severity="critical", team="db"'`), quoted or not, as in Alertmanager.
    pub fn new(config: &InhibitRuleConfig) -> Result<InhibitRule, InhibitRuleError> {
        let side = |name: &str, texts: &[String]| -> Result<Vec<Matcher>, InhibitRuleError> {
            let mut out = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                out.extend(parse_matchers(text).map_err(|message| InhibitRuleError {
                    field: format!("{name}[{i}]"),
                    message,
                })?);
            }
            Ok(out)
        };
        let source = side("source_matchers", &config.source_matchers)?;
        let target = side("target_matchers", &config.target_matchers)?;
        for (i, name) in config.equal.iter().enumerate() {
            if !crate::model::is_label_name(name) {
                return Err(InhibitRuleError {
                    field: format!("equal[{i}]"),
                    message: format!("invalid label name {name:?}"),
                });
            }
        }
        Ok(InhibitRule {
            source,
            target,
            equal: config.equal.iter().map(|n| shared_name(n)).collect(),
        })
    }

    /// A hash of an alert's values of the `equal` labels.
    fn equal_key(&self, labels: &Labels) -> u64 {
        let mut h = Fnv::default();
        for name in &self.equal {
            h.write(labels.get(name).unwrap_or("").as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    fn equal_values(&self, a: &Labels, b: &Labels) -> bool {
        self.equal
            .iter()
            .all(|n| a.get(n).unwrap_or("") == b.get(n).unwrap_or(""))
    }
}

/// Validates the `[[inhibit]]` tables of one rule file (`text` is the file's contents):
/// the valid rules, and an error naming the file, line, rule and field for each invalid one.
pub fn validate_file(
    path: &Path,
    text: &str,
    configs: &[InhibitRuleConfig],
) -> (Vec<InhibitRule>, Vec<RuleError>) {
    let mut headers = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[inhibit]]")
        .map(|(i, _)| i + 1);
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let line = headers.next();
        match InhibitRule::new(config) {
            Ok(r) => valid.push(r),
            Err(e) => errors.push(RuleError {
                file: path.to_path_buf(),
                line,
                item: Some(format!("inhibit rule {}", i + 1)),
                field: Some(e.field),
                message: e.message,
            }),
        }
    }
    (valid, errors)
}

/// The inhibit rules of the loaded rule files, indexed; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Inhibitor {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<InhibitRule>,
    sources: MatcherIndex,
    targets: MatcherIndex,
}

impl Inhibitor {
    pub fn new(rules: Vec<InhibitRule>) -> Inhibitor {
        let sources = MatcherIndex::new(rules.iter().map(|r| r.source.as_slice()));
        let targets = MatcherIndex::new(rules.iter().map(|r| r.target.as_slice()));
        Inhibitor {
            inner: Arc::new(Inner {
                rules,
                sources,
                targets,
            }),
        }
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[InhibitRule] {
        &self.inner.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.inner.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.inner.rules.is_empty()
    }

    /// Files the firing alerts among `alerts` as sources of the rules they match, for one
    /// pass of [`Inhibitions::inhibited_by`] queries.
    pub fn index<'a>(&self, alerts: impl IntoIterator<Item = &'a Alert>) -> Inhibitions<'a> {
        self.index_firing(
            alerts
                .into_iter()
                .filter(|a| a.status == Status::Firing)
                .map(|a| &a.labels),
        )
    }

    /// As [`Inhibitor::index`], given the label sets of the firing alerts alone.
    pub fn index_firing<'a>(
        &self,
        firing: impl IntoIterator<Item = &'a Labels>,
    ) -> Inhibitions<'a> {
        let rules = &self.inner.rules;
        let mut by_rule: Vec<FnvMap<u64, Bucket<'a>>> = vec![FnvMap::default(); rules.len()];
        if !rules.is_empty() {
            for labels in firing {
                for i in self.inner.sources.candidates(labels) {
                    let rule = &rules[i];
                    if !matches_all(&rule.source, labels) {
                        continue;
                    }
                    let bucket = by_rule[i].entry(rule.equal_key(labels)).or_default();
                    if matches_all(&rule.target, labels) {
                        bucket.two_sided.push(labels);
                    } else {
                        bucket.one_sided.push(labels);
                    }
                }
            }
            for bucket in by_rule.iter_mut().flat_map(|m| m.values_mut()) {
                // So that the answer does not depend on the order alerts came in.
                bucket.one_sided.sort_unstable();
                bucket.two_sided.sort_unstable();
            }
        }
        Inhibitions {
            inhibitor: self.clone(),
            by_rule,
        }
    }
}

/// The firing sources of one rule with one set of `equal` values (or a colliding hash).
#[derive(Clone, Debug, Default)]
struct Bucket<'a> {
    /// Sources that do not match the rule's target side.
    one_sided: Vec<&'a Labels>,
    /// Sources that match both sides: ignored for targets that match both sides too.
    two_sided: Vec<&'a Labels>,
}

/// The sources of one pass, ready to answer which alert inhibits another.
#[derive(Debug)]
pub struct Inhibitions<'a> {
    inhibitor: Inhibitor,
    /// Per rule: sources by the hash of their `equal` label values.
    by_rule: Vec<FnvMap<u64, Bucket<'a>>>,
}

impl Inhibitions<'_> {
    /// The fingerprint of the firing alert that inhibits an alert with these labels, if one
    /// does.
    pub fn inhibited_by(&self, labels: &Labels) -> Option<u64> {
        let inner = &self.inhibitor.inner;
        if inner.rules.is_empty() {
            return None;
        }
        for i in inner.targets.candidates(labels) {
            let rule = &inner.rules[i];
            if !matches_all(&rule.target, labels) {
                continue;
            }
            let Some(bucket) = self.by_rule[i].get(&rule.equal_key(labels)) else {
                continue;
            };
            let both_sides = matches_all(&rule.source, labels);
            let mut sources = bucket
                .one_sided
                .iter()
                .chain(bucket.two_sided.iter().filter(|_| !both_sides));
            if let Some(s) = sources.find(|s| rule.equal_values(s, labels)) {
                return Some(s.fingerprint());
            }
        }
        None
    }
}

/// One inhibition rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers the firing source alert must satisfy, e.g. `['severity="critical"']`.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Matchers the inhibited target alert must satisfy.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Labels whose values must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(source: &[&str], target: &[&str], equal: &[&str]) -> InhibitRule {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        InhibitRule::new(&InhibitRuleConfig {
            source_matchers: s(source),
            target_matchers: s(target),
            equal: s(equal),
        })
        .unwrap()
    }

    fn alert(pairs: &[(&str, &str)], status: Status) -> Alert {
        Alert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: Labels::default(),
            value: None,
            status,
            active_at: 0,
            fired_at: Some(0),
            resolved_at: None,
            last_seen: 0,
            hold_until: None,
            generator_url: None,
        }
    }

    fn firing(pairs: &[(&str, &str)]) -> Alert {
        alert(pairs, Status::Firing)
    }

    #[test]
    fn critical_inhibits_warning_of_the_same_instance_only() {
        let inh = Inhibitor::new(vec![rule(
            &[r#"severity="critical""#],
            &["severity=warning"],
            &["instance"],
        )]);
        let crit = firing(&[
            ("alertname", "Down"),
            ("severity", "critical"),
            ("instance", "a"),
        ]);
        let warn_a = firing(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("instance", "a"),
        ]);
        let warn_b = firing(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("instance", "b"),
        ]);
        let alerts = [crit.clone(), warn_a.clone(), warn_b.clone()];
        let ix = inh.index(&alerts);
        assert_eq!(
            ix.inhibited_by(&warn_a.labels),
            Some(crit.labels.fingerprint())
        );
        assert_eq!(ix.inhibited_by(&warn_b.labels), None);
        assert_eq!(ix.inhibited_by(&crit.labels), None);
    }

    #[test]
    fn only_firing_alerts_inhibit() {
        let inh = Inhibitor::new(vec![rule(
            &["severity=critical"],
            &["severity=warning"],
            &[],
        )]);
        let target = firing(&[("severity", "warning")]);
        for status in [Status::Pending, Status::Resolved] {
            let alerts = [alert(&[("severity", "critical")], status)];
            assert_eq!(inh.index(&alerts).inhibited_by(&target.labels), None);
        }
    }

    #[test]
    fn missing_equal_labels_are_equal_as_empty() {
        let inh = Inhibitor::new(vec![rule(&["a=src"], &["a=dst"], &["cluster"])]);
        let alerts = [firing(&[("a", "src")])];
        let ix = inh.index(&alerts);
        assert!(
            ix.inhibited_by(&Labels::from_pairs([("a", "dst")]))
                .is_some()
        );
        assert!(
            ix.inhibited_by(&Labels::from_pairs([("a", "dst"), ("cluster", "x")]))
                .is_none()
        );
    }

    #[test]
    fn an_alert_matching_both_sides_does_not_inhibit_itself_or_its_peers() {
        // Every alert of a cluster is a target, and a source: only sources that are not
        // targets themselves may inhibit the ones that are both.
        let inh = Inhibitor::new(vec![rule(
            &["alertname=~ClusterDown|NodeDown"],
            &["alertname=NodeDown"],
            &["cluster"],
        )]);
        let node1 = firing(&[("alertname", "NodeDown"), ("cluster", "c"), ("node", "1")]);
        let node2 = firing(&[("alertname", "NodeDown"), ("cluster", "c"), ("node", "2")]);
        let alerts = [node1.clone(), node2.clone()];
        assert_eq!(inh.index(&alerts).inhibited_by(&node1.labels), None);
        let cluster = firing(&[("alertname", "ClusterDown"), ("cluster", "c")]);
        let alerts = [node1.clone(), node2, cluster.clone()];
        assert_eq!(
            inh.index(&alerts).inhibited_by(&node1.labels),
            Some(cluster.labels.fingerprint())
        );
    }

    #[test]
    fn the_first_rule_that_inhibits_wins() {
        let inh = Inhibitor::new(vec![
            rule(&["alertname=A"], &["alertname=T"], &[]),
            rule(&["alertname=B"], &["alertname=T"], &[]),
        ]);
        let a = firing(&[("alertname", "A")]);
        let b = firing(&[("alertname", "B")]);
        let t = Labels::from_pairs([("alertname", "T")]);
        let alerts = [b.clone(), a.clone()];
        assert_eq!(
            inh.index(&alerts).inhibited_by(&t),
            Some(a.labels.fingerprint())
        );
        let alerts = [b.clone()];
        assert_eq!(
            inh.index(&alerts).inhibited_by(&t),
            Some(b.labels.fingerprint())
        );
    }

    #[test]
    fn many_rules_and_alerts_agree_with_a_plain_scan() {
        // The indexed answer must equal Alertmanager's algorithm: for each rule in order whose
        // target matches, any source with equal values (excluding two-sided ones).
        let rules: Vec<InhibitRule> = (0..20)
            .map(|r| {
                let src = format!("alertname=A{r}, severity=critical");
                let dst = format!("alertname=~\"A{}|A{}\"", (r + 1) % 20, (r + 2) % 20);
                rule(
                    &[src.as_str()],
                    &[dst.as_str(), "severity!=critical"],
                    &["instance"],
                )
            })
            .collect();
        let inh = Inhibitor::new(rules.clone());
        let alerts: Vec<Alert> = (0..400)
            .map(|i| {
                let sev = if i % 7 == 0 { "critical" } else { "warning" };
                firing(&[
                    ("alertname", format!("A{}", i % 20).as_str()),
                    ("instance", format!("h{}", i % 13).as_str()),
                    ("severity", sev),
                ])
            })
            .collect();
        let ix = inh.index(&alerts);
        let mut inhibited = 0;
        for t in &alerts {
            let expected = rules.iter().find_map(|r| {
                if !matches_all(&r.target, &t.labels) {
                    return None;
                }
                let both = matches_all(&r.source, &t.labels);
                alerts.iter().find(|s| {
                    matches_all(&r.source, &s.labels)
                        && r.equal_values(&s.labels, &t.labels)
                        && !(both && matches_all(&r.target, &s.labels))
                })
            });
            let got = ix.inhibited_by(&t.labels);
            assert_eq!(got.is_some(), expected.is_some(), "{}", t.labels);
            inhibited += usize::from(got.is_some());
        }
        assert!(inhibited > 0 && inhibited < alerts.len(), "{inhibited}");
    }

    #[test]
    fn file_errors_name_file_line_rule_and_field() {
        let text = "[[inhibit]]\nsource_matchers = ['a=1']\n\n[[inhibit]]\nequal = ['x-y']\n";
        let configs: crate::rules::file::RuleFile = toml::from_str(text).unwrap();
        let (valid, errors) = validate_file(Path::new("r.toml"), text, &configs.inhibit_rules);
        assert_eq!(valid.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "r.toml:4: inhibit rule 2: field `equal[0]`: invalid label name \"x-y\""
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cfg = |s: &str, e: &str| InhibitRuleConfig {
            source_matchers: vec!["a=1".into(), s.into()],
            target_matchers: vec!["b=1".into()],
            equal: vec![e.into()],
        };
        let e = InhibitRule::new(&cfg("-", "x")).unwrap_err();
        assert_eq!(e.field, "source_matchers[1]");
        assert_eq!(e.message, "bad matcher format: -");
        let e = InhibitRule::new(&cfg("c=~\"(\"", "x")).unwrap_err();
        assert!(
            e.message.starts_with("invalid regular expression"),
            "{}",
            e.message
        );
        let e = InhibitRule::new(&cfg("c=1", "not-a-label")).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("equal[0]", "invalid label name \"not-a-label\"")
        );
    }
}
