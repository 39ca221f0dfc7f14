//! The recovery world: act on an incident. Implement [`Recovery`] and export it with
//! [`export_recovery!`]. `use faultline_sdk::recovery::*;` brings everything a recovery
//! plugin uses, including the outbound [`http`], [`kafka`] and [`mail`] capabilities that
//! only this world has.

use serde::de::DeserializeOwned;

use crate::bindings::wit;
pub use crate::error::Error;
pub use crate::incident::{Alert, AlertmanagerAlert, Incident};
pub use crate::labels::Labels;
pub use crate::localizer::Suspect;
pub use crate::{clock, export_recovery, http, kafka, log, mail, state};

/// A recovery action: given an incident and its suspects, act, and say how it went.
///
/// The host retries on [`Outcome::RetryLater`], so an action must be safe to repeat: pass
/// [`RecoverInput::idempotency_key`] on to the system acted upon.
pub trait Recovery: Sized {
    /// The action's `params`, deserialized from JSON with serde.
    type Params: DeserializeOwned;

    /// Builds the action from its validated parameters. An error refuses the rule when it
    /// loads, with this message.
    fn new(params: Self::Params) -> Result<Self, Error>;

    /// Carries out one attempt of the action.
    fn recover(&mut self, input: &RecoverInput) -> Outcome;

    /// What the host calls: parses `params` (JSON) into [`Params`](Self::Params) and calls
    /// [`new`](Self::new). Call it in tests to check parameters exactly as the host will.
    fn configure(params: &str) -> Result<Self, Error> {
        Self::new(crate::params::parse(params)?)
    }
}

/// What a recovery plugin is given. Build one in tests with a struct literal and
/// `..Default::default()`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoverInput {
    /// The time of the attempt, milliseconds since the Unix epoch.
    pub now: i64,
    /// The incident to act on.
    pub incident: Incident,
    /// Where the localizers think the fault is, best first.
    pub suspects: Vec<Suspect>,
    /// Whether the localization is ambiguous: the top suspect does not lead the next by the
    /// receiver's margin (`rails.min_margin`, else `[localization] min_margin`). A
    /// notification should say so; an action on a target is never attempted then.
    pub ambiguous: bool,
    /// 1 on the first attempt.
    pub attempt: u32,
    /// Stable across attempts of the same (incident, action, target): pass it on.
    pub idempotency_key: String,
    /// The receiver's name, as routed.
    pub receiver: String,
    /// Where links should point: the host's external URL.
    pub external_url: String,
}

impl RecoverInput {
    fn from_wit(input: wit::RecoverInput) -> Self {
        Self {
            now: input.now,
            incident: crate::incident::Incident::from_wit(input.incident),
            suspects: input.suspects.into_iter().map(Suspect::from_wit).collect(),
            ambiguous: input.ambiguous,
            attempt: input.attempt,
            idempotency_key: input.idempotency_key,
            receiver: input.receiver,
            external_url: input.external_url,
        }
    }
}

/// The result of a recovery attempt, with a message for the incident's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The action was carried out.
    Done(String),
    /// A transient failure: the host retries with backoff.
    RetryLater(String),
    /// A permanent failure: the host gives up on this action.
    Failed(String),
}

impl Outcome {
    /// The outcome of an HTTP notification to `target` (`"Slack (connection slack)"`, a
    /// URL): 2xx is done; 429, 5xx and transport errors are retried; anything else fails.
    /// The message reads `"{target} answered {status}{detail}"`, followed for a failure by
    /// the start of the answer's body, where receivers say what they did not like.
    ///
    /// ```
    /// use faultline_sdk::http::Response;
    /// use faultline_sdk::recovery::Outcome;
    ///
    /// let busy = Response::new(503).body("overloaded");
    /// assert_eq!(
    ///     Outcome::of_http("http://hooks/", "", Ok(busy)),
    ///     Outcome::RetryLater("http://hooks/ answered 503: overloaded".into())
    /// );
    /// ```
    pub fn of_http(
        target: &str,
        detail: &str,
        result: Result<http::Response, http::HttpError>,
    ) -> Outcome {
        const MAX: usize = 300;
        match result {
            Ok(response) => {
                let answer = format!("{target} answered {}{detail}", response.status);
                let body = &response.body[..response.body.len().min(MAX)];
                let text = String::from_utf8_lossy(body);
                let with_body = match text.trim() {
                    "" => answer.clone(),
                    text => format!("{answer}: {text}"),
                };
                match response.status {
                    200..=299 => Outcome::Done(answer),
                    429 | 500..=599 => Outcome::RetryLater(with_body),
                    _ => Outcome::Failed(with_body),
                }
            }
            Err(e) if e.kind == http::ErrorKind::Transport => {
                Outcome::RetryLater(format!("{target}: {e}"))
            }
            Err(e) => Outcome::Failed(format!("{target}: {e}")),
        }
    }

