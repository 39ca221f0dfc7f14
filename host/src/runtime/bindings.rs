//! The one place that generates host bindings from the WIT contract in `sdk/wit`.
//!
//! The recovery world imports every host interface, so it is generated first and the other
//! two worlds reuse its interfaces: each host interface has exactly one Rust trait.

#![allow(missing_docs)]

pub mod recovery {
    wasmtime::component::bindgen!({
        world: "recovery",
        path: "../sdk/wit",
    });
}

pub mod detector {
    wasmtime::component::bindgen!({
        world: "detector",
        path: "../sdk/wit",
        with: { "faultline:plugin": super::recovery::faultline::plugin },
    });
}

pub mod localizer {
    wasmtime::component::bindgen!({
        world: "localizer",
        path: "../sdk/wit",
        with: { "faultline:plugin": super::recovery::faultline::plugin },
    });
}

pub use recovery::faultline::plugin::{clock, http, kafka, log, mail, state, types};
