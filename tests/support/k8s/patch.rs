//! PATCH bodies as the API server reads and applies them: JSON Patch (RFC 6902), JSON merge
//! patch (RFC 7386) and strategic merge patch.
//!
//! A strategic merge patch is applied as a merge patch that also honours the `$patch`
//! directive on maps (`replace`: the map becomes the patch's, `delete`: it goes). Real
//! strategic merge also merges lists by their merge key (containers by `name`); the patches
//! the plugin sends replace whole maps or set scalars, so lists are replaced here.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Failure;

/// A PATCH body, by its media type.
pub enum Patch {
    Json(Vec<Value>),
    Merge(Value),
    StrategicMerge(Value),
}

impl Patch {
    /// Reads the body of a PATCH with `content_type`, checked as the API server checks it.
    pub fn read(content_type: Option<&str>, body: &[u8]) -> Result<Patch, Failure> {
        let media_type = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        let parsed = || serde_json::from_slice::<Value>(body).map_err(Failure::bad_json);
        let object = || {
            let patch = parsed()?;
            if patch.is_object() {
                Ok(patch)
            } else {
                Err(bad_request("the patch must be a JSON object"))
            }
        };
        match media_type.as_deref() {
            Some("application/json-patch+json") => match parsed()? {
                Value::Array(operations) => Ok(Patch::Json(operations)),
                _ => Err(bad_request("a JSON Patch must be an array of operations")),
            },
            Some("application/merge-patch+json") => Ok(Patch::Merge(object()?)),
            Some("application/strategic-merge-patch+json") => Ok(Patch::StrategicMerge(object()?)),
            Some(other @ "application/apply-patch+yaml") => Err(bad_request(&format!(
                "{other} is a patch type the API accepts, but this stand-in does not apply it"
            ))),
            _ => Err(Failure::unsupported_media_type()),
        }
    }

    /// Applies the patch to `object`.
    pub fn apply(&self, object: &mut Value) -> Result<(), Failure> {
        match self {
            Patch::Json(operations) => {
                let mut patched = object.clone();
                for operation in operations {
                    json_patch(&mut patched, operation).map_err(|e| {
                        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e)
                    })?;
                }
                *object = patched;
            }
            Patch::Merge(patch) => merge_patch(object, patch, false),
            Patch::StrategicMerge(patch) => {
                check_directives(patch)?;
                merge_patch(object, patch, true);
            }
        }
        Ok(())
    }
}

fn bad_request(message: &str) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, "BadRequest", message.to_string())
}

/// Applies a JSON merge patch (RFC 7386): objects merge, `null` removes, anything else
/// replaces; with `strategic`, a map carrying `"$patch": "replace"` replaces the target
/// and one carrying `"$patch": "delete"` removes it.
fn merge_patch(target: &mut Value, patch: &Value, strategic: bool) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if strategic && patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (name, value) in patch {
        let deleted = strategic && value.get("$patch").and_then(Value::as_str) == Some("delete");
        if value.is_null() || deleted {
            target.remove(name);
        } else {
            merge_patch(target.entry(name).or_insert(Value::Null), value, strategic);
        }
    }
}

/// Refuses `$patch` directives other than the ones applied here.
fn check_directives(patch: &Value) -> Result<(), Failure> {
    let Value::Object(map) = patch else {
        return Ok(());
    };
    if let Some(directive) = map.get("$patch")
        && !matches!(directive.as_str(), Some("replace" | "delete"))
    {
        return Err(bad_request(&format!(
            "unknown patch type: {directive} in map: \"$patch\" must be \"replace\" or \
             \"delete\" on a map"
        )));
    }
    map.values().try_for_each(check_directives)
}

