//! What the rule a detector runs for says about its data: its `range`, its group's
//! `interval` and the names of its inputs. Read it in [`Detector::new`] to refuse a rule
//! that cannot work, such as a range shorter than the window the detector needs.
//!
//! Detectors only: the other worlds are not run for a rule. Natively the settings are those
//! given to [`testing::set_rule`](crate::testing::set_rule), else an instant rule with one
//! unnamed `select`, evaluated every 15s.
//!
//! ```
//! use std::time::Duration;
//! use faultline_sdk::detector::*;
//! use faultline_sdk::params::Duration as ParamDuration;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Params {
//!     window: ParamDuration,
//! }
//!
//! struct NeedsWindow;
//!
//! impl Detector for NeedsWindow {
//!     type Params = Params;
//!
//!     fn new(p: Params) -> Result<Self, Error> {
//!         let rule = rule::settings();
//!         if rule.range.is_none_or(|r| r < *p.window) {
//!             return Err(format!("needs `range` of at least {}", p.window).into());
//!         }
//!         Ok(NeedsWindow)
//!     }
//!
//!     fn evaluate(&mut self, _: &Input) -> Result<Vec<Finding>, Error> {
//!         Ok(vec![])
//!     }
//! }
//!
//! use faultline_sdk::testing;
//! let refused = NeedsWindow::configure(r#"{"window": "5m"}"#).err().unwrap();
//! assert_eq!(refused.to_string(), "needs `range` of at least 5m");
//! testing::set_rule(rule::Settings {
//!     range: Some(Duration::from_secs(600)),
//!     ..Default::default()
//! });
//! assert!(NeedsWindow::configure(r#"{"window": "5m"}"#).is_ok());
//! ```
//!
//! [`Detector::new`]: crate::detector::Detector::new

use std::time::Duration;

/// A detection rule's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The rule's `range`; `None` for an instant rule (the latest sample per series).
    pub range: Option<Duration>,
    /// How often the rule's group is evaluated.
    pub interval: Duration,
    /// The names of the `select` inputs (`select = { errors = '…', total = '…' }`), sorted;
    /// empty for one unnamed `select`. Read them with
    /// [`Input::selection`](crate::Input::selection).
    pub inputs: Vec<String>,
    /// The names of the `logs` inputs, likewise.
    pub log_inputs: Vec<String>,
}

impl Default for Settings {
    /// An instant rule with one unnamed `select`, evaluated every 15s.
    fn default() -> Self {
        Settings {
            range: None,
            interval: Duration::from_secs(15),
            inputs: Vec::new(),
            log_inputs: Vec::new(),
        }
    }
}

/// The settings of the rule this detector instance runs for.
pub fn settings() -> Settings {
    let s = crate::host::rule_settings();
    let ms = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Settings {
        range: s.range_ms.map(ms),
        interval: ms(s.interval_ms),
        inputs: s.series_inputs,
        log_inputs: s.log_inputs,
    }
}

/// The window a log detector counts over: `window` from its params, else the whole of the
/// rule's `range`. Refused when the rule has no `range`, or when the window is zero or
/// longer than the range (the host keeps no older records).
pub fn log_window(window: Option<Duration>) -> Result<Duration, crate::Error> {
    let range = settings()
        .range
        .ok_or("needs a rule with `logs` and `range`")?;
    let window = window.unwrap_or(range);
    if window > range || window.is_zero() {
        return Err(format!(
            "params: `window` must be more than 0s and at most the rule's `range` ({}s)",
            range.as_secs()
        )
        .into());
    }
    Ok(window)
}
