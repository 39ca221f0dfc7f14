//! `body_template`: a JSON value whose strings hold `{{ path }}` placeholders, rendered
//! against the notification so receivers expecting another JSON shape need no adapter.
//!
//! A string that is exactly one placeholder becomes the value at its path, typed (an
//! object, an array, a number...). Placeholders inside a longer string become the value's
//! text: strings unquoted, anything else as compact JSON. A path that leads nowhere renders
//! as the empty string. Keys and non-string values are copied as they are.

use faultline_sdk::template::{Piece, Unclosed, pieces};
use serde_json::{Map, Value};

/// A template checked when the action is built, ready to render.
#[derive(Debug)]
pub(crate) struct Template(Node);

#[derive(Debug)]
enum Node {
    /// Copied as is: a number, a boolean, null, or a string without placeholders.
    Literal(Value),
    /// `"{{ path }}"`: the value at the path, typed.
    Whole(Path),
    /// Text with placeholders: rendered as a string.
    Text(Vec<Part>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug)]
enum Part {
    Text(String),
    Placeholder(Path),
}

/// Keys and array indices, from the notification's root.
#[derive(Debug)]
struct Path(Vec<String>);

impl Template {
    /// Checks `template`; errors name the string at fault (`body_template.blocks.0.text`).
    pub(crate) fn new(template: Value) -> Result<Self, String> {
        compile(template, "body_template").map(Template)
    }

    /// The template with each placeholder replaced from `context`.
    pub(crate) fn render(&self, context: &Value) -> Value {
        render(&self.0, context)
    }
}

fn compile(value: Value, at: &str) -> Result<Node, String> {
    Ok(match value {
        Value::String(text) => {
            let parts = parse(&text).map_err(|e| format!("params: `{at}`: {e} in {text:?}"))?;
            if !parts.iter().any(|p| matches!(p, Part::Placeholder(_))) {
                return Ok(Node::Literal(Value::String(text)));
            }
            match <[Part; 1]>::try_from(parts) {
                Ok([Part::Placeholder(path)]) => Node::Whole(path),
                Ok(part) => Node::Text(part.into()),
                Err(parts) => Node::Text(parts),
            }
        }
        Value::Array(items) => Node::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| compile(item, &format!("{at}.{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Node::Object(
            map.into_iter()
                .map(|(key, item)| {
                    let node = compile(item, &format!("{at}.{key}"))?;
                    Ok((key, node))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => Node::Literal(other),
    })
}

/// Splits `text` into literal text and placeholders.
fn parse(text: &str) -> Result<Vec<Part>, String> {
    pieces(text)
        .map(|piece| match piece {
            Ok(Piece::Text(literal)) if literal.contains("}}") => {
                Err("`}}` without `{{`".to_string())
            }
            Ok(Piece::Text(literal)) => Ok(Part::Text(literal.to_string())),
            Ok(Piece::Placeholder(inside)) => path(inside).map(Part::Placeholder),
            Err(Unclosed) => Err("`{{` without `}}`".to_string()),
        })
        .collect()
}

fn path(text: &str) -> Result<Path, String> {
    if text.is_empty() {
        return Err("empty placeholder `{{ }}`".to_string());
    }
    let keys: Vec<String> = text.split('.').map(str::to_string).collect();
    let bad = |key: &String| {
        key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '{' || c == '}')
    };
    if keys.iter().any(bad) {
        return Err(format!(
            "bad path `{text}`: keys and indices joined by dots, as in `alerts.0.labels`"
        ));
    }
    Ok(Path(keys))
}

fn render(node: &Node, context: &Value) -> Value {
    match node {
        Node::Literal(value) => value.clone(),
        Node::Whole(path) => lookup(path, context)
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
        Node::Text(parts) => {
            let mut text = String::new();
            for part in parts {
                match part {
                    Part::Text(literal) => text.push_str(literal),
                    Part::Placeholder(path) => match lookup(path, context) {
                        Some(Value::String(s)) => text.push_str(s),
                        Some(other) => text.push_str(&other.to_string()),
                        None => {}
                    },
                }
            }
            Value::String(text)
        }
        Node::Array(items) => Value::Array(items.iter().map(|i| render(i, context)).collect()),
        Node::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, item)| (key.clone(), render(item, context)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// The value at `path` in `context`, if there is one.
fn lookup<'a>(path: &Path, context: &'a Value) -> Option<&'a Value> {
    path.0.iter().try_fold(context, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(template: Value, context: &Value) -> Value {
        Template::new(template).unwrap().render(context)
    }

    #[test]
    fn placeholders_in_text_and_whole() {
        let context = json!({"a": {"b": [10, {"c": "x"}]}, "s": "str", "n": null});
        let template = json!({
            "whole": "{{ a.b }}",
            "text": "{{a.b.1.c}}-{{ a.b.0 }}-{{ a.b }}-{{ n }}-{{ missing.path }}.",
            "spaced": " {{ s }}",
            "missing": "{{ a.b.7 }}",
            "{{ s }}": [true, 2.5, null, "plain"],
        });
        assert_eq!(
            rendered(template, &context),
            json!({
                "whole": [10, {"c": "x"}],
                "text": r#"x-10-[10,{"c":"x"}]-null-."#,
                "spaced": " str",
                "missing": "",
                "{{ s }}": [true, 2.5, null, "plain"],
            })
        );
    }

    #[test]
    fn errors_say_where() {
        let error = |template: Value| Template::new(template).unwrap_err();
        assert_eq!(
            error(json!({"text": "{{ groupKey"})),
            r#"params: `body_template.text`: `{{` without `}}` in "{{ groupKey""#
        );
        assert_eq!(
            error(json!({"blocks": [{"text": "a {{ }} b"}]})),
            r#"params: `body_template.blocks.0.text`: empty placeholder `{{ }}` in "a {{ }} b""#
        );
        assert!(error(json!("x }} y")).contains("`}}` without `{{`"));
        assert!(error(json!("{{ a }} }}")).contains("`}}` without `{{`"));
        assert!(error(json!("{{ a..b }}")).contains("bad path `a..b`"));
        assert!(error(json!("{{ a b }}")).contains("bad path `a b`"));
        assert!(error(json!("{{ {{ a }}")).contains("bad path `{{ a`"));
    }
}
