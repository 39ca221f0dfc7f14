//! Alert mode, without health series: the failing services are those the firing alerts
//! name, and the candidates those with no failing dependency.

use std::collections::{BTreeMap, BTreeSet};

use faultline_sdk::localizer::*;

use crate::Topology;
use crate::graph::Graph;

/// Alert mode: the failing services are those the firing alerts name.
impl Topology {
    pub(crate) fn by_alerts(
        &self,
        input: &LocalizeInput,
        edges: &BTreeMap<&str, BTreeSet<&str>>,
    ) -> Result<Vec<Suspect>, String> {
        let firing: Vec<&Alert> = input
            .incident()
            .alerts
            .iter()
            .filter(|a| a.state == "firing")
            .collect();
        let named = firing.iter().filter_map(|a| a.labels.get(&self.label));
        // Without a graph or edges every service stands alone; with them, it must be known.
        let built;
        let g = if self.file.is_none() && edges.is_empty() {
            built = self.graph_with(edges, named.clone());
            &built
        } else if edges.is_empty() {
            &self.graph
        } else {
            built = self.graph_with(edges, []);
            &built
        };
        let mut failing = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for service in named {
            match g.index.get(service) {
                Some(&s) => failing.insert(s),
                None => unknown.insert(service),
            };
        }
        if !unknown.is_empty() {
            let unknown: Vec<&str> = unknown.into_iter().collect();
            log::debug(&format!(
                "firing alerts name services the graph does not know, ignored: {}",
                unknown.join(", ")
            ));
        }
        if failing.is_empty() {
            return Ok(Vec::new());
        }

        let walks: BTreeMap<usize, Vec<Option<usize>>> =
            failing.iter().map(|&s| (s, g.walk(s))).collect();
        let reaches = |from: usize, to: usize| walks[&from][to].is_some();
        // The failing services each one depends on, transitively (itself excluded).
        let failing_deps = |s: usize| {
            failing
                .iter()
                .copied()
                .filter(move |&t| t != s && reaches(s, t))
        };
        let candidates: BTreeSet<usize> = failing
            .iter()
            .copied()
            .filter(|&s| failing_deps(s).all(|t| reaches(t, s)))
            .collect();
        let total = failing.len() as f64;

        let mut suspects: Vec<(f64, usize, String)> = failing
            .iter()
            .map(|&s| {
                let dependents: Vec<usize> = failing
                    .iter()
                    .copied()
                    .filter(|&t| t != s && reaches(t, s))
                    .collect();
                let explained = (1 + dependents.len()) as f64 / total;
                if candidates.contains(&s) {
                    let reason = candidate_reason(g, s, failing_deps(s), &dependents, &walks);
                    (explained, s, reason)
                } else {
                    let roots = failing_deps(s).filter(|t| candidates.contains(t));
                    (
                        0.1 * explained,
                        s,
                        dependent_reason(g, s, roots, &walks[&s]),
                    )
                }
            })
            .collect();
        suspects.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        Ok(suspects
            .into_iter()
            .map(|(score, s, reason)| {
                let name = &g.names[s];
                let mut suspect = Suspect::new().score(score).reason(reason);
                let alerts: Vec<&Labels> = firing
                    .iter()
                    .map(|a| &a.labels)
                    .filter(|l| l.get(&self.label) == Some(name))
                    .collect();
                for carried in &self.carry {
                    if let Some(value) = agreed(&alerts, carried) {
                        suspect = suspect.label(carried, value);
                    }
                }
                suspect.label(&self.label, name)
            })
            .collect())
    }
}

