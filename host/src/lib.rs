//! Faultline: fault handling for distributed systems, with detection, localization and
//! recovery rules that run as WebAssembly sandboxes.

pub mod db;
pub mod model;
pub mod runtime;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
