//! The host's clock. Natively it is the system clock unless a test sets it with
//! [`testing::set_now_ms`](crate::testing::set_now_ms).

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::wit::clock::now_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::now_ms();
}
