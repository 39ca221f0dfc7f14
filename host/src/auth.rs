//! Who may call the API: optional bearer tokens, each with a role, read from files (or the
//! environment) named in the server configuration:
//!
//! ```toml
//! [auth]
//! tokens = [
//!   { role = "read", token = { file = "tokens/grafana" } },      # dashboards, the console
//!   { role = "write", token = { file = "tokens/prometheus" } },  # ingestion, alert senders
//!   { role = "admin", token = { env = "FAULTLINE_ADMIN_TOKEN" } }, # on-call engineers
//! ]
//! ```
//!
//! - `read`: every `GET` and `HEAD`, and the query API's form `POST`s;
//! - `write`: also what adds data: ingestion (push, remote_write, Loki, NDJSON,
//!   Elasticsearch bulk) and alert intake (Alertmanager API, webhooks);
//! - `admin`: also what changes what Faultline does: `/-/reload`, silences, and retrying
//!   an action of the outbox.
//!
//! A request names its token as `Authorization: Bearer <token>`, or as the password of
//! `Authorization: Basic` (the user name is not looked at) for senders that only speak
//! basic auth, such as rsyslog's and Filebeat's Elasticsearch outputs. Without tokens configured
//! the API is open, as Prometheus's and Alertmanager's are by default: then bind it to
//! loopback. The probes (`/-/healthy`, `/-/ready`) and the console's page and files (which
//! hold no data; the page asks for a token) are always open.

use std::path::Path;

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::units::SecretRef;

/// What a token may do; each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// The `[auth]` table of the server configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The tokens and their roles; none: the API is open.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One token of `[auth] tokens`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// What the token may do.
    pub role: Role,
    /// Where the token is: `{ file = "..." }` (relative to the configuration file) or
    /// `{ env = "VAR" }`.
    pub token: SecretRef,
}

/// The tokens, kept as their SHA-256 digests so that comparing takes the same time
/// whatever the guess.
#[derive(Default)]
pub struct Tokens {
    tokens: Vec<([u8; 32], Role)>,
}

/// A request refused: no or an unknown token (401), or one whose role is not enough (403).
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Unauthenticated,
    Forbidden { role: Role, needed: Role },
}

impl Tokens {
    /// Reads the configured tokens; relative files are relative to `dir`. An error names
    /// the token by its place in the list, never its value.
    pub fn load(config: &AuthConfig, dir: &Path) -> Result<Tokens, String> {
        let mut tokens = Vec::new();
        for (i, t) in config.tokens.iter().enumerate() {
            let secret = t
                .token
                .read(dir)
                .map_err(|e| format!("[auth] tokens[{i}] ({}): {e}", t.role.as_str()))?;
            tokens.push((Sha256::digest(&secret).into(), t.role));
        }
        Ok(Tokens { tokens })
    }

    /// Checks that a request with `headers` may do what needs `needed`.
    pub fn check(&self, headers: &HeaderMap, needed: Role) -> Result<(), Denied> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let presented = presented(headers).map(|token| Sha256::digest(token.trim_ascii()));
        let Some(presented) = presented else {
            return Err(Denied::Unauthenticated);
        };
        let role = self
            .tokens
            .iter()
            .filter(|(digest, _)| same(digest, &presented))
            .map(|(_, role)| *role)
            .max()
            .ok_or(Denied::Unauthenticated)?;
        if role >= needed {
            Ok(())
        } else {
            Err(Denied::Forbidden { role, needed })
        }
    }
}

/// The token a request presents: a bearer token, or the password of basic auth.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    use base64::Engine;
    let (scheme, value) = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.as_bytes().to_vec());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// Compares two digests in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// The role a request needs, or `None` for what is always open.
