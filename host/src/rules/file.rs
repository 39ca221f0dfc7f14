//! The rule file format (TOML), as plain data. `load.rs` builds the validated runtime
//! objects from it.
//!
//! ```toml
//! [[group]]
//! name = "node"
//! interval = "15s"
//!
//! [[group.rule]]
//! name = "HighLoad"
//! plugin = "threshold"
//! select = 'node_load1{job="node"}'
//! for = "1m"
//! params = { above = 4.0 }
//! labels = { severity = "page" }
//! annotations = { summary = "Load {{ $value }} on {{ $labels.instance }}" }
//! recovery = "ops-webhook"
//!
//! [[receiver]]
//! name = "ops-webhook"
//! plugin = "webhook"
//! params = { url = "http://127.0.0.1:5001/hook" }
//! grants = { http = ["127.0.0.1:5001"], secret = { env = "WEBHOOK_SECRET" } }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::inputs::Inputs;
use super::selector::{LogSelector, Selector};
use crate::dispatch::inhibit::InhibitRuleConfig;
use crate::dispatch::route::RouteConfig;
use crate::dispatch::time_interval::TimeIntervalConfig;
use crate::model::units::{ByteSize, PromDuration, SecretRef};
use crate::outbox::rails::RailsConfig;

/// One rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Rule groups: each evaluated on its own interval.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// Recovery actions that rules route to.
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<ReceiverConfig>,
    /// Inhibition rules, as in Alertmanager: while a source alert fires, matching target
    /// alerts with equal values of the `equal` labels are not notified.
    #[serde(default, rename = "inhibit")]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// The routing tree (at most one file of the directory may define it).
    pub route: Option<RouteConfig>,
    /// Named time intervals that routes' `mute_time_intervals` and `active_time_intervals`
    /// refer to, as Alertmanager's `time_intervals`.
    #[serde(default, rename = "time_interval")]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// Localization rules: which incidents they apply to, the data they need, the plugin.
    #[serde(default, rename = "localizer")]
    pub localizers: Vec<LocalizerConfig>,
    /// How the localizers' suspects combine (at most one file of the directory may say).
    pub localization: Option<LocalizationConfig>,
}

/// How suspects from several localizers combine into one ranking (`[localization]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizationConfig {
    /// The labels that name an entity, in order: suspects merge on the first of them they
    /// have (`instance`, else `node`, `pod`, `service`), so `{instance="n4", service="db"}`
    /// from one localizer and `{instance="n4"}` from another are one entity. Default
    /// `["instance", "node", "pod", "service"]`.
    pub entity: Option<Vec<String>>,
    /// Suspects kept per incident, after merging (default 10).
    pub top: Option<usize>,
    /// The lead the top suspect needs over the next one for the localization to count as
    /// clear (default 0.1); receivers' `rails.min_margin` may ask for more.
    pub min_margin: Option<f64>,
}

/// A localization rule: ranks suspects for the incidents it matches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizerConfig {
    /// Unique across the rules directory.
    pub name: String,
    /// The localizer plugin.
    pub plugin: String,
    /// Alertmanager matchers on the incident's alerts, e.g. `['alertname="HighErrorRate"']`:
    /// the rule applies to an incident when one of its alerts matches them all. Empty: every
    /// incident.
    #[serde(default, rename = "match")]
    pub matchers: Vec<String>,
    /// Series handed to the plugin (every sample in `range`).
    pub select: Option<Selector>,
    /// Log records handed to the plugin (those in `range`).
    pub logs: Option<LogSelector>,
    /// How far back from the incident's notification the data goes (default 1h).
    pub range: Option<PromDuration>,
    /// Parameters handed to the plugin (as JSON).
    #[serde(default)]
    pub params: toml::Table,
    /// JSON files of the rules directory added to `params` under the given keys, e.g.
    /// `{ graph = "topology.json" }`. A change to the file reloads the rules.
    #[serde(default)]
    pub files: BTreeMap<String, PathBuf>,
    /// Time one call may take, host calls included (default: the server's rule timeout).
    pub timeout: Option<PromDuration>,
    /// Memory cap of the plugin instance.
    pub memory: Option<ByteSize>,
    /// How much this localizer's score counts when suspects merge (default 1): an entity's
    /// score is the weighted mean of the localizers' scores for it.
    pub weight: Option<f64>,
}

