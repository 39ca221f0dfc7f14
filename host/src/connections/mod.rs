//! Connections: named outbound endpoints of the server configuration (an HTTP API with its
//! URL, bearer token and TLS CA; a Kafka cluster with its brokers; an SMTP server with its
//! credentials and sender, see [`smtp`]). A recovery action's
//! grants name the connections it may use; the plugin names one in a request and the host
//! adds what the connection holds. Plugins never see a token, and neither do logs nor the
//! API: tokens are read from a file (again at every use, so rotated tokens are picked up)
//! or an environment variable, and print as `<redacted>`. An HTTP connection may also hold
//! named `secrets` that the host fills into a request where the plugin wrote their
//! placeholder (see [`secrets`]).
//!
//! ```toml
//! [connection.kubernetes]
//! url = "https://10.0.0.1:6443"
//! token = { file = "/var/run/secrets/kubernetes.io/serviceaccount/token" }
//! ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
//!
//! [connection.slack]
//! url = "https://hooks.slack.com"
//! secrets = { webhook_path = { file = "/etc/faultline/slack-webhook-path" } }
//!
//! [connection.events]
//! brokers = "kafka-1:9092,kafka-2:9092"
//! ```

pub mod kafka;
pub mod secrets;
pub mod smtp;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::model::units::SecretRef;
use secrets::SecretError;

/// A connection as written in the server configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// An HTTP API: the URL that requests' paths are appended to.
    pub url: Option<String>,
    /// The bearer token sent to the HTTP API (`{ file = "..." }` or `{ env = "..." }`).
    pub token: Option<SecretRef>,
    /// A PEM file of the CA certificates that the HTTPS API's (or the SMTP server's)
    /// certificate must chain to.
    pub ca: Option<PathBuf>,
    /// A Kafka cluster: bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: Option<String>,
    /// Secrets of the HTTP API by name (`{ NAME = { file = "..." } }`, or `{ env = "..." }`),
    /// filled in where a request through this connection has their placeholder. Files are
    /// read again at every use.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretRef>,
    /// A mail server, `host:port`, spoken to with STARTTLS (usually port 587).
    pub smtp: Option<String>,
    /// The sender of mail through the SMTP connection: `Faultline <faultline@example.com>`.
    pub from: Option<String>,
    /// The SMTP user, when the server asks for authentication.
    pub username: Option<String>,
    /// The SMTP user's password (`{ file = "..." }` or `{ env = "..." }`).
    pub password: Option<SecretRef>,
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
    /// Where each named secret is read from (files with absolute paths).
    secrets: BTreeMap<String, SecretRef>,
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

    /// The value of the secret `name`, read now.
    pub fn secret(&self, name: &str) -> Result<Vec<u8>, SecretError> {
        let secret = self
            .secrets
            .get(name)
            .ok_or_else(|| SecretError::Unknown(name.to_string()))?;
        secret
            .read(Path::new("/"))
            .map_err(|cause| SecretError::Unreadable {
                name: name.to_string(),
                cause,
            })
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
    Smtp(smtp::SmtpConnection),
}

