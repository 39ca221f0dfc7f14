//! The routing tree, as Alertmanager's: an alert descends from the root into the first
//! child whose matchers it satisfies (and on into later siblings while `continue` is set);
//! the deepest matching nodes receive it. Each node names a receiver and how alerts are
//! grouped and timed; unset values are inherited from the parent.

use std::time::Duration;

use crate::model::Labels;
use crate::model::matcher::{matches_all, parse_matchers};
use serde::Deserialize;

use crate::model::matcher::Matcher;
use crate::model::units::PromDuration;

/// Alertmanager's defaults.
const GROUP_WAIT: Duration = Duration::from_secs(30);
const GROUP_INTERVAL: Duration = Duration::from_secs(300);
const REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// How a route groups alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// `["..."]`: every alert is its own group.
    All,
    /// Group by these labels (none: one group for the route).
    Labels(Vec<String>),
}

impl GroupBy {
    /// The group labels of an alert.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match self {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => Labels::from_pairs(
                names
                    .iter()
                    .filter_map(|n| labels.get(n).map(|v| (n.as_str(), v))),
            ),
        }
    }
}

/// A validated routing tree node.
#[derive(Clone, Debug)]
pub struct Route {
    /// The node's position, as Alertmanager prints it in group keys (`{}/{severity="page"}`).
    pub key: String,
    pub receiver: String,
    /// Alertmanager matchers; all must match.
    matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub continue_: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub routes: Vec<Route>,
}

impl Route {
    /// Builds the tree from its configuration; `receivers` are the names that exist.
    pub fn build(config: &RouteConfig, receivers: &[&str]) -> Result<Route, String> {
        let root = Route {
            key: "{}".into(),
            receiver: String::new(),
            matchers: Vec::new(),
            group_by: GroupBy::Labels(Vec::new()),
            continue_: false,
            group_wait: GROUP_WAIT,
            group_interval: GROUP_INTERVAL,
            repeat_interval: REPEAT_INTERVAL,
            routes: Vec::new(),
        };
        if config.receiver.is_none() {
            return Err("the root route needs a `receiver`".into());
        }
        if !config.matchers.is_empty() {
            return Err("the root route must not have `matchers`: it matches every alert".into());
        }
        Self::node(config, &root, receivers, true)
    }

    fn node(
        config: &RouteConfig,
        parent: &Route,
        receivers: &[&str],
        root: bool,
    ) -> Result<Route, String> {
        let receiver = config
            .receiver
            .clone()
            .unwrap_or_else(|| parent.receiver.clone());
        if !receivers.contains(&receiver.as_str()) {
            return Err(format!(
                "route refers to receiver {receiver:?}, which is not defined (known: {})",
                receivers.join(", ")
            ));
        }
        let mut matchers = Vec::new();
        for m in &config.matchers {
            matchers.extend(parse_matchers(m).map_err(|e| format!("matchers {m:?}: {e}"))?);
        }
        let group_by = match &config.group_by {
            None => parent.group_by.clone(),
            Some(names) if names.iter().any(|n| n == "...") => {
                if names.len() > 1 {
                    return Err("group_by: \"...\" must be alone".into());
                }
                GroupBy::All
            }
            Some(names) => {
                if let Some(bad) = names.iter().find(|n| !crate::model::is_label_name(n)) {
                    return Err(format!("group_by: invalid label name {bad:?}"));
                }
                GroupBy::Labels(names.clone())
            }
        };
        let key = if root {
            "{}".to_string()
        } else {
            let text: Vec<String> = matchers
                .iter()
                .map(|m| format!("{}{}{:?}", m.name(), m.op().as_str(), m.value()))
                .collect();
            format!("{}/{{{}}}", parent.key, text.join(","))
        };
        let mut route = Route {
            key,
            receiver,
            matchers,
            group_by,
            continue_: config.continue_,
            group_wait: config.group_wait.map_or(parent.group_wait, |d| d.0),
            group_interval: config.group_interval.map_or(parent.group_interval, |d| d.0),
            repeat_interval: config
                .repeat_interval
                .map_or(parent.repeat_interval, |d| d.0),
            routes: Vec::new(),
        };
        for child in &config.routes {
            let c = Self::node(child, &route, receivers, false)?;
            route.routes.push(c);
        }
        Ok(route)
    }

