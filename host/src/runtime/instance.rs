//! Instances of a plugin: one per rule, kept between calls, each call bounded by a deadline
//! (host calls included), a memory cap, all plugins' memory budget, a state quota and a cap
//! on what it returns; its state writes are kept only if it succeeds, and what it says of a
//! failure is redacted. The data a call selects crosses as columns; a series' labels cross
//! once per instance.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use super::bindings::{detector, localizer, recovery, types};
use super::convert;
use super::host::{Bounds, HostContext, HostState, Shared};
use super::plugin_log::LogBucket;
use super::redact::redact;
use super::{Failure, Finding, Limits, Plugin, PluginError, Pre, TICK};
use crate::connections::secrets::Substitution;
use crate::model::incident::{Incident, Suspect};
use types::{DetectInput, Label, LocalizeInput};

enum Bindings {
    Detector(detector::Detector),
    Localizer(localizer::Localizer),
    Recovery(recovery::Recovery),
}

struct Live {
    store: Store<HostState>,
    bindings: Bindings,
    /// Series ids whose labels this instance has been sent.
    sent: IdSet,
}

/// What a detector or localizer is handed: sample columns, log records and the labels of
/// every series and stream they mention.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Distinct series and log streams in the selection, sorted by id.
    pub series: Vec<(u32, crate::model::Labels)>,
    pub samples: types::Samples,
    pub logs: Vec<types::LogRecord>,
    /// Where each input starts, when a rule has several.
    pub bounds: Bounds,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            series: Vec::new(),
            samples: empty_samples(),
            logs: Vec::new(),
            bounds: Bounds::default(),
        }
    }
}

/// Sample columns with nothing in them.
pub fn empty_samples() -> types::Samples {
    types::Samples {
        ids: Vec::new(),
        timestamps: Vec::new(),
        values: Vec::new(),
    }
}

impl Selection {
    /// The labels of a series or stream in the selection.
    pub fn labels(&self, id: u32) -> Option<&crate::model::Labels> {
        self.series
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.series[i].1)
    }
}

/// What a recovery attempt hands its plugin.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub now: i64,
    pub incident: &'a Incident,
    /// Ranked, the action's target first.
    pub suspects: &'a [Suspect],
    /// Whether the top suspect leads by less than the receiver's margin.
    pub ambiguous: bool,
    /// 1 on the first attempt.
    pub attempt: u32,
    /// Stable across attempts of the same action.
    pub idempotency_key: &'a str,
    pub receiver: &'a str,
    /// Where links should point.
    pub external_url: &'a str,
}

/// The result of a recovery attempt, as the plugin judged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carried out.
    Done(String),
    /// A transient failure: retry with backoff.
    RetryLater(String),
    /// A permanent failure: give up.
    Failed(String),
}

/// One rule's plugin instance: configured with the rule's params, kept between calls.
pub struct Instance {
    plugin: Arc<Plugin>,
    ctx: HostContext,
    limits: Limits,
    shared: Shared,
    params: String,
    live: Option<Live>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.plugin.name)
            .field("rule", &self.ctx.identity.rule)
            .finish()
    }
}

impl Instance {
    /// Instantiates `plugin` for a rule and configures it with `params` (JSON): a plugin
    /// that rejects its params fails here, when the rule loads.
    pub fn new(
        plugin: Arc<Plugin>,
        ctx: HostContext,
        limits: Limits,
        params: String,
    ) -> Result<Instance, PluginError> {
        let rt = &plugin.runtime.inner;
        let shared = Shared {
            memory_budget: rt.memory_budget.clone(),
            log: Arc::new(Mutex::new(LogBucket::new(rt.log_rate))),
            metrics: rt.metrics.clone(),
            state_quota: limits.state,
        };
        let mut inst = Instance {
            plugin,
            ctx,
            limits,
            shared,
            params,
            live: None,
        };
        inst.live()?;
        Ok(inst)
    }

