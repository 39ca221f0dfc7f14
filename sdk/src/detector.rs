//! The detector world: is something wrong? Implement [`Detector`] and export it with
//! [`export_detector!`]. `use faultline_sdk::detector::*;` brings everything a detector uses.

use std::mem;
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::bindings::wit;
pub use crate::error::Error;
pub use crate::input::{Input, InputBuilder, LogRecord, Sample, Selection, Series};
use crate::input::{InputNames, LabelCache};
pub use crate::labels::Labels;
pub use crate::{clock, export_detector, log, rule, state};

/// A detection rule's judgement: given the data its rule selected, which alert instances
/// are active now.
///
/// One value lives per Wasm instance, which the host keeps between evaluations: fields may
/// carry memory from one evaluation to the next, but whatever must survive a reload or a
/// restart belongs in the [`state`] store.
pub trait Detector: Sized {
    /// The rule's `params`, deserialized from JSON with serde.
    type Params: DeserializeOwned;

    /// Builds the detector from its validated parameters. An error refuses the rule when it
    /// loads, with this message.
    fn new(params: Self::Params) -> Result<Self, Error>;

    /// Evaluates the input. One finding per active alert instance; an error is reported
    /// against the rule and the evaluation counts as failed.
    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error>;

    /// What the host calls: parses `params` (JSON) into [`Params`](Self::Params) and calls
    /// [`new`](Self::new). Call it in tests to check parameters exactly as the host will.
    fn configure(params: &str) -> Result<Self, Error> {
        Self::new(crate::params::parse(params)?)
    }
}

/// One alert instance found by a detector.
///
/// Its identity is the labels of its series (if any) with [`labels`](Self::labels) added
/// over them; the host then adds the rule's labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finding {
    series: Option<(u32, Rc<Labels>)>,
    /// Labels added to (or overriding) the series' labels.
    pub labels: Labels,
    /// The value the rule's templates show as `$value`.
    pub value: Option<f64>,
    /// Annotations added to the rule's.
    pub annotations: Labels,
}

impl Finding {
    /// A finding not tied to a series: its labels are all its identity.
    pub fn new() -> Self {
        Self::default()
    }

    /// A finding about `series`.
    pub fn for_series(series: &Series<'_>) -> Self {
        Self {
            series: Some((series.id, Rc::clone(series.shared_labels()))),
            ..Self::default()
        }
    }

    /// Sets the value.
    pub fn value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// Adds (or overrides) a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name, value);
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(name, value);
        self
    }

    /// The labels of the series the finding is about, if it is about one.
    pub fn series_labels(&self) -> Option<&Labels> {
        self.series.as_ref().map(|(_, labels)| &**labels)
    }

    fn into_wit(self) -> wit::Finding {
        wit::Finding {
            series: self.series.map(|(id, _)| id),
            labels: self.labels.into_wit(),
            value: self.value,
            annotations: self.annotations.into_wit(),
        }
    }
}

/// The state of one Wasm instance of a detector: the rule once configured, and the labels of
/// the series seen so far.
#[doc(hidden)]
pub struct Instance<T> {
    rule: Option<T>,
    cache: LabelCache,
    names: InputNames,
}

impl<T: Detector> Instance<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            rule: None,
            cache: LabelCache::default(),
            names: InputNames::default(),
        }
    }

    pub fn configure(&mut self, params: &str) -> Result<(), String> {
        let settings = crate::rule::settings();
        self.names = InputNames {
            series: settings.inputs,
            logs: settings.log_inputs,
        };
        self.rule = Some(T::configure(params).map_err(String::from)?);
        Ok(())
    }

    pub fn evaluate(&mut self, input: wit::DetectInput) -> Result<Vec<wit::Finding>, String> {
        // Labels are cached even if the call fails: the host sends them only once.
        // Only a rule with named inputs asks where they start: a host call saved otherwise.
        let starts = if self.names.is_empty() {
            wit::rule::InputStart {
                samples: Vec::new(),
                logs: Vec::new(),
            }
        } else {
            crate::host::input_bounds()
        };
        let input = Input::from_wit(
            input.now,
            input.new_series,
            input.samples,
            input.logs,
            mem::take(&mut self.cache),
            &self.names,
            starts,
        );
        let result = match &mut self.rule {
            Some(rule) => rule.evaluate(&input),
            None => Err("evaluate called before configure".into()),
        };
        self.cache = input.into_cache();
        Ok(result
            .map_err(String::from)?
            .into_iter()
            .map(Finding::into_wit)
            .collect())
    }
}

