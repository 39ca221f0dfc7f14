//! Workloads with a rollout history, and the part of their controllers a rollback meets.
//!
//! A Deployment's history is its ReplicaSets, each with the pod template of one revision
//! (plus the `pod-template-hash` label) and the revision in the annotation
//! `deployment.kubernetes.io/revision`. A StatefulSet's or DaemonSet's is its
//! ControllerRevisions, each with `revision` and, in `data`, the template as a strategic
//! merge patch. Every revision is owned by its workload (an owner reference with
//! `controller: true`) and carries the workload's selector labels.
//!
//! When a workload's template changes, its controller makes the revision with that template
//! the newest (renumbering it, as the real controllers do when a rollback returns to an old
//! template) or adds one.

use serde_json::{Value, json};

use super::{ApiServer, Cluster, object_path};

/// The revision annotation of Deployments and their ReplicaSets.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// The pod template of a workload `name` running `image`.
fn pod_template(name: &str, image: &str) -> Value {
    json!({
        "metadata": {"creationTimestamp": null, "labels": {"app": name}},
        "spec": {
            "containers": [{"name": name, "image": image, "resources": {}}],
            "restartPolicy": "Always",
        },
    })
}

/// A short stable hash of a template, as the controller names revisions with.
fn hash(template: &Value) -> String {
    let text = template.to_string();
    let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:010x}", fnv & 0xff_ffff_ffff)
}

/// A template with the hash label dropped, for comparing.
fn without_hash(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    template
}

/// A ControllerRevision's `data` for a template.
fn revision_data(template: &Value) -> Value {
    let mut template = template.clone();
    template["$patch"] = "replace".into();
    json!({"spec": {"template": template}})
}

impl ApiServer {
    /// Adds deployment `namespace/name` that ran `images` in turn, one revision each: its
    /// ReplicaSets for revisions 1 to n, and the deployment at revision n.
    pub fn with_deployment_history(
        self,
        namespace: &str,
        name: &str,
        images: &[&str],
    ) -> ApiServer {
        self.with_history("Deployment", namespace, name, images)
    }

    /// Adds statefulset `namespace/name` that ran `images` in turn, with its
    /// ControllerRevisions.
    pub fn with_statefulset_history(
        self,
        namespace: &str,
        name: &str,
        images: &[&str],
    ) -> ApiServer {
        self.with_history("StatefulSet", namespace, name, images)
    }

    /// Adds daemonset `namespace/name` that ran `images` in turn, with its
    /// ControllerRevisions.
    pub fn with_daemonset_history(self, namespace: &str, name: &str, images: &[&str]) -> ApiServer {
        self.with_history("DaemonSet", namespace, name, images)
    }

    fn with_history(self, kind: &str, namespace: &str, name: &str, images: &[&str]) -> ApiServer {
        let last = images.len();
        let labels = json!({"app": name});
        let mut workload = json!({
            "kind": kind,
            "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": namespace, "generation": last,
                         "labels": labels, "annotations": {}},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": pod_template(name, images[last - 1]),
            },
        });
        if kind == "Deployment" {
            workload["spec"]["replicas"] = 2.into();
            workload["metadata"]["annotations"] = json!({
                REVISION: last.to_string(),
                "kubernetes.io/change-cause": format!("deploy {}", images[last - 1]),
            });
        } else {
            workload["spec"]["replicas"] = 1.into();
        }
        {
            let mut cluster = self.cluster.lock().unwrap();
            let path = object_path(&workload);
            let workload = cluster.store(path, workload);
            for (i, image) in images.iter().enumerate() {
                let template = pod_template(name, image);
                cluster.add_revision(&workload, &template, i as i64 + 1);
            }
        }
        self
    }
}

