//! Kafka produce, only to the topics the rule grants (recovery plugins only). Natively,
//! messages are recorded: see [`testing::kafka_messages`](crate::testing::kafka_messages).
//!
//! ```
//! use faultline_sdk::kafka::{self, Message};
//!
//! kafka::produce(Message::new("remediation", r#"{"restart":"db-0"}"#).key("db-0")).unwrap();
//! # assert_eq!(faultline_sdk::testing::kafka_messages()[0].topic, "remediation");
//! ```

use crate::bindings::wit::kafka as wit;
use crate::host;

/// A message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The key, which picks the partition.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Vec<u8>,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Message {
    /// A message without key or headers.
    pub fn new(topic: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            value: value.into(),
            headers: Vec::new(),
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Produces `message`, returning once the broker acknowledged it; an error says why not.
pub fn produce(message: Message) -> Result<(), String> {
    host::kafka_produce(&message.into_wit())
}

// Crossing the host boundary, which speaks the WIT types (natively too: see `crate::host`).

impl Message {
    fn into_wit(self) -> wit::Message {
        wit::Message {
            topic: self.topic,
            key: self.key,
            value: self.value,
            headers: self.headers,
        }
    }
}
