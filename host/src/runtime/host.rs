//! The host side of the plugin contract: what a plugin instance's store holds, and the
//! implementations of the interfaces the host exports to plugins (log, clock, state, http,
//! kafka, mail). Outbound capabilities are checked here against the rule's grants.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{clock, http, kafka, log, mail, rule, state, types};
use super::budget::MemoryBudget;
use super::plugin_log::{self, LogBucket};
use super::state_store::{StateQuota, StateWrites};
use crate::connections::secrets::{self, SecretError, Substitution};
use crate::connections::smtp::MailError;
use crate::connections::{Connection, Connections};
use crate::db::Db;
use crate::metrics::Metrics;

/// Where each of a rule's inputs starts: its first row of samples, per `select` input, and
/// its first log record, per `logs` input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    pub samples: Vec<u32>,
    pub logs: Vec<u32>,
}

/// Outbound capabilities granted to a recovery action by its rule file.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Hosts (`host` or `host:port`) that HTTP requests may go to.
    pub http: Vec<String>,
    /// Kafka topics that may be produced to.
    pub kafka: Vec<String>,
    /// The secret used to sign request bodies (HMAC-SHA256), never shown to the plugin.
    pub secret: Option<Vec<u8>>,
    /// Connections of the server configuration the plugin may name.
    pub connections: Vec<String>,
}

impl Grants {
    /// Whether an absolute URL's host (and port) is granted.
    fn allows_url(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let port = url.port_or_known_default();
        self.http.iter().any(|g| match g.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                h.eq_ignore_ascii_case(host) && Some(p.parse::<u16>().unwrap_or(0)) == port
            }
            _ => g.eq_ignore_ascii_case(host),
        })
    }
}

/// Who a plugin instance works for: named in every log line and error.
#[derive(Clone, Debug)]
pub struct Identity {
    pub rule: String,
    pub plugin: String,
}

/// What a detection rule says about its data: what the `rule` import answers.
#[derive(Clone, Debug, Default)]
pub struct RuleSettings {
    pub range: Option<Duration>,
    pub interval: Duration,
    /// Names of the `select` inputs; empty for one unnamed selector.
    pub series_inputs: Vec<String>,
    /// Names of the `logs` inputs; likewise.
    pub log_inputs: Vec<String>,
}

/// Everything a plugin instance's imports may use.
#[derive(Clone)]
pub struct HostContext {
    pub identity: Identity,
    /// The rule's settings (default for localizers and receivers, which do not import them).
    pub rule: RuleSettings,
    /// The key under which the plugin's state store lives (usually the rule's name).
    pub state_scope: String,
    pub db: Db,
    pub grants: Grants,
    /// Runtime to drive outbound I/O from a blocking plugin call.
    pub io: Option<tokio::runtime::Handle>,
    pub http: reqwest::Client,
    /// The server's connections; a plugin may use those its grants name.
    pub connections: Connections,
}

/// What an instance shares with the others of its rule or of the server, and keeps across
/// its re-instantiations.
#[derive(Clone)]
pub struct Shared {
    /// All plugins' memory budget.
    pub memory_budget: Arc<MemoryBudget>,
    /// The rule's log lines.
    pub log: Arc<Mutex<LogBucket>>,
    /// Where dropped log lines are counted.
    pub metrics: Arc<Metrics>,
    /// What the rule's state store may hold.
    pub state_quota: StateQuota,
}

/// The data of one plugin instance's store.
pub struct HostState {
    pub ctx: HostContext,
    shared: Shared,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Bytes one linear memory may grow to.
    memory_cap: usize,
    /// Bytes of the memory budget this instance holds, given back when it is dropped.
    memory_held: usize,
    /// Set when the plugin tried to grow past `memory_cap`.
    pub memory_exceeded: bool,
    /// Set when growing was refused because all plugins' budget is used.
    pub budget_exceeded: bool,
    /// When the current call must end, host calls included.
    pub deadline: Instant,
    /// The current call's state writes, kept if it succeeds.
    pub state: StateWrites,
    /// Where each named input starts in the current evaluation's input.
    pub bounds: Bounds,
    /// The panic the plugin reported during the current call, if it did.
    pub panic: Option<String>,
}

