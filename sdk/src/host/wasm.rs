//! The real host: each function calls the import that wit-bindgen generated for it.

use crate::bindings::recovery::faultline::plugin::{
    clock, http, kafka, log as wit_log, mail, state,
};
use crate::bindings::wit::rule;

/// `log.log`.
pub(crate) fn log(level: wit_log::Level, message: &str) {
    wit_log::log(level, message);
}

/// `clock.now-ms`.
pub(crate) fn now_ms() -> i64 {
    clock::now_ms()
}

/// `state.get`.
pub(crate) fn state_get(key: &str) -> Option<Vec<u8>> {
    state::get(key)
}

/// `state.set`.
pub(crate) fn state_set(key: &str, value: &[u8]) {
    state::set(key, value);
}

/// `state.delete`.
pub(crate) fn state_delete(key: &str) {
    state::delete(key);
}

/// `http.send`.
pub(crate) fn http_send(request: &http::Request) -> Result<http::Response, http::Error> {
    http::send(request)
}

/// `http.secret-placeholder`.
pub(crate) fn http_secret_placeholder(name: &str) -> String {
    http::secret_placeholder(name)
}

/// `mail.send`.
pub(crate) fn mail_send(message: &mail::Message) -> Result<(), mail::Error> {
    mail::send(message)
}

/// `kafka.produce`.
pub(crate) fn kafka_produce(message: &kafka::Message) -> Result<(), String> {
    kafka::produce(message)
}

/// `rule.settings`.
pub(crate) fn rule_settings() -> rule::RuleSettings {
    rule::settings()
}

/// `rule.input-bounds`.
pub(crate) fn input_bounds() -> rule::InputStart {
    rule::input_bounds()
}
