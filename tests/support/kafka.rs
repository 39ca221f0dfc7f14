//! A real Kafka-protocol broker for the whole-system tests: tansu, with in-memory storage, on
//! a free loopback port and killed when dropped; and a consumer that reads a topic back from
//! the beginning in a fresh consumer group.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use crate::DEADLINE;
use crate::programs::{Program, free_port, require};

/// How tansu is installed (PEERS.md: without `dynostore` it stores nothing).
const INSTALL: &str = "cargo install tansu --locked --features dynostore";

/// A running tansu broker, killed when dropped (even when the test fails). Topics are not
/// created on first use: call [`Tansu::create_topic`].
pub struct Tansu {
    binary: PathBuf,
    port: u16,
    program: Program,
}

impl Tansu {
    /// Starts a broker with in-memory storage on a free port and waits until it accepts
    /// connections.
    pub fn start() -> Tansu {
        Self::start_on(free_port())
    }

    /// Starts a broker on `port`: one that was stopped comes back where it was (empty).
    pub fn start_on(port: u16) -> Tansu {
        let binary = binary();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(&binary);
        cmd.arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"]);
        let tansu = Tansu {
            binary,
            port,
            program: Program::start("tansu", cmd),
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "tansu did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        tansu
    }

    /// The bootstrap servers to give a client: `127.0.0.1:<port>`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `name` with one partition, so its messages keep the order they were
    /// produced in.
    pub fn create_topic(&self, name: &str) {
        self.create_partitioned_topic(name, 1);
    }

    /// Creates `name` with `partitions` partitions.
    pub fn create_partitioned_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.binary)
            .args(["topic", "create"])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .expect("running tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {name} failed: {}{}\n--- broker output ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.program.output()
        );
    }
}

/// tansu on the PATH, or where `cargo install` puts it when cargo's bin directory is not
/// on the PATH.
fn binary() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    match cargo_home.map(|dir| dir.join("bin/tansu")) {
        Some(installed) if installed.is_file() => installed,
        _ => require("tansu", INSTALL),
    }
}

/// One message read back from a topic.
#[derive(Clone, Debug)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// Header names and values, in the order produced.
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

impl Consumed {
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The payload as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// Reads `topic` from its beginning in a fresh consumer group until `n` messages arrived
/// or `within` passed, and returns what arrived (fewer than `n` on timeout, so a test can
/// also check that nothing was produced).
pub fn consume(brokers: &str, topic: &str, n: usize, within: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", fresh_group())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating a Kafka consumer");
    consumer
        .subscribe(&[topic])
        .unwrap_or_else(|e| panic!("subscribing to {topic}: {e}"));
    let start = Instant::now();
    let mut consumed = Vec::new();
    let mut last_error = None;
    while consumed.len() < n && start.elapsed() < within {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => consumed.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                headers: m.headers().map_or_else(Vec::new, |headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                }),
                payload: m.payload().unwrap_or_default().to_vec(),
            }),
            // Errors while the group forms are retried by the client: keep the last one for
            // the reader of a failed test.
            Some(Err(e)) => last_error = Some(e),
            None => {}
        }
    }
    if let (true, Some(e)) = (consumed.len() < n, last_error) {
        eprintln!(
            "consumed {} of {n} messages of {topic}; last error: {e}",
            consumed.len()
        );
    }
    consumed
}

/// A consumer group no other consumer has used, so reading starts at the beginning.
fn fresh_group() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "faultline-tests-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    /// The broker and the consumer against a real producer configured as Faultline's:
    /// idempotent, acknowledged by all replicas.
    #[test]
    fn produced_messages_come_back_with_key_headers_and_payload() {
        let tansu = Tansu::start();
        tansu.create_topic("incidents");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", tansu.brokers())
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            .create()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for i in 0..2 {
            let key = format!("incident-{i}");
            let payload = serde_json::json!({ "n": i }).to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "type",
                    value: Some("faultline.incident"),
                })
                .insert(Header {
                    key: "idempotency-key",
                    value: Some(&format!("idem-{i}")),
                });
            let record = FutureRecord::to("incidents")
                .key(&key)
                .payload(&payload)
                .headers(headers);
            let delivery = rt
                .block_on(producer.send(record, Duration::ZERO))
                .map_err(|(e, _)| e)
                .expect("produce");
            assert_eq!((delivery.partition, delivery.offset), (0, i));
        }

        let got = consume(&tansu.brokers(), "incidents", 2, DEADLINE);
        assert_eq!(got.len(), 2, "{got:?}");
        for (i, m) in got.iter().enumerate() {
            assert_eq!((m.partition, m.offset), (0, i as i64));
            assert_eq!(m.key.as_deref(), Some(format!("incident-{i}").as_bytes()));
            assert_eq!(
                m.headers,
                [
                    ("type".to_string(), b"faultline.incident".to_vec()),
                    (
                        "idempotency-key".to_string(),
                        format!("idem-{i}").into_bytes()
                    ),
                ]
            );
            assert_eq!(m.header("type"), Some(&b"faultline.incident"[..]));
            assert_eq!(m.json(), serde_json::json!({ "n": i }));
        }

        // An empty topic gives nothing back, within the time allowed.
        tansu.create_topic("empty");
        assert!(consume(&tansu.brokers(), "empty", 1, Duration::from_secs(3)).is_empty());
    }
}
