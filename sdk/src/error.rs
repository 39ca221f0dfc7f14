//! The error a plugin's trait methods return. Any `Display` value converts into it (the
//! author's own error types, `serde_json::Error`, `String`, `&str`), so `?` just works.
//!
//! ```
//! use faultline_sdk::Error;
//!
//! fn port(text: &str) -> Result<u16, Error> {
//!     let port: u16 = text.parse()?; // a ParseIntError
//!     if port == 0 {
//!         return Err("port 0 is not a port".into());
//!     }
//!     Ok(port)
//! }
//!
//! assert_eq!(port("x").unwrap_err(), "invalid digit found in string");
//! assert_eq!(port("0").unwrap_err().message(), "port 0 is not a port");
//! ```

use std::fmt;

/// A plugin's error: its message is what the host reports against the rule.
///
/// It does not implement `Display` itself, which would clash with converting from every
/// `Display` value; read it with [`message`](Self::message).
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: fmt::Display> From<E> for Error {
    fn from(e: E) -> Self {
        Error {
            message: e.to_string(),
        }
    }
}

/// The message, so tests can `starts_with` and `contains` on it.
impl std::ops::Deref for Error {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message
    }
}

impl PartialEq<str> for Error {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<String> for Error {
    fn eq(&self, other: &String) -> bool {
        self.message == *other
    }
}

impl PartialEq<&str> for Error {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}
