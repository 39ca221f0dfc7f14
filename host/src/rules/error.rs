//! Problems in a rules directory, each naming the file, line, item (rule, group, receiver,
//! localizer) and field, and the helpers that find the line of a TOML error or an item.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a rules directory.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The rule or receiver concerned, e.g. `rule "HighLoad"`.
    pub item: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ":")?;
        if let Some(i) = &self.item {
            write!(f, " {i}:")?;
        }
        if let Some(fl) = &self.field {
            write!(f, " field `{fl}`:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every problem found while loading a rules directory.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadErrors(pub Vec<RuleError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

pub(crate) fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> RuleError {
    let line = e.span().map(|s| line_of(text, s.start));
    RuleError {
        file: path.to_path_buf(),
        line,
        item: line.and_then(|l| enclosing_item(text, l)),
        field: None,
        message: e.message().trim().to_string(),
    }
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The `name = "..."` of the table a line belongs to, as `rule "X"` (or group, receiver).
fn enclosing_item(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = (0..line.min(lines.len()))
        .rev()
        .find(|i| lines[*i].trim_start().starts_with('['))?;
    let kind = match lines[start].trim() {
        "[[group.rule]]" => "rule",
        "[[group]]" => "group",
        "[[receiver]]" => "receiver",
        _ => return None,
    };
    let name = lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
        })?;
    Some(format!("{kind} {name:?}"))
}

/// The line where `[[...]]` item `name` is declared.
pub(crate) fn line_of_item(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "name" && v.trim().trim_matches('"') == name)
        })
        .map(|i| i + 1)
}
