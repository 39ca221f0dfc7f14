//! Series and log stream selectors, written as in PromQL and LogQL:
//! `node_load1{job="node", instance=~"web-.*"}` and `{app="api"} |= "error" != "debug"`.
//!
//! A selector is parsed, and its regexes compiled, once when a rule loads. Matching a label set
//! is on the hot path of selection, so equality matchers run before regex matchers, and the
//! common regexes (`a|b|c`, `.*`, `.+`) are answered without the regex engine.
//!
//! Series and log selectors share one grammar, parser and lexer (PromQL's and LogQL's
//! braces are the same), so this file keeps them together at some 600 lines rather than
//! split one parser across files. The label matchers themselves are `model::matcher`.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Labels;
use crate::model::is_metric_name;
use crate::model::matcher::{MatchOp, Matcher, Pattern, go_quote, regex_reason};

const METRIC_NAME: &str = "__name__";

/// Why a selector was refused. `pos` is the 1-based character position in the selector text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The text does not follow the grammar.
    #[error("at char {pos}: unexpected {found}, expected {expected}")]
    Unexpected {
        pos: usize,
        found: String,
        expected: &'static str,
    },
    /// A regex (in `=~`, `!~`, `|~` or a `!~` line filter) does not compile.
    #[error("at char {pos}: invalid regex {regex:?}: {reason}")]
    InvalidRegex {
        pos: usize,
        regex: String,
        reason: String,
    },
    /// A malformed string literal, or a well-formed selector that Prometheus or Loki refuses.
    #[error("at char {pos}: {reason}")]
    Invalid { pos: usize, reason: String },
}

/// A Prometheus series selector: `metric`, `metric{a="b", c!~"x|y"}`, `{__name__=~"node_.*"}`.
///
/// Display prints the canonical form: the metric name outside the braces, then the other
/// matchers, equality and inequality matchers before regex matchers, each group in the order
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The metric name first, then other equality matchers, then regexes: cheapest and most
    /// selective first.
    matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses a series selector, with Prometheus's syntax and rules.
    pub fn parse(src: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser { src, pos: 0 };
        p.skip_ws();
        let start = p.pos;
        let mut names = Vec::new();
        let mut matchers = Vec::new();
        let braces = if let Some(name) = p.word(is_metric_start, is_metric_char) {
            names.push(name.to_string());
            p.skip_ws();
            p.eat("{")
        } else if p.eat("{") {
            true
        } else {
            return Err(p.unexpected("a metric name or \"{\""));
        };
        if braces {
            matchers = p.braces(&mut names, false)?;
            p.skip_ws();
        }
        if p.pos < src.len() {
            return Err(p.unexpected(if braces {
                "end of selector"
            } else {
                "\"{\" or end of selector"
            }));
        }
        let pos = p.char_pos(start);
        if let (Some(outside), Some(in_braces)) = (
            names.first(),
            matchers.iter().find(|m| &*m.name == METRIC_NAME),
        ) {
            return Err(SelectorError::Invalid {
                pos,
                reason: format!(
                    "metric name must not be set twice: {outside:?} or {:?}",
                    in_braces.value
                ),
            });
        }
        if names.len() > 1 {
            return Err(SelectorError::Invalid {
                pos,
                reason: format!(
                    "metric name must not be set twice: {:?} or {:?}",
                    names[0], names[1]
                ),
            });
        }
        for name in names {
            matchers.push(Matcher {
                name: crate::model::shared_name(METRIC_NAME),
                op: MatchOp::Equal,
                value: name,
                pattern: Pattern::Exact,
            });
        }
        if matchers.iter().all(|m| m.matches("")) {
            return Err(SelectorError::Invalid {
                pos,
                reason: "vector selector must contain at least one non-empty matcher".into(),
            });
        }
        Ok(Selector::from_matchers(matchers))
    }

    /// Orders the matchers for matching: the metric name, other equality matchers, regexes;
    /// each group in the order written.
    fn from_matchers(mut matchers: Vec<Matcher>) -> Selector {
        matchers.sort_by_key(|m| match m.op {
            MatchOp::Equal if &*m.name == METRIC_NAME => 0,
            MatchOp::Equal | MatchOp::NotEqual => 1,
            MatchOp::Regex | MatchOp::NotRegex => 2,
        });
        Selector { matchers }
    }

    /// Whether a series with these labels is selected. A missing label has the empty value.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    /// The metric name, when the selector fixes it with an equality matcher on `__name__`.
    pub fn metric_name(&self) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| &*m.name == METRIC_NAME && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str())
    }

    /// The matchers in matching order (as Display prints them); a name outside the braces is a
    /// `__name__` equality matcher.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hoisting one of several `__name__` matchers would not parse back.
        let mut names = self.matchers.iter().filter(|m| &*m.name == METRIC_NAME);
        let name_at = match (names.next(), names.next()) {
            (Some(m), None) if m.op == MatchOp::Equal && is_metric_name(&m.value) => Some(0),
            _ => None,
        };
        if let Some(i) = name_at {
            f.write_str(&self.matchers[i].value)?;
            if self.matchers.len() == 1 {
                return Ok(());
            }
        }
        let rest = self
            .matchers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != name_at)
            .map(|(_, m)| m);
        write_braces(f, rest)
    }
}

