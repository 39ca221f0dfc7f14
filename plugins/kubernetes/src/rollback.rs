//! `rollback`: what `kubectl rollout undo` does, for a Deployment (from its ReplicaSets) or
//! a StatefulSet or DaemonSet (from its ControllerRevisions).
//!
//! Deployment:
//! 1. GET it; a paused Deployment is refused, as kubectl refuses it.
//! 2. LIST the ReplicaSets its `spec.selector` selects, in pages of 500, keeping those it
//!    controls (the owner reference with `controller: true` and the Deployment's uid).
//! 3. Pick the revision (`deployment.kubernetes.io/revision`): `to_revision`, or else the
//!    newest one before the newest.
//! 4. If the Deployment's pod template already equals that ReplicaSet's (ignoring the
//!    `pod-template-hash` label), it is done: nothing is sent.
//! 5. Else one JSON Patch replaces `/spec/template` (without the hash label) and
//!    `/metadata/annotations`: the Deployment's own bookkeeping annotations kept, the others
//!    from the ReplicaSet.
//!
//! StatefulSet and DaemonSet: GET it; LIST the ControllerRevisions its selector selects that
//! it controls; pick `to_revision` or the one before the newest; if its `data` equals the
//! object's template as a patch (`{"spec": {"template": {..., "$patch": "replace"}}}`), it
//! is done; else that `data` is sent as a strategic merge patch.
//!
//! A retry aims at the revision its first attempt chose. Once a rollback has gone through,
//! the controller renumbers the revision it went back to as the newest, so "the one before
//! the newest" would then be the bad revision again. The choice for an attempt's
//! idempotency key is kept in the state store for a day; a retry of that key finds the same
//! revision (by its uid), sees its template already in place and is done.

use std::collections::BTreeMap;

use faultline_sdk::http::Request;
use faultline_sdk::recovery::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Api;

/// The kinds of workload a rollback acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Workload {
    /// The param naming the target, and the kind in messages.
    pub fn field(self) -> &'static str {
        match self {
            Workload::Deployment => "deployment",
            Workload::StatefulSet => "statefulset",
            Workload::DaemonSet => "daemonset",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            Workload::Deployment => "deployments",
            Workload::StatefulSet => "statefulsets",
            Workload::DaemonSet => "daemonsets",
        }
    }
}

/// What to roll back, and to which revision (`None`: the one before the newest).
#[derive(Debug)]
pub struct Rollback<'a> {
    pub workload: Workload,
    pub namespace: &'a str,
    pub name: &'a str,
    pub to_revision: Option<i64>,
}

/// The label the deployment controller adds to each ReplicaSet's template.
const HASH_LABEL: &str = "pod-template-hash";

/// The Deployment's own annotations, which a rollback keeps rather than taking the
/// ReplicaSet's (kubectl's `annotationsToSkip`).
const KEPT_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The state key of the choices made, by idempotency key.
const CHOICES_KEY: &str = "rollback-choices";

/// How long a choice is remembered: far longer than any action's retries.
const CHOICE_TTL_MS: i64 = 24 * 3600 * 1000;

/// A revision a rollback can go back to: a ReplicaSet or a ControllerRevision.
struct Revision {
    number: i64,
    uid: String,
    object: Value,
}

/// Runs the rollback: every call through `api`.
pub fn run(api: &Api, rollback: &Rollback, idempotency_key: &str) -> Outcome {
    match attempt(api, rollback, idempotency_key) {
        Ok(done) => Outcome::Done(done),
        Err(outcome) => outcome,
    }
}

