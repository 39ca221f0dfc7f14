//! Named secrets of an HTTP connection, which the host puts into a plugin's request where
//! the plugin wrote a placeholder: a Slack webhook's path, a PagerDuty routing key in the
//! body. The plugin builds the request around placeholders, the host substitutes them after
//! the plugin handed the request over, and scrubs the values from everything that goes back
//! (the response, error messages), so the plugin never reads a secret.
//!
//! ```toml
//! [connection.pagerduty]
//! url = "https://events.pagerduty.com"
//! secrets = { routing_key = { file = "/etc/faultline/pagerduty-key" } }
//! ```
//!
//! A placeholder is `{{secret:NAME:KEY}}`, where KEY is a random key of this process that
//! plugins get with the placeholder (`http.secret-placeholder`, the SDK's `http::secret`).
//! Text that merely looks like a placeholder, such as an alert annotation written
//! `{{secret:routing_key}}` by whoever posts alerts, lacks the key and is sent as written:
//! only the plugin can ask for a secret, not the data it handles.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

/// What a scrubbed secret is replaced with.
const REDACTED: &str = "<redacted>";

/// Why a placeholder could not be filled.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The connection holds no secret of that name: a configuration mistake.
    #[error("the connection has no secret {0:?}")]
    Unknown(String),
    /// The secret's file or variable cannot be read now; `cause` is for the log only.
    #[error("the connection's secret {name:?} cannot be read")]
    Unreadable { name: String, cause: String },
    /// A placeholder in a request sent without a connection, which holds no secrets.
    #[error("secret {0:?} is named in a request without a connection")]
    NoConnection(String),
}

/// This process's placeholder key: 32 hex digits from the standard library's randomly
/// seeded hasher, unguessable by whoever writes alerts.
fn key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let seed = RandomState::new();
        format!("{:016x}{:016x}", seed.hash_one(1u8), seed.hash_one(2u8))
    })
}

/// The placeholder a plugin writes for the secret `name`.
pub fn placeholder(name: &str) -> String {
    format!("{{{{secret:{name}:{}}}}}", key())
}

/// Whether `name` is a valid secret name: letters, digits, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The secrets filled into one request, remembered to scrub them from what goes back.
#[derive(Default)]
pub struct Substitution {
    values: Vec<Vec<u8>>,
}

impl Substitution {
    /// Remembers secrets known beforehand, to scrub them as if they had been filled.
    pub fn of(values: impl IntoIterator<Item = Vec<u8>>) -> Substitution {
        let mut values: Vec<Vec<u8>> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort();
        values.dedup();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Substitution { values }
    }

    /// `text` with every placeholder replaced by its secret, which `lookup` gives by name.
    pub fn fill(
        &mut self,
        text: &[u8],
        mut lookup: impl FnMut(&str) -> Result<Vec<u8>, SecretError>,
    ) -> Result<Vec<u8>, SecretError> {
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some((before, name, after)) = next_placeholder(rest) {
            let value = lookup(name)?;
            out.extend_from_slice(before);
            out.extend_from_slice(&value);
            if !value.is_empty() && !self.values.contains(&value) {
                // Longest first, so a secret containing another is scrubbed whole.
                self.values.push(value);
                self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
            }
            rest = after;
        }
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// [`fill`](Self::fill) for text.
    pub fn fill_str(
        &mut self,
        text: &str,
        lookup: impl FnMut(&str) -> Result<Vec<u8>, SecretError>,
    ) -> Result<String, SecretError> {
        let filled = self.fill(text.as_bytes(), lookup)?;
        Ok(String::from_utf8_lossy(&filled).into_owned())
    }

    /// Whether no secret was filled.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret filled so far replaced by `<redacted>`.
    pub fn scrub(&self, text: &[u8]) -> Vec<u8> {
        let mut out = text.to_vec();
        for value in &self.values {
            out = replace(&out, value, REDACTED.as_bytes());
        }
        out
    }

    /// [`scrub`](Self::scrub) for text.
    pub fn scrub_str(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.scrub(text.as_bytes())).into_owned()
    }
}

