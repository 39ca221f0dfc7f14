//! The server configuration file (TOML). Every field has a default, so `faultline serve`
//! runs with no file at all; command-line flags override the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::connections::{ConnectionConfig, Connections};
use crate::model::units::PromDuration;
use crate::model::units::{ByteSize, SecretRef};
use crate::retention::RetentionConfig;
use crate::rules::Defaults;
use crate::runtime::Limits;

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
    /// Default CPU deadline of one rule evaluation.
    pub rule_timeout: PromDuration,
    /// Default memory cap of a plugin instance.
    pub plugin_memory: ByteSize,
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
    /// How documents sent to the Elasticsearch bulk API become log records
    /// (`[elasticsearch]`: `message_field`, `label_fields`).
    pub elasticsearch: crate::ingest::elasticsearch::ElasticsearchConfig,
    /// Named outbound connections (`[connection.NAME]`) that recovery actions may be
    /// granted: an HTTP API (URL, bearer token, TLS CA) or a Kafka cluster (brokers).
    pub connection: BTreeMap<String, ConnectionConfig>,
    /// Who may call the API (`[auth]`): bearer tokens and their roles; none, the API is
    /// open.
    pub auth: AuthConfig,
    /// How long finished actions, decisions and notification log entries are kept
    /// (`[retention]`).
    pub retention: RetentionConfig,
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
            max_body: ByteSize(16 << 20),
            max_series: 2_000_000,
            lookback: PromDuration(std::time::Duration::from_secs(300)),
            resolve_timeout: PromDuration(std::time::Duration::from_secs(300)),
            webhook_resolve_timeout: PromDuration(std::time::Duration::from_secs(
                4 * 3600 + 10 * 60,
            )),
            restore_grace: PromDuration(std::time::Duration::from_secs(60)),
            scrape: Vec::new(),
            elasticsearch: Default::default(),
            connection: BTreeMap::new(),
            auth: AuthConfig::default(),
            retention: RetentionConfig::default(),
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
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.rules_dir, &mut c.data_dir]
            .into_iter()
            .chain(c.plugin_dirs.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
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
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// What rules get where their files are silent, from this configuration.
    pub fn rule_defaults(&self) -> Defaults {
        let d = Defaults::default();
        Defaults {
            interval: self.evaluation_interval.0,
            rule_limits: Limits {
                timeout: self.rule_timeout.0,
                memory: self.plugin_memory.0,
                ..d.rule_limits
            },
            receiver_limits: Limits {
                memory: self.plugin_memory.0,
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
