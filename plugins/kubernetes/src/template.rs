//! Target names templated from the top suspect's labels (`"{{ service }}"`,
//! `"{{ instance }}"`, `"web-{{ shard }}"`), and the check that a name is one Kubernetes
//! accepts.

use std::fmt;

use faultline_sdk::Labels;
use faultline_sdk::template::{Piece, Unclosed, pieces};

/// A parsed template: literal text and `{{ label }}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template as written, for messages.
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Label(String),
}

impl Template {
    /// Parses `source`. Placeholders are `{{ name }}` with a Prometheus label name; spaces
    /// inside the braces are optional.
    pub fn parse(source: &str) -> Result<Template, String> {
        if source.is_empty() {
            return Err("is empty".to_string());
        }
        let parts = pieces(source)
            .map(|piece| match piece {
                Ok(Piece::Text(text)) => Ok(Part::Text(text.to_string())),
                Ok(Piece::Placeholder(name)) if is_label_name(name) => {
                    Ok(Part::Label(name.to_string()))
                }
                Ok(Piece::Placeholder(name)) => Err(format!(
                    "{source:?}: {name:?} is not a label name (letters, digits and '_', \
                     not starting with a digit)"
                )),
                Err(Unclosed) => Err(format!("{source:?}: `{{{{` is not closed by `}}}}`")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text, when the template has no placeholder.
    pub fn literal(&self) -> Option<&str> {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Text(_)))
            .then_some(self.source.as_str())
    }

    /// Fills the placeholders from `labels`; an error names the first missing label.
    pub fn render(&self, labels: &Labels) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Label(name) => match labels.get(name) {
                    Some(value) => out.push_str(value),
                    None => return Err(format!("has no label `{name}`")),
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What [`check_name`] asks of a name, for messages.
pub const NAME_RULE: &str = "lowercase letters, digits, '-' and '.', starting and ending \
                             with a letter or digit, at most 253 characters";

/// Checks that `name` is a DNS-1123 subdomain, what Kubernetes requires of the names of
/// deployments, pods and nodes. Anything else the API would refuse (or, with '/', '?' or
/// '%', read as another path), so it is caught before any request.
pub fn check_name(name: &str) -> Result<(), String> {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.iter().all(|&c| alnum(c) || c == b'-' || c == b'.')
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1]);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Kubernetes name ({NAME_RULE})"
        ))
    }
}

/// Checks that `name` is a DNS-1123 label, what Kubernetes requires of namespace names.
pub fn check_namespace(name: &str) -> Result<(), String> {
    if name.len() <= 63 && !name.contains('.') && check_name(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid namespace name (lowercase letters, digits and '-', \
             starting and ending with a letter or digit, at most 63 characters)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_text() {
        let labels = Labels::from([("service", "web"), ("shard", "2")]);
        let render = |source: &str| Template::parse(source).unwrap().render(&labels);
        assert_eq!(render("{{ service }}"), Ok("web".into()));
        assert_eq!(render("{{service}}"), Ok("web".into()));
        assert_eq!(render("{{ service }}-{{shard}}x"), Ok("web-2x".into()));
        assert_eq!(render("api-{{ shard }}"), Ok("api-2".into()));
        assert_eq!(render("fixed"), Ok("fixed".into()));
        assert_eq!(
            render("{{ instance }}"),
            Err("has no label `instance`".into())
        );
    }

    #[test]
    fn literal_only_without_placeholders() {
        assert_eq!(Template::parse("web").unwrap().literal(), Some("web"));
        assert_eq!(Template::parse("web-{{ x }}").unwrap().literal(), None);
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(Template::parse("").unwrap_err(), "is empty");
        assert_eq!(
            Template::parse("{{ service").unwrap_err(),
            r#""{{ service": `{{` is not closed by `}}`"#
        );
        assert!(
            Template::parse("{{ $labels.service }}")
                .unwrap_err()
                .contains(r#""$labels.service" is not a label name"#)
        );
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{ 1x }}").is_err());
    }

    #[test]
    fn names_are_dns_1123_subdomains() {
        for good in [
            "web",
            "node-3",
            "ip-10-0-0-1.ec2.internal",
            "0",
            &"a".repeat(253),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Web",
            "node3:9100",
            "web_1",
            "-web",
            "web.",
            "a/b",
            &"a".repeat(254),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_name("node3:9100").unwrap_err(),
            format!(r#""node3:9100" is not a valid Kubernetes name ({NAME_RULE})"#)
        );
    }

    #[test]
    fn namespaces_are_dns_1123_labels() {
        assert_eq!(check_namespace("kube-system"), Ok(()));
        assert!(check_namespace("a.b").is_err());
        assert!(check_namespace(&"a".repeat(64)).is_err());
        assert!(check_namespace("Prod").is_err());
    }
}
