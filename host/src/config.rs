//! The server configuration file (TOML). Every field has a default, so `faultline serve`
//! runs with no file at all; command-line flags override the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::cluster::ClusterConfig;
use crate::connections::{ConnectionConfig, Connections};
use crate::metrics::Metrics;
use crate::model::units::PromDuration;
use crate::model::units::{ByteSize, SecretRef};
use crate::retention::RetentionConfig;
use crate::rules::Defaults;
use crate::runtime::{Limits, LogRate, RuntimeConfig, StateQuota};
use crate::server::listener::ListenerConfig;

/// Where `faultline serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9797";

/// The server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP API.
    pub listen: String,
    /// The rules directory.
    pub rules_dir: PathBuf,
    /// Where the database and the compile cache live.
    pub data_dir: PathBuf,
    /// Extra folders searched for plugin components.
    pub plugin_dirs: Vec<PathBuf>,
    /// The URL Faultline is reached at, used in links sent to receivers.
    pub external_url: Option<String>,
    /// How often rule groups are evaluated unless a group says otherwise.
    pub evaluation_interval: PromDuration,
    /// Default deadline of one rule evaluation (time in host calls included).
    pub rule_timeout: PromDuration,
    /// Default memory cap of a plugin instance.
    pub plugin_memory: ByteSize,
    /// Memory all plugin instances together may hold; no rule may ask for more.
    pub plugin_memory_budget: ByteSize,
    /// Default most a rule's state store may hold, in bytes (keys plus values).
    pub plugin_state_bytes: ByteSize,
    /// Default most keys a rule's state store may hold.
    pub plugin_state_keys: usize,
    /// Log lines per second each rule's plugin may write, on average; more are dropped.
    pub plugin_log_rate: f64,
    /// Log lines each rule's plugin may write at once.
    pub plugin_log_burst: u32,
    /// Largest request body accepted.
    pub max_body: ByteSize,
    /// Series kept in memory at most.
    pub max_series: usize,
    /// How far back an instant selector looks for a sample.
    pub lookback: PromDuration,
    /// When an alert posted to `/api/v2/alerts` without `endsAt` resolves unless re-posted
    /// (Alertmanager's `resolve_timeout`).
    pub resolve_timeout: PromDuration,
    /// The same for a firing alert received from an Alertmanager's webhook, which never has
    /// an end: Alertmanager re-sends it every `repeat_interval` (4h by default) at the next
    /// `group_interval` (5m), so the default waits a little longer than that.
    pub webhook_resolve_timeout: PromDuration,
    /// After a restart, how long restored pending and firing alerts are held while the
    /// data that feeds their rules comes back (like Prometheus's `for` grace period).
    pub restore_grace: PromDuration,
    /// Scrape jobs (`[[scrape]]`): static targets pulled like Prometheus does.
    pub scrape: Vec<crate::ingest::scrape::ScrapeConfig>,
    /// Kafka topics consumed in a consumer group (`[[kafka_source]]`): brokers, topics,
    /// format, group.
    pub kafka_source: Vec<crate::ingest::kafka::KafkaSourceConfig>,
    /// How documents sent to the Elasticsearch bulk API become log records
    /// (`[elasticsearch]`: `message_field`, `label_fields`).
    pub elasticsearch: crate::ingest::elasticsearch::ElasticsearchConfig,
    /// Named outbound connections (`[connection.NAME]`) that recovery actions may be
    /// granted: an HTTP API (URL, bearer token, TLS CA) or a Kafka cluster (brokers).
    pub connection: BTreeMap<String, ConnectionConfig>,
    /// `/-/ready` answers 503 while a rule group's evaluation or a receiver's due actions
    /// are behind by more than this.
    pub ready_max_lag: PromDuration,
    /// Who may call the API (`[auth]`): bearer tokens and their roles; none, the API is
    /// open.
    pub auth: AuthConfig,
    /// How rule changes are picked up (`[reload]`: `quiet_period`, `vanished_grace`).
    pub reload: crate::reload::ReloadConfig,
    /// How the API is served (`[listener]`): TLS, the hosts and origins it answers to, and
    /// the limits on slow and concurrent requests.
    pub listener: ListenerConfig,
    /// How long finished actions, decisions and notification log entries are kept
    /// (`[retention]`).
    pub retention: RetentionConfig,
    /// Several instances as one, through etcd (`[cluster]`: `etcd`, `name`, `lease_ttl`,
    /// `prefix`); none, the instance is alone.
    pub cluster: Option<ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            rules_dir: "rules".into(),
            data_dir: "data".into(),
            plugin_dirs: Vec::new(),
            external_url: None,
            evaluation_interval: PromDuration(std::time::Duration::from_secs(15)),
            rule_timeout: PromDuration(std::time::Duration::from_secs(1)),
            plugin_memory: ByteSize(64 << 20),
            plugin_memory_budget: ByteSize(2 << 30),
            plugin_state_bytes: ByteSize(16 << 20),
            plugin_state_keys: 10_000,
            plugin_log_rate: 100.0,
            plugin_log_burst: 200,
            max_body: ByteSize(16 << 20),
            max_series: 2_000_000,
            lookback: PromDuration(std::time::Duration::from_secs(300)),
            resolve_timeout: PromDuration(std::time::Duration::from_secs(300)),
            webhook_resolve_timeout: PromDuration(std::time::Duration::from_secs(
                4 * 3600 + 10 * 60,
            )),
            restore_grace: PromDuration(std::time::Duration::from_secs(60)),
            scrape: Vec::new(),
            kafka_source: Vec::new(),
            elasticsearch: Default::default(),
            connection: BTreeMap::new(),
            ready_max_lag: PromDuration(std::time::Duration::from_secs(120)),
            auth: AuthConfig::default(),
            reload: Default::default(),
            listener: ListenerConfig::default(),
            retention: RetentionConfig::default(),
            cluster: None,
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl Config {
    /// Reads a configuration file; relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        crate::ingest::elasticsearch::Mapping::new(&c.elasticsearch).map_err(|message| {
            ConfigError::Parse {
                path: path.display().to_string(),
                message,
            }
        })?;
        if let Some(cluster) = &c.cluster {
            cluster.check().map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?;
        }
        c.kafka_source
            .iter()
            .try_for_each(|s| s.check())
            .and_then(|()| c.check_plugin_limits())
            .map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.rules_dir, &mut c.data_dir]
            .into_iter()
            .chain(c.plugin_dirs.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        c.listener.resolve(base);
        for t in &mut c.auth.tokens {
            if let SecretRef::File(f) = &mut t.token
                && f.is_relative()
            {
                *f = base.join(&*f);
            }
        }
        for conn in c.connection.values_mut() {
            let token = match &mut conn.token {
                Some(SecretRef::File(f)) => Some(f),
                _ => None,
            };
            let secrets = conn
                .secrets
                .values_mut()
                .chain(conn.password.as_mut())
                .filter_map(|s| match s {
                    SecretRef::File(f) => Some(f),
                    SecretRef::Env(_) => None,
                });
            for p in token.into_iter().chain(conn.ca.as_mut()).chain(secrets) {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(c)
    }

    /// The external URL, defaulting to the listen address.
    pub fn external_url(&self) -> String {
        self.external_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.listener.scheme(), self.listen))
    }

    /// Refuses plugin limits that make no sense.
    fn check_plugin_limits(&self) -> Result<(), String> {
        if !(self.plugin_log_rate.is_finite() && self.plugin_log_rate >= 0.0) {
            return Err(format!(
                "plugin_log_rate: {} is not a rate of lines per second",
                self.plugin_log_rate
            ));
        }
        if self.plugin_state_keys == 0 || self.plugin_state_bytes.0 == 0 {
            return Err("plugin_state_keys and plugin_state_bytes must be above 0".into());
        }
        if self.plugin_memory.0 > self.plugin_memory_budget.0 {
            return Err(format!(
                "plugin_memory ({}) is above plugin_memory_budget ({})",
                self.plugin_memory, self.plugin_memory_budget
            ));
        }
        Ok(())
    }

    /// The Wasm engine's settings from this configuration.
    pub fn runtime_config(&self, metrics: Arc<Metrics>) -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: Some(self.data_dir.join("cache")),
            memory_budget: self.plugin_memory_budget.0,
            log_rate: LogRate {
                per_second: self.plugin_log_rate,
                burst: self.plugin_log_burst,
            },
            metrics,
            ..RuntimeConfig::default()
        }
    }

    /// What rules get where their files are silent, from this configuration.
    pub fn rule_defaults(&self) -> Defaults {
        let d = Defaults::default();
        let state = StateQuota {
            keys: self.plugin_state_keys,
            bytes: self.plugin_state_bytes.0,
        };
        Defaults {
            interval: self.evaluation_interval.0,
            rule_limits: Limits {
                timeout: self.rule_timeout.0,
                memory: self.plugin_memory.0,
                state,
                ..d.rule_limits
            },
            receiver_limits: Limits {
                memory: self.plugin_memory.0,
                state,
                ..d.receiver_limits
            },
            ..d
        }
    }

    /// The configured connections, checked.
    pub fn connections(&self) -> Result<Connections, String> {
        Connections::build(&self.connection, Path::new("."))
    }
}
