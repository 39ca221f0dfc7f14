//! Rules: the rules directory loaded into validated runtime objects (groups of detection
//! rules, and receivers that run recovery plugins), each with its configured plugin
//! instance. A directory either loads whole or yields every error found, each naming the
//! file, line, rule and field.
//!
//! `file.rs` is the format (plain data), `load.rs` builds this module's runtime objects
//! from it, `error.rs` says where a problem is; `selector.rs` and `template/` are the
//! languages inside rule files; `vanished.rs` keeps what removed rules still need.

pub mod error;
pub mod file;
pub mod inputs;
pub mod load;
pub mod selector;
pub mod template;
pub mod vanished;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alerts::LabelsBySeries;
use crate::connections::Connections;
use crate::db::Db;
use crate::dispatch::inhibit::Inhibitor;
use crate::dispatch::route::Route;
use crate::dispatch::time_interval::TimeInterval;
use crate::model::Labels;
use crate::outbox::rails::RailsConfig;
use crate::runtime::instance::{Instance, Selection};
use crate::runtime::pool::Pool;
use crate::runtime::{Limits, Plugin, Runtime};
use crate::store::MatchCache;
use inputs::Inputs;
use selector::{LogSelector, Selector};
use template::Template;

/// Defaults the server applies where a rule file is silent.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub interval: Duration,
    pub rule_limits: Limits,
    pub receiver_limits: Limits,
    pub max_attempts: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interval: Duration::from_secs(15),
            rule_limits: Limits::default(),
            receiver_limits: Limits {
                timeout: Duration::from_secs(30),
                ..Limits::default()
            },
            max_attempts: 10,
        }
    }
}

/// What loading needs from the server.
pub struct LoadContext<'a> {
    pub runtime: &'a Runtime,
    pub db: &'a Db,
    /// Extra folders searched for `<plugin>.wasm`, after the rules directory and its `plugins/`.
    pub plugin_dirs: &'a [PathBuf],
    pub defaults: &'a Defaults,
    /// Runtime that drives plugins' outbound I/O.
    pub io: Option<tokio::runtime::Handle>,
    pub http: reqwest::Client,
    /// The server's connections, which receivers' grants may name; `None` where none are
    /// used (`faultline test`), and grants are not checked against them.
    pub connections: Option<&'a Connections>,
}

/// A loaded rules directory.
pub struct RuleSet {
    pub groups: Vec<Arc<Group>>,
    pub receivers: BTreeMap<String, Arc<Receiver>>,
    /// The inhibit rules of every file, validated and indexed.
    pub inhibitor: Inhibitor,
    /// The routing tree, if a file defines one.
    pub tree: Option<Route>,
    /// The time intervals of every file, by name.
    pub time_intervals: BTreeMap<String, Arc<TimeInterval>>,
    /// Localization rules, in file order.
    pub localizers: Vec<Arc<LocalizerRule>>,
    /// How their suspects combine.
    pub localization: Localization,
}

/// How suspects from several localizers combine: validated `[localization]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Localization {
    /// The labels naming an entity, in order of preference.
    pub entity: Vec<String>,
    /// Suspects kept per incident, after merging.
    pub top: usize,
    /// The lead the top suspect needs for the localization to be clear.
    pub min_margin: f64,
}

impl Default for Localization {
    fn default() -> Self {
        Localization {
            entity: ["instance", "node", "pod", "service"]
                .map(String::from)
                .to_vec(),
            top: 10,
            min_margin: 0.1,
        }
    }
}

impl RuleSet {
    /// The largest range any rule selects.
    pub fn max_range(&self) -> Duration {
        self.rules()
            .filter_map(|r| r.range)
            .chain(self.localizers.iter().map(|l| l.range))
            .max()
            .unwrap_or_default()
    }

    /// Every rule, group by group.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }

