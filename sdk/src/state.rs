//! The rule's key-value store, kept by the host across reloads and restarts: where a plugin
//! keeps what must outlive its instance. Natively it is an in-memory map per thread (so per
//! test), which [`testing::state`](crate::testing::state) shows.
//!
//! Every call crosses into the host: keep a copy in the plugin's fields for data read often.
//!
//! ```
//! use faultline_sdk::state;
//!
//! state::set_json("seen", &vec![1, 2]).unwrap();
//! assert_eq!(state::get_json::<Vec<u32>>("seen"), Some(vec![1, 2]));
//! state::delete("seen");
//! assert_eq!(state::get("seen"), None);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::host;

/// The value under `key`, if any.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::state_get(key)
}

/// Stores `value` under `key`, replacing any previous value.
pub fn set(key: &str, value: &[u8]) {
    host::state_set(key, value);
}

/// Removes `key` and its value, if any.
pub fn delete(key: &str) {
    host::state_delete(key);
}

/// The JSON value under `key`. A value that does not parse as `T` (written by an older
/// version of the plugin, say) reads as absent.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    serde_json::from_slice(&get(key)?).ok()
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), String> {
    let json = serde_json::to_vec(value).map_err(|e| format!("state {key}: {e}"))?;
    set(key, &json);
    Ok(())
}
