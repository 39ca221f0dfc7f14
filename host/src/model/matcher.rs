//! Label matchers as Alertmanager writes them, and an index that finds which of many matcher
//! lists may match a label set without testing every list.
//!
//! Alertmanager's syntax (`amtool`, `filter=` query parameters, `source_matchers` of an
//! inhibit rule) is looser than PromQL's: braces are optional, matchers are separated by
//! commas, and a value may be quoted (`severity="critical"`) or not (`severity=critical`).
//! [`parse_matchers`] follows Alertmanager 0.25's parser and its error messages; the result
//! is the [`Matcher`] that series selectors use, so matching behaves the same everywhere.
//!
//! Silences and inhibit rules are matcher lists, and every alert must be checked against all
//! of them. [`MatcherIndex`] files each list under its rarest equality matcher
//! (`alertname="HostDown"`), so a lookup costs a hash probe per indexed label name plus a test
//! of the few lists that can match, instead of a test of every list.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use regex::Regex;
use smallvec::SmallVec;

use super::{Labels, Str, is_label_name, shared_name};

/// Parses Alertmanager matchers: `{a="1", b=~"x|y"}`, `a=1,b!=2` or a single `a="1"`.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    let s = s.trim();
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    // Split at commas outside double quotes, as Alertmanager does.
    let (mut tokens, mut token) = (Vec::new(), String::new());
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            ',' if !quoted => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' if escaped => escaped = false,
            '"' => quoted = !quoted,
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token);
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

/// Parses one matcher: a label name, an operator, and a value that is either in double quotes
/// (with `\"`, `\\` and `\n` escapes) or bare up to the end, surrounding spaces trimmed.
pub fn parse_matcher(s: &str) -> Result<Matcher, String> {
    let bad = || format!("bad matcher format: {s}");
    let rest = s.trim_start_matches(is_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(bad());
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start_matches(is_space);
    let (op, rest) = [
        ("=~", MatchOp::Regex),
        ("=", MatchOp::Equal),
        ("!=", MatchOp::NotEqual),
        ("!~", MatchOp::NotRegex),
    ]
    .into_iter()
    .find_map(|(token, op)| rest.strip_prefix(token).map(|r| (op, r)))
    .ok_or_else(bad)?;
    let raw = rest.trim_matches(is_space);
    let value = unescape(raw)?;
    Matcher::new(name.to_string(), op, value.clone())
        .map_err(|reason| format!("invalid regular expression {value:?}: {reason}"))
}

/// Go's `\s` in Alertmanager's matcher pattern.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// A matcher value as written, without its quotes and escapes.
fn unescape(raw: &str) -> Result<String, String> {
    let unescaped_quote = || format!("matcher value contains unescaped double quote: {raw}");
    let (body, mut expect_quote) = match raw.strip_prefix('"') {
        Some(b) => (b, true),
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                // A spurious escape: the backslash is literal.
                _ => {
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        let last = i + c.len_utf8() == body.len();
        match c {
            '\\' if !last => escaped = true,
            '"' if expect_quote && last => expect_quote = false,
            '"' => return Err(unescaped_quote()),
            _ => value.push(c),
        }
    }
    if expect_quote {
        return Err(unescaped_quote());
    }
    Ok(value)
}

/// Whether every matcher of a list accepts the label set (a missing label has the empty
/// value).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
}

/// FNV-1a, for the hash maps probed once or more per alert on every pass: their keys are
/// short label values and precomputed hashes, which SipHash hashes several times slower.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A hash map with [`Fnv`] hashing.
pub type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Matcher lists filed for lookup by label set; see the module documentation. Lists are
/// named by their position in the sequence the index was built from.
#[derive(Clone, Debug, Default)]
pub struct MatcherIndex {
    /// Per label name (shared, found by address), per value: the lists filed under
    /// `name="value"`.
    by_label: Vec<(Str, FnvMap<String, Vec<usize>>)>,
    /// Lists without an equality matcher on a non-empty value: candidates for every lookup.
    always: Vec<usize>,
}

impl MatcherIndex {
    /// Files each list under the equality matcher that the fewest lists share.
    pub fn new<'a>(lists: impl IntoIterator<Item = &'a [Matcher]>) -> MatcherIndex {
        let lists: Vec<&[Matcher]> = lists.into_iter().collect();
        let keys = |list: &'a [Matcher]| {
            list.iter()
                .filter(|m| m.op() == MatchOp::Equal && !m.value().is_empty())
                .map(|m| (&m.name, m.value()))
        };
        let mut shared: HashMap<(&Str, &str), usize> = HashMap::new();
        for &list in &lists {
            for key in keys(list) {
                *shared.entry(key).or_default() += 1;
            }
        }
        let mut index = MatcherIndex::default();
        for (i, &list) in lists.iter().enumerate() {
            match keys(list).min_by_key(|k| shared[k]) {
                Some((name, value)) => {
                    let pos = match index.by_label.iter().position(|(n, _)| n == name) {
                        Some(p) => p,
                        None => {
                            index.by_label.push((name.clone(), FnvMap::default()));
                            index.by_label.len() - 1
                        }
                    };
                    index.by_label[pos]
                        .1
                        .entry(value.to_string())
                        .or_default()
                        .push(i);
                }
                None => index.always.push(i),
            }
        }
        index
    }

    /// The lists that may match `labels`, in ascending order: every list that matches is
    /// among them, and they still have to be tested. Kept inline when they are few, so that a
    /// lookup per alert allocates nothing.
    pub fn candidates(&self, labels: &Labels) -> SmallVec<[usize; 8]> {
        let mut out = SmallVec::from_slice(&self.always);
        for (name, values) in &self.by_label {
            if let Some(ids) = labels.get(name).and_then(|v| values.get(v)) {
                out.extend_from_slice(ids);
            }
        }
        out.sort_unstable();
        out
    }
}