    /// Why alerts can arrive that no route takes, if they can: without a `[route]`, alerts
    /// posted to the Alertmanager API and those of rules without `recovery` reach no one.
    /// `check` and `serve` warn with it.
    pub fn unrouted(&self) -> Option<String> {
        if self.tree.is_some() {
            return None;
        }
        let silent: Vec<String> = self
            .rules()
            .filter(|r| r.recovery.is_none())
            .map(|r| r.id())
            .collect();
        let rules = match silent.len() {
            0 => String::new(),
            n if n <= 5 => format!(
                ", nor do the alerts of rules without `recovery` ({})",
                silent.join(", ")
            ),
            n => format!(
                ", nor do the alerts of {n} rules without `recovery` ({}, ...)",
                silent[..5].join(", ")
            ),
        };
        Some(format!(
            "no [route] in the rules directory: alerts posted to /api/v2/alerts (Prometheus, \
             amtool) reach no receiver{rules}; add a [route] with a default `receiver`"
        ))
    }
}

/// Rules evaluated together on one interval.
pub struct Group {
    pub name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub rules: Vec<Arc<Rule>>,
}

/// A validated detection rule and its plugin instance.
pub struct Rule {
    pub name: String,
    pub group: String,
    pub file: PathBuf,
    /// The line of the file where the rule is declared, when found.
    pub line: Option<usize>,
    pub select: Option<Inputs<Selector>>,
    pub range: Option<Duration>,
    pub logs: Option<Inputs<LogSelector>>,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub labels: Labels,
    pub annotations: Vec<(String, Template)>,
    pub recovery: Option<String>,
    pub plugin: Arc<Plugin>,
    /// What one evaluation works with; locked for the evaluation.
    pub exec: Mutex<RuleExec>,
}

/// A rule's plugin instance and reusable evaluation buffers.
pub struct RuleExec {
    pub instance: Instance,
    pub cache: MatchCache,
    pub selection: Selection,
    /// The labels its alerts got, by series.
    pub alert_labels: LabelsBySeries,
}

impl RuleExec {
    /// Evaluations by `instance`, with empty buffers.
    pub fn new(instance: Instance) -> RuleExec {
        RuleExec {
            instance,
            cache: MatchCache::default(),
            selection: Selection::default(),
            alert_labels: LabelsBySeries::default(),
        }
    }
}

impl Rule {
    /// `group/name`: how the rule is named in logs, metrics and the API.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }

    /// The series selectors, one per input.
    pub fn series_selectors(&self) -> &[Selector] {
        self.select.as_ref().map_or(&[], Inputs::selectors)
    }

    /// The log selectors, one per input.
    pub fn log_selectors(&self) -> &[LogSelector] {
        self.logs.as_ref().map_or(&[], Inputs::selectors)
    }
}

/// A validated recovery action and its plugin instance.
pub struct Receiver {
    pub name: String,
    pub file: PathBuf,
    pub plugin: Arc<Plugin>,
    pub max_attempts: u32,
    /// How long an action is retried before it is dead-lettered.
    pub max_age: Duration,
    pub send_resolved: bool,
    /// Whether resolutions owed for notified alerts are sent even while they are muted.
    pub send_resolved_after_mute: bool,
    pub rails: RailsConfig,
    /// Its plugin instances, one per attempt running at once.
    pub instances: Pool,
}

/// A validated localization rule and its plugin instance.
pub struct LocalizerRule {
    pub name: String,
    pub file: PathBuf,
    pub matchers: Vec<crate::model::matcher::Matcher>,
    pub select: Option<Selector>,
    pub logs: Option<LogSelector>,
    pub range: Duration,
    /// How much its scores count when suspects merge.
    pub weight: f64,
    pub plugin: Arc<Plugin>,
    pub exec: Mutex<RuleExec>,
}

impl LocalizerRule {
    /// Whether the rule applies to an incident with these alerts' labels.
    pub fn applies<'a>(&self, mut alerts: impl Iterator<Item = &'a Labels>) -> bool {
        self.matchers.is_empty()
            || alerts.any(|l| crate::model::matcher::matches_all(&self.matchers, l))
    }
}

/// Whether a file in the rules directory is a rule unit test (`*_test.toml`) rather than a
/// rule file.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.toml"))
}

/// How long a recovery action is retried unless its receiver says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// How far back a localizer's data goes unless it says otherwise.
pub const DEFAULT_LOCALIZER_RANGE: Duration = Duration::from_secs(3600);
