//! Unit tests: each action's request, the outcome of each answer, templating and params.

use super::*;
use faultline_sdk::http::HttpError;
use faultline_sdk::testing;
use serde_json::Value;

/// 2026-11-26T10:00:00Z.
const NOW: i64 = 1_795_687_200_000;

fn action(params: &str) -> Kubernetes {
    Kubernetes::configure(params).unwrap()
}

/// An attempt whose suspects are `suspects`, best first.
fn input(suspects: &[&[(&str, &str)]]) -> RecoverInput {
    RecoverInput {
        now: NOW,
        suspects: suspects
            .iter()
            .map(|labels| Suspect {
                labels: labels.iter().copied().collect(),
                score: 1.0,
                reason: String::new(),
            })
            .collect(),
        attempt: 1,
        idempotency_key: "idem-7".into(),
        receiver: "k8s".into(),
        ..Default::default()
    }
}

/// The usual suspect: a service on a node.
fn suspect() -> RecoverInput {
    input(&[&[
        ("service", "web"),
        ("pod", "web-5d8f-x2"),
        ("node", "node-3"),
    ]])
}

/// Runs one attempt on `input` against a mocked answer; returns the outcome and what was
/// sent (if anything).
fn attempt_on(
    k: &mut Kubernetes,
    input: &RecoverInput,
    response: Result<Response, HttpError>,
) -> (Outcome, Option<Request>) {
    testing::reset();
    testing::set_now_ms(NOW);
    testing::http_respond(response);
    let outcome = k.recover(input);
    (outcome, testing::http_requests().pop())
}

fn attempt(
    k: &mut Kubernetes,
    response: Result<Response, HttpError>,
) -> (Outcome, Option<Request>) {
    attempt_on(k, &suspect(), response)
}

/// The request an action sends on a 200.
fn sent(params: &str) -> Request {
    attempt(&mut action(params), Ok(Response::new(200)))
        .1
        .unwrap()
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// A `Status` answer as the API server sends it.
fn status(code: u16, reason: &str, kind: &str, message: &str) -> Response {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {"name": "x", "kind": kind},
        "code": code,
    });
    Response::new(code)
        .header("Content-Type", "application/json")
        .body(status.to_string())
}

/// Asserts the headers and options every request has.
fn assert_common(request: &Request, connection: &str, timeout: u32) {
    assert_eq!(request.connection.as_deref(), Some(connection));
    assert_eq!(request.header_value("accept"), Some("application/json"));
    assert_eq!(request.header_value("idempotency-key"), Some("idem-7"));
    assert_eq!(request.timeout_ms, Some(timeout));
    assert_eq!(request.sign_header, None);
}

#[test]
fn restart_patches_the_pod_template_like_kubectl() {
    let request = sent(r#"{"action": "restart", "deployment": "{{ service }}"}"#);
    assert_eq!(request.method, "PATCH");
    assert_eq!(
        request.url,
        "/apis/apps/v1/namespaces/default/deployments/web"
    );
    assert_eq!(
        request.header_value("content-type"),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        body(&request),
        serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-11-26T10:00:00Z"
        }}}}})
    );
    assert_common(&request, "kubernetes", 10_000);
}