fn write_braces<'a>(
    f: &mut fmt::Formatter<'_>,
    matchers: impl Iterator<Item = &'a Matcher>,
) -> fmt::Result {
    f.write_str("{")?;
    for (i, m) in matchers.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{m}")?;
    }
    f.write_str("}")
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Selector::parse(&s).map_err(D::Error::custom)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A LogQL stream selector followed by line filters:
/// `{app="api", level=~"err.*"} |= "error" != "debug" |~ "5\\d\\d" !~ "health"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSelector {
    stream: Selector,
    filters: Vec<LineFilter>,
}

#[derive(Clone, Debug)]
struct LineFilter {
    op: LineFilterOp,
    text: String,
    /// Compiled for `|~` and `!~`; unanchored, as in Loki.
    re: Option<Regex>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineFilterOp {
    Contains,
    NotContains,
    Regex,
    NotRegex,
}

impl LineFilterOp {
    fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
        }
    }
}

impl LineFilter {
    fn matches(&self, line: &str) -> bool {
        match (&self.re, self.op) {
            (Some(re), LineFilterOp::Regex) => re.is_match(line),
            (Some(re), _) => !re.is_match(line),
            (None, LineFilterOp::Contains) => line.contains(&self.text),
            (None, _) => !line.contains(&self.text),
        }
    }
}

impl PartialEq for LineFilter {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.text == other.text
    }
}

impl Eq for LineFilter {}

