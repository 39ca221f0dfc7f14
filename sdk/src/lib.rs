//! x
#[doc(hidden)]
#[allow(unsafe_code, missing_docs)]
pub mod bindings;
