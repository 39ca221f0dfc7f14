//! The Wasm sandbox: one wasmtime engine, components loaded (through the on-disk cache) and
//! pre-instantiated per plugin, and instances that run one rule's plugin with a CPU deadline,
//! a memory cap and a cap on what they return.
//!
//! A call that traps, times out or runs out of memory poisons only its own instance: the
//! instance is dropped and a fresh one made (and configured again) on the next call.

mod bindings;
mod cache;
mod host;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use bindings::types;
pub use cache::content_hash;
pub use host::{Grants, HostContext, Identity, sign};

use bindings::{detector, localizer, recovery};
use cache::Cache;
use host::HostState;
use types::{DetectInput, Finding, Label, LocalizeInput, Outcome, RecoverInput, Suspect};

/// How often the epoch advances: the granularity of CPU deadlines.
const TICK: Duration = Duration::from_millis(5);

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Instances the pooling allocator reserves room for (one per rule and action).
    pub max_instances: u32,
    /// The largest memory cap any rule may ask for, in bytes.
    pub max_memory: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            // Room for every rule and receiver twice over: a reload builds the new set
            // beside the running one. Only address space is reserved, not memory.
            max_instances: 1024,
            max_memory: 1 << 30,
        }
    }
}

/// Limits on one instance's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CPU time one call may use (time spent in host calls is not counted).
    pub timeout: Duration,
    /// Bytes each linear memory may grow to.
    pub memory: usize,
    /// Bytes of findings or suspects one call may return.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            memory: 64 << 20,
            max_output: 4 << 20,
        }
    }
}

/// The plugin worlds of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    Detector,
    Localizer,
    Recovery,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Detector => "detector",
            World::Localizer => "localizer",
            World::Recovery => "recovery",
        })
    }
}

/// Errors setting up the engine or loading a component.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("creating the Wasm engine: {0}")]
    Engine(String),
    #[error("reading plugin {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("plugin {name}: not a valid {world} component: {reason}")]
    Invalid {
        name: String,
        world: World,
        reason: String,
    },
}

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Failure {
    #[error("exceeded its CPU deadline of {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory cap of {0} bytes")]
    Memory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("returned {0} bytes, over the cap of {1}")]
    OutputTooLarge(usize, usize),
    #[error("rejected its params: {0}")]
    Params(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}

impl Failure {
    /// A short name for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Memory(_) => "memory",
            Failure::Trap(_) => "trap",
            Failure::Returned(_) => "error",
            Failure::OutputTooLarge(..) => "output_too_large",
            Failure::Params(_) => "params",
            Failure::Instantiate(_) => "instantiate",
        }
    }
}

/// A failed plugin call, naming the rule and plugin.
#[derive(Debug, thiserror::Error, Clone)]
#[error("rule {rule:?} (plugin {plugin:?}): {failure}")]
pub struct PluginError {
    pub rule: String,
    pub plugin: String,
    pub failure: Failure,
}

/// The shared engine and linkers. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linkers: [Linker<HostState>; 3],
    cache: Option<Cache>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn engine_config(cfg: &RuntimeConfig, pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if pooling {
        let n = cfg.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A component built by Rust for wasm32-wasip2 holds a few core instances, one or
        // two memories and tables: size the pool for that.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .max_memory_size(cfg.max_memory);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Runtime {
    /// Creates the engine (pooling allocator if the machine allows it) and its epoch ticker.
    pub fn new(cfg: &RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = match Engine::new(&engine_config(cfg, true)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e}); allocating on demand");
                Engine::new(&engine_config(cfg, false))
                    .map_err(|e| RuntimeError::Engine(e.to_string()))?
            }
        };
        let linkers =
            [World::Detector, World::Localizer, World::Recovery].map(|w| linker(&engine, w));
        let [a, b, c] = linkers;
        let linkers = [a?, b?, c?];
        let cache = match &cfg.cache_dir {
            Some(dir) => match Cache::new(dir, &engine) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "compile cache disabled: {e}");
                    None
                }
            },
            None => None,
        };
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("faultline-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    e.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("starting the epoch ticker: {e}")))?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linkers,
                cache,
                stop_ticker,
            }),
        })
    }

    /// Loads a plugin component from a file for the given world.
    pub fn load(&self, name: &str, path: &Path, world: World) -> Result<Arc<Plugin>, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_bytes(name, &bytes, world)
    }

    /// Compiles (or fetches from the cache) and pre-instantiates a component.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        world: World,
    ) -> Result<Arc<Plugin>, RuntimeError> {
        let invalid = |reason: String| RuntimeError::Invalid {
            name: name.to_string(),
            world,
            reason,
        };
        let engine = &self.inner.engine;
        let (component, cached) = match &self.inner.cache {
            Some(cache) => cache.load(engine, bytes),
            None => Component::new(engine, bytes).map(|c| (c, false)),
        }
        .map_err(|e| invalid(format!("{e:#}")))?;
        let linker = &self.inner.linkers[world as usize];
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = match world {
            World::Detector => detector::DetectorPre::new(pre).map(Pre::Detector),
            World::Localizer => localizer::LocalizerPre::new(pre).map(Pre::Localizer),
            World::Recovery => recovery::RecoveryPre::new(pre).map(Pre::Recovery),
        }
        .map_err(|e| invalid(format!("{e:#}")))?;
        Ok(Arc::new(Plugin {
            name: name.to_string(),
            hash: content_hash(bytes),
            world,
            cached,
            pre,
            runtime: self.clone(),
        }))
    }
}