impl Cluster {
    /// Stores a new revision `number` of `workload` with `template`.
    fn add_revision(&mut self, workload: &Value, template: &Value, number: i64) {
        let kind = workload["kind"].as_str().unwrap();
        let metadata = &workload["metadata"];
        let name = metadata["name"].as_str().unwrap();
        let hash = hash(template);
        let owner = json!([{
            "apiVersion": "apps/v1", "kind": kind, "name": name,
            "uid": metadata["uid"], "controller": true, "blockOwnerDeletion": true,
        }]);
        let mut labels = workload["spec"]["selector"]["matchLabels"].clone();
        let revision = if kind == "Deployment" {
            labels["pod-template-hash"] = hash.clone().into();
            let mut template = template.clone();
            template["metadata"]["labels"]["pod-template-hash"] = hash.clone().into();
            let mut annotations = json!({REVISION: number.to_string(),
                                         "deployment.kubernetes.io/desired-replicas": "2"});
            if let Some(cause) = metadata["annotations"].get("kubernetes.io/change-cause") {
                annotations["kubernetes.io/change-cause"] = cause.clone();
            }
            let image = template["spec"]["containers"][0]["image"].clone();
            annotations["kubernetes.io/change-cause"] =
                format!("deploy {}", image.as_str().unwrap_or("")).into();
            json!({
                "kind": "ReplicaSet", "apiVersion": "apps/v1",
                "metadata": {"name": format!("{name}-{hash}"), "namespace": metadata["namespace"],
                             "labels": labels, "annotations": annotations, "ownerReferences": owner},
                "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template},
            })
        } else {
            labels["controller-revision-hash"] = hash.clone().into();
            json!({
                "kind": "ControllerRevision", "apiVersion": "apps/v1",
                "metadata": {"name": format!("{name}-{hash}"), "namespace": metadata["namespace"],
                             "labels": labels, "ownerReferences": owner},
                "data": revision_data(template),
                "revision": number,
            })
        };
        let path = object_path(&revision);
        self.store(path, revision);
    }

    /// The controller's answer to a new template of the workload at `path`: the revision
    /// with that template becomes the newest, or a new one is added.
    pub(super) fn roll_out(&mut self, path: &str) {
        let workload = self.objects[path].clone();
        let kind = workload["kind"].as_str().unwrap_or_default();
        let Some((resource, uid)) = (match kind {
            "Deployment" => Some("replicasets"),
            "StatefulSet" | "DaemonSet" => Some("controllerrevisions"),
            _ => None,
        })
        .zip(workload["metadata"]["uid"].as_str()) else {
            return;
        };
        let namespace = workload["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let prefix = format!("/apis/apps/v1/namespaces/{namespace}/{resource}/");
        let owned: Vec<(String, Value)> = self
            .objects
            .iter()
            .filter(|(p, o)| {
                p.starts_with(&prefix)
                    && o["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(uid)
            })
            .map(|(p, o)| (p.clone(), o.clone()))
            .collect();
        let number_of = |o: &Value| match kind {
            "Deployment" => o["metadata"]["annotations"][REVISION]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            _ => o["revision"].as_i64().unwrap_or(0),
        };
        let next = owned.iter().map(|(_, o)| number_of(o)).max().unwrap_or(0) + 1;
        let template = &workload["spec"]["template"];
        let same = owned.iter().find(|(_, o)| match kind {
            "Deployment" => without_hash(&o["spec"]["template"]) == without_hash(template),
            _ => o["data"] == revision_data(template),
        });
        match same {
            Some((revision_path, revision)) => {
                let mut revision = revision.clone();
                match kind {
                    "Deployment" => {
                        revision["metadata"]["annotations"][REVISION] = next.to_string().into()
                    }
                    _ => revision["revision"] = next.into(),
                }
                self.store(revision_path.clone(), revision);
            }
            None => self.add_revision(&workload, template, next),
        }
        if kind == "Deployment" {
            let mut workload = workload;
            workload["metadata"]["annotations"][REVISION] = next.to_string().into();
            self.store(path.to_string(), workload);
        }
    }
}