impl HostState {
    pub fn new(ctx: HostContext, shared: Shared, memory_cap: usize) -> Self {
        // Nothing granted: no preopened directories, no environment, no sockets, no stdio.
        let wasi = WasiCtx::builder().build();
        HostState {
            ctx,
            shared,
            wasi,
            table: ResourceTable::new(),
            memory_cap,
            memory_held: 0,
            memory_exceeded: false,
            budget_exceeded: false,
            deadline: Instant::now(),
            state: StateWrites::default(),
            bounds: Bounds::default(),
            panic: None,
        }
    }

    /// Ends the current call's state writes: kept if it succeeded. Errs when a write was
    /// over the quota.
    pub fn finish_state(&mut self, succeeded: bool) -> Result<(), String> {
        let (db, scope) = (&self.ctx.db, &self.ctx.state_scope);
        self.state.finish(db, scope, succeeded)
    }

    /// All plugins' memory budget, in bytes.
    pub fn budget_limit(&self) -> usize {
        self.shared.memory_budget.limit()
    }

    /// Time left before the current call's deadline.
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        self.shared.memory_budget.release(self.memory_held);
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory cap of {} bytes exceeded",
                self.memory_cap
            )));
        }
        let more = desired.saturating_sub(current);
        if !self.shared.memory_budget.reserve(more) {
            self.budget_exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "all plugins' memory budget of {} bytes is used",
                self.shared.memory_budget.limit()
            )));
        }
        self.memory_held += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        // The SDK's panic hook words a panic so; the trap that follows is reported with it.
        if level == log::Level::Error && message.starts_with("panicked at ") {
            self.panic = Some(message.clone());
        }
        let Identity { rule, plugin } = &self.ctx.identity;
        let allowed = self
            .shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if !allowed {
            let metric = "faultline_plugin_log_dropped_total";
            self.shared.metrics.inc(metric, &[("rule", rule)]);
            return;
        }
        // Under the target `plugin`, so a plugin's line never passes for the host's own.
        let message = plugin_log::escape(&message);
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", rule, plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", rule, plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", rule, plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", rule, plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", rule, plugin, "{message}"),
        }
    }
}

impl rule::Host for HostState {
    fn settings(&mut self) -> rule::RuleSettings {
        let r = &self.ctx.rule;
        rule::RuleSettings {
            range_ms: r.range.map(|d| d.as_millis() as i64),
            interval_ms: r.interval.as_millis() as i64,
            series_inputs: r.series_inputs.clone(),
            log_inputs: r.log_inputs.clone(),
        }
    }

    fn input_bounds(&mut self) -> rule::InputStart {
        rule::InputStart {
            samples: self.bounds.samples.clone(),
            logs: self.bounds.logs.clone(),
        }
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> i64 {
        crate::model::time::now_ms()
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.state.get(&self.ctx.db, &self.ctx.state_scope, &key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        let (db, scope) = (&self.ctx.db, &self.ctx.state_scope);
        self.state
            .set(db, scope, self.shared.state_quota, key, value);
    }

    fn delete(&mut self, key: String) {
        self.state.delete(&self.ctx.db, &self.ctx.state_scope, key);
    }
}

fn http_error(kind: http::ErrorKind, message: impl Into<String>) -> http::Error {
    http::Error {
        kind,
        message: message.into(),
    }
}

/// The HTTP client for plugins' requests without a connection. It follows no redirect: a
/// granted host answering 3xx must not send the signed request on to a host that is not
/// granted, so the 3xx goes back to the plugin as any other answer.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with default TLS builds, as reqwest::Client::new() assumes")
}

/// Longest an outbound request may take, whatever the plugin asks for.
const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(60);

impl HostState {
    /// Sends a plugin's request, with its connection's secrets filled in, and scrubs them from
    /// whatever goes back to the plugin: a server may echo the body, an error may quote the URL.
    fn send_http(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        let mut filled = Substitution::default();
        match self.send_http_filled(req, &mut filled) {
            Ok(mut response) => {
                response.body = filled.scrub(&response.body);
                for (_, value) in &mut response.headers {
                    *value = filled.scrub_str(value);
                }
                Ok(response)
            }
            Err(mut e) => {
                e.message = filled.scrub_str(&e.message);
                Err(e)
            }
        }
    }

