//! TEST ONLY: a detector whose `evaluate` never returns, for the host's test that a
//! plugin exceeding its CPU deadline is interrupted and the host keeps running.

use faultline_sdk::detector::*;

/// Accepts any params; spins forever when evaluated.
pub struct Spin;

impl Detector for Spin {
    type Params = serde::de::IgnoredAny;

    fn new(_: Self::Params) -> Result<Self, Error> {
        Ok(Spin)
    }

    fn evaluate(&mut self, _: &Input) -> Result<Vec<Finding>, Error> {
        let mut n: u64 = 0;
        loop {
            // Opaque to the optimizer, so the loop stays a busy loop.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_detector!(Spin);
