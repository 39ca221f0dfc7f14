//! `kubernetes`: a recovery action on the Kubernetes API, aimed at the incident's top
//! suspect: restart a deployment, scale it, roll it (or a statefulset or daemonset) back to
//! its previous revision, delete a pod or cordon a node, sending exactly the requests
//! `kubectl` sends for `rollout restart`, `scale`, `rollout undo`, `delete pod` and `cordon`.
//!
//! ```toml
//! [[receiver]]
//! name = "restart-service"
//! plugin = "kubernetes"
//! params = { action = "restart", namespace = "shop", deployment = "{{ service }}" }
//! grants = { connections = ["kubernetes"] }
//!
//! [[receiver]]
//! name = "undo-deploy"
//! plugin = "kubernetes"
//! params = { action = "rollback", namespace = "shop", deployment = "{{ service }}" }
//! grants = { connections = ["kubernetes"] }
//!
//! [[receiver]]
//! name = "cordon-node"
//! plugin = "kubernetes"
//! params = { action = "cordon", node = "{{ node }}" }
//! grants = { connections = ["kubernetes"] }
//! ```
//!
//! Params:
//!
//! - `action`: `"restart"`, `"scale"`, `"rollback"`, `"delete-pod"` or `"cordon"`;
//! - the target's name, templated from the labels of the first (best) suspect the
//!   localizers ranked, with literal text allowed around the placeholders:
//!   `deployment` for restart and scale; `deployment`, `statefulset` or `daemonset` for
//!   rollback; `pod` for delete-pod; `node` for cordon; only the one the action needs may be
//!   given. The result must be a valid Kubernetes name (`"{{ instance }}"` yielding
//!   `node3:9100` is refused, not trimmed);
//! - `replicas`: for scale only, required, 0 or more;
//! - `to_revision`: for rollback only, the revision to go back to (default: the one before
//!   the newest, as `kubectl rollout undo` without `--to-revision`);
//! - `namespace`: default `"default"`; a node has none, so cordon ignores it;
//! - `connection`: default `"kubernetes"`, the connection of the server config
//!   (`[connection.kubernetes]` with `url`, `token` and `ca`) whose API URL, bearer token
//!   and CA the host adds: the plugin sends only paths and never sees them. The receiver's
//!   grants must name it;
//! - `timeout`: milliseconds per request, default 10000.
//!
//! Every request carries `Accept: application/json` and `Idempotency-Key` (the attempt's
//! key: Kubernetes ignores the header, but logs and proxies can tie calls to actions). Each
//! action is safe to repeat: a restart re-stamps the annotation, scaling and cordoning set
//! absolute values, a rollback whose template is already in place is done without a patch
//! (see [`rollback`]), and deleting a pod the API says is not found (404 `NotFound` for kind
//! `pods`) counts as done.
//!
//! 2xx is done; 409 (conflict), 429, 5xx and transport errors are retried; any other status
//! fails, with the `message` of the API's `Status` answer, as does a connection the rule is
//! not granted. A suspect without the label a template needs, or a name Kubernetes would
//! refuse, fails without a request.

mod rollback;
mod template;

use faultline_sdk::http::{ErrorKind, Request, Response};
use faultline_sdk::recovery::*;
use faultline_sdk::time::rfc3339_seconds;
use serde::Deserialize;
use serde_json::json;

use rollback::{Rollback, Workload};
use template::Template;

/// The action's `params`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What to do.
    pub action: Action,
    /// The connection of the server config to send through.
    #[serde(default = "default_connection")]
    pub connection: String,
    /// The namespace of the deployment or pod (nodes have none).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The deployment to restart, scale or roll back, e.g. `"{{ service }}"`.
    pub deployment: Option<String>,
    /// The statefulset to roll back.
    pub statefulset: Option<String>,
    /// The daemonset to roll back.
    pub daemonset: Option<String>,
    /// The pod to delete, e.g. `"{{ pod }}"`.
    pub pod: Option<String>,
    /// The node to cordon, e.g. `"{{ node }}"`.
    pub node: Option<String>,
    /// The replica count to scale to (scale only).
    pub replicas: Option<i64>,
    /// The revision to roll back to (rollback only; default: the one before the newest).
    pub to_revision: Option<i64>,
    /// How long to wait for the API's answer, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
}

/// The actions, as named in `params.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `kubectl rollout restart deployment`: stamp the pod template so pods are replaced.
    Restart,
    /// `kubectl scale deployment --replicas`.
    Scale,
    /// `kubectl rollout undo`: back to an earlier revision's pod template.
    Rollback,
    /// `kubectl delete pod`: its controller starts a fresh one.
    DeletePod,
    /// `kubectl cordon`: no new pods are scheduled on the node.
    Cordon,
}