    fn send_http_filled(
        &mut self,
        mut req: http::Request,
        filled: &mut Substitution,
    ) -> Result<http::Response, http::Error> {
        use http::ErrorKind::{Denied, Invalid, Transport};
        let rule = self.ctx.identity.rule.clone();
        let mut authorization = None;
        let (client, url) = if let Some(name) = &req.connection {
            let conn = self
                .granted_connection(name)
                .map_err(|m| http_error(Denied, m))?;
            let Connection::Http(conn) = &*conn else {
                return Err(http_error(
                    Invalid,
                    format!(
                        "connection {name:?} is a {} connection, not HTTP",
                        conn.kind()
                    ),
                ));
            };
            authorization = conn.authorization().map_err(|m| {
                tracing::error!(rule, connection = %name, "{m}");
                http_error(
                    Transport,
                    format!("connection {name:?}: its token cannot be read"),
                )
            })?;
            let secret_error = |e: SecretError| {
                if let SecretError::Unreadable { cause, .. } = &e {
                    tracing::error!(rule, connection = %name, "{cause}");
                    return http_error(Transport, format!("connection {name:?}: {e}"));
                }
                http_error(Invalid, format!("connection {name:?}: {e}"))
            };
            let path = filled
                .fill_str(&req.url, |s| conn.secret(s))
                .map_err(secret_error)?;
            for (_, value) in &mut req.headers {
                *value = filled
                    .fill_str(value, |s| conn.secret(s))
                    .map_err(secret_error)?;
            }
            req.body = filled
                .fill(&req.body, |s| conn.secret(s))
                .map_err(secret_error)?;
            (
                conn.client.clone(),
                conn.url(&path).map_err(|m| http_error(Invalid, m))?,
            )
        } else {
            let texts = [req.url.as_bytes(), &req.body]
                .into_iter()
                .chain(req.headers.iter().map(|(_, v)| v.as_bytes()));
            if let Some(secret) = texts.filter_map(secrets::first_placeholder).next() {
                return Err(http_error(
                    Invalid,
                    SecretError::NoConnection(secret).to_string(),
                ));
            }
            let url = reqwest::Url::parse(&req.url)
                .map_err(|e| http_error(Invalid, format!("invalid url {:?}: {e}", req.url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(http_error(
                    Invalid,
                    format!("unsupported scheme {:?}", url.scheme()),
                ));
            }
            if !self.ctx.grants.allows_url(&url) {
                tracing::warn!(rule, host = ?url.host_str(), "plugin tried an HTTP host it was not granted");
                return Err(http_error(
                    Denied,
                    format!(
                        "host {:?} is not granted to rule {rule:?}",
                        url.host_str().unwrap_or("")
                    ),
                ));
            }
            (self.ctx.http.clone(), url)
        };
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| http_error(Invalid, format!("invalid method {:?}", req.method)))?;
        let timeout = req
            .timeout_ms
            .map_or(Duration::from_secs(10), |ms| {
                Duration::from_millis(ms.into())
            })
            .min(MAX_HTTP_TIMEOUT)
            .min(self.remaining());
        if timeout.is_zero() {
            return Err(http_error(Transport, "the call's deadline has passed"));
        }
        let mut builder = client
            .request(method, url)
            .timeout(timeout)
            .body(req.body.clone());
        for (name, value) in &req.headers {
            // The connection's credentials are the host's to add.
            if authorization.is_some() && name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            builder = builder.header(name, value);
        }
        if let Some(auth) = authorization {
            builder = builder.header("Authorization", auth);
        }
        if let (Some(header), Some(secret)) = (&req.sign_header, &self.ctx.grants.secret) {
            builder = builder.header(header, sign(secret, &req.body));
        }
        let Some(io) = self.ctx.io.clone() else {
            return Err(http_error(Transport, "no I/O runtime available"));
        };
        // A secret in the URL may be percent-encoded there, beyond what scrubbing finds.
        let quote_url = filled.is_empty();
        io.block_on(async move {
            let resp = builder.send().await.map_err(|e| {
                let kind = if e.is_builder() { Invalid } else { Transport };
                let e = if quote_url { e } else { e.without_url() };
                http_error(kind, error_chain(&e))
            })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let body = resp
                .bytes()
                .await
                .map_err(|e| http_error(Transport, e.to_string()))?;
            Ok(http::Response {
                status,
                headers,
                body: body.to_vec(),
            })
        })
    }
}

impl HostState {
    /// A connection this plugin's grants name; refused (and logged) otherwise.
    fn granted_connection(&self, name: &str) -> Result<std::sync::Arc<Connection>, String> {
        let rule = &self.ctx.identity.rule;
        if !self.ctx.grants.connections.iter().any(|c| c == name) {
            tracing::warn!(rule, connection = %name, "plugin asked for a connection it was not granted");
            return Err(format!("connection {name:?} is not granted to {rule}"));
        }
        self.ctx
            .connections
            .get(name)
            .cloned()
            .ok_or_else(|| format!("connection {name:?} is not in the server configuration"))
    }