/// A group of rules evaluated together, in order, on one interval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Unique across the rules directory.
    pub name: String,
    /// How often the group is evaluated; the server's default if unset.
    pub interval: Option<PromDuration>,
    /// The group's rules.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// A detection rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert name (`alertname` label); unique within its group.
    pub name: String,
    /// The detector plugin: `<name>.wasm` in the rules directory or its `plugins/` folder.
    pub plugin: String,
    /// Series selector in Prometheus notation, or a table of named ones
    /// (`{ errors = '…', total = '…' }`) that the plugin reads by name.
    pub select: Option<Inputs<Selector>>,
    /// With a range, the plugin gets every sample in it instead of the latest per series;
    /// also the window of log records.
    pub range: Option<PromDuration>,
    /// Log selector: a LogQL stream selector and line filters, or a table of named ones.
    /// Needs `range`.
    pub logs: Option<Inputs<LogSelector>>,
    /// Parameters handed to the plugin (as JSON).
    #[serde(default)]
    pub params: toml::Table,
    /// How long a finding must persist before its alert fires.
    #[serde(default, rename = "for")]
    pub for_: PromDuration,
    /// How long an alert keeps firing after its finding is gone.
    #[serde(default)]
    pub keep_firing_for: PromDuration,
    /// Labels added to every alert of the rule.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotation templates (`{{ $labels.instance }}`, `{{ $value }}`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The receiver that handles the rule's alerts.
    pub recovery: Option<String>,
    /// Time one evaluation may take, host calls included (default: the server's).
    pub timeout: Option<PromDuration>,
    /// Memory cap of the plugin instance, e.g. "64MiB" (default: the server's).
    pub memory: Option<ByteSize>,
    /// Most the plugin's state store may hold, keys plus values, e.g. "1MiB" (default: the
    /// server's `plugin_state_bytes`).
    pub state_bytes: Option<ByteSize>,
    /// Most keys the plugin's state store may hold (default: the server's
    /// `plugin_state_keys`).
    pub state_keys: Option<usize>,
}

/// A recovery action: a plugin, its parameters and what it may reach.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique across the rules directory; rules name it in `recovery`.
    pub name: String,
    /// The recovery plugin.
    pub plugin: String,
    /// Parameters handed to the plugin (as JSON).
    #[serde(default)]
    pub params: toml::Table,
    /// Outbound capabilities.
    #[serde(default)]
    pub grants: GrantsConfig,
    /// Wall time one attempt may take (default 30s).
    pub timeout: Option<PromDuration>,
    /// Memory cap of the plugin instance.
    pub memory: Option<ByteSize>,
    /// Actions attempted at once, each on a plugin instance of its own (default 4); the
    /// others wait their turn, so a slow or hung endpoint delays only this receiver.
    pub concurrency: Option<usize>,
    /// Attempts before an action is given up and moved to the dead-letter list (default 10).
    pub max_attempts: Option<u32>,
    /// How long an action is retried before it moves to the dead-letter list (default 1h).
    pub max_age: Option<PromDuration>,
    /// Whether resolved incidents are sent too (default true, as Alertmanager's webhook).
    /// Actions that change systems (restart, scale, cordon) set it to false.
    pub send_resolved: Option<bool>,
    /// Whether the resolution of an alert this receiver was told fired is sent even when a
    /// silence or inhibition started since (default true). Alertmanager drops it, which
    /// leaves remediations and paging incidents open; set false for its behaviour.
    pub send_resolved_after_mute: Option<bool>,
    /// Safety rails: how often, on what and whether the action may run.
    #[serde(default)]
    pub rails: RailsConfig,
}

/// What a recovery plugin may reach.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// Hosts (`host` or `host:port`) HTTP requests may go to.
    #[serde(default)]
    pub http: Vec<String>,
    /// Kafka topics the plugin may produce to.
    #[serde(default)]
    pub kafka: Vec<String>,
    /// Secret for signing request bodies (HMAC-SHA256); the plugin never sees it.
    pub secret: Option<SecretRef>,
    /// Connections of the server configuration the plugin may name (their URL, token and
    /// TLS settings, or Kafka brokers, are added by the host).
    #[serde(default)]
    pub connections: Vec<String>,
}