/// "db is failing and its dependencies (none) are healthy; frontend -> api -> db depend
/// on it": each failing dependent's path to `s`, leaving out those that lie on another's.
fn candidate_reason(
    g: &Graph,
    s: usize,
    cycle: impl Iterator<Item = usize>,
    dependents: &[usize],
    walks: &BTreeMap<usize, Vec<Option<usize>>>,
) -> String {
    let name = &g.names[s];
    let cycle: Vec<usize> = cycle.collect();
    let mut reason = if cycle.is_empty() {
        let deps = g.deps[s].iter().copied().filter(|&d| d != s);
        let deps = g.join(deps, ", ");
        let deps = if deps.is_empty() { "none" } else { &deps };
        format!("{name} is failing and its dependencies ({deps}) are healthy")
    } else {
        format!(
            "{name} is failing in a dependency cycle with failing {}, and its other \
             dependencies are healthy",
            g.join(cycle, ", ")
        )
    };
    let paths: Vec<Vec<usize>> = dependents
        .iter()
        .map(|&t| g.path(&walks[&t], t, s))
        .collect();
    // Shortest paths: one dependent lying on another's path is nearer to `s`, so two
    // paths never both lie on each other and at least one path is kept.
    let shown: Vec<String> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q[0] != p[0] && q.contains(&p[0])))
        .map(|p| g.join(p.iter().copied(), " -> "))
        .collect();
    if shown.is_empty() {
        reason.push_str("; no failing service depends on it");
    } else {
        reason.push_str(&format!("; {} depend on it", shown.join(", ")));
    }
    reason
}

/// "frontend depends on failing db (via api)", for each root candidate `s` depends on.
fn dependent_reason(
    g: &Graph,
    s: usize,
    roots: impl Iterator<Item = usize>,
    walk: &[Option<usize>],
) -> String {
    let roots: Vec<String> = roots
        .map(|root| {
            let path = g.path(walk, s, root);
            let via = &path[1..path.len() - 1];
            if via.is_empty() {
                format!("failing {}", g.names[root])
            } else {
                format!(
                    "failing {} (via {})",
                    g.names[root],
                    g.join(via.iter().copied(), " -> ")
                )
            }
        })
        .collect();
    format!("{} depends on {}", g.names[s], roots.join(", "))
}

