//! The Wasm sandbox: one wasmtime engine, components loaded (through the on-disk cache) and
//! pre-instantiated per plugin, and instances that run one rule's plugin with a deadline,
//! a memory cap and a cap on what they return.
//!
//! A call that traps, times out or runs out of memory poisons only its own instance: the
//! instance is dropped and a fresh one made (and configured again) on the next call.
//!
//! This file is the engine and its plugins; `instance.rs` runs calls; `host.rs` implements
//! the host imports; `convert.rs` is the edge between the host's types and the contract's;
//! `pool.rs` keeps a receiver's instances for calls side by side.

mod bindings;
mod budget;
mod cache;
pub mod convert;
mod host;
pub mod instance;
mod plugin_log;
pub mod pool;
mod redact;
mod state_store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::metrics::Metrics;

pub use bindings::types;
pub use cache::content_hash;
pub use host::{Grants, HostContext, Identity, RuleSettings, http_client, sign};
pub use plugin_log::LogRate;
pub use state_store::StateQuota;

use bindings::{detector, localizer, recovery};
use budget::MemoryBudget;
use cache::Cache;
use host::HostState;

/// How often the epoch advances: the granularity of deadlines.
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
    /// Bytes of linear memory all instances together may hold (`plugin_memory_budget`).
    pub memory_budget: usize,
    /// How many log lines each rule's plugin may write.
    pub log_rate: LogRate,
    /// Where the sandbox counts what it refuses (dropped log lines).
    pub metrics: Arc<Metrics>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            // Room for every rule and receiver twice over: a reload builds the new set
            // beside the running one. Only address space is reserved, not memory.
            max_instances: 1024,
            max_memory: 1 << 30,
            memory_budget: 2 << 30,
            log_rate: LogRate::default(),
            metrics: Arc::default(),
        }
    }
}

/// Limits on one instance's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time one call may take, time spent in host calls included.
    pub timeout: Duration,
    /// Bytes each linear memory may grow to.
    pub memory: usize,
    /// Bytes of findings or suspects one call may return.
    pub max_output: usize,
    /// What the instance's state store may hold.
    pub state: StateQuota,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            memory: 64 << 20,
            max_output: 4 << 20,
            state: StateQuota {
                keys: 10_000,
                bytes: 16 << 20,
            },
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
    #[error("exceeded its deadline of {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory cap of {0} bytes")]
    Memory(usize),
    #[error("could not grow its memory: all plugins' memory budget of {0} bytes is used")]
    MemoryBudget(usize),
    #[error("{0}")]
    StateQuota(String),
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
            Failure::MemoryBudget(_) => "memory_budget",
            Failure::StateQuota(_) => "state_quota",
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
/// One alert instance a detector found.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The series it is about (its labels are the base of the alert's identity).
    pub series: Option<u32>,
    /// Labels added to (or overriding) the series' labels.
    pub labels: Vec<(String, String)>,
    /// The value reported as `$value`.
    pub value: Option<f64>,
    /// Annotations added to the rule's.
    pub annotations: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    /// The largest memory cap an instance may have.
    max_memory: usize,
    memory_budget: Arc<MemoryBudget>,
    log_rate: LogRate,
    metrics: Arc<Metrics>,
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
    /// The engine with default settings and its compile cache in `data_dir/cache` (no cache
    /// without a data directory).
    pub fn with_data_dir(data_dir: Option<&Path>) -> Result<Runtime, RuntimeError> {
        Runtime::new(&RuntimeConfig {
            cache_dir: data_dir.map(|d| d.join("cache")),
            ..RuntimeConfig::default()
        })
    }

    /// Creates the engine (pooling allocator if the machine allows it) and its epoch ticker.
    /// Instances' memories are reserved up to `max_memory` each (address space only).
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
                max_memory: cfg.max_memory,
                memory_budget: Arc::new(MemoryBudget::new(cfg.memory_budget)),
                log_rate: cfg.log_rate,
                metrics: cfg.metrics.clone(),
                linkers,
                cache,
                stop_ticker,
            }),
        })
    }

    /// The largest memory cap a rule, localizer or receiver may ask for: the engine's
    /// maximum, and no more than all plugins' budget.
    pub fn max_memory(&self) -> usize {
        self.inner.max_memory.min(self.inner.memory_budget.limit())
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