impl Action {
    /// The name as written in `params.action`.
    fn name(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Scale => "scale",
            Action::Rollback => "rollback",
            Action::DeletePod => "delete-pod",
            Action::Cordon => "cordon",
        }
    }

    /// The params that can name the action's target, the usual one first.
    fn targets(self) -> &'static [&'static str] {
        match self {
            Action::Restart | Action::Scale => &["deployment"],
            Action::Rollback => &["deployment", "statefulset", "daemonset"],
            Action::DeletePod => &["pod"],
            Action::Cordon => &["node"],
        }
    }

    /// A typical template for the target, for messages.
    fn example(self) -> &'static str {
        match self {
            Action::Restart | Action::Scale | Action::Rollback => "{{ service }}",
            Action::DeletePod => "{{ pod }}",
            Action::Cordon => "{{ node }}",
        }
    }
}

fn default_connection() -> String {
    "kubernetes".to_string()
}

fn default_namespace() -> String {
    "default".to_string()
}

fn default_timeout() -> u32 {
    10_000
}

/// The action, built from validated [`Params`].
#[derive(Debug)]
pub struct Kubernetes {
    connection: String,
    timeout: u32,
    operation: Operation,
}

/// A validated action with its target.
#[derive(Debug)]
enum Operation {
    Restart {
        namespace: String,
        deployment: Template,
    },
    Scale {
        namespace: String,
        deployment: Template,
        replicas: i32,
    },
    Rollback {
        namespace: String,
        workload: Workload,
        name: Template,
        to_revision: Option<i64>,
    },
    DeletePod {
        namespace: String,
        pod: Template,
    },
    Cordon {
        node: Template,
    },
}

impl Recovery for Kubernetes {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        if p.connection.is_empty() {
            return Err("params: `connection` is empty".to_string().into());
        }
        if p.timeout == 0 {
            return Err("params: `timeout` must be at least 1 (milliseconds)"
                .to_string()
                .into());
        }
        let action = p.action.name();
        let allowed = p.action.targets();
        let given = [
            ("deployment", &p.deployment),
            ("statefulset", &p.statefulset),
            ("daemonset", &p.daemonset),
            ("pod", &p.pod),
            ("node", &p.node),
        ];
        let named_by = || {
            let fields: Vec<String> = allowed.iter().map(|f| format!("`{f}`")).collect();
            fields.join(" or ")
        };
        let mut target: Option<(&str, Template)> = None;
        for (field, value) in given {
            let Some(source) = value else { continue };
            if !allowed.contains(&field) {
                return Err(format!(
                    "params: `{field}` does not apply to action \"{action}\" \
                     (it names its target with {})",
                    named_by()
                )
                .into());
            }
            if let Some((first, _)) = target {
                return Err(format!(
                    "params: `{first}` and `{field}` both given: action \"{action}\" acts on one"
                )
                .into());
            }
            target = Some((field, parse_target(field, source)?));
        }
        let Some((field, target)) = target else {
            return Err(format!(
                "params: action \"{action}\" needs {}, the target's name (e.g. `{} = \"{}\"`)",
                named_by(),
                allowed[0],
                p.action.example()
            )
            .into());
        };
        if p.action != Action::Scale && p.replicas.is_some() {
            return Err(format!("params: `replicas` does not apply to action \"{action}\"").into());
        }
        match (p.action, p.to_revision) {
            (Action::Rollback, Some(n)) if n < 1 => {
                return Err(format!("params: `to_revision` must be 1 or more, not {n}").into());
            }
            (Action::Rollback, _) | (_, None) => {}
            (_, Some(_)) => {
                return Err(
                    format!("params: `to_revision` does not apply to action \"{action}\"").into(),
                );
            }
        }
        if p.action != Action::Cordon {
            template::check_namespace(&p.namespace)
                .map_err(|e| format!("params: `namespace`: {e}"))?;
        }
        let namespace = p.namespace;
        let operation = match p.action {
            Action::Restart => Operation::Restart {
                namespace,
                deployment: target,
            },
            Action::Scale => Operation::Scale {
                namespace,
                deployment: target,
                replicas: replicas(p.replicas)?,
            },
            Action::Rollback => Operation::Rollback {
                namespace,
                workload: match field {
                    "statefulset" => Workload::StatefulSet,
                    "daemonset" => Workload::DaemonSet,
                    _ => Workload::Deployment,
                },
                name: target,
                to_revision: p.to_revision,
            },
            Action::DeletePod => Operation::DeletePod {
                namespace,
                pod: target,
            },
            Action::Cordon => Operation::Cordon { node: target },
        };
        Ok(Self {
            connection: p.connection,
            timeout: p.timeout,
            operation,
        })
    }

    fn recover(&mut self, input: &RecoverInput) -> Outcome {
        let name = match self.target_name(input) {
            Ok(name) => name,
            Err(e) => return Outcome::Failed(format!("{}: {e}", self.operation.describe())),
        };
        let api = Api {
            connection: &self.connection,
            timeout: self.timeout,
            idempotency_key: &input.idempotency_key,
        };
        if let Operation::Rollback {
            namespace,
            workload,
            to_revision,
            ..
        } = &self.operation
        {
            let rollback = Rollback {
                workload: *workload,
                namespace,
                name: &name,
                to_revision: *to_revision,
            };
            return rollback::run(&api, &rollback, &input.idempotency_key);
        }
        let call = self.operation.call(&name);
        let what = &call.what;
        match api.send(call.request, what) {
            Ok(response) => match response.status {
                200..=299 => Outcome::Done(call.done),
                404 if self.operation.is_delete_pod()
                    && Status::of(&response).is_pod_not_found() =>
                {
                    Outcome::Done(format!("{what}: already gone"))
                }
                _ => refused(what, &response),
            },
            Err(outcome) => outcome,
        }
    }
}