/// Checks, on every target, that the exported type is a detector (the export itself is Wasm-only).
#[doc(hidden)]
pub const fn assert_detector<T: Detector>() {}

/// Exports a [`Detector`] as the plugin's implementation of the detector world. Once per
/// plugin crate, at the top level: `export_detector!(MyRule);`.
///
/// On Wasm it generates the component's exports, keeping one `MyRule` per instance. On
/// other targets it only checks that `MyRule` implements [`Detector`], so `cargo test`
/// runs natively.
#[macro_export]
macro_rules! export_detector {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<$crate::__private::DetectorInstance<$rule>> =
                    ::core::cell::RefCell::new($crate::__private::DetectorInstance::new());
            }
            struct Export;
            impl $crate::__private::detector::Guest for Export {
                fn configure(
                    params: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::install_hook();
                    INSTANCE.with_borrow_mut(|i| i.configure(&params))
                }
                fn evaluate(
                    input: $crate::__private::detector::DetectInput,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::__private::detector::Finding>,
                    ::std::string::String,
                > {
                    INSTANCE.with_borrow_mut(|i| i.evaluate(input))
                }
            }
    $crate::__private::detector::export!(Export with_types_in $crate::__private::detector);
        };
        const _: () = $crate::__private::assert_detector::<$rule>();
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fires for every series, labelled with the number of its evaluation.
    struct Count {
        calls: u32,
    }

    impl Detector for Count {
        type Params = serde::de::IgnoredAny;

        fn new(_: Self::Params) -> Result<Self, Error> {
            Ok(Self { calls: 0 })
        }

        fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {
            self.calls += 1;
            Ok(input
                .series()
                .map(|s| {
                    Finding::for_series(&s)
                        .value(s.latest().value)
                        .label("call", self.calls.to_string())
                })
                .collect())
        }
    }

    fn detect_input(new_series: Vec<wit::SeriesInfo>, ids: Vec<u32>) -> wit::DetectInput {
        let n = ids.len();
        wit::DetectInput {
            now: 0,
            new_series,
            samples: wit::Samples {
                ids,
                timestamps: vec![0; n],
                values: vec![1.5; n],
            },
            logs: vec![],
        }
    }

    #[test]
    fn instance_keeps_rule_and_labels_across_calls() {
        let mut instance = Instance::<Count>::new();
        assert_eq!(
            instance.evaluate(detect_input(vec![], vec![])).unwrap_err(),
            "evaluate called before configure"
        );
        instance.configure("{}").unwrap();
        let labels = Labels::from([("instance", "a")]).into_wit();
        let new = vec![wit::SeriesInfo { id: 4, labels }];
        let first = instance.evaluate(detect_input(new, vec![4])).unwrap();
        let second = instance.evaluate(detect_input(vec![], vec![4])).unwrap();
        assert_eq!(first[0].series, Some(4));
        assert_eq!(first[0].value, Some(1.5));
        assert_eq!(second[0].labels[0].value, "2");
        assert_eq!(instance.cache.get(4).get("instance"), Some("a"));
    }

    #[test]
    fn finding_builder() {
        let input = Input::builder().series([("job", "x")], &[(1, 2.0)]).build();
        let s = input.series().next().unwrap();
        let f = Finding::for_series(&s)
            .value(2.0)
            .label("severity", "page")
            .annotation("summary", "x is high");
        assert_eq!(f.series_labels().unwrap().get("job"), Some("x"));
        assert_eq!(f.labels.get("severity"), Some("page"));
        assert_eq!(f.annotations.get("summary"), Some("x is high"));
        assert_eq!(f.value, Some(2.0));
        assert_eq!(Finding::new().series_labels(), None);
    }
}