#[test]
fn restart_stamps_the_time_of_each_attempt() {
    let mut k = action(r#"{"action": "restart", "deployment": "web"}"#);
    testing::set_now_ms(NOW + 61_999);
    testing::http_respond(Ok(Response::new(200)));
    k.recover(&suspect());
    let request = testing::http_requests().pop().unwrap();
    assert_eq!(
        body(&request)["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-26T10:01:01Z"
    );
}

#[test]
fn scale_patches_the_scale_subresource() {
    let request = sent(
        r#"{"action": "scale", "deployment": "{{ service }}", "replicas": 3,
            "namespace": "shop", "connection": "prod-k8s", "timeout": 2500}"#,
    );
    assert_eq!(request.method, "PATCH");
    assert_eq!(
        request.url,
        "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    );
    assert_eq!(
        request.header_value("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(body(&request), serde_json::json!({"spec": {"replicas": 3}}));
    assert_common(&request, "prod-k8s", 2500);

    let request = sent(r#"{"action": "scale", "deployment": "web", "replicas": 0}"#);
    assert_eq!(body(&request), serde_json::json!({"spec": {"replicas": 0}}));
}

#[test]
fn delete_pod_sends_a_bare_delete() {
    let request = sent(r#"{"action": "delete-pod", "pod": "{{ pod }}", "namespace": "shop"}"#);
    assert_eq!(request.method, "DELETE");
    assert_eq!(request.url, "/api/v1/namespaces/shop/pods/web-5d8f-x2");
    assert_eq!(request.header_value("content-type"), None);
    assert!(request.body.is_empty());
    assert_common(&request, "kubernetes", 10_000);
}

#[test]
fn cordon_marks_the_node_unschedulable() {
    // A node has no namespace: one given is ignored.
    let request = sent(r#"{"action": "cordon", "node": "{{ node }}", "namespace": "shop"}"#);
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.url, "/api/v1/nodes/node-3");
    assert_eq!(
        request.header_value("content-type"),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        body(&request),
        serde_json::json!({"spec": {"unschedulable": true}})
    );
    assert_common(&request, "kubernetes", 10_000);
}

#[test]
fn success_says_what_was_done() {
    let done = |params: &str| attempt(&mut action(params), Ok(Response::new(200))).0;
    assert_eq!(
        done(r#"{"action": "restart", "deployment": "{{ service }}"}"#),
        Outcome::Done("restarted deployment default/web".into())
    );
    assert_eq!(
        done(r#"{"action": "scale", "deployment": "{{ service }}", "replicas": 2}"#),
        Outcome::Done("scaled deployment default/web to 2 replicas".into())
    );
    assert_eq!(
        done(r#"{"action": "delete-pod", "pod": "{{ pod }}"}"#),
        Outcome::Done("deleted pod default/web-5d8f-x2".into())
    );
    assert_eq!(
        done(r#"{"action": "cordon", "node": "{{ node }}"}"#),
        Outcome::Done("cordoned node node-3".into())
    );
    let mut k = action(r#"{"action": "delete-pod", "pod": "{{ pod }}"}"#);
    assert_eq!(
        attempt(&mut k, Ok(Response::new(202))).0,
        Outcome::Done("deleted pod default/web-5d8f-x2".into())
    );
}

#[test]
fn transient_answers_are_retried() {
    let mut k = action(r#"{"action": "restart", "deployment": "{{ service }}"}"#);
    let conflict = status(
        409,
        "Conflict",
        "deployments",
        "Operation cannot be fulfilled: the object has been modified",
    );
    assert_eq!(
        attempt(&mut k, Ok(conflict)).0,
        Outcome::RetryLater(
            "restart deployment default/web: the API answered 409: Operation cannot be \
             fulfilled: the object has been modified"
                .into()
        )
    );
    for code in [429, 500, 503, 504] {
        assert!(
            matches!(
                attempt(&mut k, Ok(Response::new(code))).0,
                Outcome::RetryLater(_)
            ),
            "{code}"
        );
    }
    let timeout = HttpError::new(ErrorKind::Transport, "timed out after 10000 ms");
    assert_eq!(
        attempt(&mut k, Err(timeout)).0,
        Outcome::RetryLater(
            "restart deployment default/web: transport error: timed out after 10000 ms".into()
        )
    );
}

#[test]
fn permanent_answers_fail_with_the_api_message() {
    let mut k = action(r#"{"action": "scale", "deployment": "{{ service }}", "replicas": 2}"#);
    let forbidden = status(
        403,
        "Forbidden",
        "deployments",
        r#"deployments.apps "web" is forbidden: User "system:serviceaccount:ops:faultline" cannot patch resource "deployments/scale""#,
    );
    assert_eq!(
        attempt(&mut k, Ok(forbidden)).0,
        Outcome::Failed(
            r#"scale deployment default/web to 2: the API answered 403: deployments.apps "web" is forbidden: User "system:serviceaccount:ops:faultline" cannot patch resource "deployments/scale""#
                .into()
        )
    );
    let unauthorized = status(401, "Unauthorized", "", "Unauthorized");
    assert_eq!(
        attempt(&mut k, Ok(unauthorized)).0,
        Outcome::Failed(
            "scale deployment default/web to 2: the API answered 401: Unauthorized".into()
        )
    );
    let not_found = status(
        404,
        "NotFound",
        "deployments",
        r#"deployments.apps "web" not found"#,
    );
    assert_eq!(
        attempt(&mut k, Ok(not_found)).0,
        Outcome::Failed(
            r#"scale deployment default/web to 2: the API answered 404: deployments.apps "web" not found"#
                .into()
        )
    );
    for code in [400, 405, 415, 422] {
        assert!(
            matches!(
                attempt(&mut k, Ok(Response::new(code))).0,
                Outcome::Failed(_)
            ),
            "{code}"
        );
    }
    // Not a Status: the start of the body stands in for its message.
    let page = Response::new(502).body(format!("<html>{}</html>\n", "x".repeat(300)));
    match attempt(&mut k, Ok(page)).0 {
        Outcome::RetryLater(m) => {
            assert!(
                m.starts_with("scale deployment default/web to 2: the API answered 502: <html>xx")
            );
            assert_eq!(
                m.len(),
                "scale deployment default/web to 2: the API answered 502: ".len() + 200
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        attempt(&mut k, Ok(Response::new(403))).0,
        Outcome::Failed("scale deployment default/web to 2: the API answered 403".into())
    );
}

#[test]
fn a_pod_already_gone_is_done() {
    let mut k = action(r#"{"action": "delete-pod", "pod": "{{ pod }}"}"#);
    let gone = status(404, "NotFound", "pods", r#"pods "web-5d8f-x2" not found"#);
    assert_eq!(
        attempt(&mut k, Ok(gone)).0,
        Outcome::Done("delete pod default/web-5d8f-x2: already gone".into())
    );
    // A 404 that is not the API's word on the pod (a wrong connection URL, a proxy) fails.
    assert_eq!(
        attempt(&mut k, Ok(Response::new(404).body("404 page not found"))).0,
        Outcome::Failed(
            "delete pod default/web-5d8f-x2: the API answered 404: 404 page not found".into()
        )
    );
    // Only a delete may find its object gone.
    let mut cordon = action(r#"{"action": "cordon", "node": "{{ node }}"}"#);
    let gone = status(404, "NotFound", "nodes", r#"nodes "node-3" not found"#);
    assert!(matches!(
        attempt(&mut cordon, Ok(gone)).0,
        Outcome::Failed(_)
    ));
}

#[test]
fn a_connection_not_granted_fails_with_the_host_message() {
    let mut k = action(r#"{"action": "cordon", "node": "{{ node }}"}"#);
    let denied = HttpError::new(
        ErrorKind::Denied,
        r#"connection "kubernetes" is not granted to rule "ops""#,
    );
    assert_eq!(
        attempt(&mut k, Err(denied)).0,
        Outcome::Failed(
            r#"cordon node node-3: denied: connection "kubernetes" is not granted to rule "ops""#
                .into()
        )
    );
    let invalid = HttpError::new(ErrorKind::Invalid, "no connection named \"kubernetes\"");
    assert!(matches!(
        attempt(&mut k, Err(invalid)).0,
        Outcome::Failed(_)
    ));
}

#[test]
fn the_target_comes_from_the_top_suspect() {
    let mut k = action(r#"{"action": "restart", "deployment": "{{ service }}-{{ env }}-v2"}"#);
    let ranked = input(&[
        &[("service", "api"), ("env", "prod")],
        &[("service", "db"), ("env", "prod")],
    ]);
    let (outcome, request) = attempt_on(&mut k, &ranked, Ok(Response::new(200)));
    assert_eq!(
        outcome,
        Outcome::Done("restarted deployment default/api-prod-v2".into())
    );
    assert_eq!(
        request.unwrap().url,
        "/apis/apps/v1/namespaces/default/deployments/api-prod-v2"
    );
}

#[test]
fn no_suspect_or_label_fails_without_a_request() {
    let mut k = action(r#"{"action": "cordon", "node": "{{ instance }}"}"#);
    let (outcome, request) = attempt_on(&mut k, &input(&[]), Ok(Response::new(200)));
    assert_eq!(
        outcome,
        Outcome::Failed("cordon node: no suspect to act on (the localizers named none)".into())
    );
    assert_eq!(request, None);

    // The second suspect has the label, but the action is on the first.
    let suspects = input(&[&[("service", "web")], &[("instance", "node-1")]]);
    let (outcome, request) = attempt_on(&mut k, &suspects, Ok(Response::new(200)));
    assert_eq!(
        outcome,
        Outcome::Failed(
            r#"cordon node: the top suspect {service="web"} has no label `instance`, needed by "{{ instance }}""#
                .into()
        )
    );
    assert_eq!(request, None);
}

#[test]
fn a_name_kubernetes_would_refuse_fails_naming_it() {
    let mut k = action(r#"{"action": "cordon", "node": "{{ instance }}"}"#);
    let suspects = input(&[&[("instance", "node3:9100")]]);
    let (outcome, request) = attempt_on(&mut k, &suspects, Ok(Response::new(200)));
    assert_eq!(
        outcome,
        Outcome::Failed(format!(
            r#"cordon node: target from "{{{{ instance }}}}": "node3:9100" is not a valid Kubernetes name ({})"#,
            template::NAME_RULE
        ))
    );
    assert_eq!(request, None);
    // A label could also smuggle in a path: refused the same way.
    let suspects = input(&[&[("instance", "x/../../namespaces")]]);
    assert!(matches!(
        attempt_on(&mut k, &suspects, Ok(Response::new(200))).0,
        Outcome::Failed(m) if m.contains(r#""x/../../namespaces" is not a valid Kubernetes name"#)
    ));
}

#[test]
fn bad_params_are_refused() {
    let refused = |params: &str| Kubernetes::configure(params).unwrap_err();
    assert_eq!(
        refused(r#"{"deployment": "web"}"#),
        "params: missing field `action`"
    );
    assert!(
        refused(r#"{"action": "reboot", "node": "n"}"#)
            .starts_with("params: unknown variant `reboot`, expected one of `restart`, `scale`, `rollback`, `delete-pod`, `cordon`")
    );
    assert_eq!(
        refused(r#"{"action": "restart"}"#),
        r#"params: action "restart" needs `deployment`, the target's name (e.g. `deployment = "{{ service }}"`)"#
    );
    assert_eq!(
        refused(r#"{"action": "delete-pod", "deployment": "web"}"#),
        r#"params: `deployment` does not apply to action "delete-pod" (it names its target with `pod`)"#
    );
    assert_eq!(
        refused(r#"{"action": "cordon", "node": "{{ node }}", "pod": "{{ pod }}"}"#),
        r#"params: `pod` does not apply to action "cordon" (it names its target with `node`)"#
    );
    assert_eq!(
        refused(r#"{"action": "scale", "deployment": "web"}"#),
        r#"params: action "scale" needs `replicas`"#
    );
    assert_eq!(
        refused(r#"{"action": "scale", "deployment": "web", "replicas": -1}"#),
        "params: `replicas` must be between 0 and 2147483647, not -1"
    );
    assert_eq!(
        refused(r#"{"action": "scale", "deployment": "web", "replicas": 2147483648}"#),
        "params: `replicas` must be between 0 and 2147483647, not 2147483648"
    );
    assert_eq!(
        refused(r#"{"action": "restart", "deployment": "web", "replicas": 2}"#),
        r#"params: `replicas` does not apply to action "restart""#
    );
    assert!(
        refused(r#"{"action": "restart", "deployment": "web", "namespace": "Shop"}"#)
            .starts_with(r#"params: `namespace`: "Shop" is not a valid namespace name"#)
    );
    assert_eq!(
        refused(r#"{"action": "restart", "deployment": "{{ service"}"#),
        r#"params: `deployment` "{{ service": `{{` is not closed by `}}`"#
    );
    assert_eq!(
        refused(r#"{"action": "restart", "deployment": ""}"#),
        "params: `deployment` is empty"
    );
    assert!(
        refused(r#"{"action": "restart", "deployment": "Web_1"}"#)
            .starts_with(r#"params: `deployment`: "Web_1" is not a valid Kubernetes name"#)
    );
    assert_eq!(
        refused(r#"{"action": "restart", "deployment": "web", "timeout": 0}"#),
        "params: `timeout` must be at least 1 (milliseconds)"
    );
    assert_eq!(
        refused(r#"{"action": "restart", "deployment": "web", "connection": ""}"#),
        "params: `connection` is empty"
    );
    assert_eq!(
        refused(r#"{"action": "rollback"}"#),
        r#"params: action "rollback" needs `deployment` or `statefulset` or `daemonset`, the target's name (e.g. `deployment = "{{ service }}"`)"#
    );
    assert_eq!(
        refused(r#"{"action": "rollback", "deployment": "web", "daemonset": "agent"}"#),
        r#"params: `deployment` and `daemonset` both given: action "rollback" acts on one"#
    );
    assert_eq!(
        refused(r#"{"action": "restart", "statefulset": "db"}"#),
        r#"params: `statefulset` does not apply to action "restart" (it names its target with `deployment`)"#
    );
    assert_eq!(
        refused(r#"{"action": "rollback", "deployment": "web", "to_revision": 0}"#),
        "params: `to_revision` must be 1 or more, not 0"
    );
    assert_eq!(
        refused(r#"{"action": "scale", "deployment": "web", "replicas": 1, "to_revision": 2}"#),
        r#"params: `to_revision` does not apply to action "scale""#
    );
    assert!(
        refused(r#"{"action": "restart", "deployment": "web", "token": "x"}"#)
            .starts_with("params: unknown field `token`")
    );
}

#[test]
fn the_documented_receivers_load() {
    // The ```toml block of the crate docs, read from the source so it cannot rot.
    let docs: String = include_str!("lib.rs")
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    let example = docs
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let file: toml::Table = toml::from_str(example).unwrap();
    let receivers = file["receiver"].as_array().unwrap();
    assert_eq!(receivers.len(), 3);
    for receiver in receivers {
        assert_eq!(receiver["plugin"].as_str(), Some("kubernetes"));
        assert_eq!(
            receiver["grants"]["connections"].as_array().unwrap()[0].as_str(),
            Some("kubernetes")
        );
        let params = serde_json::to_string(&receiver["params"]).unwrap();
        Kubernetes::configure(&params).unwrap();
    }
}