/// The API as one attempt calls it: through the connection, with the headers every request
/// carries.
pub struct Api<'a> {
    connection: &'a str,
    timeout: u32,
    idempotency_key: &'a str,
}

impl Api<'_> {
    /// Sends `request`; a transport error is retried, a request the host refuses fails.
    fn send(&self, request: Request, what: &str) -> Result<Response, Outcome> {
        let request = request
            .connection(self.connection)
            .header("Accept", "application/json")
            .header("Idempotency-Key", self.idempotency_key)
            .timeout_ms(self.timeout);
        http::send(request).map_err(|e| match e.kind {
            ErrorKind::Transport => Outcome::RetryLater(format!("{what}: {e}")),
            _ => Outcome::Failed(format!("{what}: {e}")),
        })
    }

    /// Sends `request` and reads the JSON object of a 2xx answer; any other answer is
    /// [`refused`].
    fn json(&self, request: Request, what: &str) -> Result<serde_json::Value, Outcome> {
        let response = self.send(request, what)?;
        if !(200..=299).contains(&response.status) {
            return Err(refused(what, &response));
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            Outcome::Failed(format!(
                "{what}: the API answered {} with no JSON object: {e}",
                response.status
            ))
        })
    }
}

/// The outcome of an answer other than 2xx: 409, 429 and 5xx are retried, others fail.
fn refused(what: &str, response: &Response) -> Outcome {
    match response.status {
        409 | 429 | 500..=599 => Outcome::RetryLater(answer(what, response)),
        _ => Outcome::Failed(answer(what, response)),
    }
}

impl Kubernetes {
    /// The target's name: the template filled from the top suspect's labels, checked.
    fn target_name(&self, input: &RecoverInput) -> Result<String, String> {
        let template = self.operation.target();
        let Some(suspect) = input.suspects.first() else {
            return Err("no suspect to act on (the localizers named none)".to_string());
        };
        let name = template.render(&suspect.labels).map_err(|e| {
            format!(
                "the top suspect {} {e}, needed by \"{template}\"",
                suspect.labels
            )
        })?;
        template::check_name(&name).map_err(|e| format!("target from \"{template}\": {e}"))?;
        Ok(name)
    }
}

/// One API call: the request (without the headers common to all), and what to say of it.
struct Call {
    request: Request,
    /// The action on its object, for failures: `restart deployment default/web`.
    what: String,
    /// What was done, when it succeeds.
    done: String,
}

impl Operation {
    fn is_delete_pod(&self) -> bool {
        matches!(self, Operation::DeletePod { .. })
    }

    fn target(&self) -> &Template {
        match self {
            Operation::Restart { deployment, .. } | Operation::Scale { deployment, .. } => {
                deployment
            }
            Operation::Rollback { name, .. } => name,
            Operation::DeletePod { pod, .. } => pod,
            Operation::Cordon { node } => node,
        }
    }