fn attempt(api: &Api, r: &Rollback, idempotency_key: &str) -> Result<String, Outcome> {
    let what = format!(
        "roll back {} {}/{}",
        r.workload.field(),
        r.namespace,
        r.name
    );
    let failed = |reason: String| Outcome::Failed(format!("{what}: {reason}"));
    let path = format!(
        "/apis/apps/v1/namespaces/{}/{}/{}",
        r.namespace,
        r.workload.resource(),
        r.name
    );
    let object = api.json(Request::get(&path), &format!("get {}", r.workload.field()))?;
    if r.workload == Workload::Deployment && object["spec"]["paused"] == true {
        return Err(failed(
            "it is paused; resume it first (kubectl rollout resume) and try again".to_string(),
        ));
    }
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
    let selector = label_selector(&object["spec"]["selector"]).map_err(&failed)?;
    let history = match r.workload {
        Workload::Deployment => list(api, r.namespace, "replicasets", &selector, Some(500), uid)?,
        _ => list(
            api,
            r.namespace,
            "controllerrevisions",
            &selector,
            None,
            uid,
        )?,
    };
    let history: Vec<Revision> = history
        .into_iter()
        .filter_map(|object| {
            let number = match r.workload {
                Workload::Deployment => {
                    object["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()?
                        .parse()
                        .ok()?
                }
                _ => object["revision"].as_i64()?,
            };
            let uid = object["metadata"]["uid"].as_str()?.to_string();
            Some(Revision {
                number,
                uid,
                object,
            })
        })
        .collect();
    let chosen = choose(&history, r.to_revision, idempotency_key).map_err(&failed)?;
    let number = chosen.number;
    let (request, in_place) = match r.workload {
        Workload::Deployment => deployment_patch(&path, &object, &chosen.object),
        _ => revision_patch(&path, &object, &chosen.object),
    };
    if in_place {
        return Ok(format!(
            "{} {}/{} is already at revision {number}",
            r.workload.field(),
            r.namespace,
            r.name
        ));
    }
    api.json(request, &what)?;
    Ok(format!(
        "rolled back {} {}/{} to revision {number}",
        r.workload.field(),
        r.namespace,
        r.name
    ))
}

/// A choice made for an idempotency key.
#[derive(Debug, Serialize, Deserialize)]
struct Choice {
    uid: String,
    at: i64,
}

/// The revision to go back to: the one this key chose before, else `to_revision`, else the
/// one before the newest. A new choice is remembered.
fn choose<'h>(
    history: &'h [Revision],
    to_revision: Option<i64>,
    idempotency_key: &str,
) -> Result<&'h Revision, String> {
    let now = clock::now_ms();
    let mut choices: BTreeMap<String, Choice> = state::get_json(CHOICES_KEY).unwrap_or_default();
    choices.retain(|_, c| now - c.at < CHOICE_TTL_MS);
    if let Some(choice) = choices.get(idempotency_key) {
        return history.iter().find(|h| h.uid == choice.uid).ok_or_else(|| {
            "the revision an earlier attempt chose is gone from its history".to_string()
        });
    }
    let mut numbers: Vec<i64> = history.iter().map(|h| h.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let listed = || {
        let numbers: Vec<String> = numbers.iter().map(i64::to_string).collect();
        match numbers.is_empty() {
            true => "none".to_string(),
            false => numbers.join(", "),
        }
    };
    let number = match to_revision {
        Some(n) if numbers.contains(&n) => n,
        Some(n) => {
            return Err(format!(
                "no revision {n} in its history (revisions: {})",
                listed()
            ));
        }
        None if numbers.len() < 2 => {
            return Err(format!(
                "no earlier revision to roll back to (revisions: {})",
                listed()
            ));
        }
        None => numbers[numbers.len() - 2],
    };
    let chosen = history.iter().find(|h| h.number == number).unwrap();
    choices.insert(
        idempotency_key.to_string(),
        Choice {
            uid: chosen.uid.clone(),
            at: now,
        },
    );
    state::set_json(CHOICES_KEY, &choices).map_err(|e| format!("state: {e}"))?;
    Ok(chosen)
}

/// LISTs the objects of `resource` that `selector` selects and the owner with `owner_uid`
/// controls, following `continue` tokens when `limit` pages the list.
fn list(
    api: &Api,
    namespace: &str,
    resource: &str,
    selector: &str,
    limit: Option<u32>,
    owner_uid: &str,
) -> Result<Vec<Value>, Outcome> {
    let what = format!("list {resource} in {namespace}");
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let mut query = format!("labelSelector={}", query_escape(selector));
        if let Some(limit) = limit {
            query.push_str(&format!("&limit={limit}"));
        }
        if !token.is_empty() {
            query.push_str(&format!("&continue={}", query_escape(&token)));
        }
        let path = format!("/apis/apps/v1/namespaces/{namespace}/{resource}?{query}");
        let mut page = api.json(Request::get(path), &what)?;
        if let Value::Array(page_items) = page["items"].take() {
            items.extend(
                page_items
                    .into_iter()
                    .filter(|item| is_controlled_by(item, owner_uid)),
            );
        }
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if token.is_empty() || limit.is_none() {
            return Ok(items);
        }
    }
}

