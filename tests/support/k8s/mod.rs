//! A stand-in for the Kubernetes API server, for the `kubernetes` recovery plugin: no real
//! cluster can run here. It serves the objects the plugin acts on (deployments and their
//! `scale` subresource, statefulsets, daemonsets, their replicasets and controllerrevisions,
//! pods, nodes), checks each request as the API server does (bearer token, patch media type,
//! JSON body, label selectors, the object's existence, the patched object's validity) and
//! answers as it does: the object, a list, or a `Status` with the API's reason and code.
//! Every request is recorded, valid or not, for tests to assert on.
//!
//! Patches are applied as [`patch`] says; LISTs are filtered and paged as [`list`] says; the
//! part of the workload controllers a rollback meets is played by [`rollout`].

mod list;
mod patch;
mod rollout;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use patch::Patch;

/// One request the stand-in received.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiRequest {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string, as sent (empty when there is none).
    pub query: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    /// The body, when it is JSON (`None` when empty or not JSON).
    pub body: Option<Value>,
}

/// A Kubernetes API server stand-in on an ephemeral loopback port, stopped when dropped.
pub struct ApiServer {
    addr: SocketAddr,
    cluster: Arc<Mutex<Cluster>>,
    _rt: tokio::runtime::Runtime,
}

impl ApiServer {
    /// Starts a stand-in that accepts `Authorization: Bearer <token>` and holds no object.
    pub fn start(token: &str) -> ApiServer {
        let cluster = Arc::new(Mutex::new(Cluster {
            token: token.to_string(),
            objects: BTreeMap::new(),
            requests: Vec::new(),
            revision: 0,
            lose_next_patch: false,
        }));
        let app = axum::Router::new()
            .fallback(api_call)
            .with_state(cluster.clone());
        let (addr, rt) = crate::serve("127.0.0.1:0".parse().unwrap(), app);
        ApiServer {
            addr,
            cluster,
            _rt: rt,
        }
    }

    /// The server's URL, what a connection's `url` would be: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds deployment `namespace/name` with `replicas` replicas.
    pub fn with_deployment(self, namespace: &str, name: &str, replicas: i32) -> ApiServer {
        let labels = json!({"app": name});
        self.seed(json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": namespace, "generation": 1, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": name, "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
            "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas},
        }))
    }

    /// Adds pod `namespace/name`, running.
    pub fn with_pod(self, namespace: &str, name: &str) -> ApiServer {
        self.seed(json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            "status": {"phase": "Running"},
        }))
    }

    /// Adds node `name`, schedulable.
    pub fn with_node(self, name: &str) -> ApiServer {
        self.seed(json!({
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
    }

    fn seed(self, object: Value) -> ApiServer {
        {
            let mut cluster = self.cluster.lock().unwrap();
            let path = object_path(&object);
            cluster.store(path, object);
        }
        self
    }

    /// Makes the next PATCH that succeeds answer 504 `Timeout` all the same, as when the
    /// API server applied a change but its answer was lost.
    pub fn lose_next_patch_answer(&self) {
        self.cluster.lock().unwrap().lose_next_patch = true;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.cluster.lock().unwrap().requests.clone()
    }

    /// The requests once there are at least `n`, waiting up to [`DEADLINE`](crate::DEADLINE).
    pub fn wait_requests(&self, n: usize) -> Vec<ApiRequest> {
        crate::wait_for(&format!("{n} requests to the Kubernetes API"), || {
            let requests = self.requests();
            (requests.len() >= n).then_some(requests)
        })
    }

    /// Deployment `namespace/name` as it is now, if it exists.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object(&format!(
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        ))
    }

    /// Pod `namespace/name`, if it exists (deleted pods are gone at once).
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object(&format!("/api/v1/namespaces/{namespace}/pods/{name}"))
    }

    /// Node `name` as it is now, if it exists.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.object(&format!("/api/v1/nodes/{name}"))
    }

    /// Whether node `name` exists and is cordoned.
    pub fn node_unschedulable(&self, name: &str) -> bool {
        self.node(name)
            .is_some_and(|n| n["spec"]["unschedulable"] == true)
    }

    /// Statefulset `namespace/name` as it is now, if it exists.
    pub fn statefulset(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object(&format!(
            "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"
        ))
    }

    /// Daemonset `namespace/name` as it is now, if it exists.
    pub fn daemonset(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object(&format!(
            "/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}"
        ))
    }

    fn object(&self, path: &str) -> Option<Value> {
        self.cluster.lock().unwrap().objects.get(path).cloned()
    }
}