    fn produce_kafka(&mut self, msg: kafka::Message) -> Result<(), String> {
        let rule = self.ctx.identity.rule.clone();
        if !self.ctx.grants.kafka.contains(&msg.topic) {
            tracing::warn!(rule, topic = %msg.topic, "plugin tried a Kafka topic it was not granted");
            return Err(format!("topic {:?} is not granted to {rule}", msg.topic));
        }
        let granted = self.ctx.grants.connections.iter();
        let kafka = granted
            .filter_map(|n| self.ctx.connections.get(n))
            .find_map(|c| match &**c {
                Connection::Kafka(k) => Some(k),
                Connection::Http(_) | Connection::Smtp(_) => None,
            });
        let Some(conn) = kafka else {
            return Err(format!(
                "no Kafka connection is granted to {rule}: add one to grants.connections"
            ));
        };
        let Some(io) = self.ctx.io.clone() else {
            return Err("no I/O runtime available".into());
        };
        let producer = {
            let _guard = io.enter();
            conn.producer()?
        };
        let (partition, offset) =
            io.block_on(producer.send(&msg.topic, msg.key.as_deref(), &msg.value, &msg.headers))?;
        tracing::debug!(rule, topic = %msg.topic, partition, offset, "produced");
        Ok(())
    }
}

impl HostState {
    fn send_mail(&mut self, msg: mail::Message) -> Result<(), mail::Error> {
        use mail::ErrorKind::{Denied, Invalid, Rejected, Transient};
        let error = |kind, message: String| mail::Error { kind, message };
        let name = &msg.connection;
        let conn = self
            .granted_connection(name)
            .map_err(|m| error(Denied, m))?;
        let Connection::Smtp(smtp) = &*conn else {
            return Err(error(
                Denied,
                format!(
                    "connection {name:?} is a {} connection, not SMTP",
                    conn.kind()
                ),
            ));
        };
        let Some(io) = self.ctx.io.clone() else {
            return Err(error(Transient, "no I/O runtime available".into()));
        };
        io.block_on(smtp.send(&msg.to, &msg.subject, &msg.body))
            .map_err(|e| {
                let kind = match &e {
                    MailError::Invalid(_) => Invalid,
                    MailError::Transient(_) => Transient,
                    MailError::Rejected(_) => Rejected,
                };
                error(kind, e.to_string())
            })?;
        let rule = &self.ctx.identity.rule;
        tracing::debug!(rule, connection = %name, recipients = msg.to.len(), "mail sent");
        Ok(())
    }
}

/// An error with its causes: reqwest's own message leaves out why (refused, TLS...).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl http::Host for HostState {
    fn send(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        self.send_http(req)
    }

    fn secret_placeholder(&mut self, name: String) -> String {
        secrets::placeholder(&name)
    }
}

impl mail::Host for HostState {
    fn send(&mut self, msg: mail::Message) -> Result<(), mail::Error> {
        self.send_mail(msg)
    }
}

impl kafka::Host for HostState {
    fn produce(&mut self, msg: kafka::Message) -> Result<(), String> {
        self.produce_kafka(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_host_and_port() {
        let g = Grants {
            http: vec!["127.0.0.1:8080".into(), "hooks.example.com".into()],
            ..Grants::default()
        };
        let ok = |u: &str| g.allows_url(&reqwest::Url::parse(u).unwrap());
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(!ok("http://127.0.0.1:8081/x"));
        assert!(ok("https://hooks.example.com/a"));
        assert!(ok("http://HOOKS.example.com:9000/a"));
        assert!(!ok("http://evil.example.com/"));
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