    /// Another instance of the same plugin and configuration, instantiated (and configured)
    /// at its first call.
    pub fn sibling(&self) -> Instance {
        Instance {
            plugin: self.plugin.clone(),
            ctx: self.ctx.clone(),
            limits: self.limits,
            shared: self.shared.clone(),
            params: self.params.clone(),
            live: None,
        }
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    fn error(&self, failure: Failure) -> PluginError {
        let failure = match failure {
            Failure::Trap(m) => Failure::Trap(self.redact(&m)),
            Failure::Returned(m) => Failure::Returned(self.redact(&m)),
            Failure::Params(m) => Failure::Params(self.redact(&m)),
            Failure::Instantiate(m) => Failure::Instantiate(self.redact(&m)),
            other => other,
        };
        PluginError {
            rule: self.ctx.identity.rule.clone(),
            plugin: self.plugin.name.clone(),
            failure,
        }
    }

    /// A plugin's text, fit to store and log: without the secrets its grants give it, cut
    /// short.
    fn redact(&self, text: &str) -> String {
        let grants = &self.ctx.grants;
        let connections = grants
            .connections
            .iter()
            .filter_map(|n| self.ctx.connections.get(n))
            .flat_map(|c| c.secret_values());
        let secrets = Substitution::of(grants.secret.clone().into_iter().chain(connections));
        redact(text, &secrets)
    }

    fn live(&mut self) -> Result<&mut Live, PluginError> {
        if self.live.is_none() {
            let live = self.instantiate()?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("set above"))
    }

    fn instantiate(&mut self) -> Result<Live, PluginError> {
        let engine = &self.plugin.runtime.inner.engine;
        let state = HostState::new(self.ctx.clone(), self.shared.clone(), self.limits.memory);
        let mut store = Store::new(engine, state);
        store.limiter(|s| s);
        let budget = self.limits.timeout;
        // Host calls count: the deadline is the call's start plus its budget.
        store.epoch_deadline_callback(move |ctx| {
            let left = ctx
                .data()
                .deadline
                .saturating_duration_since(Instant::now());
            Ok(if left.is_zero() {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Continue(ticks(left))
            })
        });
        start_call(&mut store, budget);
        let inst_err = |e: wasmtime::Error| Failure::Instantiate(format!("{e:#}"));
        let bindings = match &self.plugin.pre {
            Pre::Detector(p) => p.instantiate(&mut store).map(Bindings::Detector),
            Pre::Localizer(p) => p.instantiate(&mut store).map(Bindings::Localizer),
            Pre::Recovery(p) => p.instantiate(&mut store).map(Bindings::Recovery),
        }
        .map_err(|e| self.error(classify(e, store.data(), &self.limits, inst_err)))?;
        let configured = match &bindings {
            Bindings::Detector(b) => b.call_configure(&mut store, &self.params),
            Bindings::Localizer(b) => b.call_configure(&mut store, &self.params),
            Bindings::Recovery(b) => b.call_configure(&mut store, &self.params),
        };
        let kept = store
            .data_mut()
            .finish_state(matches!(configured, Ok(Ok(()))));
        if let Err(reason) = kept {
            return Err(self.error(Failure::StateQuota(reason)));
        }
        match configured {
            Ok(Ok(())) => Ok(Live {
                store,
                bindings,
                sent: IdSet::default(),
            }),
            Ok(Err(msg)) => Err(self.error(Failure::Params(msg))),
            Err(e) => Err(self.error(classify(e, store.data(), &self.limits, |e| {
                Failure::Trap(format!("{e:#}"))
            }))),
        }
    }

    /// Runs a call on the live instance; its state writes are kept if `succeeded` says so of
    /// what it returned. After a trap, or a write over the state quota, the instance is
    /// dropped.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<R>,
        succeeded: impl FnOnce(&R) -> bool,
    ) -> Result<R, PluginError> {
        let budget = self.limits.timeout;
        let live = self.live()?;
        start_call(&mut live.store, budget);
        let res = f(live);
        let ok = res.as_ref().is_ok_and(succeeded);
        if let Err(reason) = live.store.data_mut().finish_state(ok) {
            self.live = None;
            return Err(self.error(Failure::StateQuota(reason)));
        }
        match res {
            Ok(r) => Ok(r),
            Err(e) => {
                let live = self.live.take().expect("live during the call");
                let failure = classify(e, live.store.data(), &self.limits, |e| {
                    Failure::Trap(format!("{e:#}"))
                });
                Err(self.error(failure))
            }
        }
    }

    /// Hands the labels of series not yet sent to this instance, and drops the instance
    /// first when it holds far more labels than are still selected (so churned series do
    /// not accumulate in the plugin's memory).
    fn new_series(&mut self, sel: &Selection) -> Result<Vec<types::SeriesInfo>, PluginError> {
        let live = self.live()?;
        if live.sent.len > 2 * sel.series.len() + 10_000 {
            self.live = None;
        }
        let live = self.live()?;
        let mut new = Vec::new();
        for (id, labels) in &sel.series {
            if live.sent.insert(*id) {
                new.push(types::SeriesInfo {
                    id: *id,
                    labels: convert::to_wit_labels(labels),
                });
            }
        }
        Ok(new)
    }

    /// A detector's evaluation. `sel` is lent to the call and handed back unchanged.
    pub fn evaluate(&mut self, now: i64, sel: &mut Selection) -> Result<Vec<Finding>, PluginError> {
        let new_series = self.new_series(sel)?;
        let mut input = DetectInput {
            now,
            new_series,
            samples: std::mem::replace(&mut sel.samples, empty_samples()),
            logs: std::mem::take(&mut sel.logs),
        };
        let bounds = std::mem::take(&mut sel.bounds);
        let res = self.call(
            |live| {
                live.store.data_mut().bounds = bounds;
                let res = match &live.bindings {
                    Bindings::Detector(b) => b.call_evaluate(&mut live.store, &input),
                    _ => Err(wasmtime::Error::msg("not a detector")),
                };
                sel.bounds = std::mem::take(&mut live.store.data_mut().bounds);
                res
            },
            Result::is_ok,
        );
        sel.samples = std::mem::replace(&mut input.samples, empty_samples());
        sel.logs = std::mem::take(&mut input.logs);
        if res.is_err() {
            // The fresh instance made after a failure has seen no labels.
            self.forget_sent();
        }
        let findings = res?.map_err(|m| self.error(Failure::Returned(m)))?;
        let size: usize = findings
            .iter()
            .map(|f| 32 + labels_size(&f.labels) + labels_size(&f.annotations))
            .sum();
        if size > self.limits.max_output {
            return Err(self.error(Failure::OutputTooLarge(size, self.limits.max_output)));
        }
        Ok(findings.into_iter().map(convert::finding).collect())
    }

