//! TEST ONLY: a detector whose `evaluate` panics, which traps the guest, for the host's test
//! that a trapping plugin is reported with its panic message (and its instance replaced)
//! while the host keeps running. With `overflow = true` it recurses until its stack runs
//! out instead, for the test that a stack overflow is named as such.

use faultline_sdk::detector::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Overflow the stack instead of panicking.
    #[serde(default)]
    overflow: bool,
}

/// Panics (or overflows its stack) when evaluated.
pub struct Panic {
    overflow: bool,
}

impl Detector for Panic {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        Ok(Panic {
            overflow: p.overflow,
        })
    }

    fn evaluate(&mut self, _: &Input) -> Result<Vec<Finding>, Error> {
        if self.overflow {
            let depth = recurse(std::hint::black_box(1));
            return Err(format!("recursed {depth} deep without overflowing").into());
        }
        panic!("sandbox-trap: evaluate always panics");
    }
}

/// Recursion the optimizer cannot turn into a loop: each frame holds a buffer it reads.
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    if frame[n as usize % 64] == u64::MAX {
        return n;
    }
    recurse(n + 1) + frame[0]
}

export_detector!(Panic);