/// A label matching operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// The operator as written: `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    /// Whether the operator accepts what does not match (`!=`, `!~`).
    pub fn is_negative(self) -> bool {
        matches!(self, MatchOp::NotEqual | MatchOp::NotRegex)
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label matcher, such as `job="node"` or `instance=~"web-.*"`.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The process-wide shared copy of the name, found in label sets by its address.
    pub(crate) name: Str,
    pub(crate) op: MatchOp,
    pub(crate) value: String,
    pub(crate) pattern: Pattern,
}

/// How a matcher tests a value, chosen once so that simple regexes skip the regex engine.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// `=` and `!=`.
    Exact,
    /// A regex that is an alternation of literals, such as `api|web` (or one literal).
    OneOf(Box<[String]>),
    /// `.*`
    Any,
    /// `.+`
    NonEmpty,
    /// Anything else, anchored as Prometheus anchors it: `^(?s:re)$`.
    Regex(Regex),
}

impl Matcher {
    /// Builds a matcher; for a regex operator, an error is the regex compiler's reason.
    pub fn new(name: String, op: MatchOp, value: String) -> Result<Self, String> {
        let pattern = if op.is_regex() {
            compile_anchored(&value)?
        } else {
            Pattern::Exact
        };
        Ok(Matcher {
            name: shared_name(&name),
            op,
            value,
            pattern,
        })
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or regex, unquoted, as written.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value satisfies this matcher; pass `""` for a missing label, as
    /// Prometheus treats a missing label as one with the empty value.
    pub fn matches(&self, value: &str) -> bool {
        let hit = match &self.pattern {
            Pattern::Exact => value == self.value,
            Pattern::OneOf(literals) => literals.iter().any(|l| l == value),
            Pattern::Any => true,
            Pattern::NonEmpty => !value.is_empty(),
            Pattern::Regex(re) => re.is_match(value),
        };
        hit != self.op.is_negative()
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_label_name(&self.name) {
            f.write_str(&self.name)?;
        } else {
            f.write_str(&go_quote(&self.name))?;
        }
        write!(f, "{}{}", self.op, go_quote(&self.value))
    }
}

/// Compiles a regex matcher's value. The value must compile on its own first, so that
/// `a)|(b` cannot break out of the anchoring group.
fn compile_anchored(re: &str) -> Result<Pattern, String> {
    match re {
        ".*" => return Ok(Pattern::Any),
        ".+" => return Ok(Pattern::NonEmpty),
        _ => {}
    }
    if !re.contains(|c| "\\.+*?()[]{}^$".contains(c)) {
        return Ok(Pattern::OneOf(re.split('|').map(String::from).collect()));
    }
    Regex::new(re).map_err(|e| regex_reason(&e))?;
    Regex::new(&format!("^(?s:{re})$"))
        .map(Pattern::Regex)
        .map_err(|e| regex_reason(&e))
}

/// The one-line reason inside the regex crate's multi-line error message.
pub(crate) fn regex_reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(msg) => msg
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(msg)
            .trim()
            .to_string(),
        other => other.to_string(),
    }
}

