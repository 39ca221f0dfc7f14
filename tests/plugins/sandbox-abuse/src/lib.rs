//! TEST ONLY: a detector that does, on every evaluation, whatever its params ask of the
//! things a plugin may not overdo: write state, write log lines, hold memory, fail with a
//! long message, or write state and then trap. For the host's tests of plugin limits.

use faultline_sdk::detector::*;
use faultline_sdk::{log, state};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Bytes allocated when configured and held for the instance's life.
    #[serde(default)]
    hold: usize,
    /// State keys written per evaluation (new keys each time)...
    #[serde(default)]
    state_writes: usize,
    /// ...of this many bytes each.
    #[serde(default)]
    state_value: usize,
    /// Log lines written per evaluation, each `log_message` and its number.
    #[serde(default)]
    log_lines: usize,
    #[serde(default)]
    log_message: String,
    /// Write the key `trapped`, then panic; a later call that finds it set returns an error.
    #[serde(default)]
    trap_after_write: bool,
    /// Return this error.
    fail_with: Option<String>,
}

/// What the params ask, and the memory it holds.
pub struct Abuse {
    p: Params,
    _held: Vec<u8>,
    calls: usize,
}

impl Detector for Abuse {
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {
        let mut held = vec![0u8; p.hold];
        // Touch every page so the memory is really used.
        for page in held.chunks_mut(4096) {
            page[0] = 1;
        }
        Ok(Abuse {
            p,
            _held: std::hint::black_box(held),
            calls: 0,
        })
    }

    fn evaluate(&mut self, _: &Input) -> Result<Vec<Finding>, Error> {
        self.calls += 1;
        for i in 0..self.p.log_lines {
            log::warn(&format!("{} {i}", self.p.log_message));
        }
        let value = vec![7u8; self.p.state_value];
        for i in 0..self.p.state_writes {
            state::set(&format!("k{}-{i}", self.calls), &value);
        }
        if self.p.trap_after_write {
            if state::get("trapped").is_some() {
                return Err("sandbox-abuse: a trapped call's write was kept".into());
            }
            state::set("trapped", b"1");
            panic!("sandbox-abuse: trapping after a write");
        }
        if let Some(m) = &self.p.fail_with {
            return Err(m.clone().into());
        }
        Ok(Vec::new())
    }
}

export_detector!(Abuse);
