//! The rule file format (TOML), as plain data. `rules.rs` builds the validated runtime
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

use super::duration::PromDuration;
use super::selector::{LogSelector, Selector};

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
    /// Localization rules: which incidents they apply to, the data they need, the plugin.
    #[serde(default, rename = "localizer")]
    pub localizers: Vec<LocalizerConfig>,
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
    /// CPU time one call may take (default: the server's rule timeout).
    pub timeout: Option<PromDuration>,
    /// Memory cap of the plugin instance.
    pub memory: Option<ByteSize>,
}

/// One inhibition rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers the firing source alert must satisfy, e.g. `['severity="critical"']`.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Matchers the inhibited target alert must satisfy.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Labels whose values must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
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
    /// Series selector in Prometheus notation.
    pub select: Option<Selector>,
    /// With a range, the plugin gets every sample in it instead of the latest per series;
    /// also the window of log records.
    pub range: Option<PromDuration>,
    /// Log selector: a LogQL stream selector and line filters. Needs `range`.
    pub logs: Option<LogSelector>,
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
    /// CPU time one evaluation may take (default: the server's).
    pub timeout: Option<PromDuration>,
    /// Memory cap of the plugin instance, e.g. "64MiB" (default: the server's).
    pub memory: Option<ByteSize>,
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
    /// Attempts before an action is given up and moved to the dead-letter list (default 10).
    pub max_attempts: Option<u32>,
    /// How long an action is retried before it moves to the dead-letter list (default 1h).
    pub max_age: Option<PromDuration>,
    /// Whether resolved incidents are sent too (default true, as Alertmanager's webhook).
    /// Actions that change systems (restart, scale, cordon) set it to false.
    pub send_resolved: Option<bool>,
    /// Safety rails: how often, on what and whether the action may run.
    #[serde(default)]
    pub rails: RailsConfig,
}

/// Safety rails of a recovery action. The *target* of an action is the best suspect of the
/// incident (projected on `target` labels when given); without suspects it is the incident.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RailsConfig {
    /// Labels naming what the action acts on, e.g. `["instance"]`: the target is the best
    /// suspect that has them. Without a suspect that has them the action is skipped.
    #[serde(default)]
    pub target: Vec<String>,
    /// Suspects scoring below this are not acted on (skipped, and recorded).
    pub min_score: Option<f64>,
    /// At most N actions per target per period, written `"3/1h"`.
    pub rate_limit: Option<RateLimit>,
    /// After an action on a target, no other action on it for this long.
    pub cooldown: Option<PromDuration>,
    /// Record and log what would be done; do nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// At most `count` actions per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: std::time::Duration,
}

impl std::str::FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid rate limit {s:?}: expected a count and a period such as \"3/1h\"");
        let (n, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per: PromDuration = per.trim().parse().map_err(|_| bad())?;
        if count == 0 || per.0.is_zero() {
            return Err(format!(
                "invalid rate limit {s:?}: the count and the period must be more than 0"
            ));
        }
        Ok(RateLimit { count, per: per.0 })
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
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

/// Where a secret comes from: never inline in a rule file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretRef {
    /// An environment variable of the server.
    Env(String),
    /// A file (relative paths are relative to the rules directory); surrounding white space
    /// is trimmed.
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret; relative files are relative to `dir`. Errors say where it was
    /// looked for, never what it is.
    pub fn read(&self, dir: &std::path::Path) -> Result<Vec<u8>, String> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
                _ => Err(format!("environment variable {var} is not set")),
            },
            SecretRef::File(f) => {
                let f = if f.is_relative() {
                    dir.join(f)
                } else {
                    f.clone()
                };
                match std::fs::read_to_string(&f) {
                    Ok(v) if !v.trim().is_empty() => Ok(v.trim().as_bytes().to_vec()),
                    Ok(_) => Err(format!("secret file {} is empty", f.display())),
                    Err(e) => Err(format!("cannot read secret file {}: {e}", f.display())),
                }
            }
        }
    }
}

/// A size in bytes, written `64MiB`, `512KiB`, `1GiB` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: usize = num.parse().map_err(|_| {
            format!("invalid size {s:?}: expected a number and a unit such as 64MiB")
        })?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "KB" => 1 << 10,
            "MiB" | "M" | "MB" => 1 << 20,
            "GiB" | "G" | "GB" => 1 << 30,
            u => {
                return Err(format!(
                    "invalid size {s:?}: unknown unit {u:?} (use B, KiB, MiB or GiB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n as usize)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}
