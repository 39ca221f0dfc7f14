//! The host, stubbed in-process so plugins are unit-tested natively with `cargo test`
//! (this module does not exist on Wasm).
//!
//! Each thread has its own stub, and the test harness runs each test on its own thread, so
//! tests do not see each other's state. The stub plays:
//!
//! - the state store: an in-memory map ([`state`] shows it). It outlives plugin values, so a
//!   test can build a second instance to play a restart;
//! - the clock: the system clock until [`set_now_ms`];
//! - logging: to stderr;
//! - HTTP: each [`http::send`](crate::http::send) takes the next response queued with
//!   [`http_respond`] (and panics if there is none); [`http_requests`] shows what was sent;
//! - Kafka: [`kafka::produce`](crate::kafka::produce) records the message
//!   ([`kafka_messages`]) and succeeds unless a result is queued with [`kafka_respond`].
//!
//! ```
//! use faultline_sdk::http::{self, Request, Response};
//! use faultline_sdk::testing;
//!
//! testing::http_respond(Ok(Response::new(503)));
//! let response = http::send(Request::post("https://hooks.example/x").body("{}")).unwrap();
//! assert_eq!(response.status, 503);
//! assert_eq!(testing::http_requests()[0].url, "https://hooks.example/x");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::{HttpError, Request, Response};
use crate::kafka::Message;

#[derive(Default)]
struct Stub {
    now_ms: Option<i64>,
    state: BTreeMap<String, Vec<u8>>,
    http_responses: VecDeque<Result<Response, HttpError>>,
    http_requests: Vec<Request>,
    kafka_results: VecDeque<Result<(), String>>,
    kafka_messages: Vec<Message>,
}

thread_local! {
    static STUB: RefCell<Stub> = RefCell::default();
}

fn with<R>(f: impl FnOnce(&mut Stub) -> R) -> R {
    STUB.with_borrow_mut(f)
}

/// Forgets everything: state, clock, queued responses, recorded requests and messages.
pub fn reset() {
    with(|s| *s = Stub::default());
}

/// Sets what [`clock::now_ms`](crate::clock::now_ms) returns.
pub fn set_now_ms(now_ms: i64) {
    with(|s| s.now_ms = Some(now_ms));
}

/// The state store's contents.
pub fn state() -> BTreeMap<String, Vec<u8>> {
    with(|s| s.state.clone())
}

/// Queues the result of a future [`http::send`](crate::http::send): results are used in the
/// order queued, one per request.
pub fn http_respond(result: Result<Response, HttpError>) {
    with(|s| s.http_responses.push_back(result));
}

/// The requests sent so far, oldest first.
pub fn http_requests() -> Vec<Request> {
    with(|s| s.http_requests.clone())
}

/// Queues the result of a future [`kafka::produce`](crate::kafka::produce); without one,
/// produce succeeds.
pub fn kafka_respond(result: Result<(), String>) {
    with(|s| s.kafka_results.push_back(result));
}

/// The messages produced so far, oldest first (failed ones included).
pub fn kafka_messages() -> Vec<Message> {
    with(|s| s.kafka_messages.clone())
}

pub(crate) fn now_ms() -> i64 {
    with(|s| s.now_ms).unwrap_or_else(|| {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    })
}

pub(crate) fn state_get(key: &str) -> Option<Vec<u8>> {
    with(|s| s.state.get(key).cloned())
}

pub(crate) fn state_set(key: &str, value: &[u8]) {
    with(|s| s.state.insert(key.to_string(), value.to_vec()));
}

pub(crate) fn state_delete(key: &str) {
    with(|s| s.state.remove(key));
}

pub(crate) fn http_send(request: Request) -> Result<Response, HttpError> {
    with(|s| {
        let Some(result) = s.http_responses.pop_front() else {
            panic!(
                "http::send({} {}) without a response queued: call testing::http_respond first",
                request.method, request.url
            );
        };
        s.http_requests.push(request);
        result
    })
}

pub(crate) fn kafka_produce(message: Message) -> Result<(), String> {
    with(|s| {
        s.kafka_messages.push(message);
        s.kafka_results.pop_front().unwrap_or(Ok(()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock, kafka, state};

    #[test]
    fn clock_is_settable() {
        set_now_ms(42);
        assert_eq!(clock::now_ms(), 42);
        reset();
        assert!(clock::now_ms() > 1_600_000_000_000);
    }

    #[test]
    fn state_round_trips_and_resets() {
        state::set("k", b"v");
        assert_eq!(state::get("k").as_deref(), Some(&b"v"[..]));
        assert_eq!(state().len(), 1);
        reset();
        assert_eq!(state::get("k"), None);
    }

    #[test]
    fn kafka_records_and_fails_on_request() {
        kafka_respond(Err("no leader".into()));
        let message = || kafka::Message::new("t", "v").header("h", "1");
        assert_eq!(kafka::produce(message()), Err("no leader".into()));
        assert_eq!(kafka::produce(message()), Ok(()));
        assert_eq!(kafka_messages().len(), 2);
    }

    #[test]
    #[should_panic(expected = "without a response queued")]
    fn http_without_response_panics() {
        let _ = crate::http::send(Request::get("http://x"));
    }
}
