//! Connections: named outbound endpoints of the server configuration (an HTTP API with its
//! URL, bearer token and TLS CA; a Kafka cluster with its brokers). A recovery action's
//! grants name the connections it may use; the plugin names one in a request and the host
//! adds what the connection holds. Plugins never see a token, and neither do logs nor the
//! API: tokens are read from a file (again at every use, so rotated tokens are picked up)
//! or an environment variable, and print as `<redacted>`.
//!
//! ```toml
//! [connection.kubernetes]
//! url = "https://10.0.0.1:6443"
//! token = { file = "/var/run/secrets/kubernetes.io/serviceaccount/token" }
//! ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
//!
//! [connection.events]
//! brokers = "kafka-1:9092,kafka-2:9092"
//! ```

pub mod kafka;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::model::units::SecretRef;

/// A connection as written in the server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// An HTTP API: the URL that requests' paths are appended to.
    pub url: Option<String>,
    /// The bearer token sent to the HTTP API (`{ file = "..." }` or `{ env = "..." }`).
    pub token: Option<SecretRef>,
    /// A PEM file of the CA certificates that the HTTPS API's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// A Kafka cluster: bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: Option<String>,
}

/// Where a bearer token comes from.
enum Token {
    /// Read at every use: Kubernetes rotates service-account tokens in place.
    File(PathBuf),
    Value(String),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::File(p) => write!(f, "file {}", p.display()),
            Token::Value(_) => f.write_str("<redacted>"),
        }
    }
}

/// An HTTP API connection.
#[derive(Debug)]
pub struct HttpConnection {
    pub base: reqwest::Url,
    token: Option<Token>,
    /// A client trusting the connection's CA (or the server's default client).
    pub client: reqwest::Client,
}

impl HttpConnection {
    /// The URL of `path` on this connection: the base URL's path joined with it.
    pub fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        if !path.starts_with('/') || path.starts_with("//") {
            return Err(format!(
                "with a connection, the url must be a path starting with '/', not {path:?}"
            ));
        }
        let mut url = self.base.clone();
        let (p, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let joined = format!("{}{p}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(query);
        Ok(url)
    }

    /// The `Authorization` header value, if the connection has a token.
    pub fn authorization(&self) -> Result<Option<String>, String> {
        match &self.token {
            None => Ok(None),
            Some(Token::Value(v)) => Ok(Some(format!("Bearer {v}"))),
            Some(Token::File(p)) => std::fs::read_to_string(p)
                .map(|t| Some(format!("Bearer {}", t.trim())))
                .map_err(|e| format!("cannot read the token file {}: {e}", p.display())),
        }
    }
}

/// A Kafka connection; its producer is created on first use.
pub struct KafkaConnection {
    pub brokers: String,
    producer: OnceLock<Result<Arc<crate::connections::kafka::Producer>, String>>,
}

impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl KafkaConnection {
    /// The connection's producer (created once; must be called inside a Tokio runtime).
    pub fn producer(&self) -> Result<Arc<crate::connections::kafka::Producer>, String> {
        self.producer
            .get_or_init(|| {
                crate::connections::kafka::Producer::new(&self.brokers, "faultline").map(Arc::new)
            })
            .clone()
    }
}

/// One connection.
#[derive(Debug)]
pub enum Connection {
    Http(HttpConnection),
    Kafka(KafkaConnection),
}

impl Connection {
    /// What kind of connection this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Connection::Http(_) => "HTTP",
            Connection::Kafka(_) => "Kafka",
        }
    }
}

/// Every connection of the server configuration, by name.
#[derive(Clone, Debug, Default)]
pub struct Connections(BTreeMap<String, Arc<Connection>>);

