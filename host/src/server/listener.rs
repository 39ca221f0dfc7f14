//! The listener: HTTP/1.1 on a TCP socket, optionally over TLS (rustls), with the limits a
//! server exposed to slow or hostile clients needs. Its settings are the `[listener]` table
//! of the server configuration:
//!
//! ```toml
//! [listener]
//! tls = { cert = "tls/server.pem", key = "tls/server.key" }  # PEM files, relative to this file
//! allowed_hosts = ["faultline.example.com"]      # besides localhost, IPs and the external URL's
//! allowed_origins = ["https://grafana.example.com"]
//! header_read_timeout = "10s"                    # a request's headers, and a TLS handshake
//! body_read_timeout = "60s"                      # a request's body, waiting for a turn included
//! max_concurrent_bodies = 16                     # request bodies read at once
//! ```
//!
//! A connection that does not finish its TLS handshake or its request headers within
//! `header_read_timeout` is closed. Bodies are limited in [`super::bodies`], and `Host` and
//! `Origin` checked in [`super::browsers`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::model::units::PromDuration;

/// The `[listener]` table of the server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Serve HTTPS with this certificate and key; none: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Host names the API answers to, besides `localhost`, IP addresses and the external
    /// URL's host; `"*"` allows any.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) whose pages may change things, besides the API's own;
    /// `"*"` allows any.
    pub allowed_origins: Vec<String>,
    /// How long a connection may take to send a request's headers (and to finish its TLS
    /// handshake).
    pub header_read_timeout: PromDuration,
    /// How long a request's body may take to arrive, waiting for a turn included.
    pub body_read_timeout: PromDuration,
    /// Request bodies read at once at most; the others wait for a turn.
    pub max_concurrent_bodies: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            tls: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            header_read_timeout: PromDuration(Duration::from_secs(10)),
            body_read_timeout: PromDuration(Duration::from_secs(60)),
            max_concurrent_bodies: 16,
        }
    }
}

/// `[listener] tls`: PEM files of the server's certificate chain and its private key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ListenerConfig {
    /// Makes the TLS files' paths relative to the configuration file's folder.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            for p in [&mut tls.cert, &mut tls.key] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
    }

    /// The URL scheme the API is served with.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// The listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listening on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("[listener] tls: reading {path}: {message}")]
    Pem { path: String, message: String },
    #[error("[listener] tls: {0} holds no certificate")]
    NoCertificate(String),
    #[error("[listener] tls: {0}")]
    Tls(rustls::Error),
}

/// The rustls server configuration for `tls`.
fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ListenerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    fn pem(path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> ListenerError + '_ {
        move |e| ListenerError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(pem(&tls.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(&tls.cert))?;
    if certs.is_empty() {
        return Err(ListenerError::NoCertificate(tls.cert.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(pem(&tls.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ListenerError::Tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(ListenerError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    header_read_timeout: Duration,
}

impl Listener {
    /// Binds `address` and loads the TLS certificate, so that errors show before serving.
    pub async fn bind(address: &str, config: &ListenerConfig) -> Result<Listener, ListenerError> {
        let tls = config.tls.as_ref().map(acceptor).transpose()?;
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|source| ListenerError::Bind {
                address: address.to_string(),
                source,
            })?;
        Ok(Listener {
            tcp,
            tls,
            header_read_timeout: config.header_read_timeout.0,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves `app` until `shutdown` completes, then lets open requests finish.
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.as_mut() => break,
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let tls = self.tls.clone();
            let timeout = self.header_read_timeout;
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let Some(tls) = tls else {
                    return connection(stream, app, timeout, watcher).await;
                };
                match tokio::time::timeout(timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, app, timeout, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
        graceful.shutdown().await;
    }
}

/// Serves HTTP/1.1 on one connection; hyper closes it when a request's headers take longer
/// than `header_read_timeout`.
async fn connection<S>(
    stream: S,
    app: Router,
    header_read_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(tower::ServiceExt::map_request(
        app,
        |req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
    ));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection: {e}");
    }
}
