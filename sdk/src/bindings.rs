//! Guest bindings generated from `wit/`, one module per world. Hidden from authors, who
//! use the SDK's own types; public only because the export macros expand in plugin crates.

/// The recovery world. Generated first and with every type of `types`, so that the other
/// worlds share its interfaces instead of generating their own copies.
pub mod recovery {
    wit_bindgen::generate!({
        world: "recovery",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export",
        generate_unused_types: true,
        debug: true,
    });
}

/// The detector world.
pub mod detector {
    wit_bindgen::generate!({
        world: "detector",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export",
        with: {
            "faultline:plugin/types@0.1.0": super::recovery::faultline::plugin::types,
            "faultline:plugin/log@0.1.0": super::recovery::faultline::plugin::log,
            "faultline:plugin/clock@0.1.0": super::recovery::faultline::plugin::clock,
            "faultline:plugin/state@0.1.0": super::recovery::faultline::plugin::state,
        },
        debug: true,
    });
}

/// The localizer world.
pub mod localizer {
    wit_bindgen::generate!({
        world: "localizer",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export",
        with: {
            "faultline:plugin/types@0.1.0": super::recovery::faultline::plugin::types,
            "faultline:plugin/log@0.1.0": super::recovery::faultline::plugin::log,
            "faultline:plugin/clock@0.1.0": super::recovery::faultline::plugin::clock,
            "faultline:plugin/state@0.1.0": super::recovery::faultline::plugin::state,
        },
        debug: true,
    });
}
