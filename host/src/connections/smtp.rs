//! Mail for recovery plugins: an SMTP server reached with STARTTLS, which the host's `mail`
//! import sends granted messages through. TLS is required before anything else is said:
//! the password and the alerts' text never cross the network in the clear, and a server
//! that does not offer STARTTLS is an error. The connection, not the plugin, names the
//! sender, so a plugin cannot send as anyone else.
//!
//! ```toml
//! [connection.mail]
//! smtp = "mail.example.com:587"
//! from = "Faultline <faultline@example.com>"
//! username = "faultline"
//! password = { file = "/etc/faultline/smtp-password" }
//! ca = "/etc/ssl/certs/ca-certificates.crt"
//! ```
//!
//! Built on lettre (rustls, like the HTTP connections). As for those, the server's
//! certificate must chain to the connection's `ca`: no certificate store is trusted by
//! default.

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::model::units::SecretRef;

/// How long one exchange with the server may take (connecting, each command).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A recipient that is not an address, or a message that cannot be built.
    #[error("{0}")]
    Invalid(String),
    /// The server is unreachable, TLS failed, or it refused for now (SMTP 4xx).
    #[error("{0}")]
    Transient(String),
    /// The server refused for good (SMTP 5xx).
    #[error("{0}")]
    Rejected(String),
}

/// An SMTP connection.
pub struct SmtpConnection {
    host: String,
    port: u16,
    from: Mailbox,
    username: Option<String>,
    /// Read at every use, so a rotated password is picked up.
    password: Option<SecretRef>,
    tls: TlsParameters,
}

impl fmt::Debug for SmtpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConnection")
            .field("server", &format_args!("{}:{}", self.host, self.port))
            .field("from", &self.from.to_string())
            .field("username", &self.username)
            .finish()
    }
}

impl SmtpConnection {
    /// The password, if the connection has one that can be read now.
    pub fn password(&self) -> Option<Vec<u8>> {
        self.password.as_ref()?.read(std::path::Path::new("/")).ok()
    }

    /// A connection to `server` (`host:port`), sending as `from`, trusting the PEM `ca`
    /// certificates. Errors name the field.
    pub fn new(
        server: &str,
        from: &str,
        username: Option<String>,
        password: Option<SecretRef>,
        ca: Option<&[u8]>,
    ) -> Result<SmtpConnection, String> {
        let (host, port) = server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("`smtp` must be host:port, not {server:?}"))?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("`from` {from:?} is not a mail address: {e}"))?;
        if password.is_some() != username.is_some() {
            return Err("`username` and `password` go together".to_string());
        }
        let mut tls =
            TlsParameters::builder(host.to_string()).certificate_store(CertificateStore::None);
        if let Some(pem) = ca {
            // lettre takes a file without any certificate as an empty list: counted here.
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("`ca`: not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("`ca` holds no certificate".to_string());
            }
            let cert = Certificate::from_pem(pem)
                .map_err(|e| format!("`ca`: not PEM certificates: {e}"))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| format!("TLS settings: {e}"))?;
        Ok(SmtpConnection {
            host: host.to_string(),
            port,
            from,
            username,
            password,
            tls,
        })
    }

    /// Sends a plain-text message to `to` and waits until the server accepted it.
    pub async fn send(&self, to: &[String], subject: &str, body: &str) -> Result<(), MailError> {
        if to.is_empty() {
            return Err(MailError::Invalid("no recipient".to_string()));
        }
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            let mailbox: Mailbox = address.parse().map_err(|e| {
                MailError::Invalid(format!("recipient {address:?} is not a mail address: {e}"))
            })?;
            message = message.to(mailbox);
        }
        let message = message
            .body(body.to_string())
            .map_err(|e| MailError::Invalid(format!("building the message: {e}")))?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(Tls::Required(self.tls.clone()))
            .timeout(Some(TIMEOUT));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            let password = password
                .read(std::path::Path::new("/"))
                .map_err(|e| MailError::Transient(format!("the password: {e}")))?;
            let password = String::from_utf8_lossy(&password).into_owned();
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        let server = format!("{}:{}", self.host, self.port);
        transport
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| {
                // lettre's text names the kind, the SMTP code and the server's words.
                let text = format!("SMTP server {server}: {e}");
                if e.is_permanent() {
                    MailError::Rejected(text)
                } else {
                    MailError::Transient(text)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_naming_the_field() {
        let new = |server, from, user: Option<&str>, password| {
            SmtpConnection::new(server, from, user.map(String::from), password, None)
        };
        let ok = new("mail.example:587", "Faultline <f@example.com>", None, None).unwrap();
        assert_eq!((ok.host.as_str(), ok.port), ("mail.example", 587));
        assert!(format!("{ok:?}").contains("mail.example:587"));
        let e = new("mail.example", "f@example.com", None, None).unwrap_err();
        assert!(e.contains("`smtp` must be host:port"), "{e}");
        let e = new("mail.example:587", "not an address", None, None).unwrap_err();
        assert!(e.contains("`from` \"not an address\""), "{e}");
        let e = new("mail.example:587", "f@example.com", Some("u"), None).unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let e = SmtpConnection::new("h:1", "f@example.com", None, None, Some(b"-----BEGIN"))
            .unwrap_err();
        assert!(e.contains("`ca`"), "{e}");
    }

    #[test]
    fn bad_recipients_are_invalid_before_connecting() {
        let c = SmtpConnection::new("127.0.0.1:1", "f@example.com", None, None, None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(c.send(&["nope".into()], "s", "b")).unwrap_err();
        assert!(
            matches!(&e, MailError::Invalid(m) if m.contains("\"nope\"")),
            "{e:?}"
        );
        let e = rt.block_on(c.send(&[], "s", "b")).unwrap_err();
        assert!(matches!(e, MailError::Invalid(_)), "{e:?}");
        // Nothing listens there: worth retrying.
        let e = rt
            .block_on(c.send(&["ops@example.com".into()], "s", "b"))
            .unwrap_err();
        assert!(matches!(e, MailError::Transient(_)), "{e:?}");
    }
}