    /// A localizer's ranking of suspects for an incident.
    pub fn localize(
        &mut self,
        now: i64,
        incident: &Incident,
        sel: &mut Selection,
    ) -> Result<Vec<Suspect>, PluginError> {
        let new_series = self.new_series(sel)?;
        let mut input = LocalizeInput {
            now,
            incident: convert::incident(incident),
            new_series,
            samples: std::mem::replace(&mut sel.samples, empty_samples()),
            logs: std::mem::take(&mut sel.logs),
        };
        let res = self.call(
            |live| match &live.bindings {
                Bindings::Localizer(b) => b.call_localize(&mut live.store, &input),
                _ => Err(wasmtime::Error::msg("not a localizer")),
            },
            Result::is_ok,
        );
        sel.samples = std::mem::replace(&mut input.samples, empty_samples());
        sel.logs = std::mem::take(&mut input.logs);
        if res.is_err() {
            self.forget_sent();
        }
        let suspects = res?.map_err(|m| self.error(Failure::Returned(m)))?;
        let size: usize = suspects
            .iter()
            .map(|s| 16 + labels_size(&s.labels) + s.reason.len())
            .sum();
        if size > self.limits.max_output {
            return Err(self.error(Failure::OutputTooLarge(size, self.limits.max_output)));
        }
        Ok(suspects
            .into_iter()
            .map(convert::from_wit_suspect)
            .collect())
    }

    /// A recovery attempt.
    pub fn recover(&mut self, attempt: &Attempt<'_>) -> Result<Outcome, PluginError> {
        let input = types::RecoverInput {
            now: attempt.now,
            incident: convert::incident(attempt.incident),
            suspects: attempt.suspects.iter().map(convert::suspect).collect(),
            ambiguous: attempt.ambiguous,
            attempt: attempt.attempt,
            idempotency_key: attempt.idempotency_key.to_string(),
            receiver: attempt.receiver.to_string(),
            external_url: attempt.external_url.to_string(),
        };
        // Whatever the plugin judged of the attempt, the call itself succeeded.
        let outcome = self.call(
            |live| match &live.bindings {
                Bindings::Recovery(b) => b.call_recover(&mut live.store, &input),
                _ => Err(wasmtime::Error::msg("not a recovery plugin")),
            },
            |_| true,
        )?;
        Ok(match outcome {
            types::Outcome::Done(m) => Outcome::Done(self.redact(&m)),
            types::Outcome::RetryLater(m) => Outcome::RetryLater(self.redact(&m)),
            types::Outcome::Failed(m) => Outcome::Failed(self.redact(&m)),
        })
    }

    fn forget_sent(&mut self) {
        if let Some(live) = &mut self.live {
            live.sent = IdSet::default();
        }
    }
}

fn start_call(store: &mut Store<HostState>, budget: Duration) {
    let s = store.data_mut();
    s.deadline = Instant::now() + budget;
    s.memory_exceeded = false;
    s.budget_exceeded = false;
    s.panic = None;
    store.set_epoch_deadline(ticks(budget));
}

fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / TICK.as_nanos()) as u64 + 1
}

fn classify(
    e: wasmtime::Error,
    state: &HostState,
    limits: &Limits,
    other: impl FnOnce(wasmtime::Error) -> Failure,
) -> Failure {
    let trap = e.downcast_ref::<Trap>().copied();
    if state.memory_exceeded {
        Failure::Memory(limits.memory)
    } else if state.budget_exceeded {
        Failure::MemoryBudget(state.budget_limit())
    } else if trap == Some(Trap::Interrupt) {
        Failure::Timeout(limits.timeout)
    } else if let Some(panic) = &state.panic {
        Failure::Trap(panic.clone())
    } else if trap == Some(Trap::StackOverflow) {
        Failure::Trap("stack overflow (call stack exhausted)".into())
    } else if trap == Some(Trap::MemoryOutOfBounds) {
        // Rust puts a Wasm plugin's stack at the bottom of its memory: running past its end
        // reads below address 0, which is all an out-of-bounds access in safe Rust can be.
        Failure::Trap(
            "stack overflow (the plugin's stack ran past its end: out of bounds memory access)"
                .into(),
        )
    } else {
        other(e)
    }
}

fn labels_size(labels: &[Label]) -> usize {
    labels.iter().map(|l| l.name.len() + l.value.len()).sum()
}

/// A set of small integers as a bitmap.
#[derive(Default)]
struct IdSet {
    words: Vec<u64>,
    len: usize,
}

impl IdSet {
    /// Adds `id`; returns whether it was new.
    fn insert(&mut self, id: u32) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        if !was {
            self.len += 1;
        }
        !was
    }
}
