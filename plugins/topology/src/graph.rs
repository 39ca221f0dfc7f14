//! The dependency graph: services as indices with their dependencies, built from the
//! `graph` param and the edges that service-graph series stand for.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use faultline_sdk::localizer::Labels;

/// The dependency graph with services as indices, numbered in name order so that walking
/// indices in order is walking names in order.
#[derive(Debug)]
pub(crate) struct Graph {
    pub(crate) names: Vec<String>,
    pub(crate) index: HashMap<String, usize>,
    /// `deps[s]`: the services `s` depends on, in name order, without duplicates.
    pub(crate) deps: Vec<Vec<usize>>,
}

impl Graph {
    /// The graph of `adjacency`, in which every dependency must also be a key.
    pub(crate) fn new(adjacency: &BTreeMap<String, BTreeSet<String>>) -> Self {
        let names: Vec<String> = adjacency.keys().cloned().collect();
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let deps = adjacency
            .values()
            .map(|on| on.iter().map(|dep| index[dep]).collect())
            .collect();
        Self { names, index, deps }
    }

    /// Breadth-first from `from` along dependencies, entering only services `enter` allows:
    /// for each service reached through at least one edge (`from` itself only through a
    /// cycle), the service it was reached from, so that following them back gives a shortest
    /// path. Each service is visited once, so a cycle ends the walk rather than looping.
    pub(crate) fn walk_through(
        &self,
        from: usize,
        enter: impl Fn(usize) -> bool,
    ) -> Vec<Option<usize>> {
        let mut parent = vec![None; self.names.len()];
        let mut queue = VecDeque::from([from]);
        while let Some(s) = queue.pop_front() {
            for &d in &self.deps[s] {
                if parent[d].is_none() && enter(d) {
                    parent[d] = Some(s);
                    queue.push_back(d);
                }
            }
        }
        parent
    }

    pub(crate) fn walk(&self, from: usize) -> Vec<Option<usize>> {
        self.walk_through(from, |_| true)
    }

    /// The path `from -> ... -> to` in a walk from `from` that reached `to`. Each parent
    /// was reached before its child, so the chain ends at `from`.
    pub(crate) fn path(&self, walk: &[Option<usize>], from: usize, to: usize) -> Vec<usize> {
        let mut path = vec![to];
        let mut at = to;
        while let Some(parent) = walk[at] {
            path.push(parent);
            at = parent;
            if at == from {
                break;
            }
        }
        path.reverse();
        path
    }

    pub(crate) fn join(
        &self,
        services: impl IntoIterator<Item = usize>,
        separator: &str,
    ) -> String {
        services
            .into_iter()
            .map(|s| self.names[s].as_str())
            .collect::<Vec<_>>()
            .join(separator)
    }
}

/// The service-graph edge `(client, server)` a series stands for: `Some(None)` for a
/// service-graph series without a usable edge, `None` for any other series.
pub(crate) fn edge(labels: &Labels) -> Option<Option<(&str, &str)>> {
    let name = labels.get("__name__")?;
    let (from, to) = if name.starts_with("traces_service_graph_") {
        ("client", "server")
    } else if name.starts_with("istio_") {
        ("source_workload", "destination_workload")
    } else {
        return None;
    };
    let usable = |v: &&str| !v.is_empty() && *v != "unknown";
    let from = labels.get(from).filter(usable);
    let to = labels.get(to).filter(usable);
    Some(match (from, to) {
        (Some(a), Some(b)) if a != b => Some((a, b)),
        _ => None,
    })
}