impl Connections {
    /// Builds the connections of a configuration; `base` resolves relative file paths.
    /// Errors name the connection and the field.
    pub fn build(
        configs: &BTreeMap<String, ConnectionConfig>,
        base: &Path,
    ) -> Result<Connections, String> {
        let mut out = BTreeMap::new();
        for (name, c) in configs {
            let conn = build_one(c, base).map_err(|e| format!("connection {name:?}: {e}"))?;
            out.insert(name.clone(), Arc::new(conn));
        }
        Ok(Connections(out))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Connection>> {
        self.0.get(name)
    }

    /// Names of every connection.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

fn build_one(c: &ConnectionConfig, base: &Path) -> Result<Connection, String> {
    let resolve = |p: &Path| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.to_path_buf()
        }
    };
    match (&c.url, &c.brokers) {
        (Some(_), Some(_)) => Err("has both `url` (HTTP) and `brokers` (Kafka): pick one".into()),
        (None, None) => Err("needs `url` (an HTTP API) or `brokers` (a Kafka cluster)".into()),
        (None, Some(brokers)) => {
            if c.token.is_some() || c.ca.is_some() {
                return Err("`token` and `ca` apply to HTTP connections (`url`) only".into());
            }
            if brokers
                .split(',')
                .any(|b| b.trim().rsplit_once(':').is_none())
            {
                return Err(format!(
                    "`brokers` must be host:port[,host:port...], not {brokers:?}"
                ));
            }
            Ok(Connection::Kafka(KafkaConnection {
                brokers: brokers.clone(),
                producer: OnceLock::new(),
            }))
        }
        (Some(url), None) => {
            let base_url = reqwest::Url::parse(url).map_err(|e| format!("`url` {url:?}: {e}"))?;
            if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
                return Err(format!("`url` {url:?} must be an http:// or https:// URL"));
            }
            let token = match &c.token {
                None => None,
                Some(SecretRef::Env(var)) => match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => Some(Token::Value(v.trim().to_string())),
                    _ => return Err(format!("`token`: environment variable {var} is not set")),
                },
                Some(SecretRef::File(f)) => {
                    let f = resolve(f);
                    std::fs::metadata(&f)
                        .map_err(|e| format!("`token`: cannot read {}: {e}", f.display()))?;
                    Some(Token::File(f))
                }
            };
            let mut client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .tls_built_in_root_certs(false);
            if let Some(ca) = &c.ca {
                let ca = resolve(ca);
                let pem = std::fs::read(&ca)
                    .map_err(|e| format!("`ca`: cannot read {}: {e}", ca.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("`ca`: {} is not PEM certificates: {e}", ca.display()))?;
                if certs.is_empty() {
                    return Err(format!("`ca`: {} holds no certificate", ca.display()));
                }
                for cert in certs {
                    client = client.add_root_certificate(cert);
                }
            }
            let client = client
                .build()
                .map_err(|e| format!("building the client: {e}"))?;
            Ok(Connection::Http(HttpConnection {
                base: base_url,
                token,
                client,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> HttpConnection {
        let mut configs = BTreeMap::new();
        configs.insert(
            "k".to_string(),
            ConnectionConfig {
                url: Some(url.into()),
                token: None,
                ca: None,
                brokers: None,
            },
        );
        let c = Connections::build(&configs, Path::new(".")).unwrap();
        match Arc::try_unwrap(c.0.into_values().next().unwrap()).unwrap() {
            Connection::Http(h) => h,
            Connection::Kafka(_) => unreachable!(),
        }
    }

    #[test]
    fn paths_join_the_base_url() {
        let c = http("https://api.example:6443/prefix/");
        assert_eq!(
            c.url("/api/v1/nodes/n1?dryRun=All").unwrap().as_str(),
            "https://api.example:6443/prefix/api/v1/nodes/n1?dryRun=All"
        );
        assert!(c.url("http://elsewhere/").is_err());
        assert!(c.url("//elsewhere/x").is_err());
    }

    #[test]
    fn tokens_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let mut configs = BTreeMap::new();
        configs.insert(
            "k".to_string(),
            ConnectionConfig {
                url: Some("http://127.0.0.1:1".into()),
                token: Some(SecretRef::File("token".into())),
                ca: None,
                brokers: None,
            },
        );
        let c = Connections::build(&configs, dir.path()).unwrap();
        let Connection::Http(h) = &**c.get("k").unwrap() else {
            panic!("not HTTP")
        };
        assert_eq!(h.authorization().unwrap().as_deref(), Some("Bearer s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_connections_are_named() {
        let mut configs = BTreeMap::new();
        configs.insert(
            "both".to_string(),
            ConnectionConfig {
                url: Some("http://a".into()),
                token: None,
                ca: None,
                brokers: Some("b:9092".into()),
            },
        );
        let e = Connections::build(&configs, Path::new(".")).unwrap_err();
        assert!(
            e.contains("connection \"both\"") && e.contains("pick one"),
            "{e}"
        );
        configs.clear();
        configs.insert(
            "ca".to_string(),
            ConnectionConfig {
                url: Some("https://a".into()),
                token: None,
                ca: Some("/nonexistent/ca.pem".into()),
                brokers: None,
            },
        );
        let e = Connections::build(&configs, Path::new(".")).unwrap_err();
        assert!(
            e.contains("`ca`") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }
}
