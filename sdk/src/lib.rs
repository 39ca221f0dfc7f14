//! Write Faultline plugins in Rust.
//!
//! A plugin is a Wasm component for one of three worlds of the WIT contract in `wit/`:
//! a **detector** (is something wrong?), a **localizer** (where?) or a **recovery** (act on
//! it). An author implements one trait and exports it with one macro:
//!
//! | world     | `use`                          | trait                          | export                |
//! |-----------|--------------------------------|--------------------------------|-----------------------|
//! | detector  | `faultline_sdk::detector::*`   | [`Detector`](detector::Detector)   | [`export_detector!`]  |
//! | localizer | `faultline_sdk::localizer::*`  | [`Localizer`](localizer::Localizer) | [`export_localizer!`] |
//! | recovery  | `faultline_sdk::recovery::*`   | [`Recovery`](recovery::Recovery)   | [`export_recovery!`]  |
//!
//! The SDK does the rest: it parses the rule's `params` into the trait's `Params` with serde
//! (a bad field refuses the rule when it loads), keeps one value of the type per Wasm
//! instance, and remembers the labels of each series, which the host sends only once, so
//! [`Series::labels`] always has them.
//!
//! A plugin crate is a `cdylib` (plus `rlib`, for its tests) depending on `faultline-sdk` and
//! `serde`, built with `cargo build --target wasm32-wasip2`.
//!
//! # Host capabilities
//!
//! [`log`], [`clock`] and the per-rule [`state`] store for every world; outbound [`http`],
//! [`kafka`] and [`mail`] for recovery plugins only (the host refuses other plugins that use
//! them).
//!
//! # Helpers
//!
//! [`Error`] takes any `Display` error, so `?` works in trait methods; a panic is reported
//! to the host with its message and location. [`Input::selection`] reads a named input
//! (`select = { errors = '…', total = '…' }`), and [`Selection::join`] and
//! [`Selection::sum_by`] pair and sum series by labels; [`Series::increase`],
//! [`Series::rate`], [`Series::resets`] and [`Series::value_at`] read counters as PromQL
//! does; [`rule::settings`] gives the rule's `range`, `interval` and input names.
//! [`params::Duration`] deserializes `"5m"`; [`params::duration_ms`] reads a duration from a
//! [`params::Value`] (`"90s"`, `"1h30m"` or milliseconds);
//! [`time`] formats timestamps as RFC 3339; [`Alert::alertmanager`] and
//! [`Incident::alertmanager_group_key`] give an incident the shape of Alertmanager's webhook
//! notifications, and [`Suspect`](localizer::Suspect) serializes as their consumers expect;
//! [`Incident::start`] is when an incident began, where localizers split before from during;
//! [`template::pieces`] finds the `{{ ... }}` placeholders of a templated param.
//!
//! # Testing natively
//!
//! On targets other than Wasm the host capabilities are served by an in-process stub
//! ([`testing`]), the export macros only type-check, and inputs are built with
//! [`Input::builder`] or struct literals: plugins are tested with plain `cargo test`, calling
//! their trait methods directly. The examples below are such tests.
//!
//! # A detector
//!
//! ```
//! use faultline_sdk::detector::*;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Params {
//!     /// Fire for every series whose latest sample is above this.
//!     above: f64,
//! }
//!
//! struct Above {
//!     p: Params,
//! }
//!
//! impl Detector for Above {
//!     type Params = Params;
//!
//!     fn new(p: Params) -> Result<Self, Error> {
//!         Ok(Self { p })
//!     }
//!
//!     fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
//!         Ok(input
//!             .series()
//!             .filter(|s| s.latest().value > self.p.above)
//!             .map(|s| Finding::for_series(&s).value(s.latest().value))
//!             .collect())
//!     }
//! }
//!
//! export_detector!(Above);
//!
//! // The test:
//! let mut rule = Above::configure(r#"{"above": 90}"#).unwrap();
//! let input = Input::builder()
//!     .now(60_000)
//!     .series([("instance", "a")], &[(30_000, 99.0), (60_000, 95.0)])
//!     .series([("instance", "b")], &[(60_000, 20.0)])
//!     .build();
//! let findings = rule.evaluate(&input).unwrap();
//! assert_eq!(findings.len(), 1);
//! assert_eq!(findings[0].series_labels().unwrap().get("instance"), Some("a"));
//! assert_eq!(findings[0].value, Some(95.0));
//!
//! let refused = Above::configure("{}").err().unwrap();
//! assert_eq!(refused, "params: missing field `above`");
//! ```
//!
//! # A localizer
//!
//! ```
//! use faultline_sdk::localizer::*;
//!
//! /// Suspects the instances that logged the most errors during the incident.
//! struct MostErrors;
//!
//! impl Localizer for MostErrors {
//!     type Params = serde::de::IgnoredAny;
//!
//!     fn new(_: Self::Params) -> Result<Self, Error> {
//!         Ok(MostErrors)
//!     }
//!
//!     fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error> {
//!         let mut errors = std::collections::BTreeMap::<&str, u32>::new();
//!         for record in input.logs().filter(|r| r.field("level") == Some("error")) {
//!             if let Some(instance) = record.labels().get("instance") {
//!                 *errors.entry(instance).or_default() += 1;
//!             }
//!         }
//!         let total: u32 = errors.values().sum();
//!         let mut suspects: Vec<Suspect> = errors
//!             .into_iter()
//!             .map(|(instance, n)| {
//!                 Suspect::new()
//!                     .label("instance", instance)
//!                     .score(f64::from(n) / f64::from(total))
//!                     .reason(format!("{n} of the {total} error lines"))
//!             })
//!             .collect();
//!         suspects.sort_by(|a, b| b.score.total_cmp(&a.score));
//!         Ok(suspects)
//!     }
//! }
//!
//! export_localizer!(MostErrors);
//!
//! // The test:
//! let error = [("level", "error")];
//! let data = Input::builder()
//!     .log_with_fields([("instance", "db1")], 1, "timeout", error)
//!     .log_with_fields([("instance", "db2")], 2, "timeout", error)
//!     .log_with_fields([("instance", "db2")], 3, "refused", error)
//!     .log([("instance", "db1")], 4, "ok")
//!     .build();
//! let incident = Incident { id: "db-down".into(), ..Default::default() };
//! let mut localizer = MostErrors::configure("{}").unwrap();
//! let suspects = localizer.localize(&LocalizeInput::new(incident, data)).unwrap();
//! assert_eq!(suspects[0].labels.get("instance"), Some("db2"));
//! assert_eq!(suspects[0].reason, "2 of the 3 error lines");
//! ```
//!
//! # A recovery action
//!
//! ```
//! use faultline_sdk::recovery::*;
//! use faultline_sdk::http::{ErrorKind, Request};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Params {
//!     /// The deployment to restart.
//!     deployment: String,
//! }
//!
//! /// Restarts a deployment through the `k8s` connection of the server config.
//! struct Restart {
//!     p: Params,
//! }
//!
//! impl Recovery for Restart {
//!     type Params = Params;
//!
//!     fn new(p: Params) -> Result<Self, Error> {
//!         Ok(Self { p })
//!     }
//!
//!     fn recover(&mut self, input: &RecoverInput) -> Outcome {
//!         let request = Request::post(format!("/deployments/{}/restart", self.p.deployment))
//!             .connection("k8s")
//!             .header("Idempotency-Key", &input.idempotency_key);
//!         match http::send(request) {
//!             Ok(r) if r.status < 300 => Outcome::Done("restarted".into()),
//!             Ok(r) if r.status >= 500 => Outcome::RetryLater(format!("status {}", r.status)),
//!             Ok(r) => Outcome::Failed(format!("status {}", r.status)),
//!             Err(e) if e.kind == ErrorKind::Transport => Outcome::RetryLater(e.to_string()),
//!             Err(e) => Outcome::Failed(e.to_string()),
//!         }
//!     }
//! }
//!
//! export_recovery!(Restart);
//!
//! // The test:
//! use faultline_sdk::http::Response;
//! use faultline_sdk::testing;
//!
//! let mut action = Restart::configure(r#"{"deployment": "db"}"#).unwrap();
//! let input = RecoverInput { attempt: 1, idempotency_key: "k1".into(), ..Default::default() };
//! testing::http_respond(Ok(Response::new(503)));
//! testing::http_respond(Ok(Response::new(200)));
//! assert_eq!(action.recover(&input), Outcome::RetryLater("status 503".into()));
//! assert_eq!(action.recover(&input), Outcome::Done("restarted".into()));
//! let sent = testing::http_requests();
//! assert_eq!(sent[1].url, "/deployments/db/restart");
//! assert_eq!(sent[1].header_value("idempotency-key"), Some("k1"));
//! ```
#![deny(missing_docs)]

// Generated code: its lints are wit-bindgen's business.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings;
mod counter;
mod error;
mod host;
mod incident;
mod input;
mod labels;
mod panic;

pub mod clock;
pub mod detector;
pub mod http;
pub mod kafka;
pub mod localizer;
pub mod log;
pub mod mail;
pub mod params;
pub mod recovery;
pub mod rule;
pub mod state;
pub mod stats;
pub mod template;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod text;
pub mod time;

pub use counter::LOOKBACK;
pub use error::Error;
pub use incident::{Alert, AlertmanagerAlert, Incident};
pub use input::{Input, InputBuilder, LogRecord, Sample, Selection, Series};
pub use labels::Labels;

/// What the export macros expand to: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::{detector, localizer, recovery};
    pub use crate::detector::{Instance as DetectorInstance, assert_detector};
    pub use crate::localizer::{Instance as LocalizerInstance, assert_localizer};
    pub use crate::panic::install_hook;
    pub use crate::recovery::{Instance as RecoveryInstance, assert_recovery};
}