/// The API's state.
struct Cluster {
    token: String,
    /// Objects by their path (`/api/v1/nodes/node-3`).
    objects: BTreeMap<String, Value>,
    requests: Vec<ApiRequest>,
    /// The last `resourceVersion` given out: one counter for all objects, as etcd's revision.
    revision: u64,
    /// Whether the next successful PATCH is answered with a timeout, as a request whose
    /// answer was lost after the change was made.
    lose_next_patch: bool,
}

/// Every call: recorded, then answered.
async fn api_call(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let request = ApiRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        content_type: header("content-type"),
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        body: serde_json::from_slice(&body).ok(),
    };
    let mut cluster = cluster.lock().unwrap();
    cluster.requests.push(request.clone());
    match cluster.answer(&method, &request, &body) {
        Ok(object) => (StatusCode::OK, Json(object)).into_response(),
        Err(failure) => failure.into_response(),
    }
}

impl Cluster {
    /// Checks in the API server's order: authentication, the path, the verb, the body,
    /// the object.
    fn answer(
        &mut self,
        method: &Method,
        request: &ApiRequest,
        body: &[u8],
    ) -> Result<Value, Failure> {
        self.authenticate(request.authorization.as_deref())?;
        if let Some((namespace, resource)) = collection(&request.path) {
            return match *method {
                Method::GET => self.list(namespace, resource, &request.query),
                _ => Err(Failure::method_not_allowed()),
            };
        }
        let target = Target::route(&request.path).ok_or_else(Failure::no_such_path)?;
        match *method {
            Method::GET => {
                let object = self.get(&target)?;
                Ok(if target.scale {
                    scale_of(object)
                } else {
                    object.clone()
                })
            }
            Method::PATCH => {
                let patch = Patch::read(request.content_type.as_deref(), body)?;
                let patched = self.patch(&target, &patch)?;
                if std::mem::take(&mut self.lose_next_patch) {
                    return Err(Failure::timeout());
                }
                Ok(patched)
            }
            Method::DELETE if !target.scale => {
                // DeleteOptions may come as a body; it must at least be JSON.
                if !body.is_empty() {
                    serde_json::from_slice::<Value>(body).map_err(Failure::bad_json)?;
                }
                self.get(&target)?;
                Ok(self.objects.remove(&target.object).unwrap())
            }
            _ => Err(Failure::method_not_allowed()),
        }
    }