impl LogSelector {
    /// Parses a stream selector and its line filters, with LogQL's syntax and rules.
    pub fn parse(src: &str) -> Result<LogSelector, SelectorError> {
        let mut p = Parser { src, pos: 0 };
        p.skip_ws();
        let start = p.pos;
        if !p.eat("{") {
            return Err(p.unexpected("\"{\" to start a log stream selector"));
        }
        let matchers = p.braces(&mut Vec::new(), true)?;
        if !matchers
            .iter()
            .any(|m| !m.op.is_negative() && !m.matches(""))
        {
            return Err(SelectorError::Invalid {
                pos: p.char_pos(start),
                reason: "queries require at least one regexp or equality matcher that does not \
                         have an empty-compatible value. For instance, app=~\".*\" does not meet \
                         this requirement, but app=~\".+\" will"
                    .into(),
            });
        }
        let mut filters = Vec::new();
        loop {
            p.skip_ws();
            if p.pos == src.len() {
                break;
            }
            let op = if p.eat("|=") {
                LineFilterOp::Contains
            } else if p.eat("!=") {
                LineFilterOp::NotContains
            } else if p.eat("|~") {
                LineFilterOp::Regex
            } else if p.eat("!~") {
                LineFilterOp::NotRegex
            } else if p.eat("|") {
                let pos = p.char_pos(p.pos - 1);
                p.skip_ws();
                return Err(SelectorError::Invalid {
                    pos,
                    reason: format!(
                        "log pipeline stage {} is not supported; only line filters \
                         (|=, !=, |~, !~) are",
                        describe(p.rest())
                    ),
                });
            } else {
                return Err(p.unexpected("a line filter (|=, !=, |~, !~) or end of selector"));
            };
            p.skip_ws();
            let at = p.pos;
            let Some(text) = p.string()? else {
                return Err(p.unexpected("a quoted filter string"));
            };
            let re = match op {
                LineFilterOp::Regex | LineFilterOp::NotRegex => {
                    Some(Regex::new(&text).map_err(|e| SelectorError::InvalidRegex {
                        pos: p.char_pos(at),
                        regex: text.clone(),
                        reason: regex_reason(&e),
                    })?)
                }
                _ => None,
            };
            filters.push(LineFilter { op, text, re });
        }
        Ok(LogSelector {
            stream: Selector::from_matchers(matchers),
            filters,
        })
    }

    /// Whether a stream with these labels is selected.
    pub fn matches_stream(&self, labels: &Labels) -> bool {
        self.stream.matches(labels)
    }

    /// Whether a log line passes every line filter, applied in the order written.
    pub fn matches_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| f.matches(line))
    }

    /// The stream selector alone (the part in braces).
    pub fn stream(&self) -> &Selector {
        &self.stream
    }
}

impl fmt::Display for LogSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_braces(f, self.stream.matchers.iter())?;
        for filter in &self.filters {
            write!(f, " {} {}", filter.op.as_str(), go_quote(&filter.text))?;
        }
        Ok(())
    }
}

impl FromStr for LogSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogSelector::parse(s)
    }
}

impl<'de> Deserialize<'de> for LogSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LogSelector::parse(&s).map_err(D::Error::custom)
    }
}

impl Serialize for LogSelector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A cursor over selector text; `pos` is a byte offset, errors report characters.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    fn char_pos(&self, byte: usize) -> usize {
        self.src[..byte].chars().count() + 1
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected {
            pos: self.char_pos(self.pos),
            found: describe(self.rest()),
            expected,
        }
    }

    fn word(&mut self, first: fn(char) -> bool, rest: fn(char) -> bool) -> Option<&'a str> {
        let text = self.rest();
        if !text.starts_with(first) {
            return None;
        }
        let len = text.find(|c| !rest(c)).unwrap_or(text.len());
        self.pos += len;
        Some(&text[..len])
    }

    /// A quoted string, if one starts here.
    fn string(&mut self) -> Result<Option<String>, SelectorError> {
        if !matches!(self.peek(), Some('"' | '\'' | '`')) {
            return Ok(None);
        }
        let (value, end) =
            lex_quoted(self.src, self.pos).map_err(|(at, reason)| SelectorError::Invalid {
                pos: self.char_pos(at),
                reason,
            })?;
        self.pos = end;
        Ok(Some(value))
    }

    fn match_op(&mut self) -> Option<MatchOp> {
        [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find(|(token, _)| self.eat(token))
        .map(|(_, op)| op)
    }

    /// The matchers after an opening `{`, through the closing `}`. A lone quoted string is a
    /// metric name (Prometheus 3 syntax for names that are not identifiers); it goes to `names`.
    fn braces(
        &mut self,
        names: &mut Vec<String>,
        log: bool,
    ) -> Result<Vec<Matcher>, SelectorError> {
        let mut matchers = Vec::new();
        loop {
            self.skip_ws();
            if self.eat("}") {
                return Ok(matchers);
            }
            let label = if let Some(word) = self.word(is_label_start, is_label_char) {
                word.to_string()
            } else if let Some(quoted) = self.string()? {
                self.skip_ws();
                if !log && matches!(self.peek(), Some(',' | '}')) {
                    names.push(quoted);
                    self.separator()?;
                    if self.eat("}") {
                        return Ok(matchers);
                    }
                    continue;
                }
                quoted
            } else {
                return Err(self.unexpected("a label matcher"));
            };
            self.skip_ws();
            let Some(op) = self.match_op() else {
                return Err(self.unexpected("a label matching operator (=, !=, =~, !~)"));
            };
            self.skip_ws();
            let at = self.pos;
            let Some(value) = self.string()? else {
                return Err(self.unexpected("a quoted label value"));
            };
            let matcher = Matcher::new(label, op, value.clone()).map_err(|reason| {
                SelectorError::InvalidRegex {
                    pos: self.char_pos(at),
                    regex: value,
                    reason,
                }
            })?;
            matchers.push(matcher);
            self.separator()?;
            if self.eat("}") {
                return Ok(matchers);
            }
        }
    }

    /// After a matcher: a `,` (consumed) or a `}` (left for the caller).
    fn separator(&mut self) -> Result<(), SelectorError> {
        self.skip_ws();
        if self.eat(",") || self.peek() == Some('}') {
            Ok(())
        } else {
            Err(self.unexpected("\",\" or \"}\""))
        }
    }
}