/// The value of label `name` if every alert has it, the same; `None` otherwise.
fn agreed<'a>(alerts: &[&'a Labels], name: &str) -> Option<&'a str> {
    let first = alerts.first()?.get(name)?;
    alerts
        .iter()
        .all(|l| l.get(name) == Some(first))
        .then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"{"graph": {
        "frontend": ["api"], "api": ["db", "cache"], "db": [], "cache": [], "worker": ["db"]
    }}"#;

    fn alert(state: &str, labels: &[(&str, &str)]) -> Alert {
        Alert {
            labels: labels.iter().copied().collect(),
            state: state.to_string(),
            ..Default::default()
        }
    }

    fn firing(service: &str) -> Alert {
        alert("firing", &[("alertname", "Down"), ("service", service)])
    }

    fn localize(rule: &mut Topology, alerts: Vec<Alert>) -> Vec<Suspect> {
        let incident = Incident {
            id: "inc".into(),
            alerts,
            ..Default::default()
        };
        rule.localize(&LocalizeInput::new(incident, Input::builder().build()))
            .unwrap()
    }

    /// The suspects as (labels, score rounded to 4 places, reason).
    fn ranked(suspects: &[Suspect]) -> Vec<(String, f64, &str)> {
        suspects
            .iter()
            .map(|s| {
                let score = (s.score * 10_000.0).round() / 10_000.0;
                (s.labels.to_string(), score, s.reason.as_str())
            })
            .collect()
    }

    fn services(suspects: &[Suspect]) -> Vec<&str> {
        suspects
            .iter()
            .map(|s| s.labels.get("service").unwrap())
            .collect()
    }

    #[test]
    fn blames_the_failing_service_with_healthy_dependencies() {
        let mut rule = Topology::configure(SHOP).unwrap();
        let alerts = vec![firing("frontend"), firing("db"), firing("api")];
        assert_eq!(
            ranked(&localize(&mut rule, alerts)),
            [
                (
                    r#"{service="db"}"#.to_string(),
                    1.0,
                    "db is failing and its dependencies (none) are healthy; \
                     frontend -> api -> db depend on it"
                ),
                (
                    r#"{service="api"}"#.to_string(),
                    0.0667,
                    "api depends on failing db"
                ),
                (
                    r#"{service="frontend"}"#.to_string(),
                    0.0333,
                    "frontend depends on failing db (via api)"
                ),
            ]
        );
    }

    #[test]
    fn paths_go_through_healthy_services_and_list_every_branch() {
        let mut rule = Topology::configure(SHOP).unwrap();
        // api is healthy: frontend still depends on db through it.
        let suspects = localize(
            &mut rule,
            vec![firing("frontend"), firing("worker"), firing("db")],
        );
        assert_eq!(
            ranked(&suspects),
            [
                (
                    r#"{service="db"}"#.to_string(),
                    1.0,
                    "db is failing and its dependencies (none) are healthy; \
                     frontend -> api -> db, worker -> db depend on it"
                ),
                (
                    r#"{service="frontend"}"#.to_string(),
                    0.0333,
                    "frontend depends on failing db (via api)"
                ),
                (
                    r#"{service="worker"}"#.to_string(),
                    0.0333,
                    "worker depends on failing db"
                ),
            ]
        );
    }

    #[test]
    fn independent_roots_share_the_blame_and_ties_go_by_name() {
        let mut rule = Topology::configure(SHOP).unwrap();
        let suspects = localize(
            &mut rule,
            vec![firing("db"), firing("cache"), firing("api")],
        );
        assert_eq!(
            ranked(&suspects),
            [
                (
                    r#"{service="cache"}"#.to_string(),
                    0.6667,
                    "cache is failing and its dependencies (none) are healthy; \
                     api -> cache depend on it"
                ),
                (
                    r#"{service="db"}"#.to_string(),
                    0.6667,
                    "db is failing and its dependencies (none) are healthy; \
                     api -> db depend on it"
                ),
                (
                    r#"{service="api"}"#.to_string(),
                    0.0333,
                    "api depends on failing cache, failing db"
                ),
            ]
        );
    }

    #[test]
    fn a_lone_failure_names_its_healthy_dependencies() {
        let mut rule = Topology::configure(SHOP).unwrap();
        assert_eq!(
            ranked(&localize(&mut rule, vec![firing("api")])),
            [(
                r#"{service="api"}"#.to_string(),
                1.0,
                "api is failing and its dependencies (cache, db) are healthy; \
                 no failing service depends on it"
            )]
        );
    }

    #[test]
    fn cycles_end_and_blame_the_cycle_together() {
        let graph = r#"{"graph": {"a": ["b"], "b": ["a", "c"], "c": [], "d": ["a"], "e": ["e"]}}"#;
        let mut rule = Topology::configure(graph).unwrap();
        let suspects = localize(&mut rule, vec![firing("a"), firing("b"), firing("d")]);
        assert_eq!(
            ranked(&suspects),
            [
                (
                    r#"{service="a"}"#.to_string(),
                    1.0,
                    "a is failing in a dependency cycle with failing b, and its other \
                     dependencies are healthy; b -> a, d -> a depend on it"
                ),
                (
                    r#"{service="b"}"#.to_string(),
                    1.0,
                    "b is failing in a dependency cycle with failing a, and its other \
                     dependencies are healthy; d -> a -> b depend on it"
                ),
                (
                    r#"{service="d"}"#.to_string(),
                    0.0333,
                    "d depends on failing a, failing b (via a)"
                ),
            ]
        );
        // A service depending on itself is not its own failing dependency.
        assert_eq!(
            ranked(&localize(&mut rule, vec![firing("e")])),
            [(
                r#"{service="e"}"#.to_string(),
                1.0,
                "e is failing and its dependencies (none) are healthy; \
                 no failing service depends on it"
            )]
        );
        // A failing dependency below the cycle makes the cycle dependents.
        let suspects = localize(&mut rule, vec![firing("a"), firing("b"), firing("c")]);
        assert_eq!(services(&suspects), ["c", "a", "b"]);
        assert_eq!(suspects[0].score, 1.0);
        assert_eq!(suspects[1].reason, "a depends on failing c (via b)");
    }

    #[test]
    fn only_firing_alerts_of_known_services_count() {
        let mut rule = Topology::configure(SHOP).unwrap();
        let alerts = vec![
            alert("pending", &[("service", "db")]),
            alert("resolved", &[("service", "cache")]),
            firing("payments"),
            alert("firing", &[("alertname", "NoService")]),
            firing("api"),
        ];
        let suspects = localize(&mut rule, alerts);
        assert_eq!(services(&suspects), ["api"]);
        assert_eq!(suspects[0].score, 1.0);
    }

    #[test]
    fn label_names_the_service() {
        let params = r#"{"graph": {"api": ["db"], "db": []}, "label": "app"}"#;
        let mut rule = Topology::configure(params).unwrap();
        let alerts = vec![
            alert("firing", &[("app", "db")]),
            alert("firing", &[("app", "api")]),
            firing("api"),
        ];
        let suspects = localize(&mut rule, alerts);
        let labels: Vec<String> = suspects.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(labels, [r#"{app="db"}"#, r#"{app="api"}"#]);
        assert_eq!(suspects[0].score, 1.0);
    }

    #[test]
    fn carry_copies_labels_all_alerts_agree_on() {
        let params = r#"{"graph": {"api": ["db"], "db": []}, "carry": ["instance", "zone"]}"#;
        let mut rule = Topology::configure(params).unwrap();
        let alerts = vec![
            alert(
                "firing",
                &[("service", "db"), ("instance", "db1"), ("zone", "a")],
            ),
            alert(
                "firing",
                &[("service", "db"), ("instance", "db1"), ("zone", "b")],
            ),
            alert("firing", &[("service", "api"), ("instance", "web1")]),
            alert("firing", &[("service", "api"), ("zone", "a")]),
            // Not firing: its instance does not spoil the agreement.
            alert("resolved", &[("service", "db"), ("instance", "db2")]),
        ];
        let suspects = localize(&mut rule, alerts);
        let labels: Vec<String> = suspects.iter().map(|s| s.labels.to_string()).collect();
        // db's alerts disagree on zone; one of api's alerts lacks each label.
        assert_eq!(
            labels,
            [r#"{instance="db1", service="db"}"#, r#"{service="api"}"#]
        );
    }

    #[test]
    fn defaults_label_service_and_carry_nothing() {
        let rule = Topology::configure(r#"{"graph": {}}"#).unwrap();
        assert_eq!(rule.label, "service");
        assert!(rule.carry.is_empty());
        let mut rule = Topology::configure(SHOP).unwrap();
        let alerts = vec![alert("firing", &[("service", "db"), ("instance", "db1")])];
        let suspects = localize(&mut rule, alerts);
        assert_eq!(suspects[0].labels.to_string(), r#"{service="db"}"#);
    }

    #[test]
    fn no_alerts_no_suspects() {
        let mut rule = Topology::configure(SHOP).unwrap();
        assert_eq!(localize(&mut rule, vec![]), []);
    }

    #[test]
    fn an_empty_graph_knows_no_service() {
        let mut rule = Topology::configure(r#"{"graph": {}}"#).unwrap();
        assert_eq!(localize(&mut rule, vec![firing("db")]), []);
    }

    #[test]
    fn the_example_graph_loads() {
        let graph = include_str!("../example-topology.json");
        let params = format!(r#"{{"graph": {graph}, "carry": ["instance"]}}"#);
        let mut rule = Topology::configure(&params).unwrap();
        assert!(rule.graph.names.len() > 3);
        let suspects = localize(&mut rule, vec![firing("frontend"), firing("postgres")]);
        assert_eq!(services(&suspects), ["postgres", "frontend"]);
    }
}