    /// A route that sends every alert to one receiver, grouped by `alertname`, notifying
    /// changes at once: what a rule's own `recovery` means.
    pub fn direct(receiver: &str) -> Route {
        Route {
            key: format!("{{}}/recovery={receiver:?}"),
            receiver: receiver.to_string(),
            matchers: Vec::new(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            continue_: false,
            group_wait: Duration::ZERO,
            group_interval: Duration::ZERO,
            repeat_interval: REPEAT_INTERVAL,
            routes: Vec::new(),
        }
    }

    /// The nodes an alert with `labels` is routed to.
    pub fn matches(&self, labels: &Labels) -> Vec<&Route> {
        let mut out = Vec::new();
        self.collect(labels, &mut out);
        out
    }

    fn collect<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a Route>) -> bool {
        if !matches_all(&self.matchers, labels) {
            return false;
        }
        let before = out.len();
        for child in &self.routes {
            if child.collect(labels, out) && !child.continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }
}

/// A node of the routing tree, as Alertmanager's `route`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The receiver of alerts this node matches (inherited from the parent if unset).
    pub receiver: Option<String>,
    /// Matchers an alert must satisfy, e.g. `['severity=~"page|critical"']`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Labels alerts are grouped by; `["..."]` groups by all labels.
    pub group_by: Option<Vec<String>>,
    /// Whether matching goes on to the following siblings after this node matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// How long to wait before the first notification of a new group.
    pub group_wait: Option<PromDuration>,
    /// How long to wait before notifying a group of changes.
    pub group_interval: Option<PromDuration>,
    /// How long to wait before notifying an unchanged firing group again.
    pub repeat_interval: Option<PromDuration>,
    /// Child routes.
    #[serde(default, rename = "routes")]
    pub routes: Vec<RouteConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(toml_text: &str) -> Route {
        let c: RouteConfig = toml::from_str(toml_text).unwrap();
        Route::build(&c, &["default", "pager", "db-team", "audit"]).unwrap()
    }

    fn receivers(r: &Route, pairs: &[(&str, &str)]) -> Vec<String> {
        r.matches(&Labels::from_pairs(pairs.iter().copied()))
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    const TREE: &str = r#"
receiver = "default"
group_by = ["alertname"]
group_wait = "10s"

[[routes]]
receiver = "audit"
matchers = ['team=~".+"']
continue = true

[[routes]]
receiver = "pager"
matchers = ['severity="page"']
group_interval = "1m"

  [[routes.routes]]
  receiver = "db-team"
  matchers = ['service="db"']
  group_by = ["..."]

[[routes]]
receiver = "db-team"
matchers = ["service=db"]
"#;

    #[test]
    fn first_match_wins_unless_continue() {
        let t = tree(TREE);
        assert_eq!(receivers(&t, &[("alertname", "A")]), ["default"]);
        assert_eq!(receivers(&t, &[("severity", "page")]), ["pager"]);
        // `continue` on the audit route lets matching go on to the pager route.
        assert_eq!(
            receivers(&t, &[("severity", "page"), ("team", "x")]),
            ["audit", "pager"]
        );
        // The deepest match receives; the later sibling for db is not reached.
        assert_eq!(
            receivers(&t, &[("severity", "page"), ("service", "db")]),
            ["db-team"]
        );
        assert_eq!(receivers(&t, &[("service", "db")]), ["db-team"]);
    }

    #[test]
    fn settings_are_inherited() {
        let t = tree(TREE);
        let pager = &t.routes[1];
        assert_eq!(pager.group_wait, Duration::from_secs(10));
        assert_eq!(pager.group_interval, Duration::from_secs(60));
        assert_eq!(pager.repeat_interval, REPEAT_INTERVAL);
        assert_eq!(pager.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(pager.routes[0].group_by, GroupBy::All);
        assert_eq!(pager.routes[0].group_interval, Duration::from_secs(60));
        assert_eq!(pager.key, r#"{}/{severity="page"}"#);
    }

    #[test]
    fn group_labels() {
        let l = Labels::from_pairs([("alertname", "A"), ("instance", "x")]);
        assert_eq!(
            GroupBy::Labels(vec!["alertname".into()])
                .group_labels(&l)
                .to_string(),
            r#"{alertname="A"}"#
        );
        assert_eq!(GroupBy::All.group_labels(&l), l);
        assert!(GroupBy::Labels(vec![]).group_labels(&l).is_empty());
    }

    #[test]
    fn bad_trees_are_refused() {
        let c: RouteConfig = toml::from_str("receiver = \"nope\"").unwrap();
        assert!(
            Route::build(&c, &["default"])
                .unwrap_err()
                .contains("\"nope\"")
        );
        let c: RouteConfig =
            toml::from_str("receiver = \"default\"\n[[routes]]\nmatchers = ['a=~\"(\"']").unwrap();
        let err = Route::build(&c, &["default"]).unwrap_err();
        assert!(err.contains("matchers") && err.contains("a=~"), "{err}");
    }
}