/// Quotes like Go's strconv.Quote, as Prometheus prints label values.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c == ' ' || !(c.is_control() || c.is_whitespace()) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> (String, MatchOp, String) {
        let m = parse_matcher(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (m.name().to_string(), m.op(), m.value().to_string())
    }

    fn m(name: &str, op: MatchOp, value: &str) -> (String, MatchOp, String) {
        (name.to_string(), op, value.to_string())
    }

    #[test]
    fn quoted_and_bare_values() {
        assert_eq!(
            one(r#"severity="critical""#),
            m("severity", MatchOp::Equal, "critical")
        );
        assert_eq!(
            one("severity=critical"),
            m("severity", MatchOp::Equal, "critical")
        );
        assert_eq!(
            one(" instance =~ \"web-.*\" "),
            m("instance", MatchOp::Regex, "web-.*")
        );
        assert_eq!(one("a!=b c"), m("a", MatchOp::NotEqual, "b c"));
        assert_eq!(one("a!~x|y"), m("a", MatchOp::NotRegex, "x|y"));
        assert_eq!(one("a=="), m("a", MatchOp::Equal, "="));
        assert_eq!(one(r#"a="""#), m("a", MatchOp::Equal, ""));
        assert_eq!(
            one(r#"a="say \"hi\"\n\d\\""#),
            m("a", MatchOp::Equal, "say \"hi\"\n\\d\\")
        );
        assert_eq!(one(r"a=x\"), m("a", MatchOp::Equal, r"x\"));
    }

    #[test]
    fn lists_with_and_without_braces() {
        let names = |s: &str| -> Vec<String> {
            parse_matchers(s)
                .unwrap()
                .iter()
                .map(|m| m.to_string())
                .collect()
        };
        assert_eq!(
            names(r#"{alertname="A", instance=~"a,b"}"#),
            vec![r#"alertname="A""#, r#"instance=~"a,b""#]
        );
        assert_eq!(
            names("alertname=A,severity!=info"),
            vec![r#"alertname="A""#, r#"severity!="info""#]
        );
        assert_eq!(names("a=1,"), vec![r#"a="1""#]);
        assert!(names("{}").is_empty());
    }

    #[test]
    fn alertmanager_error_messages() {
        let err = |s: &str| parse_matchers(s).unwrap_err();
        assert_eq!(err("-"), "bad matcher format: -");
        assert_eq!(err(",a=b"), "bad matcher format: ");
        assert_eq!(err("a"), "bad matcher format: a");
        assert_eq!(err("1a=b"), "bad matcher format: 1a=b");
        assert_eq!(
            err(r#"a="("#),
            r#"matcher value contains unescaped double quote: "("#
        );
        assert_eq!(
            err(r#"a=x"y"#),
            r#"matcher value contains unescaped double quote: x"y"#
        );
        assert!(
            err(r#"a=~"(""#).starts_with(r#"invalid regular expression "(": "#),
            "{}",
            err(r#"a=~"(""#)
        );
    }

    #[test]
    fn missing_labels_match_as_empty() {
        let ms = parse_matchers(r#"a="", b!="x""#).unwrap();
        assert!(matches_all(&ms, &Labels::from_pairs([("c", "1")])));
        assert!(!matches_all(&ms, &Labels::from_pairs([("a", "1")])));
    }

    #[test]
    fn index_finds_every_matching_list_and_few_others() {
        let lists: Vec<Vec<Matcher>> = [
            r#"alertname="A", severity="warning""#,
            r#"alertname="B", severity="warning""#,
            r#"severity="warning""#,
            r#"instance=~"web-.*""#,
            r#"alertname!="A""#,
        ]
        .iter()
        .map(|s| parse_matchers(s).unwrap())
        .collect();
        let index = MatcherIndex::new(lists.iter().map(Vec::as_slice));
        let labels = Labels::from_pairs([("alertname", "A"), ("severity", "warning")]);
        let out = index.candidates(&labels);
        // Lists 0 and 1 are filed under their rare alertname, not the shared severity.
        assert_eq!(out.as_slice(), [0, 2, 3, 4]);
        let matching: Vec<usize> = out
            .iter()
            .copied()
            .filter(|&i| matches_all(&lists[i], &labels))
            .collect();
        assert_eq!(matching, vec![0, 2]);
        let out = index.candidates(&Labels::from_pairs([("alertname", "C")]));
        assert_eq!(out.as_slice(), [3, 4]);
    }
}