    fn authenticate(&self, authorization: Option<&str>) -> Result<(), Failure> {
        // The scheme is case-insensitive, the token exact, as the API server's bearer
        // authenticator does.
        let token = authorization
            .and_then(|a| a.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if token == Some(self.token.as_str()) {
            Ok(())
        } else {
            Err(Failure::unauthorized())
        }
    }

    fn get(&self, target: &Target) -> Result<&Value, Failure> {
        self.objects
            .get(&target.object)
            .ok_or_else(|| Failure::not_found(target))
    }

    fn patch(&mut self, target: &Target, patch: &Patch) -> Result<Value, Failure> {
        let current = self.get(target)?.clone();
        if target.scale {
            let mut scale = scale_of(&current);
            patch.apply(&mut scale)?;
            let replicas = &scale["spec"]["replicas"];
            if !is_replica_count(replicas) {
                return Err(Failure::invalid(target, "spec.replicas", replicas));
            }
            let mut updated = current;
            updated["spec"]["replicas"] = replicas.clone();
            return Ok(scale_of(&self.update(target, updated)));
        }
        let mut updated = current.clone();
        patch.apply(&mut updated)?;
        for field in [
            "/kind",
            "/apiVersion",
            "/metadata/name",
            "/metadata/namespace",
        ] {
            if updated.pointer(field) != current.pointer(field) {
                let value = updated.pointer(field).unwrap_or(&Value::Null);
                return Err(Failure::invalid(
                    target,
                    &field[1..].replace('/', "."),
                    value,
                ));
            }
        }
        target.validate(&updated)?;
        Ok(self.update(target, updated))
    }

    /// Stores a changed object: a new `resourceVersion`, and a new `generation` if its
    /// spec changed, as the API server does; a workload whose pod template changed gets a
    /// new revision from its controller.
    fn update(&mut self, target: &Target, mut object: Value) -> Value {
        let old_spec = &self.objects[&target.object]["spec"];
        let new_template = object["spec"]["template"] != old_spec["template"];
        if object["spec"] != *old_spec && object["metadata"].get("generation").is_some() {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            object["metadata"]["generation"] = generation.into();
        }
        self.store(target.object.clone(), object);
        if new_template && !target.scale {
            self.roll_out(&target.object);
        }
        self.objects[&target.object].clone()
    }

    /// A LIST of `resource` in `namespace`, filtered by the `labelSelector` parameter and
    /// paged by `limit` and `continue`.
    fn list(&self, namespace: &str, resource: &str, query: &str) -> Result<Value, Failure> {
        let params = list::query_params(query);
        let selector = list::Selector::parse(params.get("labelSelector").map_or("", |s| s))?;
        let limit = match params.get("limit") {
            None => None,
            Some(limit) => Some(limit.parse::<usize>().map_err(|_| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("limit: invalid value {limit:?}: must be a positive integer"),
                )
            })?)
            .filter(|limit| *limit > 0),
        };
        let prefix = format!("/apis/apps/v1/namespaces/{namespace}/{resource}/");
        let items = self
            .objects
            .iter()
            .filter(|(path, object)| {
                path.starts_with(&prefix) && selector.matches(&object["metadata"]["labels"])
            })
            .map(|(_, object)| object.clone())
            .collect();
        let kind = KINDS
            .iter()
            .find(|(r, _)| *r == resource)
            .map_or("", |(_, kind)| kind);
        let token = params.get("continue").map(String::as_str);
        list::page(kind, self.revision, items, limit, token)
    }

    fn store(&mut self, path: String, mut object: Value) -> Value {
        self.revision += 1;
        let metadata = &mut object["metadata"];
        if metadata.get("uid").is_none() {
            metadata["uid"] = format!("00000000-0000-4000-8000-{:012x}", self.revision).into();
        }
        metadata["resourceVersion"] = self.revision.to_string().into();
        self.objects.insert(path, object.clone());
        object
    }
}

/// The resources of group `apps` the stand-in serves, and their kinds.
const KINDS: [(&str, &str); 5] = [
    ("deployments", "Deployment"),
    ("replicasets", "ReplicaSet"),
    ("statefulsets", "StatefulSet"),
    ("daemonsets", "DaemonSet"),
    ("controllerrevisions", "ControllerRevision"),
];

/// The namespace and resource of a collection path
/// (`/apis/apps/v1/namespaces/shop/replicasets`).
fn collection(path: &str) -> Option<(&str, &str)> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    match segments.as_slice() {
        ["apis", "apps", "v1", "namespaces", namespace, resource]
            if !namespace.is_empty() && KINDS.iter().any(|(r, _)| r == resource) =>
        {
            Some((namespace, resource))
        }
        _ => None,
    }
}

/// What a request's path names.
struct Target {
    /// The object's path: its key in the store.
    object: String,
    /// The deployment's `scale` subresource rather than the deployment.
    scale: bool,
    /// The resource (`deployments`), its API group (`apps`; empty for the core group),
    /// its kind and the object's name, for the API's messages.
    resource: &'static str,
    group: &'static str,
    kind: &'static str,
    name: String,
}

