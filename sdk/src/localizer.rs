//! The localizer world: where is the fault? Implement [`Localizer`] and export it with
//! [`export_localizer!`]. `use faultline_sdk::localizer::*;` brings everything a localizer
//! uses.

use std::mem;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wit;
pub use crate::error::Error;
pub use crate::incident::{Alert, Incident};
pub use crate::input::{Input, InputBuilder, LogRecord, Sample, Series};
use crate::input::{InputNames, LabelCache};
pub use crate::labels::Labels;
pub use crate::{clock, export_localizer, log, state};

/// A localization rule's judgement: given an incident and the data its rule selected around
/// it, which places are the likely fault, best first.
///
/// One value lives per Wasm instance, kept by the host between calls.
pub trait Localizer: Sized {
    /// The rule's `params`, deserialized from JSON with serde.
    type Params: DeserializeOwned;

    /// Builds the localizer from its validated parameters. An error refuses the rule when it
    /// loads, with this message.
    fn new(params: Self::Params) -> Result<Self, Error>;

    /// Ranks suspects for the incident, best first.
    fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error>;

    /// What the host calls: parses `params` (JSON) into [`Params`](Self::Params) and calls
    /// [`new`](Self::new). Call it in tests to check parameters exactly as the host will.
    fn configure(params: &str) -> Result<Self, Error> {
        Self::new(crate::params::parse(params)?)
    }
}

/// What a localizer is given: the incident, and the data its rule selected around it.
#[derive(Debug)]
pub struct LocalizeInput {
    incident: Incident,
    data: Input,
}

impl LocalizeInput {
    /// An input for tests: `data` built with [`Input::builder`].
    pub fn new(incident: Incident, data: Input) -> Self {
        Self { incident, data }
    }

    /// The time of the call, milliseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.data.now()
    }

    /// The incident to localize.
    pub fn incident(&self) -> &Incident {
        &self.incident
    }

    /// The selected series, as in [`Input::series`].
    pub fn series(&self) -> impl Iterator<Item = Series<'_>> {
        self.data.series()
    }

    /// The selected log records, as in [`Input::logs`].
    pub fn logs(&self) -> impl ExactSizeIterator<Item = LogRecord<'_>> {
        self.data.logs()
    }
}

/// A ranked candidate for where a fault is.
///
/// ```
/// use faultline_sdk::localizer::Suspect;
///
/// let suspect = Suspect::new()
///     .label("instance", "node3")
///     .score(0.8)
///     .reason("error rate 40x its peers'");
/// assert_eq!(suspect.labels.to_string(), r#"{instance="node3"}"#);
/// ```
///
/// It serializes as the JSON object `{"labels": {...}, "score": 0.8, "reason": "..."}`, the
/// shape recovery plugins send it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Suspect {
    /// Where: `{instance="node3"}`, `{service="db"}`...
    pub labels: Labels,
    /// How likely, higher is likelier; comparable between the suspects of one call.
    pub score: f64,
    /// Why, for a human.
    pub reason: String,
}

impl Suspect {
    /// A suspect with no labels, score 0 and no reason yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name, value);
        self
    }

    /// Sets the score.
    pub fn score(mut self, score: f64) -> Self {
        self.score = score;
        self
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    pub(crate) fn from_wit(suspect: wit::Suspect) -> Self {
        Self {
            labels: Labels::from_wit(suspect.labels),
            score: suspect.score,
            reason: suspect.reason,
        }
    }

    fn into_wit(self) -> wit::Suspect {
        wit::Suspect {
            labels: self.labels.into_wit(),
            score: self.score,
            reason: self.reason,
        }
    }
}

/// The state of one Wasm instance of a localizer.
#[doc(hidden)]
pub struct Instance<T> {
    rule: Option<T>,
    cache: LabelCache,
}