pub fn needed(method: &Method, path: &str) -> Option<Role> {
    if matches!(path, "/-/healthy" | "/-/ready" | "/") || path.starts_with("/console/") {
        return None;
    }
    // Prometheus's query API takes its parameters as a form POST too (Grafana does so):
    // that reads.
    let query = matches!(
        path,
        "/api/v1/query" | "/api/v1/query_range" | "/api/v1/series" | "/api/v1/labels"
    );
    if matches!(*method, Method::GET | Method::HEAD) || query {
        return Some(Role::Read);
    }
    let admin = path == "/-/reload"
        || path.starts_with("/api/v2/silence")
        || (path.starts_with("/api/v1/outbox/") && path.ends_with("/retry"));
    Some(if admin { Role::Admin } else { Role::Write })
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"faultline\"")],
                "this API needs a token: send `Authorization: Bearer <token>`\n",
            )
                .into_response(),
            Denied::Forbidden { role, needed } => (
                StatusCode::FORBIDDEN,
                format!(
                    "this token's role is {}; this request needs {}\n",
                    role.as_str(),
                    needed.as_str()
                ),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(dir: &Path) -> Tokens {
        for (name, value) in [("r", "read-t"), ("w", "write-t"), ("a", "admin-t\n")] {
            std::fs::write(dir.join(name), value).unwrap();
        }
        let config: AuthConfig = toml::from_str(
            r#"tokens = [
                { role = "read", token = { file = "r" } },
                { role = "write", token = { file = "w" } },
                { role = "admin", token = { file = "a" } },
            ]"#,
        )
        .unwrap();
        Tokens::load(&config, dir).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn basic_auth_presents_its_password_as_the_token() {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path());
        let basic = |credentials: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            let mut headers = HeaderMap::new();
            let value = format!("Basic {encoded}").parse().unwrap();
            headers.insert(header::AUTHORIZATION, value);
            headers
        };
        assert_eq!(t.check(&basic("rsyslog:write-t"), Role::Write), Ok(()));
        assert_eq!(t.check(&basic(":write-t"), Role::Write), Ok(()));
        assert_eq!(
            t.check(&basic("write-t:"), Role::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            t.check(&basic("no colon"), Role::Read),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn each_role_may_do_what_the_ones_before_it_may() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path());
        assert_eq!(t.check(&bearer("read-t"), Role::Read), Ok(()));
        assert_eq!(
            t.check(&bearer("read-t"), Role::Write),
            Err(Denied::Forbidden {
                role: Role::Read,
                needed: Role::Write
            })
        );
        assert_eq!(t.check(&bearer("write-t"), Role::Write), Ok(()));
        assert!(t.check(&bearer("write-t"), Role::Admin).is_err());
        // The file's trailing newline is not part of the token.
        assert_eq!(t.check(&bearer("admin-t"), Role::Admin), Ok(()));
        assert_eq!(
            t.check(&bearer("nope"), Role::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            t.check(&HeaderMap::new(), Role::Read),
            Err(Denied::Unauthenticated)
        );
        // Without tokens everything is open.
        assert_eq!(
            Tokens::default().check(&HeaderMap::new(), Role::Admin),
            Ok(())
        );
    }

    #[test]
    fn routes_need_the_role_of_what_they_change() {
        assert_eq!(needed(&Method::GET, "/-/healthy"), None);
        assert_eq!(needed(&Method::GET, "/console/app.js"), None);
        assert_eq!(needed(&Method::GET, "/api/v2/alerts"), Some(Role::Read));
        assert_eq!(needed(&Method::HEAD, "/logs-app"), Some(Role::Read));
        assert_eq!(needed(&Method::POST, "/api/v1/query"), Some(Role::Read));
        assert_eq!(needed(&Method::POST, "/api/v2/alerts"), Some(Role::Write));
        assert_eq!(needed(&Method::POST, "/api/v1/write"), Some(Role::Write));
        assert_eq!(needed(&Method::POST, "/_bulk"), Some(Role::Write));
        assert_eq!(needed(&Method::POST, "/-/reload"), Some(Role::Admin));
        assert_eq!(needed(&Method::POST, "/api/v2/silences"), Some(Role::Admin));
        assert_eq!(
            needed(&Method::DELETE, "/api/v2/silence/x"),
            Some(Role::Admin)
        );
        assert_eq!(
            needed(&Method::POST, "/api/v1/outbox/3/retry"),
            Some(Role::Admin)
        );
    }

    #[test]
    fn a_missing_token_file_is_named_not_shown() {
        let config: AuthConfig =
            toml::from_str(r#"tokens = [{ role = "admin", token = { file = "/nonexistent/t" } }]"#)
                .unwrap();
        let e = Tokens::load(&config, Path::new(".")).err().unwrap();
        assert!(
            e.starts_with("[auth] tokens[0] (admin): cannot read secret file /nonexistent/t"),
            "{e}"
        );
    }
}
