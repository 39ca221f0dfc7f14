//! TEST ONLY: a detector whose `evaluate` allocates without end, for the host's test that a
//! plugin hitting its memory cap is stopped and the host keeps running.

use faultline_sdk::detector::*;

/// Accepts any params; hoards memory when evaluated until allocation fails, which aborts
/// (the guest traps).
pub struct Hoard;

impl Detector for Hoard {
    type Params = serde::de::IgnoredAny;

    fn new(_: Self::Params) -> Result<Self, Error> {
        Ok(Hoard)
    }

    fn evaluate(&mut self, _: &Input) -> Result<Vec<Finding>, Error> {
        const BLOCK: usize = 1 << 20;
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = vec![0u8; BLOCK];
            // Write every page so the memory is really used, not just reserved.
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            hoard.push(std::hint::black_box(block));
        }
    }
}

export_detector!(Hoard);
