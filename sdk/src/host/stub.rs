//! The host, stubbed in-process for native tests: the same functions as `wasm`, with the same
//! WIT types, served by a per-thread [`Stub`] that [`testing`](crate::testing) drives.
//!
//! Each thread has its own stub, and the test harness runs each test on its own thread, so
//! tests do not see each other's state.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bindings::wit::{http, kafka, log as wit_log, mail, rule};

/// What the stub remembers: state, clock, queued results, recorded requests and messages.
#[derive(Default)]
struct Stub {
    now_ms: Option<i64>,
    state: BTreeMap<String, Vec<u8>>,
    http_responses: VecDeque<Result<http::Response, http::Error>>,
    http_requests: Vec<http::Request>,
    kafka_results: VecDeque<Result<(), String>>,
    kafka_messages: Vec<kafka::Message>,
    mail_results: VecDeque<Result<(), mail::Error>>,
    mail_messages: Vec<mail::Message>,
    rule: Option<rule::RuleSettings>,
}

thread_local! {
    static STUB: RefCell<Stub> = RefCell::default();
}

fn with<R>(f: impl FnOnce(&mut Stub) -> R) -> R {
    STUB.with_borrow_mut(f)
}

// The host interface, as `wasm` has it.

/// Writes to stderr.
pub(crate) fn log(level: wit_log::Level, message: &str) {
    let level = match level {
        wit_log::Level::Trace => "Trace",
        wit_log::Level::Debug => "Debug",
        wit_log::Level::Info => "Info",
        wit_log::Level::Warn => "Warn",
        wit_log::Level::Error => "Error",
    };
    eprintln!("plugin {level}: {message}");
}

/// The time set with [`set_now_ms`], else the system clock.
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

/// Records `request` and answers with the next queued response; panics if there is none.
pub(crate) fn http_send(request: &http::Request) -> Result<http::Response, http::Error> {
    with(|s| {
        let Some(result) = s.http_responses.pop_front() else {
            panic!(
                "http::send({} {}) without a response queued: call testing::http_respond first",
                request.method, request.url
            );
        };
        s.http_requests.push(request.clone());
        result
    })
}

/// `{{secret:NAME:test}}`: the host's placeholder shape, with the key `test`. Requests are
/// recorded with their placeholders, as the plugin built them.
pub(crate) fn http_secret_placeholder(name: &str) -> String {
    format!("{{{{secret:{name}:test}}}}")
}

/// Records `message` and answers with the next queued result, else success.
pub(crate) fn kafka_produce(message: &kafka::Message) -> Result<(), String> {
    with(|s| {
        s.kafka_messages.push(message.clone());
        s.kafka_results.pop_front().unwrap_or(Ok(()))
    })
}

/// Records `message` and answers with the next queued result, else success.
pub(crate) fn mail_send(message: &mail::Message) -> Result<(), mail::Error> {
    with(|s| {
        s.mail_messages.push(message.clone());
        s.mail_results.pop_front().unwrap_or(Ok(()))
    })
}

/// The settings given with [`set_rule_settings`], else those of an instant rule with one
/// unnamed `select`, evaluated every 15s.
pub(crate) fn rule_settings() -> rule::RuleSettings {
    with(|s| s.rule.clone()).unwrap_or_else(|| settings_to_wit(crate::rule::Settings::default()))
}

/// Natively, inputs come from [`InputBuilder`](crate::InputBuilder), which knows its own
/// bounds: nothing asks for these.
pub(crate) fn input_bounds() -> rule::InputStart {
    rule::InputStart {
        samples: Vec::new(),
        logs: Vec::new(),
    }
}

/// Settings as the host would send them.
pub(crate) fn settings_to_wit(s: crate::rule::Settings) -> rule::RuleSettings {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    rule::RuleSettings {
        range_ms: s.range.map(ms),
        interval_ms: ms(s.interval),
        series_inputs: s.inputs,
        log_inputs: s.log_inputs,
    }
}

// What `testing` drives.

/// Fixes what [`rule_settings`] returns.
pub(crate) fn set_rule_settings(settings: rule::RuleSettings) {
    with(|s| s.rule = Some(settings));
}

/// Forgets everything.
pub(crate) fn reset() {
    with(|s| *s = Stub::default());
}

/// Fixes what [`now_ms`] returns.
pub(crate) fn set_now_ms(now_ms: i64) {
    with(|s| s.now_ms = Some(now_ms));
}

/// The state map's contents.
pub(crate) fn state() -> BTreeMap<String, Vec<u8>> {
    with(|s| s.state.clone())
}

/// Queues the result of a future [`http_send`].
pub(crate) fn queue_http_result(result: Result<http::Response, http::Error>) {
    with(|s| s.http_responses.push_back(result));
}

/// The requests sent so far, oldest first.
pub(crate) fn http_requests() -> Vec<http::Request> {
    with(|s| s.http_requests.clone())
}

/// Queues the result of a future [`kafka_produce`].
pub(crate) fn queue_kafka_result(result: Result<(), String>) {
    with(|s| s.kafka_results.push_back(result));
}

/// The messages produced so far, oldest first.
pub(crate) fn kafka_messages() -> Vec<kafka::Message> {
    with(|s| s.kafka_messages.clone())
}

/// Queues the result of a future [`mail_send`].
pub(crate) fn queue_mail_result(result: Result<(), mail::Error>) {
    with(|s| s.mail_results.push_back(result));
}

/// The mail sent so far, oldest first.
pub(crate) fn mail_messages() -> Vec<mail::Message> {
    with(|s| s.mail_messages.clone())
}
