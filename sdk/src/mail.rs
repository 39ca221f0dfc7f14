//! Outbound mail through the SMTP connections the rule grants (recovery plugins only). The
//! connection holds the server, the credentials and the sender; the plugin gives the
//! recipients, the subject and a plain-text body. Natively, messages are recorded: see
//! [`testing::mail_messages`](crate::testing::mail_messages).
//!
//! ```
//! use faultline_sdk::mail::{self, Message};
//!
//! let message = Message::new("mail", "[FIRING:1] DiskFull", "disk 97% full on db-1")
//!     .to("ops@example.com");
//! mail::send(message).unwrap();
//! # assert_eq!(faultline_sdk::testing::mail_messages()[0].to, ["ops@example.com"]);
//! ```

use std::fmt;

use crate::bindings::wit::mail as wit;
use crate::host;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The SMTP connection of the server config to send through.
    pub connection: String,
    /// Recipients' addresses (`ops@example.com` or `Ops <ops@example.com>`).
    pub to: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

impl Message {
    /// A message through `connection`, without recipients yet.
    pub fn new(
        connection: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            connection: connection.into(),
            to: Vec::new(),
            subject: subject.into(),
            body: body.into(),
        }
    }

    /// Adds a recipient.
    pub fn to(mut self, address: impl Into<String>) -> Self {
        self.to.push(address.into());
        self
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The host's description (with the server's answer, when it gave one).
    pub message: String,
}

impl MailError {
    /// An error (for tests).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The kinds of [`MailError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection is not granted to this rule, or is not an SMTP connection.
    Denied,
    /// The server could not be reached, or refused for now (SMTP 4xx): worth retrying.
    Transient,
    /// The server refused the message for good (SMTP 5xx).
    Rejected,
    /// The message is malformed (an address that does not parse).
    Invalid,
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Denied => "denied",
            ErrorKind::Transient => "transient error",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Invalid => "invalid message",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for MailError {}

/// Sends `message` and waits until the mail server accepted it.
pub fn send(message: Message) -> Result<(), MailError> {
    host::mail_send(&message.into_wit()).map_err(MailError::from_wit)
}

// Crossing the host boundary, which speaks the WIT types (natively too: see `crate::host`).

impl Message {
    fn into_wit(self) -> wit::Message {
        wit::Message {
            connection: self.connection,
            to: self.to,
            subject: self.subject,
            body: self.body,
        }
    }
}

impl MailError {
    fn from_wit(e: wit::Error) -> Self {
        Self {
            kind: match e.kind {
                wit::ErrorKind::Denied => ErrorKind::Denied,
                wit::ErrorKind::Transient => ErrorKind::Transient,
                wit::ErrorKind::Rejected => ErrorKind::Rejected,
                wit::ErrorKind::Invalid => ErrorKind::Invalid,
            },
            message: e.message,
        }
    }
}