/// Whether `object`'s controller (the owner reference with `controller: true`) has `uid`.
fn is_controlled_by(object: &Value, uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o["controller"] == true && o["uid"].as_str() == Some(uid))
        })
}

/// The Deployment's JSON Patch back to the ReplicaSet's template, and whether its template
/// is that one already.
fn deployment_patch(path: &str, deployment: &Value, replica_set: &Value) -> (Request, bool) {
    let mut template = replica_set["spec"]["template"].clone();
    let current = without_hash(deployment["spec"]["template"].clone());
    template = without_hash(template);
    let in_place = template == current;

    let mut annotations = serde_json::Map::new();
    let own = &deployment["metadata"]["annotations"];
    for key in KEPT_ANNOTATIONS {
        if let Some(value) = own.get(key) {
            annotations.insert(key.to_string(), value.clone());
        }
    }
    if let Some(theirs) = replica_set["metadata"]["annotations"].as_object() {
        for (key, value) in theirs {
            if !KEPT_ANNOTATIONS.contains(&key.as_str()) {
                annotations.insert(key.clone(), value.clone());
            }
        }
    }
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    (
        patch_request(path, "application/json-patch+json", &patch),
        in_place,
    )
}

/// A template without the `pod-template-hash` label (and without its labels when that was
/// the only one: the API treats none and empty alike).
fn without_hash(mut template: Value) -> Value {
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            template["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("labels");
        }
    }
    template
}

/// The StatefulSet's or DaemonSet's strategic merge patch back to a ControllerRevision, and
/// whether its template is that one already.
fn revision_patch(path: &str, object: &Value, revision: &Value) -> (Request, bool) {
    let data = &revision["data"];
    let mut current = object["spec"]["template"].clone();
    if let Some(template) = current.as_object_mut() {
        template.insert("$patch".to_string(), "replace".into());
    }
    let in_place = *data == json!({"spec": {"template": current}});
    (
        patch_request(path, "application/strategic-merge-patch+json", data),
        in_place,
    )
}

fn patch_request(path: &str, content_type: &str, body: &Value) -> Request {
    Request::new("PATCH", path)
        .header("Content-Type", content_type)
        .body(body.to_string())
}

/// A `LabelSelector` as the API's `labelSelector` parameter, written as client-go writes
/// it: requirements sorted by key, values sorted.
fn label_selector(selector: &Value) -> Result<String, String> {
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or_default();
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let values = values.join(",");
        let requirement = match expression["operator"].as_str() {
            Some("In") => format!("{key} in ({values})"),
            Some("NotIn") => format!("{key} notin ({values})"),
            Some("Exists") => key.to_string(),
            Some("DoesNotExist") => format!("!{key}"),
            other => {
                return Err(format!(
                    "its selector has an unknown operator {}",
                    other.unwrap_or("(none)")
                ));
            }
        };
        requirements.push((key.to_string(), requirement));
    }
    if requirements.is_empty() {
        // An empty selector would list every object in the namespace.
        return Err("it has no selector".to_string());
    }
    requirements.sort();
    let requirements: Vec<String> = requirements.into_iter().map(|(_, r)| r).collect();
    Ok(requirements.join(","))
}

