//! TEST ONLY: a detector whose `evaluate` panics, which traps the guest, for the host's test
//! that a trapping plugin is reported (and its instance replaced) while the host keeps
//! running.

use faultline_sdk::detector::*;

/// Accepts any params; panics when evaluated.
pub struct Panic;

impl Detector for Panic {
    type Params = serde::de::IgnoredAny;

    fn new(_: Self::Params) -> Result<Self, String> {
        Ok(Panic)
    }

    fn evaluate(&mut self, _: &Input) -> Result<Vec<Finding>, String> {
        panic!("sandbox-trap: evaluate always panics");
    }
}

export_detector!(Panic);
