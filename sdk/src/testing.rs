//! The host, stubbed in-process so plugins are unit-tested natively with `cargo test`
//! (this module does not exist on Wasm). The stub itself is the SDK's native host backend;
//! this module is how a test drives it and sees what the plugin did.
//!
//! Each thread has its own stub, and the test harness runs each test on its own thread, so
//! tests do not see each other's state. The stub plays:
//!
//! - the state store: an in-memory map ([`state`] shows it). It outlives plugin values, so a
//!   test can build a second instance to play a restart;
//! - the clock: the system clock until [`set_now_ms`];
//! - the rule's settings: [`rule::Settings::default`](crate::rule::Settings) until [`set_rule`];
//! - logging: to stderr;
//! - HTTP: each [`http::send`](crate::http::send) takes the next response queued with
//!   [`http_respond`] (and panics if there is none); [`http_requests`] shows what was sent;
//! - Kafka: [`kafka::produce`](crate::kafka::produce) records the message
//!   ([`kafka_messages`]) and succeeds unless a result is queued with [`kafka_respond`];
//! - mail: [`mail::send`](crate::mail::send) likewise ([`mail_messages`], [`mail_respond`]).
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

use std::collections::BTreeMap;

use crate::bindings::wit;
use crate::host::stub;
use crate::http::{ErrorKind, HttpError, Request, Response};
use crate::kafka::Message;
use crate::mail;

/// Forgets everything: state, clock, queued responses, recorded requests and messages.
pub fn reset() {
    stub::reset();
}

/// Sets what [`clock::now_ms`](crate::clock::now_ms) returns.
pub fn set_now_ms(now_ms: i64) {
    stub::set_now_ms(now_ms);
}

/// Sets what [`rule::settings`](crate::rule::settings) returns.
pub fn set_rule(settings: crate::rule::Settings) {
    stub::set_rule_settings(stub::settings_to_wit(settings));
}

/// The state store's contents.
pub fn state() -> BTreeMap<String, Vec<u8>> {
    stub::state()
}

/// Queues the result of a future [`http::send`](crate::http::send): results are used in the
/// order queued, one per request.
pub fn http_respond(result: Result<Response, HttpError>) {
    let result = result
        .map(|r| wit::http::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
        .map_err(|e| wit::http::Error {
            kind: match e.kind {
                ErrorKind::Denied => wit::http::ErrorKind::Denied,
                ErrorKind::Transport => wit::http::ErrorKind::Transport,
                ErrorKind::Invalid => wit::http::ErrorKind::Invalid,
            },
            message: e.message,
        });
    stub::queue_http_result(result);
}

/// The requests sent so far, oldest first.
pub fn http_requests() -> Vec<Request> {
    stub::http_requests()
        .into_iter()
        .map(|r| Request {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
            timeout_ms: r.timeout_ms,
            connection: r.connection,
            sign_header: r.sign_header,
        })
        .collect()
}

/// Queues the result of a future [`kafka::produce`](crate::kafka::produce); without one,
/// produce succeeds.
pub fn kafka_respond(result: Result<(), String>) {
    stub::queue_kafka_result(result);
}

/// The messages produced so far, oldest first (failed ones included).
pub fn kafka_messages() -> Vec<Message> {
    stub::kafka_messages()
        .into_iter()
        .map(|m| Message {
            topic: m.topic,
            key: m.key,
            value: m.value,
            headers: m.headers,
        })
        .collect()
}

/// Queues the result of a future [`mail::send`](crate::mail::send); without one, sending
/// succeeds.
pub fn mail_respond(result: Result<(), mail::MailError>) {
    stub::queue_mail_result(result.map_err(|e| wit::mail::Error {
        kind: match e.kind {
            mail::ErrorKind::Denied => wit::mail::ErrorKind::Denied,
            mail::ErrorKind::Transient => wit::mail::ErrorKind::Transient,
            mail::ErrorKind::Rejected => wit::mail::ErrorKind::Rejected,
            mail::ErrorKind::Invalid => wit::mail::ErrorKind::Invalid,
        },
        message: e.message,
    }));
}

/// The mail sent so far, oldest first (failed ones included).
pub fn mail_messages() -> Vec<mail::Message> {
    stub::mail_messages()
        .into_iter()
        .map(|m| mail::Message {
            connection: m.connection,
            to: m.to,
            subject: m.subject,
            body: m.body,
        })
        .collect()
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
