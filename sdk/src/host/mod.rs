//! The host's capabilities as the rest of the SDK calls them: the one place that chooses
//! between the real host and the native stub.
//!
//! On Wasm, `wasm` calls the imports that wit-bindgen generates from `wit/`; on every other
//! target, `stub` stands in for them in-process (the state map, the clock, logging to stderr,
//! the HTTP and Kafka mocks), and the public [`testing`](crate::testing) module drives it.
//! Both speak the WIT types of [`bindings::wit`](crate::bindings::wit), so the capability
//! modules ([`state`](crate::state), [`clock`](crate::clock), [`log`](crate::log),
//! [`http`](crate::http), [`kafka`](crate::kafka), [`mail`](crate::mail)) do their conversions the same way on every
//! target and call this module with no `cfg` of their own: native tests run the same code as
//! the plugin, up to the host boundary.
//!
//! The switch lives here, once, because the host is the only thing that differs between a
//! plugin and its tests. The list of functions below is the whole host interface: each
//! backend must provide all of them, so a backend that drifts fails to compile. Two other
//! `cfg`s remain, both about what a plugin crate sees rather than how the host is reached:
//! [`testing`](crate::testing) exists only natively (it drives the stub), and the export
//! macros generate the component's exports only on Wasm (they expand in the plugin crate, so
//! their `cfg` has to be in the expansion).

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
use wasm as backend;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod stub;
#[cfg(not(target_arch = "wasm32"))]
use stub as backend;

pub(crate) use backend::{
    http_secret_placeholder, http_send, input_bounds, kafka_produce, log, mail_send, now_ms,
    rule_settings, state_delete, state_get, state_set,
};
