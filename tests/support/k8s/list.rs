//! LIST calls: the `labelSelector` parameter parsed and matched as the API server does,
//! and `limit`/`continue` paging.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use super::Failure;

/// One requirement of a label selector.
#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, PartialEq)]
pub struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses the selector syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    /// `k`, `!k`, joined by commas.
    pub fn parse(text: &str) -> Result<Selector, Failure> {
        let bad = |part: &str| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("unable to parse requirement: {part:?} in labelSelector {text:?}"),
            )
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let set = |rest: &str| -> Option<Vec<String>> {
                let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
                Some(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_string())
            } else if let Some((key, values)) = part.split_once(" notin ") {
                Requirement::NotIn(
                    key.trim().to_string(),
                    set(values).ok_or_else(|| bad(part))?,
                )
            } else if let Some((key, values)) = part.split_once(" in ") {
                Requirement::In(
                    key.trim().to_string(),
                    set(values).ok_or_else(|| bad(part))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.to_string())
            } else {
                return Err(bad(part));
            };
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &Value) -> bool {
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

/// Splits on the commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The parameters of a query string, decoded as the API server decodes them.
pub fn query_params(query: &str) -> HashMap<String, String> {
    format!("/?{query}")
        .parse::<Uri>()
        .ok()
        .and_then(|uri| Query::<HashMap<String, String>>::try_from_uri(&uri).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The `<Kind>List` answer for `items` (sorted by name, as etcd keeps them), one page of at
/// most `limit` from the `continue` token on. Items in a list carry no `kind`/`apiVersion`.
pub fn page(
    kind: &str,
    revision: u64,
    mut items: Vec<Value>,
    limit: Option<usize>,
    token: Option<&str>,
) -> Result<Value, Failure> {
    items.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    let start = match token {
        None => 0,
        Some(token) => token
            .strip_prefix("offset-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::GONE,
                    "Expired",
                    format!("the provided continue parameter {token:?} is invalid"),
                )
            })?,
    };
    let end = limit.map_or(items.len(), |limit| (start + limit).min(items.len()));
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if end < items.len() {
        metadata["continue"] = format!("offset-{end}").into();
    }
    let items: Vec<Value> = items
        .drain(start.min(end)..end)
        .map(|mut item| {
            let object = item.as_object_mut().unwrap();
            object.remove("kind");
            object.remove("apiVersion");
            item
        })
        .collect();
    Ok(
        json!({"kind": format!("{kind}List"), "apiVersion": "apps/v1", "metadata": metadata, "items": items}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_match_as_the_api_server_does() {
        let selector = Selector::parse("app=web,track in (canary, stable),!legacy,tier").unwrap();
        assert!(selector.matches(&json!({"app": "web", "track": "stable", "tier": "x"})));
        assert!(!selector.matches(&json!({"app": "web", "track": "beta", "tier": "x"})));
        assert!(
            !selector
                .matches(&json!({"app": "web", "track": "stable", "tier": "x", "legacy": "1"}))
        );
        assert!(!selector.matches(&json!({"app": "web", "track": "stable"})));
        assert!(
            Selector::parse("app notin (a,b),x!=y")
                .unwrap()
                .matches(&json!({"app": "c"}))
        );
        assert!(Selector::parse("app in web").is_err());
        assert_eq!(
            query_params("labelSelector=app%3Dweb%2Ctrack+in+%28a%29&limit=2")["labelSelector"],
            "app=web,track in (a)"
        );
    }

    #[test]
    fn pages_follow_continue_tokens() {
        let items: Vec<Value> = ["c", "a", "b"]
            .iter()
            .map(|n| json!({"kind": "X", "metadata": {"name": n}}))
            .collect();
        let first = page("ReplicaSet", 7, items.clone(), Some(2), None).unwrap();
        assert_eq!(
            first["items"],
            json!([{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}])
        );
        let token = first["metadata"]["continue"].as_str().unwrap();
        let second = page("ReplicaSet", 7, items, Some(2), Some(token)).unwrap();
        assert_eq!(second["items"], json!([{"metadata": {"name": "c"}}]));
        assert_eq!(second["metadata"].get("continue"), None);
    }
}
