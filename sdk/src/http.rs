//! Outbound HTTP, only to the hosts and connections the rule grants (recovery plugins only).
//! Natively, requests are recorded and answered by the test's mock responses: see
//! [`testing::http_respond`](crate::testing::http_respond).
//!
//! ```
//! use faultline_sdk::http::{self, Request};
//!
//! # faultline_sdk::testing::http_respond(Ok(http::Response::new(202)));
//! let response = http::send(
//!     Request::post("/api/v1/restart")
//!         .connection("k8s")
//!         .header("Content-Type", "application/json")
//!         .body(r#"{"pod":"db-0"}"#)
//!         .timeout_ms(5_000),
//! );
//! assert_eq!(response.unwrap().status, 202);
//! ```
//!
//! # Secrets
//!
//! A connection may hold named secrets (`[connection.X] secrets = { NAME = { file = "..." } }`)
//! that a plugin must send but never read: a Slack webhook's path, a PagerDuty routing key.
//! Write [`secret`]`("NAME")` where the secret goes, in the url, a header value or the body;
//! the host fills it in as the request leaves, and the response and errors come back with
//! the secret replaced by `<redacted>`. See [`secret`].

use std::fmt;

use crate::bindings::wit::http as wit;
use crate::host;

/// An outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// An absolute URL; or, with [`connection`](Self::connection), a path appended to the
    /// connection's URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Gives up after this long (the host may cap it).
    pub timeout_ms: Option<u32>,
    /// A connection from the server config: the host adds its URL, token and TLS settings.
    pub connection: Option<String>,
    /// A header under which the host adds an HMAC-SHA256 of the body (`sha256=<hex>`), keyed
    /// with the secret the rule grants; without a granted secret, the host adds nothing.
    pub sign_header: Option<String>,
}

impl Request {
    /// A request with no header, no body, and the host's default timeout.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
            connection: None,
            sign_header: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the timeout, in milliseconds.
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Sends through the named connection of the server config.
    pub fn connection(mut self, name: impl Into<String>) -> Self {
        self.connection = Some(name.into());
        self
    }

    /// Asks the host to sign the body under header `name`.
    pub fn sign_header(mut self, name: impl Into<String>) -> Self {
        self.sign_header = Some(name.into());
        self
    }

    /// The value of the first header named `name`, ignoring case.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, no header and no body (for tests).
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The value of the first header named `name`, ignoring case.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The host's description.
    pub message: String,
}

impl HttpError {
    /// An error (for tests).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The kinds of [`HttpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host or connection is not granted to this rule: retrying will not help.
    Denied,
    /// The request could not be made or timed out: worth retrying.
    Transport,
    /// The request itself is malformed.
    Invalid,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Denied => "denied",
            ErrorKind::Transport => "transport error",
            ErrorKind::Invalid => "invalid request",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for HttpError {}

/// A placeholder for the secret `name` of the request's connection, filled in by the host
/// when the request is sent through a connection holding that secret (and an
/// [`ErrorKind::Invalid`] error when it holds none of that name, or without a connection).
///
/// The placeholder is `{{secret:NAME:KEY}}` with a key of the host's, so text from alerts
/// that merely looks like a placeholder is sent as written. The secret is put in as the
/// file or variable holds it (surrounding white space trimmed), unescaped: keep it where
/// its characters need no quoting, as a URL path or a JSON string of letters and digits.
/// Natively the key is `test`, and [`testing::http_requests`](crate::testing::http_requests)
/// shows the placeholders as the plugin wrote them.
///
/// ```
/// use faultline_sdk::http::{self, Request};
///
/// let body = format!(r#"{{"routing_key": "{}"}}"#, http::secret("routing_key"));
/// let request = Request::post("/v2/enqueue").connection("pagerduty").body(body);
/// # faultline_sdk::testing::http_respond(Ok(http::Response::new(202)));
/// http::send(request).unwrap();
/// assert_eq!(
///     faultline_sdk::testing::http_requests()[0].body,
///     br#"{"routing_key": "{{secret:routing_key:test}}"}"#
/// );
/// ```
pub fn secret(name: &str) -> String {
    host::http_secret_placeholder(name)
}

/// Sends `request` and waits for the response.
pub fn send(request: Request) -> Result<Response, HttpError> {
    host::http_send(&request.into_wit())
        .map(Response::from_wit)
        .map_err(HttpError::from_wit)
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// Crossing the host boundary, which speaks the WIT types (natively too: see `crate::host`).

impl Request {
    fn into_wit(self) -> wit::Request {
        wit::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self.timeout_ms,
            connection: self.connection,
            sign_header: self.sign_header,
        }
    }
}

impl Response {
    fn from_wit(r: wit::Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl HttpError {
    fn from_wit(e: wit::Error) -> Self {
        Self {
            kind: match e.kind {
                wit::ErrorKind::Denied => ErrorKind::Denied,
                wit::ErrorKind::Transport => ErrorKind::Transport,
                wit::ErrorKind::Invalid => ErrorKind::Invalid,
            },
            message: e.message,
        }
    }
}