fn linker(engine: &Engine, world: World) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    let err = |e: wasmtime::Error| RuntimeError::Engine(format!("linking {world}: {e:#}"));
    // Rust's std for wasm32-wasip2 imports WASI; it is linked with nothing granted.
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(err)?;
    match world {
        World::Detector => detector::Detector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
        World::Localizer => {
            localizer::Localizer::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        }
        World::Recovery => recovery::Recovery::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
    }
    .map_err(err)?;
    Ok(linker)
}

enum Pre {
    Detector(detector::DetectorPre<HostState>),
    Localizer(localizer::LocalizerPre<HostState>),
    Recovery(recovery::RecoveryPre<HostState>),
}

/// A compiled, pre-instantiated plugin component.
pub struct Plugin {
    pub name: String,
    /// SHA-256 of the component's bytes.
    pub hash: String,
    pub world: World,
    /// Whether the compiled code came from the on-disk cache.
    pub cached: bool,
    pre: Pre,
    runtime: Runtime,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("world", &self.world)
            .field("hash", &self.hash)
            .finish()
    }
}

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
    pub series: Vec<(u32, Arc<crate::model::Labels>)>,
    pub samples: types::Samples,
    pub logs: Vec<types::LogRecord>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            series: Vec::new(),
            samples: empty_samples(),
            logs: Vec::new(),
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
    pub fn labels(&self, id: u32) -> Option<&Arc<crate::model::Labels>> {
        self.series
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.series[i].1)
    }
}

/// One rule's plugin instance: configured with the rule's params, kept between calls.
pub struct Instance {
    plugin: Arc<Plugin>,
    ctx: HostContext,
    limits: Limits,
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
        let mut inst = Instance {
            plugin,
            ctx,
            limits,
            params,
            live: None,
        };
        inst.live()?;
        Ok(inst)
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    fn error(&self, failure: Failure) -> PluginError {
        PluginError {
            rule: self.ctx.identity.rule.clone(),
            plugin: self.plugin.name.clone(),
            failure,
        }
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
        let mut store = Store::new(engine, HostState::new(self.ctx.clone(), self.limits.memory));
        store.limiter(|s| s);
        let budget = self.limits.timeout;
        store.epoch_deadline_callback(move |ctx| {
            let s = ctx.data();
            let used = s.call_started.elapsed().saturating_sub(s.host_time);
            Ok(if used >= budget {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Continue(ticks(budget - used))
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

    /// Runs a call on the live instance; after a trap the instance is dropped.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let budget = self.limits.timeout;
        let live = self.live()?;
        start_call(&mut live.store, budget);
        match f(live) {
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
                    labels: to_wit_labels(labels),
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
        let res = self.call(|live| match &live.bindings {
            Bindings::Detector(b) => b.call_evaluate(&mut live.store, &input),
            _ => Err(wasmtime::Error::msg("not a detector")),
        });
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
        Ok(findings)
    }

    /// A localizer's ranking of suspects for an incident.
    pub fn localize(
        &mut self,
        now: i64,
        incident: types::Incident,
        sel: &mut Selection,
    ) -> Result<Vec<Suspect>, PluginError> {
        let new_series = self.new_series(sel)?;
        let mut input = LocalizeInput {
            now,
            incident,
            new_series,
            samples: std::mem::replace(&mut sel.samples, empty_samples()),
            logs: std::mem::take(&mut sel.logs),
        };
        let res = self.call(|live| match &live.bindings {
            Bindings::Localizer(b) => b.call_localize(&mut live.store, &input),
            _ => Err(wasmtime::Error::msg("not a localizer")),
        });
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
        Ok(suspects)
    }

    /// A recovery attempt.
    pub fn recover(&mut self, input: &RecoverInput) -> Result<Outcome, PluginError> {
        self.call(|live| match &live.bindings {
            Bindings::Recovery(b) => b.call_recover(&mut live.store, input),
            _ => Err(wasmtime::Error::msg("not a recovery plugin")),
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
    s.call_started = std::time::Instant::now();
    s.host_time = Duration::ZERO;
    s.memory_exceeded = false;
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
    if state.memory_exceeded {
        Failure::Memory(limits.memory)
    } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        Failure::Timeout(limits.timeout)
    } else {
        other(e)
    }
}

fn labels_size(labels: &[Label]) -> usize {
    labels.iter().map(|l| l.name.len() + l.value.len()).sum()
}

/// Labels in the contract's form.
pub fn to_wit_labels(labels: &crate::model::Labels) -> Vec<Label> {
    labels
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// Labels from the contract's form.
pub fn from_wit_labels(labels: &[Label]) -> crate::model::Labels {
    crate::model::Labels::from_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
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