impl<T: Localizer> Instance<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            rule: None,
            cache: LabelCache::default(),
        }
    }

    pub fn configure(&mut self, params: &str) -> Result<(), String> {
        self.rule = Some(T::configure(params).map_err(String::from)?);
        Ok(())
    }

    pub fn localize(&mut self, input: wit::LocalizeInput) -> Result<Vec<wit::Suspect>, String> {
        let input = LocalizeInput {
            incident: Incident::from_wit(input.incident),
            data: Input::from_wit(
                input.now,
                input.new_series,
                input.samples,
                input.logs,
                mem::take(&mut self.cache),
                &InputNames::default(),
                wit::rule::InputStart {
                    samples: Vec::new(),
                    logs: Vec::new(),
                },
            ),
        };
        let result = match &mut self.rule {
            Some(rule) => rule.localize(&input),
            None => Err("localize called before configure".into()),
        };
        self.cache = input.data.into_cache();
        Ok(result
            .map_err(String::from)?
            .into_iter()
            .map(Suspect::into_wit)
            .collect())
    }
}

/// Checks, on every target, that the exported type is a localizer (the export itself is Wasm-only).
#[doc(hidden)]
pub const fn assert_localizer<T: Localizer>() {}

/// Exports a [`Localizer`] as the plugin's implementation of the localizer world. Once per
/// plugin crate, at the top level: `export_localizer!(MyLocalizer);`.
///
/// On Wasm it generates the component's exports, keeping one `MyLocalizer` per instance.
/// On other targets it only checks that `MyLocalizer` implements [`Localizer`].
#[macro_export]
macro_rules! export_localizer {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<$crate::__private::LocalizerInstance<$rule>> =
                    ::core::cell::RefCell::new($crate::__private::LocalizerInstance::new());
            }
            struct Export;
            impl $crate::__private::localizer::Guest for Export {
                fn configure(
                    params: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::install_hook();
                    INSTANCE.with_borrow_mut(|i| i.configure(&params))
                }
                fn localize(
                    input: $crate::__private::localizer::LocalizeInput,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::__private::localizer::Suspect>,
                    ::std::string::String,
                > {
                    INSTANCE.with_borrow_mut(|i| i.localize(input))
                }
            }
            $crate::__private::localizer::export!(Export with_types_in $crate::__private::localizer);
        };
        const _: () = $crate::__private::assert_localizer::<$rule>();
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Suspects every instance of the incident's alerts, scored by its latest sample.
    struct ByValue;

    impl Localizer for ByValue {
        type Params = serde::de::IgnoredAny;

        fn new(_: Self::Params) -> Result<Self, Error> {
            Ok(Self)
        }

        fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error> {
            Ok(input
                .series()
                .map(|s| {
                    Suspect::new()
                        .label("instance", s.labels().get("instance").unwrap_or(""))
                        .score(s.latest().value)
                        .reason(input.incident().id.clone())
                })
                .collect())
        }
    }

    #[test]
    fn instance_converts_both_ways() {
        let mut instance = Instance::<ByValue>::new();
        instance.configure("null").unwrap();
        let input = wit::LocalizeInput {
            now: 5,
            incident: wit::Incident {
                id: "inc-1".into(),
                group_key: String::new(),
                group_labels: vec![],
                status: "firing".into(),
                alerts: vec![],
            },
            new_series: vec![wit::SeriesInfo {
                id: 1,
                labels: Labels::from([("instance", "db1")]).into_wit(),
            }],
            samples: wit::Samples {
                ids: vec![1],
                timestamps: vec![5],
                values: vec![0.7],
            },
            logs: vec![],
        };
        let suspects = instance.localize(input).unwrap();
        assert_eq!(suspects.len(), 1);
        assert_eq!(suspects[0].labels[0].value, "db1");
        assert_eq!(suspects[0].score, 0.7);
        assert_eq!(suspects[0].reason, "inc-1");
    }

    #[test]
    fn suspect_serializes_as_labels_score_reason() {
        let suspect = Suspect::new()
            .label("instance", "web1")
            .score(0.8)
            .reason("top");
        assert_eq!(
            serde_json::to_string(&suspect).unwrap(),
            r#"{"labels":{"instance":"web1"},"score":0.8,"reason":"top"}"#
        );
    }
}