impl Connection {
    /// What kind of connection this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Connection::Http(_) => "HTTP",
            Connection::Kafka(_) => "Kafka",
            Connection::Smtp(_) => "SMTP",
        }
    }

    /// The values of the connection's credentials (token, named secrets, password) that can
    /// be read now: what must never appear in what the host stores or logs.
    pub fn secret_values(&self) -> Vec<Vec<u8>> {
        match self {
            Connection::Http(h) => {
                let token = h.authorization().ok().flatten().map(|a| {
                    let token = a.strip_prefix("Bearer ").unwrap_or(&a);
                    token.as_bytes().to_vec()
                });
                let named = h.secrets.keys().filter_map(|n| h.secret(n).ok());
                token.into_iter().chain(named).collect()
            }
            Connection::Kafka(_) => Vec::new(),
            Connection::Smtp(s) => s.password().into_iter().collect(),
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
    // Fields of one kind of connection set on another are refused, not ignored.
    let misplaced = |kind: &str, fields: &[(&str, bool)]| match fields.iter().find(|f| f.1) {
        Some((field, _)) => Err(format!("`{field}` does not apply to {kind} connections")),
        None => Ok(()),
    };
    let read_ca = |ca: &Path| {
        let ca = resolve(ca);
        std::fs::read(&ca).map_err(|e| format!("`ca`: cannot read {}: {e}", ca.display()))
    };
    match (&c.url, &c.brokers, &c.smtp) {
        (None, None, None) => Err(
            "needs `url` (an HTTP API), `brokers` (a Kafka cluster) or `smtp` (a mail server)"
                .into(),
        ),
        (None, None, Some(server)) => {
            misplaced(
                "SMTP",
                &[
                    ("token", c.token.is_some()),
                    ("secrets", !c.secrets.is_empty()),
                ],
            )?;
            let Some(from) = &c.from else {
                return Err("an SMTP connection needs `from`, the sender's address".into());
            };
            let password = match &c.password {
                Some(SecretRef::File(f)) => Some(SecretRef::File(resolve(f))),
                other => other.clone(),
            };
            if let Some(password) = &password {
                // Checked now, so a missing file fails the configuration, not a notification.
                password
                    .read(base)
                    .map_err(|e| format!("`password`: {e}"))?;
            }
            let ca = c.ca.as_deref().map(read_ca).transpose()?;
            smtp::SmtpConnection::new(server, from, c.username.clone(), password, ca.as_deref())
                .map(Connection::Smtp)
        }
        (None, Some(brokers), None) => {
            misplaced(
                "Kafka",
                &[
                    ("token", c.token.is_some()),
                    ("ca", c.ca.is_some()),
                    ("secrets", !c.secrets.is_empty()),
                    ("from", c.from.is_some()),
                    ("username", c.username.is_some()),
                    ("password", c.password.is_some()),
                ],
            )?;
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
        (Some(url), None, None) => {
            misplaced(
                "HTTP",
                &[
                    ("from", c.from.is_some()),
                    ("username", c.username.is_some()),
                    ("password", c.password.is_some()),
                ],
            )?;
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
            let mut secrets = BTreeMap::new();
            for (name, secret) in &c.secrets {
                if !secrets::valid_name(name) {
                    return Err(format!(
                        "`secrets`: {name:?} is not a valid name (letters, digits, `_` and `-`)"
                    ));
                }
                let secret = match secret {
                    SecretRef::File(f) => SecretRef::File(resolve(f)),
                    SecretRef::Env(var) => SecretRef::Env(var.clone()),
                };
                // Checked now, so a missing file fails the configuration, not a notification.
                secret
                    .read(base)
                    .map_err(|e| format!("`secrets.{name}`: {e}"))?;
                secrets.insert(name.clone(), secret);
            }
            // No redirects: the token must not follow one to another host.
            let mut client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .tls_built_in_root_certs(false);
            if let Some(ca) = &c.ca {
                let pem = read_ca(ca)?;
                let ca = resolve(ca);
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
                secrets,
                client,
            }))
        }
        _ => Err(
            "has more than one of `url` (HTTP), `brokers` (Kafka) and `smtp` (mail): pick one"
                .into(),
        ),
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
                secrets: BTreeMap::new(),
                smtp: None,
                from: None,
                username: None,
                password: None,
            },
        );
        let c = Connections::build(&configs, Path::new(".")).unwrap();
        let Connection::Http(h) = Arc::try_unwrap(c.0.into_values().next().unwrap()).unwrap()
        else {
            panic!("not HTTP")
        };
        h
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
                secrets: BTreeMap::new(),
                smtp: None,
                from: None,
                username: None,
                password: None,
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
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "R0UT1NG\n").unwrap();
        let config = |secrets: &[(&str, &str)]| {
            let mut configs = BTreeMap::new();
            configs.insert(
                "pd".to_string(),
                ConnectionConfig {
                    url: Some("http://127.0.0.1:1".into()),
                    secrets: secrets
                        .iter()
                        .map(|(n, f)| (n.to_string(), SecretRef::File(f.into())))
                        .collect(),
                    ..ConnectionConfig::default()
                },
            );
            Connections::build(&configs, dir.path())
        };
        let c = config(&[("routing_key", "key")]).unwrap();
        let Connection::Http(h) = &**c.get("pd").unwrap() else {
            panic!("not HTTP")
        };
        assert_eq!(h.secret("routing_key").unwrap(), b"R0UT1NG");
        assert!(matches!(h.secret("other"), Err(SecretError::Unknown(_))));
        assert!(!format!("{c:?}").contains("R0UT1NG"));

        let e = config(&[("routing_key", "missing")]).unwrap_err();
        assert!(
            e.contains("connection \"pd\": `secrets.routing_key`") && e.contains("missing"),
            "{e}"
        );
        let e = config(&[("a b", "key")]).unwrap_err();
        assert!(e.contains("\"a b\" is not a valid name"), "{e}");
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
                secrets: BTreeMap::new(),
                smtp: None,
                from: None,
                username: None,
                password: None,
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
                secrets: BTreeMap::new(),
                smtp: None,
                from: None,
                username: None,
                password: None,
            },
        );
        let e = Connections::build(&configs, Path::new(".")).unwrap_err();
        assert!(
            e.contains("`ca`") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn smtp_connections_need_a_sender_and_take_no_http_fields() {
        let build = |c: ConnectionConfig| {
            let configs = BTreeMap::from([("mail".to_string(), c)]);
            Connections::build(&configs, Path::new("."))
        };
        let smtp = || ConnectionConfig {
            smtp: Some("mail.example:587".into()),
            from: Some("Faultline <faultline@example.com>".into()),
            ..ConnectionConfig::default()
        };
        let c = build(smtp()).unwrap();
        assert_eq!(c.get("mail").unwrap().kind(), "SMTP");
        let e = build(ConnectionConfig {
            from: None,
            ..smtp()
        })
        .unwrap_err();
        assert!(e.contains("needs `from`"), "{e}");
        let e = build(ConnectionConfig {
            token: Some(SecretRef::Env("T".into())),
            ..smtp()
        })
        .unwrap_err();
        assert!(
            e.contains("`token` does not apply to SMTP connections"),
            "{e}"
        );
        let e = build(ConnectionConfig {
            url: Some("http://a".into()),
            ..smtp()
        })
        .unwrap_err();
        assert!(e.contains("pick one"), "{e}");
        let e = build(ConnectionConfig {
            password: Some(SecretRef::File("/nonexistent/password".into())),
            username: Some("u".into()),
            ..smtp()
        })
        .unwrap_err();
        assert!(
            e.contains("`password`") && e.contains("/nonexistent/password"),
            "{e}"
        );
        let e = build(ConnectionConfig {
            url: Some("http://a".into()),
            username: Some("u".into()),
            ..ConnectionConfig::default()
        })
        .unwrap_err();
        assert!(
            e.contains("`username` does not apply to HTTP connections"),
            "{e}"
        );
    }
}
