//! The routing tree, as Alertmanager's: an alert descends from the root into the first
//! child whose matchers it satisfies (and on into later siblings while `continue` is set);
//! the deepest matching nodes receive it. Each node names a receiver and how alerts are
//! grouped and timed; unset values are inherited from the parent. A node's time intervals
//! (`mute_time_intervals`, `active_time_intervals`) are its own, not inherited.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::model::Labels;
use crate::model::matcher::{matches_all, parse_matchers};
use serde::Deserialize;

use crate::dispatch::time_interval::TimeInterval;
use crate::model::matcher::Matcher;
use crate::model::units::PromDuration;

/// The receiver `/api/v2/alerts` and `config.original` name for alerts that no route takes
/// (there is no `[route]`): Alertmanager always has one, and tools expect a name.
pub const UNROUTED: &str = "(unrouted)";

/// Alertmanager's defaults (`REPEAT_INTERVAL` is also the rules' own `recovery` routes').
const GROUP_WAIT: Duration = Duration::from_secs(30);
const GROUP_INTERVAL: Duration = Duration::from_secs(300);
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

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
    /// While one of these holds, the node notifies nothing.
    pub mute_time_intervals: Vec<Arc<TimeInterval>>,
    /// If any, the node notifies only while one of these holds.
    pub active_time_intervals: Vec<Arc<TimeInterval>>,
    pub routes: Vec<Route>,
}

/// The receivers and time intervals a routing tree may name.
pub struct Names<'a> {
    pub receivers: &'a [&'a str],
    pub time_intervals: &'a BTreeMap<String, Arc<TimeInterval>>,
}

impl Route {
    /// Builds the tree from its configuration and the names it may refer to.
    pub fn build(config: &RouteConfig, names: &Names<'_>) -> Result<Route, String> {
        let root = Route {
            key: "{}".into(),
            receiver: String::new(),
            matchers: Vec::new(),
            group_by: GroupBy::Labels(Vec::new()),
            continue_: false,
            group_wait: GROUP_WAIT,
            group_interval: GROUP_INTERVAL,
            repeat_interval: REPEAT_INTERVAL,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        };
        if config.receiver.is_none() {
            return Err("the root route needs a `receiver`".into());
        }
        if !config.matchers.is_empty() {
            return Err("the root route must not have `matchers`: it matches every alert".into());
        }
        if !config.mute_time_intervals.is_empty() || !config.active_time_intervals.is_empty() {
            return Err(
                "the root route must not have `mute_time_intervals` or `active_time_intervals`: \
                 set them on a child route"
                    .into(),
            );
        }
        Self::node(config, &root, names, true)
    }

    fn node(
        config: &RouteConfig,
        parent: &Route,
        names: &Names<'_>,
        root: bool,
    ) -> Result<Route, String> {
        let receivers = names.receivers;
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
        let intervals = |field: &str, list: &[String]| -> Result<Vec<Arc<TimeInterval>>, String> {
            list.iter()
                .map(|name| {
                    names.time_intervals.get(name).cloned().ok_or_else(|| {
                        let known: Vec<&str> =
                            names.time_intervals.keys().map(String::as_str).collect();
                        format!(
                            "{field}: no [[time_interval]] named {name:?} (known: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        )
                    })
                })
                .collect()
        };
        let mut route = Route {
            mute_time_intervals: intervals("mute_time_intervals", &config.mute_time_intervals)?,
            active_time_intervals: intervals(
                "active_time_intervals",
                &config.active_time_intervals,
            )?,
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
            let c = Self::node(child, &route, names, false)?;
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
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// The longest `repeat_interval` of the node and its children.
    pub fn longest_repeat_interval(&self) -> Duration {
        self.routes
            .iter()
            .map(Route::longest_repeat_interval)
            .fold(self.repeat_interval, Duration::max)
    }

    /// Whether the node's time intervals mute it at `now` (ms): one of its mute intervals
    /// holds, or it has active intervals and none holds.
    pub fn time_muted(&self, now: i64) -> bool {
        self.mute_time_intervals.iter().any(|t| t.contains(now))
            || (!self.active_time_intervals.is_empty()
                && !self.active_time_intervals.iter().any(|t| t.contains(now)))
    }

    /// The matchers an alert must satisfy to enter this node.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
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
    /// Names of `[[time_interval]]`s during which this route notifies nothing (not
    /// inherited; not on the root).
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Names of `[[time_interval]]`s outside which this route notifies nothing (not
    /// inherited; not on the root).
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    #[serde(default, rename = "routes")]
    pub routes: Vec<RouteConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(toml_text: &str) -> Route {
        let c: RouteConfig = toml::from_str(toml_text).unwrap();
        let names = Names {
            receivers: &["default", "pager", "db-team", "audit"],
            time_intervals: &BTreeMap::new(),
        };
        Route::build(&c, &names).unwrap()
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

    fn only_default() -> Names<'static> {
        static NONE: BTreeMap<String, Arc<TimeInterval>> = BTreeMap::new();
        Names {
            receivers: &["default"],
            time_intervals: &NONE,
        }
    }

    #[test]
    fn bad_trees_are_refused() {
        let c: RouteConfig = toml::from_str("receiver = \"nope\"").unwrap();
        assert!(
            Route::build(&c, &only_default())
                .unwrap_err()
                .contains("\"nope\"")
        );
        let c: RouteConfig =
            toml::from_str("receiver = \"default\"\n[[routes]]\nmatchers = ['a=~\"(\"']").unwrap();
        let err = Route::build(&c, &only_default()).unwrap_err();
        assert!(err.contains("matchers") && err.contains("a=~"), "{err}");
    }

    #[test]
    fn time_intervals_are_named_own_and_not_on_the_root() {
        use crate::dispatch::time_interval::TimeIntervalConfig;
        let always: TimeIntervalConfig =
            toml::from_str("name = \"always\"\n[[time_intervals]]").unwrap();
        let intervals = BTreeMap::from([(
            "always".to_string(),
            Arc::new(TimeInterval::new(&always).unwrap()),
        )]);
        let names = Names {
            receivers: &["default"],
            time_intervals: &intervals,
        };
        let build = |text: &str| {
            let c: RouteConfig = toml::from_str(text).unwrap();
            Route::build(&c, &names)
        };
        let t = build(
            "receiver = \"default\"\n[[routes]]\nmute_time_intervals = [\"always\"]\n\
             [[routes.routes]]\nmatchers = [\"a=b\"]\n\
             [[routes]]\nactive_time_intervals = [\"always\"]",
        )
        .unwrap();
        assert!(t.routes[0].time_muted(0));
        assert!(!t.routes[0].routes[0].time_muted(0), "not inherited");
        assert!(!t.routes[1].time_muted(0));
        assert!(!t.time_muted(0));
        let err = build("receiver = \"default\"\n[[routes]]\nmute_time_intervals = [\"never\"]")
            .unwrap_err();
        assert_eq!(
            err,
            "mute_time_intervals: no [[time_interval]] named \"never\" (known: always)"
        );
        let err =
            build("receiver = \"default\"\nactive_time_intervals = [\"always\"]").unwrap_err();
        assert!(err.contains("the root route must not have"), "{err}");
    }
}