impl Target {
    fn route(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        let (resource, group, kind, name, scale) = match segments.as_slice() {
            ["apis", "apps", "v1", "namespaces", _, resource, name] => {
                let (resource, kind) = KINDS.iter().find(|(r, _)| r == resource)?;
                (*resource, "apps", *kind, name, false)
            }
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                _,
                "deployments",
                name,
                "scale",
            ] => ("deployments", "apps", "Scale", name, true),
            ["api", "v1", "namespaces", _, "pods", name] => ("pods", "", "Pod", name, false),
            ["api", "v1", "nodes", name] => ("nodes", "", "Node", name, false),
            _ => return None,
        };
        let object = if scale {
            path.strip_suffix("/scale")?
        } else {
            path
        };
        Some(Target {
            object: object.to_string(),
            scale,
            resource,
            group,
            kind,
            name: name.to_string(),
        })
    }

    /// `deployments.apps`, `pods`: how the API names a resource in its messages.
    fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The checks of the API's validation that a patch could break.
    fn validate(&self, object: &Value) -> Result<(), Failure> {
        if matches!(self.kind, "Deployment" | "StatefulSet" | "DaemonSet") {
            // The API refuses a template its own selector would not select.
            let selector = &object["spec"]["selector"]["matchLabels"];
            let labels = &object["spec"]["template"]["metadata"]["labels"];
            let selected = selector
                .as_object()
                .is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)));
            if !selected {
                return Err(Failure::invalid(
                    self,
                    "spec.template.metadata.labels",
                    labels,
                ));
            }
        }
        match self.kind {
            "Deployment" => {
                let replicas = &object["spec"]["replicas"];
                if !is_replica_count(replicas) {
                    return Err(Failure::invalid(self, "spec.replicas", replicas));
                }
                let annotations = &object["spec"]["template"]["metadata"]["annotations"];
                let strings = annotations
                    .as_object()
                    .is_none_or(|a| a.values().all(Value::is_string));
                if !annotations.is_null() && !strings {
                    return Err(Failure::invalid(
                        self,
                        "spec.template.metadata.annotations",
                        annotations,
                    ));
                }
            }
            "Node" => {
                let unschedulable = &object["spec"]["unschedulable"];
                if !(unschedulable.is_null() || unschedulable.is_boolean()) {
                    return Err(Failure::invalid(self, "spec.unschedulable", unschedulable));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The path of a seeded object, from its kind and metadata.
fn object_path(object: &Value) -> String {
    let (name, namespace) = (
        &object["metadata"]["name"],
        &object["metadata"]["namespace"],
    );
    let (name, namespace) = (name.as_str().unwrap(), namespace.as_str().unwrap_or(""));
    let kind = object["kind"].as_str().unwrap();
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ControllerRevision" => {
            let (resource, _) = KINDS.iter().find(|(_, k)| *k == kind).unwrap();
            format!("/apis/apps/v1/namespaces/{namespace}/{resource}/{name}")
        }
        "Pod" => format!("/api/v1/namespaces/{namespace}/pods/{name}"),
        "Node" => format!("/api/v1/nodes/{name}"),
        kind => unreachable!("no path for kind {kind}"),
    }
}

/// A deployment's `Scale`, as the `scale` subresource shows it.
fn scale_of(deployment: &Value) -> Value {
    let metadata = &deployment["metadata"];
    let selector = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
        },
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {"replicas": deployment["status"]["replicas"], "selector": selector},
    })
}

/// Whether `value` is a valid replica count: an int32, 0 or more.
fn is_replica_count(value: &Value) -> bool {
    value
        .as_i64()
        .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n))
}

/// A failed call, answered with the API's `Status` object.
#[derive(Debug)]
struct Failure {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl Failure {
    fn new(code: StatusCode, reason: &'static str, message: String) -> Failure {
        Failure {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn unauthorized() -> Failure {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".to_string(),
        )
    }

    fn no_such_path() -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".to_string(),
        )
    }