/// Applies one JSON Patch operation (RFC 6902).
fn json_patch(target: &mut Value, operation: &Value) -> Result<(), String> {
    let op = operation["op"]
        .as_str()
        .ok_or("an operation without \"op\"")?;
    let path = operation["path"]
        .as_str()
        .ok_or_else(|| format!("operation {op} without \"path\""))?;
    let value = || {
        operation
            .get("value")
            .cloned()
            .ok_or_else(|| format!("operation {op} on {path} without \"value\""))
    };
    let from = || {
        operation["from"]
            .as_str()
            .ok_or_else(|| format!("operation {op} on {path} without \"from\""))
    };
    match op {
        "add" => add(target, path, value()?),
        "remove" => remove(target, path).map(drop),
        "replace" => {
            let slot = target.pointer_mut(path).ok_or_else(|| {
                format!("replace operation does not apply: doc is missing key: {path}")
            })?;
            *slot = value()?;
            Ok(())
        }
        "test" => match target.pointer(path) {
            Some(current) if *current == value()? => Ok(()),
            _ => Err(format!("testing value {path} failed")),
        },
        "move" => {
            let moved = remove(target, from()?)?;
            add(target, path, moved)
        }
        "copy" => {
            let copied = target
                .pointer(from()?)
                .cloned()
                .ok_or_else(|| format!("copy from {} does not exist", from().unwrap_or("")))?;
            add(target, path, copied)
        }
        other => Err(format!("unexpected kind: {other}")),
    }
}

/// The parent of a JSON pointer and its last token, unescaped (`~1` is `/`, `~0` is `~`).
fn split(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, key) = split(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let index = if key == "-" {
                list.len()
            } else {
                key.parse()
                    .map_err(|_| format!("bad array index in {path}"))?
            };
            if index > list.len() {
                return Err(format!(
                    "add operation does not apply: index out of range: {path}"
                ));
            }
            list.insert(index, value);
            Ok(())
        }
        _ => Err(format!(
            "add operation does not apply: doc is missing path: {path}"
        )),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split(path)?;
    let missing = || format!("remove operation does not apply: doc is missing path: {path}");
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&key).ok_or_else(missing),
        Some(Value::Array(list)) => match key.parse::<usize>() {
            Ok(index) if index < list.len() => Ok(list.remove(index)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(content_type: &str, object: Value, body: &str) -> Result<Value, u16> {
        let mut object = object;
        Patch::read(Some(content_type), body.as_bytes())
            .and_then(|patch| patch.apply(&mut object))
            .map(|()| object)
            .map_err(|f| f.code.as_u16())
    }

    #[test]
    fn json_patch_replaces_adds_removes_and_tests() {
        let object = json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"x": [1, 2]}});
        let patched = apply(
            "application/json-patch+json",
            object.clone(),
            r#"[{"op": "test", "path": "/spec/x/0", "value": 1},
                {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}},
                {"op": "add", "path": "/spec/x/-", "value": 3},
                {"op": "remove", "path": "/spec/x/0"}]"#,
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"annotations": {"b": "2"}}, "spec": {"x": [2, 3]}})
        );
        // A failing operation changes nothing and is 422; a body that is no array is 400.
        let failing = r#"[{"op": "replace", "path": "/metadata/labels/a", "value": "1"}]"#;
        assert_eq!(
            apply("application/json-patch+json", object.clone(), failing),
            Err(422)
        );
        assert_eq!(
            apply("application/json-patch+json", object, r#"{"op": "add"}"#),
            Err(400)
        );
    }

    #[test]
    fn strategic_merge_honours_replace_and_delete() {
        let object = json!({"spec": {"template": {"metadata": {"labels": {"a": "1"}}, "old": 1}, "keep": 1}});
        let patched = apply(
            "application/strategic-merge-patch+json",
            object.clone(),
            r#"{"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"b": "2"}}}}}"#,
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"spec": {"template": {"metadata": {"labels": {"b": "2"}}}, "keep": 1}})
        );
        // As a plain merge patch, `$patch` is just a key.
        let merged = apply(
            "application/merge-patch+json",
            object.clone(),
            r#"{"spec": {"template": {"$patch": "replace"}}}"#,
        )
        .unwrap();
        assert_eq!(merged["spec"]["template"]["old"], 1);
        assert_eq!(
            apply(
                "application/strategic-merge-patch+json",
                object,
                r#"{"spec": {"$patch": "merge-please"}}"#
            ),
            Err(400)
        );
    }
}