    /// The action before its target is named, for messages: `restart deployment`.
    fn describe(&self) -> &'static str {
        match self {
            Operation::Restart { .. } => "restart deployment",
            Operation::Scale { .. } => "scale deployment",
            Operation::Rollback { workload, .. } => match workload {
                Workload::Deployment => "roll back deployment",
                Workload::StatefulSet => "roll back statefulset",
                Workload::DaemonSet => "roll back daemonset",
            },
            Operation::DeletePod { .. } => "delete pod",
            Operation::Cordon { .. } => "cordon node",
        }
    }

    /// The call on the object named `name`, as kubectl makes it (a rollback makes several:
    /// see [`rollback`]).
    fn call(&self, name: &str) -> Call {
        match self {
            Operation::Rollback { .. } => unreachable!("a rollback is run by rollback::run"),
            Operation::Restart { namespace, .. } => {
                let restarted_at = rfc3339_seconds(clock::now_ms());
                let body = json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": restarted_at
                }}}}});
                Call {
                    request: patch(
                        format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}"),
                        "application/strategic-merge-patch+json",
                        &body,
                    ),
                    what: format!("restart deployment {namespace}/{name}"),
                    done: format!("restarted deployment {namespace}/{name}"),
                }
            }
            Operation::Scale {
                namespace,
                replicas,
                ..
            } => Call {
                request: patch(
                    format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"),
                    "application/merge-patch+json",
                    &json!({"spec": {"replicas": replicas}}),
                ),
                what: format!("scale deployment {namespace}/{name} to {replicas}"),
                done: format!("scaled deployment {namespace}/{name} to {replicas} replicas"),
            },
            Operation::DeletePod { namespace, .. } => Call {
                request: Request::new(
                    "DELETE",
                    format!("/api/v1/namespaces/{namespace}/pods/{name}"),
                ),
                what: format!("delete pod {namespace}/{name}"),
                done: format!("deleted pod {namespace}/{name}"),
            },
            Operation::Cordon { .. } => Call {
                request: patch(
                    format!("/api/v1/nodes/{name}"),
                    "application/strategic-merge-patch+json",
                    &json!({"spec": {"unschedulable": true}}),
                ),
                what: format!("cordon node {name}"),
                done: format!("cordoned node {name}"),
            },
        }
    }
}

/// Checks the template of a target's name; one without placeholders is checked as a name
/// now rather than at every attempt.
fn parse_target(field: &str, source: &str) -> Result<Template, String> {
    let template = Template::parse(source).map_err(|e| format!("params: `{field}` {e}"))?;
    if let Some(name) = template.literal() {
        template::check_name(name).map_err(|e| format!("params: `{field}`: {e}"))?;
    }
    Ok(template)
}

/// Validates `replicas` for scale: Kubernetes counts replicas in an int32.
fn replicas(replicas: Option<i64>) -> Result<i32, String> {
    let n = replicas.ok_or("params: action \"scale\" needs `replicas`")?;
    i32::try_from(n).ok().filter(|n| *n >= 0).ok_or_else(|| {
        format!(
            "params: `replicas` must be between 0 and {}, not {n}",
            i32::MAX
        )
    })
}

fn patch(path: String, content_type: &str, body: &serde_json::Value) -> Request {
    Request::new("PATCH", path)
        .header("Content-Type", content_type)
        .body(body.to_string())
}

/// The API's `Status` object, sent with every failure: the parts the plugin reads.
#[derive(Debug, Default, Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    details: StatusDetails,
}

#[derive(Debug, Default, Deserialize)]
struct StatusDetails {
    #[serde(default)]
    kind: String,
}

impl Status {
    /// The response's `Status`, or an empty one if it sent none.
    fn of(response: &Response) -> Status {
        serde_json::from_slice(&response.body).unwrap_or_default()
    }

    /// Whether the API said that the pod does not exist. A 404 from anything else (a wrong
    /// connection URL, a proxy) must not pass for a deleted pod.
    fn is_pod_not_found(&self) -> bool {
        self.reason == "NotFound" && self.details.kind == "pods"
    }
}

/// `"{what}: the API answered {status}"`, with the message of the API's `Status` object
/// if it sent one, else the start of whatever it sent (a proxy's error page, say).
fn answer(what: &str, response: &Response) -> String {
    const MAX: usize = 200;
    let answer = format!("{what}: the API answered {}", response.status);
    let mut detail = Status::of(response).message;
    if detail.is_empty() {
        let body = &response.body[..response.body.len().min(MAX)];
        detail = String::from_utf8_lossy(body).trim().to_string();
    }
    if detail.is_empty() {
        answer
    } else {
        format!("{answer}: {detail}")
    }
}

export_recovery!(Kubernetes);

#[cfg(test)]
mod tests;
