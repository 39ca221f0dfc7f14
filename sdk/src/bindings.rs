//! Guest bindings generated from `wit/`, one module per world. Hidden from authors, who use
//! the SDK's own types; public only because the export macros expand in plugin crates.
//!
//! `pub_export_macro` makes wit-bindgen put each world's exports (and the custom section
//! describing them) in the expansion of its `export!` macro, so a plugin's component has
//! the exports of the one world it implements; the SDK itself only carries imports.

/// The recovery world. Generated first, with every type of `types`, so that the other worlds
/// share its interfaces instead of generating copies.
pub mod recovery {
    wit_bindgen::generate!({
        world: "recovery",
        path: "wit",
        pub_export_macro: true,
        generate_unused_types: true,
    });
}

/// The detector world.
pub mod detector {
    wit_bindgen::generate!({
        world: "detector",
        path: "wit",
        pub_export_macro: true,
        with: {
            "faultline:plugin/types@0.1.0": super::recovery::faultline::plugin::types,
            "faultline:plugin/log@0.1.0": super::recovery::faultline::plugin::log,
            "faultline:plugin/clock@0.1.0": super::recovery::faultline::plugin::clock,
            "faultline:plugin/state@0.1.0": super::recovery::faultline::plugin::state,
        },
    });
}

/// The localizer world.
pub mod localizer {
    wit_bindgen::generate!({
        world: "localizer",
        path: "wit",
        pub_export_macro: true,
        with: {
            "faultline:plugin/types@0.1.0": super::recovery::faultline::plugin::types,
            "faultline:plugin/log@0.1.0": super::recovery::faultline::plugin::log,
            "faultline:plugin/clock@0.1.0": super::recovery::faultline::plugin::clock,
            "faultline:plugin/state@0.1.0": super::recovery::faultline::plugin::state,
        },
    });
}

/// The WIT types and imported interfaces under one short name for the rest of the SDK. Only
/// the interfaces with types of their own are here: the imported functions themselves are
/// called by `crate::host` alone.
pub(crate) mod wit {
    pub(crate) use super::detector::faultline::plugin::rule;
    pub(crate) use super::recovery::faultline::plugin::types::*;
    pub(crate) use super::recovery::faultline::plugin::{http, kafka, log, mail};
}
