//! Recovery by rollback, as a whole: a deploy's error spike fires a rule, the incident is
//! localized to the service, and the `kubernetes` plugin rolls its workload back to the
//! previous revision with the requests `kubectl rollout undo` makes, against a stand-in API
//! server that checks them and plays the controllers' part.

use faultline_system_tests::k8s::{ApiRequest, ApiServer};
use faultline_system_tests::{RulesDir, Server, wait_for};
use serde_json::{Value, json};

const TOKEN: &str = "kube-t0ken-for-rollbacks";

/// The images the workloads ran, revision 1 first: revision 3 is the bad deploy.
const IMAGES: [&str; 3] = [
    "registry.example/shop:1.0",
    "registry.example/shop:1.1",
    "registry.example/shop:1.2-bad",
];

/// A rules directory where an error spike of a service fires `DeployErrorSpike`, the
/// topology localizer names the service, and receiver `undo` rolls back the workload of
/// that name (`kind` is `deployment`, `statefulset` or `daemonset`), as the README shows.
fn rules(kind: &str) -> RulesDir {
    let dir = RulesDir::new(&["threshold", "topology", "kubernetes"]);
    dir.write("graph.json", r#"{"web": [], "db": [], "agent": []}"#);
    dir.write(
        "deploys.toml",
        &format!(
            r#"
[[group]]
name = "deploys"
interval = "200ms"

[[group.rule]]
name = "DeployErrorSpike"
plugin = "threshold"
select = "http_error_ratio"
params = {{ above = 0.05 }}

[[localizer]]
name = "services"
plugin = "topology"
match = ['alertname="DeployErrorSpike"']
files = {{ graph = "graph.json" }}
params = {{ label = "service" }}

[[receiver]]
name = "undo"
plugin = "kubernetes"
params = {{ action = "rollback", namespace = "shop", {kind} = "{{{{ service }}}}" }}
grants = {{ connections = ["kubernetes"] }}
send_resolved = false
rails = {{ target = ["service"], min_score = 0.5, rate_limit = "1/1h" }}

[route]
receiver = "undo"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"
"#
        ),
    );
    dir
}

/// Starts Faultline on `dir` with the stand-in as its `kubernetes` connection, and pushes an
/// error spike of service `service`.
fn start(dir: &RulesDir, api: &ApiServer, service: &str) -> Server {
    let token = dir.tmp.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let cfg = dir.config(&format!(
        "[connection.kubernetes]\nurl = \"{}\"\ntoken = {{ file = \"{}\" }}\n",
        api.url(),
        token.display()
    ));
    let server = Server::start(dir, &["--config", &cfg]);
    let pushed = server.push(
        &format!("shop/instance/{service}-1"),
        &format!("http_error_ratio{{service=\"{service}\"}} 0.4\n"),
    );
    assert!(pushed.status().is_success());
    server
}

/// The done action of receiver `undo` once there is one, and what its `done` decision
/// says was done.
fn done(server: &Server) -> (Value, String) {
    let action = wait_for("the rollback to be done", || {
        let v = server.get_json("/api/v1/outbox?state=done");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["receiver"] == "undo")
            .cloned()
    });
    let v = server.get_json("/api/v1/decisions?receiver=undo&decision=done");
    let reason = v["data"][0]["reason"].as_str().unwrap_or_default();
    (action, reason.to_string())
}

/// The pod template of revision `n` (1-based) of workload `name`, as the stand-in made it.
fn template(name: &str, n: usize) -> Value {
    json!({
        "metadata": {"creationTimestamp": null, "labels": {"app": name}},
        "spec": {
            "containers": [{"name": name, "image": IMAGES[n - 1], "resources": {}}],
            "restartPolicy": "Always",
        },
    })
}

fn calls(requests: &[ApiRequest]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| {
            let query = if r.query.is_empty() {
                String::new()
            } else {
                format!("?{}", r.query)
            };
            (r.method.clone(), format!("{}{query}", r.path))
        })
        .collect()
}

