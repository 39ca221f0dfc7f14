//! The one place that generates host bindings from the WIT contract in `sdk/wit`.
//!
//! The recovery world imports every shared host interface, so it is generated first and the
//! other two worlds reuse its interfaces: each host interface has exactly one Rust trait.
//! `rule`, which only detectors import, is generated with the detector world.

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
        with: {
            "faultline:plugin/types": super::recovery::faultline::plugin::types,
            "faultline:plugin/log": super::recovery::faultline::plugin::log,
            "faultline:plugin/clock": super::recovery::faultline::plugin::clock,
            "faultline:plugin/state": super::recovery::faultline::plugin::state,
        },
    });
}

pub mod localizer {
    wasmtime::component::bindgen!({
        world: "localizer",
        path: "../sdk/wit",
        with: { "faultline:plugin": super::recovery::faultline::plugin },
    });
}

pub use detector::faultline::plugin::rule;
pub use recovery::faultline::plugin::{clock, http, kafka, log, mail, state, types};
