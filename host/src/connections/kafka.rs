//! Kafka produce for recovery plugins: one idempotent producer per configured connection,
//! which the host's `kafka` import sends granted messages through.
//!
//! Built on librdkafka (rdkafka's bundled build). Its log lines go to `tracing` with the
//! rest of the host's. Errors are librdkafka's own text, which is what the plugin sees and
//! judges (for example `Message production error: UnknownTopicOrPartition (Broker: Unknown
//! topic or partition)` or `... MessageTimedOut (Local: Message timed out)`).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// How long librdkafka may try to deliver one message, retries included, before the send
/// fails with `MessageTimedOut`: 10 s.
const MESSAGE_TIMEOUT_MS: &str = "10000";

/// How long a topic the brokers do not know may take to appear (a topic just created)
/// before its messages fail with `UnknownTopicOrPartition`: 5 s. Shorter than the message
/// timeout, so a missing topic is reported as such rather than as a timeout.
const TOPIC_PROPAGATION_MS: &str = "5000";

/// A producer for one Kafka cluster. Cloning it is cheap and shares the connection.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl Producer {
    /// A producer for `brokers` (`host:port`, comma-separated), naming itself `client_id`
    /// to the brokers. Every message is acknowledged by all in-sync replicas, and the
    /// producer is idempotent, so librdkafka's own retries never write a message twice.
    ///
    /// Nothing is connected yet: an unreachable broker shows up as a failed [`send`](Self::send).
    /// An error here is a configuration librdkafka refuses.
    pub fn new(brokers: &str, client_id: &str) -> Result<Producer, String> {
        if brokers.trim().is_empty() {
            return Err("no Kafka brokers given".to_string());
        }
        let inner = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", client_id)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
            .set("topic.metadata.propagation.max.ms", TOPIC_PROPAGATION_MS)
            .create()
            .map_err(|e| format!("creating a Kafka producer for {brokers}: {e}"))?;
        Ok(Producer { inner })
    }

    /// Produces one message and waits until the brokers acknowledged it, returning its
    /// partition and offset. Takes at most `message.timeout.ms` (10 s); an error is
    /// librdkafka's description of why the message was not written.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<(i32, i64), String> {
        let headers = headers.iter().fold(
            OwnedHeaders::new_with_capacity(headers.len()),
            |all, (name, value)| {
                all.insert(Header {
                    key: name,
                    value: Some(value),
                })
            },
        );
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(value)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        // A full local queue is an error at once (`QueueFull`, worth retrying later), so a
        // send never waits longer than the message timeout.
        match self.inner.send(record, Duration::ZERO).await {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _message)) => Err(e.to_string()),
        }
    }
}