#[test]
fn a_bad_deploy_is_rolled_back_as_kubectl_does_and_a_retry_is_a_no_op() {
    let api = ApiServer::start(TOKEN).with_deployment_history("shop", "web", &IMAGES);
    let before = api.deployment("shop", "web").unwrap();
    // The answer to the patch is lost after the change is made: the action is retried,
    // and the retry must see the rollback in place (though the controller has renumbered
    // revision 2 as revision 4 by then) rather than roll forward to the bad revision 3.
    api.lose_next_patch_answer();
    let dir = rules("deployment");
    let server = start(&dir, &api, "web");

    let (action, result) = done(&server);
    assert_eq!(action["attempts"], 2, "{action:#}");
    assert_eq!(action["target"], r#"{service="web"}"#);
    let requests = api.wait_requests(5);
    let deployment = "/apis/apps/v1/namespaces/shop/deployments/web";
    let list = "/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb&limit=500";
    let expected: Vec<(String, String)> = [
        ("GET", deployment),
        ("GET", list),
        ("PATCH", deployment),
        ("GET", deployment),
        ("GET", list),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(calls(&requests), expected);

    // The patch is kubectl's: one JSON Patch replacing the template (revision 2's, without
    // the pod-template-hash label) and the annotations (the Deployment's own bookkeeping
    // kept, the rest from revision 2's ReplicaSet).
    let patch = &requests[2];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/json-patch+json")
    );
    assert_eq!(
        patch.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(
        patch.idempotency_key.as_deref(),
        action["idempotencyKey"].as_str()
    );
    assert_eq!(
        patch.body,
        Some(json!([
            {"op": "replace", "path": "/spec/template", "value": template("web", 2)},
            {"op": "replace", "path": "/metadata/annotations", "value": {
                "deployment.kubernetes.io/revision": "3",
                "kubernetes.io/change-cause": format!("deploy {}", IMAGES[1]),
            }},
        ]))
    );
    assert_eq!(
        before["spec"]["template"],
        template("web", 3),
        "it started at revision 3"
    );
    let after = api.deployment("shop", "web").unwrap();
    assert_eq!(after["spec"]["template"], template("web", 2));
    assert_eq!(
        after["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "4",
        "the controller made revision 2 the newest"
    );
    assert_eq!(
        result, "deployment shop/web is already at revision 4",
        "{action:#}"
    );
    let log = server.log();
    assert!(!log.contains(TOKEN), "the token reached the log");
}

#[test]
fn a_statefulset_is_rolled_back_with_its_controller_revision() {
    let api = ApiServer::start(TOKEN).with_statefulset_history("shop", "db", &IMAGES);
    let dir = rules("statefulset");
    let server = start(&dir, &api, "db");

    let (action, result) = done(&server);
    assert_eq!(
        result, "rolled back statefulset shop/db to revision 2",
        "{action:#}"
    );
    let requests = api.wait_requests(3);
    let statefulset = "/apis/apps/v1/namespaces/shop/statefulsets/db";
    assert_eq!(
        calls(&requests),
        [
            ("GET".to_string(), statefulset.to_string()),
            (
                "GET".to_string(),
                "/apis/apps/v1/namespaces/shop/controllerrevisions?labelSelector=app%3Ddb"
                    .to_string()
            ),
            ("PATCH".to_string(), statefulset.to_string()),
        ]
    );
    // kubectl sends the revision's data as it is: a strategic merge patch replacing the
    // template.
    let mut replaced = template("db", 2);
    replaced["$patch"] = "replace".into();
    assert_eq!(
        requests[2].content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        requests[2].body,
        Some(json!({"spec": {"template": replaced}}))
    );
    assert_eq!(
        api.statefulset("shop", "db").unwrap()["spec"]["template"],
        template("db", 2)
    );
}

#[test]
fn a_daemonset_is_rolled_back_with_its_controller_revision() {
    let api = ApiServer::start(TOKEN).with_daemonset_history("shop", "agent", &IMAGES);
    let dir = rules("daemonset");
    let server = start(&dir, &api, "agent");

    let (action, result) = done(&server);
    assert_eq!(
        result, "rolled back daemonset shop/agent to revision 2",
        "{action:#}"
    );
    let requests = api.wait_requests(3);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(
        requests[1].path,
        "/apis/apps/v1/namespaces/shop/controllerrevisions"
    );
    assert_eq!(requests[2].method, "PATCH");
    assert_eq!(
        requests[2].path,
        "/apis/apps/v1/namespaces/shop/daemonsets/agent"
    );
    assert_eq!(
        api.daemonset("shop", "agent").unwrap()["spec"]["template"],
        template("agent", 2)
    );
}
