//! Requests a browser can be made to send: a page on another site may POST to the API
//! (a form, or `fetch` with a "simple" body type, sent without asking first), and with DNS
//! rebinding even read what the API answers. So:
//!
//! - `Host` must name this server: `localhost`, an IP address (rebinding needs a name), the
//!   external URL's host, the listen address's, or one of `[listener] allowed_hosts`;
//!   anything else gets 421.
//! - A request that changes something (one that needs the `write` or `admin` role, see
//!   [`crate::auth`]) and carries an `Origin` must come from the API's own origin, the
//!   external URL's, or one of `[listener] allowed_origins`; anything else gets 403.
//! - Routes whose body is JSON or protobuf require that `Content-Type` ([`require`]), which
//!   a page cannot send without the browser asking the API first (CORS), and the API never
//!   agrees. The routes that take what Prometheus's own do (the Pushgateway push, the query
//!   API's form `POST`s) take any body type, as Prometheus does.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::auth::{self, Role};

/// The hosts and origins the API answers to, from the configuration.
pub struct Allowed {
    any_host: bool,
    hosts: Vec<String>,
    any_origin: bool,
    origins: Vec<String>,
    scheme: &'static str,
}

impl Allowed {
    pub fn new(config: &crate::config::Config) -> Arc<Allowed> {
        let listener = &config.listener;
        let external = config.external_url();
        let external: Option<Uri> = external.parse().ok();
        let mut hosts: Vec<String> = listener
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        hosts.push("localhost".into());
        hosts.extend(external.as_ref().and_then(Uri::host).map(str::to_string));
        hosts.extend(host_name(&config.listen).map(str::to_string));
        let mut origins: Vec<String> = listener
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if let Some(uri) = &external
            && let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority())
        {
            origins.push(format!("{scheme}://{authority}").to_ascii_lowercase());
        }
        Arc::new(Allowed {
            any_host: hosts.iter().any(|h| h == "*"),
            hosts: hosts
                .into_iter()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                .collect(),
            any_origin: origins.iter().any(|o| o == "*"),
            origins,
            scheme: listener.scheme(),
        })
    }

    /// Whether a `Host` header names this server.
    fn host(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        let name = name.trim_matches(['[', ']']);
        self.any_host
            || name.parse::<IpAddr>().is_ok()
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether a page of `origin` may change things, for a request to `host`.
    fn origin(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = host.map(|h| format!("{}://{}", self.scheme, h.to_ascii_lowercase()));
        self.any_origin || own.as_deref() == Some(&origin) || self.origins.contains(&origin)
    }
}

/// The host name of `host[:port]` or `[v6]:port`; none if it is empty.
fn host_name(authority: &str) -> Option<&str> {
    let name = if authority.starts_with('[') {
        authority.split_once(']').map_or(authority, |(v6, _)| v6)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(name, _)| name)
    };
    let name = name.trim_start_matches('[');
    (!name.is_empty()).then_some(name)
}

/// The middleware: refuses a foreign `Host`, and a foreign `Origin` on a request that
/// changes something.
pub async fn check(State(allowed): State<Arc<Allowed>>, req: Request, next: Next) -> Response {
    let host = super::header_str(req.headers(), header::HOST);
    if let Some(host) = host
        && !allowed.host(host)
    {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer to the host {host:?}: add its name to \
                 [listener] allowed_hosts in the server configuration if it should"
            ),
        )
        .into_response();
    }
    let changes = matches!(
        auth::needed(req.method(), req.uri().path()),
        Some(Role::Write | Role::Admin)
    );
    if changes
        && let Some(origin) = super::header_str(req.headers(), header::ORIGIN)
        && !allowed.origin(origin, host)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "pages from the origin {origin:?} may not change anything here: add it to \
                 [listener] allowed_origins in the server configuration if they should"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Refuses a request whose `Content-Type` is not one of `expected` (media types, without
/// parameters) with 415, naming the first. JSON routes also take any `+json` type.
pub fn require(headers: &HeaderMap, expected: &[&str]) -> Result<(), ApiError> {
    let given = super::header_str(headers, header::CONTENT_TYPE);
    let media = crate::ingest::media_type(given);
    let json = expected.contains(&"application/json") && media.ends_with("+json");
    if expected.contains(&media.as_str()) || json {
        return Ok(());
    }
    let given = given.map_or("none".to_string(), |g| format!("{g:?}"));
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Content-Type {given} is not supported here: send {}",
            expected[0]
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn allowed(toml: &str) -> Arc<Allowed> {
        let config: Config = toml::from_str(toml).unwrap();
        Allowed::new(&config)
    }

    #[test]
    fn hosts() {
        let a = allowed(
            "listen = \"0.0.0.0:9797\"\nexternal_url = \"https://alerts.example.com/fl\"\n\
             [listener]\nallowed_hosts = [\"Faultline.internal\"]",
        );
        for ok in [
            "localhost:9797",
            "LOCALHOST",
            "127.0.0.1:9797",
            "[::1]:9797",
            "10.1.2.3",
            "alerts.example.com",
            "faultline.internal:9797",
        ] {
            assert!(a.host(ok), "{ok}");
        }
        for refused in ["evil.example:9797", "localhost.evil.example", "", ":9797"] {
            assert!(!a.host(refused), "{refused}");
        }
        assert!(allowed("[listener]\nallowed_hosts = [\"*\"]").host("any.example"));
    }

    #[test]
    fn origins() {
        let a = allowed(
            "external_url = \"https://alerts.example.com/fl\"\n\
             [listener]\nallowed_origins = [\"https://grafana.example.com/\"]",
        );
        assert!(a.origin("http://127.0.0.1:9797", Some("127.0.0.1:9797")));
        assert!(a.origin("https://alerts.example.com", Some("127.0.0.1:9797")));
        assert!(a.origin("https://grafana.example.com", Some("127.0.0.1:9797")));
        // Another port, another scheme, another site, or an opaque origin.
        for refused in [
            "http://127.0.0.1:8080",
            "https://127.0.0.1:9797",
            "http://evil.example",
            "null",
        ] {
            assert!(!a.origin(refused, Some("127.0.0.1:9797")), "{refused}");
        }
    }

    #[test]
    fn content_types() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            h
        };
        let json = ["application/json"];
        assert!(require(&with("application/json; charset=utf-8"), &json).is_ok());
        assert!(require(&with("application/merge-patch+json"), &json).is_ok());
        for simple in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let e = require(&with(simple), &json).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert!(e.message.contains("send application/json"), "{}", e.message);
        }
        let e = require(&HeaderMap::new(), &json).unwrap_err();
        assert_eq!(
            e.message,
            "Content-Type none is not supported here: send application/json"
        );
    }
}