/// Escapes a query parameter as Go's `url.QueryEscape` does (client-go's encoding).
fn query_escape(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kubernetes;
    use faultline_sdk::http::Response;
    use faultline_sdk::testing;

    const NOW: i64 = 1_795_687_200_000;
    const DEPLOYMENT_UID: &str = "d-uid";

    fn image(revision: i64) -> String {
        format!("registry.example/web:1.{revision}")
    }

    fn pod_template(revision: i64, hash: bool) -> Value {
        let mut labels = json!({"app": "web"});
        if hash {
            labels[HASH_LABEL] = format!("hash{revision}").into();
        }
        json!({
            "metadata": {"creationTimestamp": null, "labels": labels},
            "spec": {"containers": [{"name": "web", "image": image(revision)}]},
        })
    }

    /// Deployment shop/web at `revision`, its template that revision's.
    fn deployment(revision: i64, paused: bool) -> Value {
        json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": DEPLOYMENT_UID,
                "annotations": {
                    "deployment.kubernetes.io/revision": revision.to_string(),
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "kubernetes.io/change-cause": format!("deploy 1.{revision}"),
                },
            },
            "spec": {"paused": paused, "selector": {"matchLabels": {"app": "web"}},
                     "template": pod_template(revision, false)},
        })
    }

    /// The ReplicaSet of `revision`, now numbered `number`, controlled by `owner`.
    fn replica_set(revision: i64, number: i64, owner: &str) -> Value {
        json!({
            "kind": "ReplicaSet", "apiVersion": "apps/v1",
            "metadata": {
                "name": format!("web-hash{revision}"), "namespace": "shop",
                "uid": format!("rs-{revision}"),
                "annotations": {
                    "deployment.kubernetes.io/revision": number.to_string(),
                    "deployment.kubernetes.io/desired-replicas": "2",
                    "kubernetes.io/change-cause": format!("deploy 1.{revision}"),
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "web", "uid": owner, "controller": true}],
            },
            "spec": {"template": pod_template(revision, true)},
        })
    }

    fn ok(body: Value) -> Result<Response, faultline_sdk::http::HttpError> {
        Ok(Response::new(200).body(body.to_string()))
    }

    fn list(items: Vec<Value>) -> Value {
        json!({"kind": "List", "metadata": {"resourceVersion": "9"}, "items": items})
    }

    /// Runs one attempt with idempotency key `key` on the queued answers, keeping the state
    /// store; returns the outcome and the requests sent.
    fn attempt(
        params: &str,
        key: &str,
        answers: Vec<Result<Response, faultline_sdk::http::HttpError>>,
    ) -> (Outcome, Vec<Request>) {
        let mut k = Kubernetes::configure(params).unwrap();
        let before = testing::http_requests().len();
        testing::set_now_ms(NOW);
        for answer in answers {
            testing::http_respond(answer);
        }
        let input = RecoverInput {
            now: NOW,
            suspects: vec![Suspect {
                labels: [("service", "web")].into_iter().collect(),
                score: 1.0,
                reason: String::new(),
            }],
            attempt: 1,
            idempotency_key: key.into(),
            receiver: "undo".into(),
            ..Default::default()
        };
        let outcome = k.recover(&input);
        (outcome, testing::http_requests().split_off(before))
    }

    const UNDO: &str =
        r#"{"action": "rollback", "namespace": "shop", "deployment": "{{ service }}"}"#;

    fn history() -> Vec<Value> {
        vec![
            replica_set(1, 1, DEPLOYMENT_UID),
            replica_set(3, 3, DEPLOYMENT_UID),
            replica_set(2, 2, DEPLOYMENT_UID),
            // Selected by the label, but another owner's: not part of the history.
            replica_set(9, 9, "someone-else"),
        ]
    }

    #[test]
    fn a_deployment_goes_back_to_the_previous_revision_as_kubectl_sends_it() {
        testing::reset();
        let (outcome, sent) = attempt(
            UNDO,
            "key-1",
            vec![
                ok(deployment(3, false)),
                ok(list(history())),
                ok(deployment(2, false)),
            ],
        );
        assert_eq!(
            outcome,
            Outcome::Done("rolled back deployment shop/web to revision 2".into())
        );
        let urls: Vec<(&str, &str)> = sent
            .iter()
            .map(|r| (r.method.as_str(), r.url.as_str()))
            .collect();
        assert_eq!(
            urls,
            [
                ("GET", "/apis/apps/v1/namespaces/shop/deployments/web"),
                (
                    "GET",
                    "/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb&limit=500"
                ),
                ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web"),
            ]
        );
        let patch = &sent[2];
        assert_eq!(
            patch.header_value("content-type"),
            Some("application/json-patch+json")
        );
        assert_eq!(patch.header_value("idempotency-key"), Some("key-1"));
        let body: Value = serde_json::from_slice(&patch.body).unwrap();
        assert_eq!(
            body,
            json!([
                {"op": "replace", "path": "/spec/template", "value": pod_template(2, false)},
                {"op": "replace", "path": "/metadata/annotations", "value": {
                    // The Deployment's own bookkeeping stays; the rest is the ReplicaSet's.
                    "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "kubernetes.io/change-cause": "deploy 1.2",
                }},
            ])
        );
    }

    #[test]
    fn a_retry_aims_at_the_revision_its_first_attempt_chose() {
        testing::reset();
        let first = attempt(
            UNDO,
            "key-1",
            vec![
                ok(deployment(3, false)),
                ok(list(history())),
                Ok(Response::new(504)),
            ],
        );
        assert!(matches!(first.0, Outcome::RetryLater(_)), "{first:?}");
        // The patch went through after all: the controller made revision 2's ReplicaSet the
        // newest, revision 4, so "the one before the newest" is now the bad revision 3.
        let renumbered = vec![
            replica_set(1, 1, DEPLOYMENT_UID),
            replica_set(3, 3, DEPLOYMENT_UID),
            replica_set(2, 4, DEPLOYMENT_UID),
        ];
        let mut now_at_2 = deployment(2, false);
        now_at_2["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4".into();
        let (outcome, sent) = attempt(
            UNDO,
            "key-1",
            vec![ok(now_at_2.clone()), ok(list(renumbered.clone()))],
        );
        assert_eq!(
            outcome,
            Outcome::Done("deployment shop/web is already at revision 4".into())
        );
        assert_eq!(sent.len(), 2, "a retry in place sends no patch: {sent:?}");

        // Another action (a new key) undoes the last change, as kubectl rollout undo would.
        let (outcome, sent) = attempt(
            UNDO,
            "key-2",
            vec![ok(now_at_2), ok(list(renumbered)), ok(json!({}))],
        );
        assert_eq!(
            outcome,
            Outcome::Done("rolled back deployment shop/web to revision 3".into())
        );
        let body: Value = serde_json::from_slice(&sent[2].body).unwrap();
        assert_eq!(body[0]["value"], pod_template(3, false));
    }

    #[test]
    fn a_named_revision_is_used_and_a_missing_one_fails_without_a_patch() {
        testing::reset();
        let to_1 =
            r#"{"action": "rollback", "namespace": "shop", "deployment": "web", "to_revision": 1}"#;
        let (outcome, sent) = attempt(
            to_1,
            "key-1",
            vec![ok(deployment(3, false)), ok(list(history())), ok(json!({}))],
        );
        assert_eq!(
            outcome,
            Outcome::Done("rolled back deployment shop/web to revision 1".into())
        );
        let body: Value = serde_json::from_slice(&sent[2].body).unwrap();
        assert_eq!(body[0]["value"], pod_template(1, false));

        let to_7 =
            r#"{"action": "rollback", "namespace": "shop", "deployment": "web", "to_revision": 7}"#;
        let (outcome, sent) = attempt(
            to_7,
            "key-2",
            vec![ok(deployment(3, false)), ok(list(history()))],
        );
        assert_eq!(
            outcome,
            Outcome::Failed(
                "roll back deployment shop/web: no revision 7 in its history (revisions: 1, 2, 3)"
                    .into()
            )
        );
        assert_eq!(sent.len(), 2);

        let (outcome, _) = attempt(
            UNDO,
            "key-3",
            vec![
                ok(deployment(1, false)),
                ok(list(vec![replica_set(1, 1, DEPLOYMENT_UID)])),
            ],
        );
        assert_eq!(
            outcome,
            Outcome::Failed(
                "roll back deployment shop/web: no earlier revision to roll back to (revisions: 1)"
                    .into()
            )
        );
    }

    #[test]
    fn a_paused_or_missing_deployment_fails_after_the_get() {
        testing::reset();
        let (outcome, sent) = attempt(UNDO, "key-1", vec![ok(deployment(3, true))]);
        assert_eq!(
            outcome,
            Outcome::Failed("roll back deployment shop/web: it is paused; resume it first (kubectl rollout resume) and try again".into())
        );
        assert_eq!(sent.len(), 1);

        let not_found = json!({"kind": "Status", "status": "Failure", "reason": "NotFound",
                               "message": "deployments.apps \"web\" not found", "code": 404});
        let (outcome, _) = attempt(
            UNDO,
            "key-2",
            vec![Ok(Response::new(404).body(not_found.to_string()))],
        );
        assert_eq!(
            outcome,
            Outcome::Failed(
                r#"get deployment: the API answered 404: deployments.apps "web" not found"#.into()
            )
        );
    }

    #[test]
    fn a_long_history_is_listed_page_by_page() {
        testing::reset();
        let mut first_page = list(vec![
            replica_set(1, 1, DEPLOYMENT_UID),
            replica_set(3, 3, DEPLOYMENT_UID),
        ]);
        first_page["metadata"]["continue"] = "page 2/x".into();
        let (outcome, sent) = attempt(
            UNDO,
            "key-1",
            vec![
                ok(deployment(3, false)),
                ok(first_page),
                ok(list(vec![replica_set(2, 2, DEPLOYMENT_UID)])),
                ok(json!({})),
            ],
        );
        assert_eq!(
            outcome,
            Outcome::Done("rolled back deployment shop/web to revision 2".into())
        );
        assert_eq!(
            sent[2].url,
            "/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb&limit=500&continue=page+2%2Fx"
        );
    }

    /// ControllerRevision `revision` of statefulset shop/db: the template of that revision as
    /// kubectl's patch.
    fn controller_revision(revision: i64) -> Value {
        let mut template = pod_template(revision, false);
        template["$patch"] = "replace".into();
        json!({
            "kind": "ControllerRevision", "apiVersion": "apps/v1",
            "metadata": {"name": format!("db-{revision}"), "namespace": "shop",
                         "uid": format!("cr-{revision}"), "labels": {"app": "web"},
                         "ownerReferences": [{"kind": "StatefulSet", "name": "db",
                                              "uid": "sts-uid", "controller": true}]},
            "data": {"spec": {"template": template}},
            "revision": revision,
        })
    }

    #[test]
    fn a_statefulset_goes_back_with_its_controller_revision_as_the_patch() {
        testing::reset();
        let statefulset = json!({
            "kind": "StatefulSet", "apiVersion": "apps/v1",
            "metadata": {"name": "db", "namespace": "shop", "uid": "sts-uid"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template(3, false)},
        });
        let params = r#"{"action": "rollback", "namespace": "shop", "statefulset": "db"}"#;
        let revisions = list((1..=3).map(controller_revision).collect());
        let (outcome, sent) = attempt(
            params,
            "key-1",
            vec![
                ok(statefulset.clone()),
                ok(revisions.clone()),
                ok(json!({})),
            ],
        );
        assert_eq!(
            outcome,
            Outcome::Done("rolled back statefulset shop/db to revision 2".into())
        );
        assert_eq!(sent[0].url, "/apis/apps/v1/namespaces/shop/statefulsets/db");
        assert_eq!(
            sent[1].url,
            "/apis/apps/v1/namespaces/shop/controllerrevisions?labelSelector=app%3Dweb"
        );
        assert_eq!(sent[2].method, "PATCH");
        assert_eq!(
            sent[2].header_value("content-type"),
            Some("application/strategic-merge-patch+json")
        );
        let body: Value = serde_json::from_slice(&sent[2].body).unwrap();
        assert_eq!(body, controller_revision(2)["data"]);

        // At revision 2's template already: done without a patch.
        let mut at_2 = statefulset;
        at_2["spec"]["template"] = pod_template(2, false);
        let (outcome, sent) = attempt(params, "key-1", vec![ok(at_2), ok(revisions)]);
        assert_eq!(
            outcome,
            Outcome::Done("statefulset shop/db is already at revision 2".into())
        );
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn selectors_are_written_as_client_go_writes_them() {
        let selector = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        });
        let written = label_selector(&selector).unwrap();
        assert_eq!(
            written,
            "app=shop,!legacy,tier=web,track in (canary,stable)"
        );
        assert_eq!(
            query_escape(&written),
            "app%3Dshop%2C%21legacy%2Ctier%3Dweb%2Ctrack+in+%28canary%2Cstable%29"
        );
        assert!(label_selector(&json!({})).is_err());
    }

    #[test]
    fn the_hash_label_is_ignored_when_comparing_templates() {
        let a = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "5d8f"}}});
        let b = json!({"metadata": {"labels": {"app": "web"}}});
        assert_eq!(without_hash(a), without_hash(b));
        let only_hash = json!({"metadata": {"labels": {"pod-template-hash": "5d8f"}}});
        assert_eq!(without_hash(only_hash), json!({"metadata": {}}));
    }
}