    /// What the API server answers when a request outlives its deadline: the change may
    /// or may not have been made.
    fn timeout() -> Failure {
        Failure::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline \
             exceeded"
                .to_string(),
        )
    }

    fn method_not_allowed() -> Failure {
        Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        )
    }

    fn unsupported_media_type() -> Failure {
        Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml, application/strategic-merge-patch+json"
                .to_string(),
        )
    }

    fn bad_json(e: serde_json::Error) -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("error decoding the request body as JSON: {e}"),
        )
    }

    fn not_found(target: &Target) -> Failure {
        Failure {
            details: Some(json!({
                "name": target.name, "group": target.group, "kind": target.resource,
            })),
            ..Failure::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "{} {:?} not found",
                    target.qualified_resource(),
                    target.name
                ),
            )
        }
    }

    fn invalid(target: &Target, field: &str, value: &Value) -> Failure {
        let kind = match target.group {
            "" => target.kind.to_string(),
            _ if target.scale => format!("{}.autoscaling", target.kind),
            group => format!("{}.{group}", target.kind),
        };
        Failure {
            details: Some(json!({
                "name": target.name, "group": target.group, "kind": target.kind,
                "causes": [{"reason": "FieldValueInvalid", "field": field}],
            })),
            ..Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "{kind} {:?} is invalid: {field}: Invalid value: {value}",
                    target.name
                ),
            )
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = self.details {
            status["details"] = details;
        }
        (self.code, Json(status)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::blocking::{Client, RequestBuilder};

    const TOKEN: &str = "t0ken";

    /// A PATCH with `content_type` and `body`, as the plugin's connection sends it.
    fn patch(api: &ApiServer, path: &str, content_type: &str, body: &str) -> RequestBuilder {
        patch_as(TOKEN, api, path, content_type, body)
    }

    fn patch_as(
        token: &str,
        api: &ApiServer,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> RequestBuilder {
        Client::new()
            .patch(format!("{}{path}", api.url()))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .header("Accept", "application/json")
            .header("Idempotency-Key", "idem-1")
            .body(body.to_string())
    }

    fn answer(request: RequestBuilder) -> (u16, Value) {
        let response = request.send().unwrap();
        (response.status().as_u16(), response.json().unwrap())
    }

    #[test]
    fn a_bad_token_is_unauthorized_and_cordon_sets_unschedulable() {
        let api = ApiServer::start(TOKEN).with_node("node-3");
        let cordon = |token| {
            patch_as(
                token,
                &api,
                "/api/v1/nodes/node-3",
                "application/strategic-merge-patch+json",
                r#"{"spec":{"unschedulable":true}}"#,
            )
        };

        let (code, status) = answer(cordon("wrong"));
        assert_eq!(code, 401);
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
        let (code, _) = answer(Client::new().get(format!("{}/api/v1/nodes/node-3", api.url())));
        assert_eq!(code, 401);
        assert!(!api.node_unschedulable("node-3"));

        let (code, node) = answer(cordon(TOKEN));
        assert_eq!(code, 200);
        assert_eq!(
            (node["kind"].as_str(), node["apiVersion"].as_str()),
            (Some("Node"), Some("v1"))
        );
        assert_eq!(node["metadata"]["name"], "node-3");
        assert_eq!(node["spec"]["unschedulable"], true);
        assert!(api.node_unschedulable("node-3"));

        let requests = api.wait_requests(3);
        assert_eq!(requests.len(), 3);
        assert_eq!(
            requests[2],
            ApiRequest {
                method: "PATCH".into(),
                path: "/api/v1/nodes/node-3".into(),
                query: String::new(),
                content_type: Some("application/strategic-merge-patch+json".into()),
                authorization: Some(format!("Bearer {TOKEN}")),
                idempotency_key: Some("idem-1".into()),
                body: Some(json!({"spec": {"unschedulable": true}})),
            }
        );
        assert_eq!(requests[0].authorization.as_deref(), Some("Bearer wrong"));
        assert_eq!(requests[1].authorization, None);
    }

    #[test]
    fn restart_and_scale_change_the_deployment() {
        let api = ApiServer::start(TOKEN).with_deployment("shop", "web", 2);
        let path = "/apis/apps/v1/namespaces/shop/deployments/web";
        let restart = r#"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-26T10:00:00Z"}}}}}"#;
        let (code, deployment) = answer(patch(
            &api,
            path,
            "application/strategic-merge-patch+json",
            restart,
        ));
        assert_eq!(code, 200);
        assert_eq!(deployment["kind"], "Deployment");
        assert_eq!(deployment["apiVersion"], "apps/v1");
        assert_eq!(deployment["metadata"]["generation"], 2);
        let stored = api.deployment("shop", "web").unwrap();
        assert_eq!(
            stored["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2026-11-26T10:00:00Z"
        );
        // The rest of the template survives the patch.
        assert_eq!(
            stored["spec"]["template"]["metadata"]["labels"]["app"],
            "web"
        );

        let scale_path = format!("{path}/scale");
        let (code, scale) = answer(patch(
            &api,
            &scale_path,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":5}}"#,
        ));
        assert_eq!(code, 200);
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["apiVersion"], "autoscaling/v1");
        assert_eq!(scale["metadata"]["name"], "web");
        assert_eq!(scale["spec"]["replicas"], 5);
        assert_eq!(scale["status"]["selector"], "app=web");
        assert_eq!(
            api.deployment("shop", "web").unwrap()["spec"]["replicas"],
            5
        );

        let (code, status) = answer(patch(
            &api,
            &scale_path,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":-1}}"#,
        ));
        assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
        assert_eq!(
            api.deployment("shop", "web").unwrap()["spec"]["replicas"],
            5
        );
    }

    #[test]
    fn delete_removes_the_pod_then_it_is_not_found() {
        let api = ApiServer::start(TOKEN).with_pod("shop", "web-0");
        let delete = || {
            Client::new()
                .delete(format!("{}/api/v1/namespaces/shop/pods/web-0", api.url()))
                .bearer_auth(TOKEN)
        };
        let (code, pod) = answer(delete());
        assert_eq!(code, 200);
        assert_eq!(
            (pod["kind"].as_str(), pod["apiVersion"].as_str()),
            (Some("Pod"), Some("v1"))
        );
        assert_eq!(api.pod("shop", "web-0"), None);

        let (code, status) = answer(delete());
        assert_eq!(code, 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], r#"pods "web-0" not found"#);
        assert_eq!(
            status["details"],
            json!({"name": "web-0", "group": "", "kind": "pods"})
        );
    }

    #[test]
    fn requests_the_api_would_refuse_are_refused_and_recorded() {
        let api = ApiServer::start(TOKEN)
            .with_node("node-3")
            .with_deployment("default", "web", 1);
        let node = "/api/v1/nodes/node-3";
        let body = r#"{"spec":{"unschedulable":true}}"#;

        let (code, status) = answer(patch(&api, node, "application/json", body));
        assert_eq!(
            (code, status["reason"].as_str()),
            (415, Some("UnsupportedMediaType"))
        );
        let (code, status) = answer(patch(&api, node, "application/merge-patch+json", "{spec"));
        assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
        let (code, status) = answer(patch(
            &api,
            "/api/v1/nodes/node-9",
            "application/merge-patch+json",
            body,
        ));
        assert_eq!(
            (code, status["message"].as_str()),
            (404, Some(r#"nodes "node-9" not found"#))
        );
        let (code, status) = answer(patch(
            &api,
            "/apis/apps/v1/namespaces/default/deployments/api",
            "application/merge-patch+json",
            body,
        ));
        assert_eq!(
            (code, status["message"].as_str()),
            (404, Some(r#"deployments.apps "api" not found"#))
        );
        let (code, status) = answer(patch(
            &api,
            "/api/v1/namespaces/default/widgets/w",
            "application/merge-patch+json",
            body,
        ));
        assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
        let (code, _) = answer(patch(
            &api,
            node,
            "application/merge-patch+json",
            r#"{"metadata":{"name":"node-4"}}"#,
        ));
        assert_eq!(code, 422);
        let (code, _) = answer(
            Client::new()
                .post(format!("{}{node}", api.url()))
                .bearer_auth(TOKEN),
        );
        assert_eq!(code, 405);

        assert!(!api.node_unschedulable("node-3"));
        assert_eq!(api.node("node-3").unwrap()["metadata"]["name"], "node-3");
        let requests = api.wait_requests(7);
        assert_eq!(
            requests[0].content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(requests[1].body, None);
        assert_eq!(requests[6].method, "POST");
    }
}
