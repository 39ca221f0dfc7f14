//! A rule's inputs: one unnamed selector (`select = 'up{job="api"}'`) or several named ones
//! (`select = { errors = '…', total = '…' }`), for series and log selectors alike. A plugin
//! reads a named input by its name; its data crosses as one more run of the same columns.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::selector::{LogSelector, Selector};

/// One selector, or named selectors sorted by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs<T> {
    /// Empty for one unnamed selector; else one name per selector.
    names: Vec<String>,
    selectors: Vec<T>,
}

impl<T> Inputs<T> {
    /// The selectors, in the order their data reaches the plugin.
    pub fn selectors(&self) -> &[T] {
        &self.selectors
    }

    /// The inputs' names; empty for one unnamed selector.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// The rule field a kind of selector is written in, for error messages.
pub trait Field {
    const FIELD: &'static str;
}

impl Field for Selector {
    const FIELD: &'static str = "select";
}

impl Field for LogSelector {
    const FIELD: &'static str = "logs";
}

/// Whether `name` may name an input: what a plugin can spell as a plain identifier.
fn is_input_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl<'de, T> Deserialize<'de> for Inputs<T>
where
    T: FromStr + Field,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InputsVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T> Visitor<'de> for InputsVisitor<T>
        where
            T: FromStr + Field,
            T::Err: fmt::Display,
        {
            type Value = Inputs<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a selector, or a table of named selectors")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Inputs<T>, E> {
                Ok(Inputs {
                    names: Vec::new(),
                    selectors: vec![s.parse().map_err(E::custom)?],
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inputs<T>, A::Error> {
                let mut named: Vec<(String, T)> = Vec::new();
                while let Some((name, text)) = map.next_entry::<String, String>()? {
                    if !is_input_name(&name) {
                        return Err(de::Error::custom(format!(
                            "{}: input name {name:?} must start with a letter or `_` and hold \
                             only letters, digits, `_` and `-`",
                            T::FIELD
                        )));
                    }
                    let selector = text
                        .parse()
                        .map_err(|e| de::Error::custom(format!("{}.{name}: {e}", T::FIELD)))?;
                    named.push((name, selector));
                }
                if named.is_empty() {
                    return Err(de::Error::custom(format!("{} names no input", T::FIELD)));
                }
                named.sort_by(|a, b| a.0.cmp(&b.0));
                let (names, selectors) = named.into_iter().unzip();
                Ok(Inputs { names, selectors })
            }
        }

        d.deserialize_any(InputsVisitor(std::marker::PhantomData))
    }
}

/// As written: a string for one selector, else a map from name to selector.
impl<T: fmt::Display> Serialize for Inputs<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.names.is_empty() {
            s.collect_str(&self.selectors[0])
        } else {
            s.collect_map(
                self.names
                    .iter()
                    .zip(&self.selectors)
                    .map(|(n, sel)| (n, sel.to_string())),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Rule {
        select: Inputs<Selector>,
        logs: Option<Inputs<LogSelector>>,
    }

    #[test]
    fn one_or_named_selectors() {
        let one: Rule = toml::from_str(r#"select = 'up{job="a"}'"#).unwrap();
        assert!(one.select.names().is_empty());
        assert_eq!(one.select.selectors()[0].to_string(), r#"up{job="a"}"#);
        assert_eq!(serde_json::to_value(&one.select).unwrap(), r#"up{job="a"}"#);

        let named: Rule = toml::from_str(
            r#"
            select = { total = 'requests_total', errors = 'requests_total{code=~"5.."}' }
            logs = { app = '{app="api"} |= "error"' }
            "#,
        )
        .unwrap();
        assert_eq!(named.select.names(), ["errors", "total"]);
        assert_eq!(named.select.selectors()[1].to_string(), "requests_total");
        assert_eq!(named.logs.unwrap().names(), ["app"]);
        assert_eq!(
            serde_json::to_value(&named.select).unwrap(),
            serde_json::json!({"errors": r#"requests_total{code=~"5.."}"#, "total": "requests_total"})
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let err = |text: &str| toml::from_str::<Rule>(text).unwrap_err().to_string();
        let bad_selector = err("select = { errors = 'up{', total = 'up' }");
        assert!(
            bad_selector.contains("select.errors: at char 4"),
            "{bad_selector}"
        );
        assert!(bad_selector.contains("line 1"), "{bad_selector}");
        assert!(err("select = { 'a b' = 'up' }").contains("select: input name \"a b\""));
        assert!(err("select = {}").contains("select names no input"));
        let bad_logs = err("select = 'up'\nlogs = { app = 'up' }");
        assert!(bad_logs.contains("logs.app: "), "{bad_logs}");
        assert!(err("select = 3").contains("a selector, or a table of named selectors"));
    }
}