/// Names the token at the start of `rest`, for an error message.
fn describe(rest: &str) -> String {
    let Some(c) = rest.chars().next() else {
        return "end of input".into();
    };
    if is_metric_char(c) {
        let len = rest.find(|c| !is_metric_char(c)).unwrap_or(rest.len());
        return format!("{:?}", &rest[..len]);
    }
    if matches!(c, '"' | '\'' | '`') {
        return "quoted string".into();
    }
    format!("{:?}", c.to_string())
}

fn is_metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_metric_char(c: char) -> bool {
    is_metric_start(c) || c.is_ascii_digit()
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_char(c: char) -> bool {
    is_label_start(c) || c.is_ascii_digit()
}

/// Reads the string literal that starts at byte `start` of `src` (with `"`, `'` or a backtick),
/// with Go's escapes, as PromQL, LogQL and Go templates read them: none in backticks; in quotes
/// `\a \b \f \n \r \t \v \\`, the quote itself, `\xHH`, `\ooo`, `\uHHHH`, `\UHHHHHHHH`.
/// Returns the value and the byte offset after the closing quote, or the byte offset of the
/// problem and what it is.
pub(super) fn lex_quoted(src: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let quote = src[start..].chars().next().unwrap_or('"');
    let body = start + 1;
    if quote == '`' {
        return match src[body..].find('`') {
            Some(len) => Ok((src[body..body + len].to_string(), body + len + 1)),
            None => Err((start, "unterminated raw string".into())),
        };
    }
    let mut out = Vec::new();
    let mut chars = src[body..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => {
                return String::from_utf8(out)
                    .map(|s| (s, body + i + 1))
                    .map_err(|_| (start, "string is not valid UTF-8".into()));
            }
            '\n' => break,
            '\\' => {
                let at = body + i;
                let Some((_, e)) = chars.next() else { break };
                let mut hex = |n: usize, what: &str| -> Result<u32, (usize, String)> {
                    let mut v = 0;
                    for _ in 0..n {
                        let d = chars.next().and_then(|(_, c)| c.to_digit(16));
                        v = v * 16 + d.ok_or_else(|| (at, format!("invalid {what} escape")))?;
                    }
                    Ok(v)
                };
                match e {
                    'a' => out.push(0x07),
                    'b' => out.push(0x08),
                    'f' => out.push(0x0c),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(0x0b),
                    '\\' => out.push(b'\\'),
                    e if e == quote => out.extend_from_slice(e.to_string().as_bytes()),
                    // Always below 0x100: two hex digits.
                    'x' => out.push(hex(2, "\\x")? as u8),
                    'u' | 'U' => {
                        let v = hex(if e == 'u' { 4 } else { 8 }, "unicode")?;
                        let c = char::from_u32(v)
                            .ok_or_else(|| (at, format!("invalid unicode code point {v:#x}")))?;
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    '0'..='7' => {
                        let mut v = e as u32 - '0' as u32;
                        for _ in 0..2 {
                            let d = chars.next().and_then(|(_, c)| c.to_digit(8));
                            v = v * 8
                                + d.ok_or_else(|| (at, "invalid octal escape".to_string()))?;
                        }
                        let byte = u8::try_from(v)
                            .map_err(|_| (at, format!("octal escape \\{v:o} is above \\377")))?;
                        out.push(byte);
                    }
                    e => return Err((at, format!("unknown escape sequence \"\\{e}\""))),
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Err((start, "unterminated quoted string".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn err(src: &str) -> String {
        Selector::parse(src).unwrap_err().to_string()
    }

    fn log_err(src: &str) -> String {
        LogSelector::parse(src).unwrap_err().to_string()
    }

    #[test]
    fn metric_name_alone() {
        let s = Selector::parse("node_load1").unwrap();
        assert_eq!(s.metric_name(), Some("node_load1"));
        assert_eq!(s.to_string(), "node_load1");
        assert!(s.matches(&labels(&[("__name__", "node_load1"), ("job", "node")])));
        assert!(!s.matches(&labels(&[("__name__", "node_load5")])));
        assert!(!s.matches(&labels(&[("job", "node")])));
    }

    #[test]
    fn all_four_operators() {
        let s = Selector::parse(r#"metric{a="b", c!="d", e=~"re.*", f!~"x|y"}"#).unwrap();
        assert_eq!(
            s.to_string(),
            r#"metric{a="b", c!="d", e=~"re.*", f!~"x|y"}"#
        );
        let base = [("__name__", "metric"), ("a", "b"), ("e", "regex")];
        assert!(s.matches(&labels(&base)));
        assert!(s.matches(&labels(&[&base[..], &[("c", "x"), ("f", "z")]].concat())));
        assert!(!s.matches(&labels(&[&base[..], &[("c", "d")]].concat())));
        assert!(!s.matches(&labels(&[&base[..], &[("f", "x")]].concat())));
        assert!(!s.matches(&labels(&[&base[..], &[("f", "y")]].concat())));
        assert!(!s.matches(&labels(&[("__name__", "metric"), ("a", "b"), ("e", "xre")])));
        assert!(!s.matches(&labels(&[("__name__", "metric"), ("e", "re")])));
    }

    #[test]
    fn regexes_are_fully_anchored_and_dot_matches_newline() {
        let s = Selector::parse(r#"{job=~"api|web"}"#).unwrap();
        assert!(s.matches(&labels(&[("job", "api")])));
        assert!(!s.matches(&labels(&[("job", "apix")])));
        assert!(!s.matches(&labels(&[("job", "xweb")])));
        let s = Selector::parse(r#"{job=~"a.c"}"#).unwrap();
        assert!(s.matches(&labels(&[("job", "abc")])));
        assert!(s.matches(&labels(&[("job", "a\nc")])));
        assert!(!s.matches(&labels(&[("job", "xabcx")])));
        // The regex must compile on its own, so it cannot escape the anchoring group.
        assert_eq!(
            err(r#"{job=~"a)|(b"}"#),
            r#"at char 7: invalid regex "a)|(b": unopened group"#
        );
    }

    #[test]
    fn missing_label_is_the_empty_value() {
        let none = labels(&[("__name__", "m")]);
        assert!(Selector::parse(r#"m{a=""}"#).unwrap().matches(&none));
        assert!(!Selector::parse(r#"m{a!=""}"#).unwrap().matches(&none));
        assert!(Selector::parse(r#"m{a!~"x.*"}"#).unwrap().matches(&none));
        assert!(!Selector::parse(r#"m{a=~"x.*"}"#).unwrap().matches(&none));
        assert!(Selector::parse(r#"m{a=~".*"}"#).unwrap().matches(&none));
        assert!(!Selector::parse(r#"m{a=~".+"}"#).unwrap().matches(&none));
        assert!(Selector::parse(r#"m{a=~"x|"}"#).unwrap().matches(&none));
    }

    #[test]
    fn name_matcher_in_braces() {
        let s = Selector::parse(r#"{__name__=~"node_.*", job="node"}"#).unwrap();
        assert_eq!(s.metric_name(), None);
        assert_eq!(s.to_string(), r#"{job="node", __name__=~"node_.*"}"#);
        assert!(s.matches(&labels(&[("__name__", "node_load1"), ("job", "node")])));
        assert!(!s.matches(&labels(&[("__name__", "up"), ("job", "node")])));

        let s = Selector::parse(r#"{job="node", __name__="up"}"#).unwrap();
        assert_eq!(s.metric_name(), Some("up"));
        assert_eq!(s.to_string(), r#"up{job="node"}"#);
        assert_eq!(s, Selector::parse(r#"up{job="node"}"#).unwrap());
    }

    #[test]
    fn quoted_names_as_in_prometheus_3() {
        let s = Selector::parse(r#"{"http.server.duration", "service.name"="api"}"#).unwrap();
        assert_eq!(s.metric_name(), Some("http.server.duration"));
        assert_eq!(
            s.to_string(),
            r#"{__name__="http.server.duration", "service.name"="api"}"#
        );
        assert!(s.matches(&labels(&[
            ("__name__", "http.server.duration"),
            ("service.name", "api")
        ])));
        assert_eq!(
            err(r#"{"a", "b"}"#),
            r#"at char 1: metric name must not be set twice: "a" or "b""#
        );
    }

    #[test]
    fn whitespace_and_trailing_comma() {
        let s = Selector::parse(" metric { a = \"b\" ,\n c =~ 'd' , } ").unwrap();
        assert_eq!(s.to_string(), r#"metric{a="b", c=~"d"}"#);
        assert_eq!(Selector::parse("metric{}").unwrap().to_string(), "metric");
    }

    #[test]
    fn string_escapes() {
        let s = Selector::parse(r#"m{a="q\"\\\n\t\x41\101\u00e9\U0001F600"}"#).unwrap();
        assert_eq!(s.matchers()[1].value(), "q\"\\\n\tAAé😀");
        assert_eq!(s.to_string(), r#"m{a="q\"\\\n\tAAé😀"}"#);
        let s = Selector::parse(r"m{a='it\'s', b=`raw\d`}").unwrap();
        assert_eq!(s.matchers()[1].value(), "it's");
        assert_eq!(s.matchers()[2].value(), "raw\\d");
        assert_eq!(s.to_string(), r#"m{a="it's", b="raw\\d"}"#);
        // UTF-8 built from byte escapes, as Go allows.
        let s = Selector::parse(r#"m{a="\xc3\xa9"}"#).unwrap();
        assert_eq!(s.matchers()[1].value(), "é");

        assert_eq!(
            err(r#"m{a="x\q"}"#),
            r#"at char 7: unknown escape sequence "\q""#
        );
        assert_eq!(
            err(r#"m{a="x\'"}"#),
            r#"at char 7: unknown escape sequence "\'""#
        );
        assert_eq!(err(r#"m{a="x"#), "at char 5: unterminated quoted string");
        assert_eq!(
            err("m{a=\"x\ny\"}"),
            "at char 5: unterminated quoted string"
        );
        assert_eq!(err("m{a=`x}"), "at char 5: unterminated raw string");
        assert_eq!(err(r#"m{a="\xZZ"}"#), r#"at char 6: invalid \x escape"#);
        assert_eq!(
            err(r#"m{a="\ud800"}"#),
            "at char 6: invalid unicode code point 0xd800"
        );
        assert_eq!(
            err(r#"m{a="\400"}"#),
            r"at char 6: octal escape \400 is above \377"
        );
        assert_eq!(
            err(r#"m{a="\xff"}"#),
            "at char 5: string is not valid UTF-8"
        );
    }

    #[test]
    fn grammar_errors_name_position_and_expectation() {
        assert_eq!(
            err(""),
            r#"at char 1: unexpected end of input, expected a metric name or "{""#
        );
        assert_eq!(
            err("5xx"),
            r#"at char 1: unexpected "5xx", expected a metric name or "{""#
        );
        assert_eq!(
            err(r#"metric{a="b",,}"#),
            r#"at char 14: unexpected ",", expected a label matcher"#
        );
        assert_eq!(
            err(r#"metric{a}"#),
            r#"at char 9: unexpected "}", expected a label matching operator (=, !=, =~, !~)"#
        );
        assert_eq!(
            err(r#"metric{a=b}"#),
            r#"at char 10: unexpected "b", expected a quoted label value"#
        );
        assert_eq!(
            err(r#"metric{a="b" c="d"}"#),
            r#"at char 14: unexpected "c", expected "," or "}""#
        );
        assert_eq!(
            err(r#"metric{a="b""#),
            r#"at char 13: unexpected end of input, expected "," or "}""#
        );
        assert_eq!(
            err("metric[5m]"),
            r#"at char 7: unexpected "[", expected "{" or end of selector"#
        );
        assert_eq!(
            err(r#"metric{a="b"} x"#),
            r#"at char 15: unexpected "x", expected end of selector"#
        );
        assert_eq!(
            err(r#"metric{a~"b"}"#),
            r#"at char 9: unexpected "~", expected a label matching operator (=, !=, =~, !~)"#
        );
        // Positions count characters, not bytes.
        assert_eq!(
            err(r#"m{a="é" b="c"}"#),
            r#"at char 9: unexpected "b", expected "," or "}""#
        );
    }

    #[test]
    fn invalid_regex() {
        assert_eq!(
            err(r#"metric{a=~"("}"#),
            r#"at char 11: invalid regex "(": unclosed group"#
        );
        assert_eq!(
            err(r#"metric{a!~"x["}"#),
            r#"at char 11: invalid regex "x[": unclosed character class"#
        );
    }

    #[test]
    fn refuses_what_prometheus_refuses() {
        let empty = "at char 1: vector selector must contain at least one non-empty matcher";
        assert_eq!(err("{}"), empty);
        assert_eq!(err(r#"{a=""}"#), empty);
        assert_eq!(err(r#"{a=~".*"}"#), empty);
        assert_eq!(err(r#"{a!="x", b=~"x|"}"#), empty);
        assert_eq!(
            err(r#"  {a=~".*"}"#),
            "at char 3: vector selector must contain at least one non-empty matcher"
        );
        assert!(Selector::parse(r#"{a!=""}"#).is_ok());
        assert!(Selector::parse(r#"{a=~".+"}"#).is_ok());
        assert_eq!(
            err(r#"foo{__name__="bar"}"#),
            r#"at char 1: metric name must not be set twice: "foo" or "bar""#
        );
        assert_eq!(
            err(r#"foo{__name__=~"b.*"}"#),
            r#"at char 1: metric name must not be set twice: "foo" or "b.*""#
        );
    }

    #[test]
    fn log_selector_with_filters() {
        let s = LogSelector::parse(
            r#"{app="api", level=~"err.*"} |= "error" != "debug" |~ "5\\d\\d" !~ "health""#,
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            r#"{app="api", level=~"err.*"} |= "error" != "debug" |~ "5\\d\\d" !~ "health""#
        );
        assert!(s.matches_stream(&labels(&[("app", "api"), ("level", "error")])));
        assert!(!s.matches_stream(&labels(&[("app", "api"), ("level", "warn")])));
        assert!(!s.matches_stream(&labels(&[("app", "web"), ("level", "error")])));
        assert!(s.matches_line("GET /x 503 error upstream"));
        assert!(!s.matches_line("GET /x 503 upstream"), "needs |= error");
        assert!(!s.matches_line("GET /x 503 error debug"), "!= debug");
        assert!(!s.matches_line("GET /x 403 error"), "|~ is a regex match");
        assert!(!s.matches_line("GET /health 503 error"), "!~ health");
        // Line regexes are not anchored, as in Loki.
        assert!(
            LogSelector::parse(r#"{a="b"} |~ `\d{3}`"#)
                .unwrap()
                .matches_line("code 503!")
        );
        let plain = LogSelector::parse(r#"{a="b"}"#).unwrap();
        assert!(plain.matches_line("anything"));
        assert_eq!(plain.stream().to_string(), r#"{a="b"}"#);
    }

    #[test]
    fn log_selector_errors() {
        assert_eq!(
            log_err(r#"app{a="b"}"#),
            r#"at char 1: unexpected "app", expected "{" to start a log stream selector"#
        );
        assert_eq!(
            log_err(r#"{app=~".*"}"#),
            "at char 1: queries require at least one regexp or equality matcher that does not \
             have an empty-compatible value. For instance, app=~\".*\" does not meet this \
             requirement, but app=~\".+\" will"
        );
        assert!(log_err(r#"{app!="x"}"#).contains("at least one regexp or equality matcher"));
        assert_eq!(
            log_err(r#"{app="a"} | json"#),
            r#"at char 11: log pipeline stage "json" is not supported; only line filters (|=, !=, |~, !~) are"#
        );
        assert_eq!(
            log_err(r#"{app="a"} |= error"#),
            r#"at char 14: unexpected "error", expected a quoted filter string"#
        );
        assert_eq!(
            log_err(r#"{app="a"} |= "x" or "y""#),
            r#"at char 18: unexpected "or", expected a line filter (|=, !=, |~, !~) or end of selector"#
        );
        assert_eq!(
            log_err(r#"{app="a"} |~ "(""#),
            r#"at char 14: invalid regex "(": unclosed group"#
        );
        assert_eq!(
            log_err(r#"{"a"}"#),
            r#"at char 5: unexpected "}", expected a label matching operator (=, !=, =~, !~)"#
        );
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RuleFile {
        select: Selector,
        logs: Option<LogSelector>,
    }

    #[test]
    fn loads_from_toml() {
        let rule: RuleFile = toml::from_str(
            r#"
            select = 'node_load1{job="node"}'
            logs = '{app="api"} |= "error"'
            "#,
        )
        .unwrap();
        assert_eq!(rule.select.to_string(), r#"node_load1{job="node"}"#);
        assert_eq!(rule.logs.unwrap().to_string(), r#"{app="api"} |= "error""#);

        let bad = toml::from_str::<RuleFile>(r#"select = 'node_load1{job=node}'"#)
            .err()
            .unwrap()
            .to_string();
        assert!(
            bad.contains(r#"at char 16: unexpected "node", expected a quoted label value"#),
            "{bad}"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = Selector::parse(&s);
            let _ = LogSelector::parse(&s);
        }

        #[test]
        fn near_miss_input_never_panics_and_round_trips(
            s in r#"[a-z_:{}=!~|,"'`\\. ()*+\[\]^$é0-9\n]{0,40}"#
        ) {
            if let Ok(sel) = Selector::parse(&s) {
                let again = Selector::parse(&sel.to_string()).unwrap();
                prop_assert_eq!(&again, &sel);
            }
            if let Ok(sel) = LogSelector::parse(&s) {
                let again = LogSelector::parse(&sel.to_string()).unwrap();
                prop_assert_eq!(&again, &sel);
            }
        }

        #[test]
        fn any_value_round_trips_through_display(v in ".*") {
            let sel = Selector::parse(&format!("m{{a={}}}", go_quote(&v))).unwrap();
            prop_assert_eq!(sel.matchers()[1].value(), v.as_str());
            prop_assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel);
        }
    }
}