/// The name of the first placeholder (with this process's key) in `text`, if any.
pub fn first_placeholder(text: &[u8]) -> Option<String> {
    next_placeholder(text).map(|(_, name, _)| name.to_string())
}

/// The first placeholder with this process's key in `text`: the text before it, its
/// secret's name and the text after it. Look-alikes without the key are skipped.
fn next_placeholder(text: &[u8]) -> Option<(&[u8], &str, &[u8])> {
    const OPEN: &[u8] = b"{{secret:";
    let mut from = 0;
    while let Some(at) = find(&text[from..], OPEN).map(|i| from + i) {
        let inner_start = at + OPEN.len();
        let len = find(&text[inner_start..], b"}}")?;
        let inner = std::str::from_utf8(&text[inner_start..inner_start + len]).ok();
        if let Some((name, k)) = inner.and_then(|i| i.rsplit_once(':'))
            && k == key()
            && valid_name(name)
        {
            return Some((&text[..at], name, &text[inner_start + len + 2..]));
        }
        from = at + 2;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Result<Vec<u8>, SecretError> {
        match name {
            "path" => Ok(b"/services/T0/B0/XYZ".to_vec()),
            "key" => Ok(b"R0UT1NG".to_vec()),
            other => Err(SecretError::Unknown(other.to_string())),
        }
    }

    #[test]
    fn placeholders_are_filled_and_scrubbed() {
        let mut s = Substitution::default();
        let body = format!(
            r#"{{"routing_key":"{}","again":"{}","path":"{}"}}"#,
            placeholder("key"),
            placeholder("key"),
            placeholder("path")
        );
        let filled = s.fill(body.as_bytes(), lookup).unwrap();
        assert_eq!(
            String::from_utf8(filled.clone()).unwrap(),
            r#"{"routing_key":"R0UT1NG","again":"R0UT1NG","path":"/services/T0/B0/XYZ"}"#
        );
        // A server that echoes the body back: the plugin sees no secret.
        assert_eq!(
            String::from_utf8(s.scrub(&filled)).unwrap(),
            r#"{"routing_key":"<redacted>","again":"<redacted>","path":"<redacted>"}"#
        );
        assert_eq!(
            s.scrub_str("error for url (http://h/services/T0/B0/XYZ)"),
            "error for url (http://h<redacted>)"
        );
    }

    #[test]
    fn look_alikes_without_the_key_stay_as_written() {
        let mut s = Substitution::default();
        let text = format!(
            "{{{{secret:key}}}} {{{{secret:key:0000}}}} {{{{secret:{{{{secret:bad name:{k}}}}} {}",
            placeholder("key"),
            k = key()
        );
        let filled = s.fill_str(&text, lookup).unwrap();
        assert_eq!(
            filled,
            format!(
                "{{{{secret:key}}}} {{{{secret:key:0000}}}} {{{{secret:{{{{secret:bad name:{}}}}} R0UT1NG",
                key()
            )
        );
        assert_eq!(first_placeholder(b"{{secret:key}}"), None);
        assert_eq!(
            first_placeholder(placeholder("path").as_bytes()).as_deref(),
            Some("path")
        );
    }

    #[test]
    fn unknown_secrets_are_errors_naming_them() {
        let mut s = Substitution::default();
        let e = s.fill_str(&placeholder("nope"), lookup).unwrap_err();
        assert_eq!(e.to_string(), r#"the connection has no secret "nope""#);
    }

    #[test]
    fn the_key_is_long_and_stable() {
        assert_eq!(key().len(), 32);
        assert_eq!(placeholder("a"), placeholder("a"));
        assert!(valid_name("webhook_path-2") && !valid_name("a b") && !valid_name(""));
    }
}