    fn into_wit(self) -> wit::Outcome {
        match self {
            Outcome::Done(m) => wit::Outcome::Done(m),
            Outcome::RetryLater(m) => wit::Outcome::RetryLater(m),
            Outcome::Failed(m) => wit::Outcome::Failed(m),
        }
    }
}

/// The state of one Wasm instance of a recovery plugin.
#[doc(hidden)]
pub struct Instance<T> {
    rule: Option<T>,
}

impl<T: Recovery> Instance<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self { rule: None }
    }

    pub fn configure(&mut self, params: &str) -> Result<(), String> {
        self.rule = Some(T::configure(params).map_err(String::from)?);
        Ok(())
    }

    pub fn recover(&mut self, input: wit::RecoverInput) -> wit::Outcome {
        let outcome = match &mut self.rule {
            Some(rule) => rule.recover(&RecoverInput::from_wit(input)),
            None => Outcome::Failed("recover called before configure".to_string()),
        };
        outcome.into_wit()
    }
}

/// Checks, on every target, that the exported type is a recovery (the export itself is Wasm-only).
#[doc(hidden)]
pub const fn assert_recovery<T: Recovery>() {}

/// Exports a [`Recovery`] as the plugin's implementation of the recovery world. Once per
/// plugin crate, at the top level: `export_recovery!(MyAction);`.
///
/// On Wasm it generates the component's exports, keeping one `MyAction` per instance. On
/// other targets it only checks that `MyAction` implements [`Recovery`].
#[macro_export]
macro_rules! export_recovery {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<$crate::__private::RecoveryInstance<$rule>> =
                    ::core::cell::RefCell::new($crate::__private::RecoveryInstance::new());
            }
            struct Export;
            impl $crate::__private::recovery::Guest for Export {
                fn configure(
                    params: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::install_hook();
                    INSTANCE.with_borrow_mut(|i| i.configure(&params))
                }
                fn recover(
                    input: $crate::__private::recovery::RecoverInput,
                ) -> $crate::__private::recovery::Outcome {
                    INSTANCE.with_borrow_mut(|i| i.recover(input))
                }
            }
    $crate::__private::recovery::export!(Export with_types_in $crate::__private::recovery);
        };
        const _: () = $crate::__private::assert_recovery::<$rule>();
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Recovery for Echo {
        type Params = serde::de::IgnoredAny;

        fn new(_: Self::Params) -> Result<Self, Error> {
            Ok(Self)
        }

        fn recover(&mut self, input: &RecoverInput) -> Outcome {
            let top = input.suspects.first().map(|s| s.labels.to_string());
            Outcome::Done(format!("{} {:?} {}", input.attempt, top, input.ambiguous))
        }
    }

    #[test]
    fn instance_converts_both_ways() {
        let mut instance = Instance::<Echo>::new();
        let input = || wit::RecoverInput {
            now: 0,
            incident: wit::Incident {
                id: "i".into(),
                group_key: String::new(),
                group_labels: vec![],
                status: "firing".into(),
                alerts: vec![],
            },
            suspects: vec![wit::Suspect {
                labels: Labels::from([("service", "db")]).into_wit(),
                score: 1.0,
                reason: String::new(),
            }],
            ambiguous: true,
            attempt: 2,
            idempotency_key: "k".into(),
            receiver: "r".into(),
            external_url: String::new(),
        };
        assert!(matches!(instance.recover(input()), wit::Outcome::Failed(_)));
        instance.configure("{}").unwrap();
        match instance.recover(input()) {
            wit::Outcome::Done(m) => assert_eq!(m, r#"2 Some("{service=\"db\"}") true"#),
            other => panic!("{other:?}"),
        }
    }
}
