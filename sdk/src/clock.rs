//! The host's clock. Natively it is the system clock unless a test sets it with
//! [`testing::set_now_ms`](crate::testing::set_now_ms).

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    crate::host::now_ms()
}
