//! The running service: the store, the rules and their evaluation loops, alert state and
//! the dispatcher, shared by the HTTP API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use serde::Serialize;

use crate::alerts::{Observation, RuleAlerts, Status, persist};
use crate::config::Config;
use crate::connections::Connections;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::model::Labels;
use crate::notify::{Dispatcher, IncidentView, Routed};
use crate::outbox::Outbox;
use crate::rules::template::TemplateContext;
use crate::rules::{Defaults, LoadContext, LoadErrors, Rule, RuleSet};
use crate::runtime::{Limits, PluginError, Runtime, RuntimeConfig, RuntimeError, Selection, types};
use crate::store::{Store, StoreLimits};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("invalid rules:\n{0}")]
    Rules(#[from] LoadErrors),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Consecutive failures after which a rule is quarantined.
const QUARANTINE_AFTER: u32 = 3;
/// Longest quarantine.
const MAX_QUARANTINE: Duration = Duration::from_secs(600);

/// A rule's health, as the rules API shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// "ok", "err", "quarantined" or "unknown" (not evaluated yet).
    pub health: &'static str,
    pub last_evaluation: Option<i64>,
    pub last_duration_seconds: f64,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub quarantined_until: Option<i64>,
    /// How many quarantines in a row: each doubles the next.
    #[serde(skip)]
    quarantines: u32,
}

/// The service.
pub struct Service {
    pub config: Config,
    pub store: Arc<Store>,
    pub db: Db,
    pub runtime: Runtime,
    pub metrics: Arc<Metrics>,
    /// Alerts received from other programs (Alertmanager API, webhooks).
    pub external: crate::external::ExternalAlerts,
    pub silences: crate::silences::Silences,
    /// The configuration's connections, granted to recovery actions by name.
    pub connections: Connections,
    rules: RwLock<Arc<RuleSet>>,
    alerts: Mutex<HashMap<String, RuleAlerts>>,
    health: Mutex<HashMap<String, Health>>,
    dispatcher: Dispatcher,
    /// Recovery actions: written before they are attempted.
    pub outbox: Arc<Outbox>,
    /// Wakes the dispatcher when alerts changed.
    wake: Notify,
    /// Bumped by each successful reload: evaluation loops of older generations stop.
    generation: watch::Sender<u64>,
    reload_status: Mutex<ReloadStatus>,
    /// Serializes reloads.
    reloading: tokio::sync::Mutex<()>,
    ready: AtomicBool,
}

/// The outcome of the last reload, as `/api/v1/status/reload` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadStatus {
    pub success: bool,
    /// When the last reload was attempted (ms).
    pub last_attempt: Option<i64>,
    /// When the rules last loaded successfully (ms).
    pub last_success: Option<i64>,
    /// Every error of the last failed reload, one per problem.
    pub errors: Vec<String>,
}

/// Everything needed to load rules, from the configuration.
fn defaults(config: &Config) -> Defaults {
    let d = Defaults::default();
    Defaults {
        interval: config.evaluation_interval.0,
        rule_limits: Limits {
            timeout: config.rule_timeout.0,
            memory: config.plugin_memory.0,
            ..d.rule_limits
        },
        receiver_limits: Limits {
            memory: config.plugin_memory.0,
            ..d.receiver_limits
        },
        ..d
    }
}

/// Creates the engine, with its compile cache in `data_dir` (if given).
pub fn runtime(data_dir: Option<PathBuf>) -> Result<Runtime, RuntimeError> {
    Runtime::new(&RuntimeConfig {
        cache_dir: data_dir.map(|d| d.join("cache")),
        ..RuntimeConfig::default()
    })
}

/// Loads the configured rules directory.
fn load_rules(
    config: &Config,
    runtime: &Runtime,
    db: &Db,
    connections: &Connections,
) -> Result<RuleSet, LoadErrors> {
    crate::rules::load_dir(
        &config.rules_dir,
        &LoadContext {
            runtime,
            db,
            plugin_dirs: &config.plugin_dirs,
            defaults: &defaults(config),
            io: tokio::runtime::Handle::try_current().ok(),
            http: reqwest::Client::new(),
            connections: Some(connections),
        },
    )
}

/// The configuration's connections.
pub fn connections(config: &Config) -> Result<Connections, String> {
    Connections::build(&config.connection, Path::new("."))
}

/// Loads a rules directory as `serve` would, for `faultline check`.
pub fn check_rules(config: &Config, runtime: &Runtime) -> Result<RuleSet, LoadErrors> {
    let error = |message: String| {
        LoadErrors(vec![crate::rules::RuleError {
            file: config.rules_dir.clone(),
            line: None,
            item: None,
            field: None,
            message,
        }])
    };
    let db = Db::in_memory().map_err(|e| error(e.to_string()))?;
    let connections = connections(config).map_err(error)?;
    crate::rules::load_dir(
        &config.rules_dir,
        &LoadContext {
            runtime,
            db: &db,
            plugin_dirs: &config.plugin_dirs,
            defaults: &defaults(config),
            io: None,
            http: reqwest::Client::new(),
            connections: Some(&connections),
        },
    )
}

impl Service {
    /// Opens the database, creates the engine and loads the rules. Must run inside a Tokio
    /// runtime (plugins' outbound I/O runs on it).
    pub fn new(config: Config) -> Result<Arc<Service>, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let db = Db::open(&config.data_dir.join("faultline.db"))?;
        let runtime = runtime(Some(config.data_dir.clone()))?;
        let connections = connections(&config).map_err(StartError::Config)?;
        let rules = load_rules(&config, &runtime, &db, &connections)?;
        let mut alerts = persist::load(&db).map_err(DbError::from)?;
        let hold_until = crate::now_ms() + config.restore_grace.0.as_millis() as i64;
        for a in alerts.values_mut() {
            a.hold(hold_until);
        }
        let store = Arc::new(Store::new(StoreLimits {
            max_series: config.max_series,
            lookback: config.lookback.0,
            ..StoreLimits::default()
        }));
        store.retain_at_least(rules.max_range());
        let metrics = Arc::new(Metrics::default());
        metrics.set("faultline_rules_loaded", &[], rules.rules().count() as f64);
        metrics.set("faultline_config_last_reload_successful", &[], 1.0);
        let outbox = Arc::new(Outbox::new(db.clone(), metrics.clone()));
        let dispatcher = Dispatcher::new(db.clone(), outbox.clone());
        let now = crate::now_ms();
        let external = crate::external::ExternalAlerts::open(&db, now)?;
        let silences = crate::silences::Silences::open(&db)?;
        Ok(Arc::new(Service {
            config,
            store,
            db,
            runtime,
            metrics,
            external,
            silences,
            connections,
            rules: RwLock::new(Arc::new(rules)),
            alerts: Mutex::new(alerts),
            health: Mutex::new(HashMap::new()),
            dispatcher,
            outbox,
            wake: Notify::new(),
            generation: watch::channel(0).0,
            reload_status: Mutex::new(ReloadStatus {
                success: true,
                last_attempt: Some(now),
                last_success: Some(now),
                errors: Vec::new(),
            }),
            reloading: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
        }))
    }

    /// The loaded rules.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the evaluation loops run.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Starts a loop per rule group, the dispatcher, the rules watcher and housekeeping.
    pub fn start(self: &Arc<Self>) {
        self.spawn_groups();
        crate::scrape::start(self);
        let svc = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = svc.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let s = svc.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || s.dispatch_tick()).await {
                    tracing::error!("dispatcher pass failed: {e}");
                }
            }
        });
        let svc = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                svc.store.gc(crate::now_ms());
                svc.external.gc(crate::now_ms());
                svc.silences.gc(crate::now_ms());
                svc.metrics
                    .set("faultline_series", &[], svc.store.series_count() as f64);
                svc.metrics.set(
                    "faultline_log_streams",
                    &[],
                    svc.store.stream_count() as f64,
                );
            }
        });
        let svc = self.clone();
        tokio::spawn(crate::outbox::run(
            self.outbox.clone(),
            move || svc.rules(),
            self.config.external_url(),
        ));
        crate::reload::watch(self.clone());
        self.ready.store(true, Ordering::Relaxed);
    }

    /// A loop per rule group of the current rules; each stops when the generation changes.
    fn spawn_groups(self: &Arc<Self>) {
        let generation = *self.generation.borrow();
        for group in self.rules().groups.clone() {
            let svc = self.clone();
            let mut changed = self.generation.subscribe();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(group.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = changed.changed() => {}
                    }
                    if *changed.borrow() != generation {
                        return;
                    }
                    for rule in &group.rules {
                        // A reload replaced this group: stop at once, so a stale loop holds
                        // its plugin instances no longer than one evaluation.
                        if *changed.borrow() != generation {
                            return;
                        }
                        svc.evaluate(rule.clone(), crate::now_ms()).await;
                    }
                }
            });
        }
    }

    /// Loads the rules directory again. On success the new rules replace the old ones at
    /// once (rules keep their alerts and plugin state by identity, `group/name`); on
    /// failure the old ones keep running and the errors are reported.
    pub async fn reload(self: &Arc<Self>) -> Result<(), LoadErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        let started = Instant::now();
        let svc = self.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            load_rules(&svc.config, &svc.runtime, &svc.db, &svc.connections)
        })
        .await
        .unwrap_or_else(|e| {
            Err(LoadErrors(vec![crate::rules::RuleError {
                file: self.config.rules_dir.clone(),
                line: None,
                item: None,
                field: None,
                message: format!("reload task failed: {e}"),
            }]))
        });
        let now = crate::now_ms();
        let mut status = self.reload_status.lock().unwrap_or_else(|e| e.into_inner());
        status.last_attempt = Some(now);
        match loaded {
            Ok(rules) => {
                let ids: std::collections::HashSet<String> =
                    rules.rules().map(|r| r.id()).collect();
                self.store.retain_at_least(rules.max_range());
                self.metrics
                    .set("faultline_rules_loaded", &[], ids.len() as f64);
                *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
                self.generation.send_modify(|g| *g += 1);
                self.spawn_groups();
                // Alerts of rules that are gone resolve, so their receivers hear of it.
                let mut all = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
                for (id, alerts) in all.iter_mut().filter(|(id, _)| !ids.contains(*id)) {
                    let changes = alerts.update(now, Vec::new(), Duration::ZERO, Duration::ZERO);
                    if let Err(e) = persist::save(&self.db, id, alerts, &changes, false) {
                        tracing::error!(rule = %id, "saving alerts: {e}");
                    }
                }
                all.retain(|id, a| ids.contains(id) || !a.is_empty());
                drop(all);
                *status = ReloadStatus {
                    success: true,
                    last_attempt: Some(now),
                    last_success: Some(now),
                    errors: Vec::new(),
                };
                self.metrics
                    .set("faultline_config_last_reload_successful", &[], 1.0);
                tracing::info!(took = ?started.elapsed(), rules = ids.len(), "rules reloaded");
                self.wake.notify_one();
                Ok(())
            }
            Err(errors) => {
                status.success = false;
                status.errors = errors.0.iter().map(|e| e.to_string()).collect();
                self.metrics.inc("faultline_reload_failures_total", &[]);
                self.metrics
                    .set("faultline_config_last_reload_successful", &[], 0.0);
                tracing::error!("reload failed, the previous rules keep running:\n{errors}");
                Err(errors)
            }
        }
    }

    /// The outcome of the last reload.
    pub fn reload_status(&self) -> ReloadStatus {
        self.reload_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every alert the dispatcher routes: rule alerts with their rule's receiver.
    pub fn routed_alerts(&self) -> Vec<Routed> {
        let rules = self.rules();
        let recovery: HashMap<String, Option<String>> = rules
            .rules()
            .map(|r| (r.id(), r.recovery.clone()))
            .collect();
        let all = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .flat_map(|(id, ra)| {
                let rec = recovery.get(id).cloned().flatten();
                ra.iter().map(move |a| Routed {
                    alert: a.clone(),
                    recovery: rec.clone(),
                })
            })
            .collect()
    }

    /// One dispatcher pass over every alert.
    /// External alerts join rule alerts here: routed alike, muted alike (silences and
    /// inhibition).
    pub fn dispatch_tick(&self) {
        let now = crate::now_ms();
        let rules = self.rules();
        let mut alerts = self.routed_alerts();
        alerts.extend(self.external.alerts(now).into_iter().map(|alert| Routed {
            alert,
            recovery: None,
        }));
        let muter = self.muter(alerts.iter().map(|r| &r.alert), now);
        self.dispatcher.tick(
            now,
            &alerts,
            &|a| muter.is_muted(&a.labels),
            rules.tree.as_ref(),
            &rules.receivers,
            &|incident, members| self.localize(&rules, incident, members, now),
        );
    }

    /// The incidents notified lately, with their suspects, newest first.
    pub fn incidents(&self) -> Vec<IncidentView> {
        self.dispatcher.incidents()
    }

    /// Runs every localization rule that applies to an incident on the data it selects,
    /// and merges their rankings. A failing localizer is logged and counted; the others
    /// still count.
    fn localize(
        &self,
        rules: &RuleSet,
        incident: &types::Incident,
        alerts: &[&crate::alerts::Alert],
        now: i64,
    ) -> Vec<types::Suspect> {
        let mut lists = Vec::new();
        for l in &rules.localizers {
            if !l.applies(alerts.iter().map(|a| &a.labels)) {
                continue;
            }
            let mut exec = l.exec.lock().unwrap_or_else(|e| e.into_inner());
            let exec = &mut *exec;
            self.store.select(
                l.select.as_ref(),
                Some(l.range),
                l.logs.as_ref().map(|s| (s, l.range)),
                now,
                &mut exec.cache,
                &mut exec.selection,
            );
            self.metrics.inc(
                "faultline_plugin_calls_total",
                &[("plugin", &l.plugin.name), ("world", "localizer")],
            );
            match exec
                .instance
                .localize(now, incident.clone(), &mut exec.selection)
            {
                Ok(suspects) => {
                    tracing::info!(localizer = %l.name, incident = %incident.id, suspects = suspects.len(), "localized");
                    lists.push((l.name.clone(), suspects));
                }
                Err(e) => {
                    tracing::warn!(localizer = %l.name, incident = %incident.id, "localization failed: {e}");
                    self.metrics.inc(
                        "faultline_localization_failures_total",
                        &[("localizer", &l.name), ("reason", e.failure.reason())],
                    );
                }
            }
        }
        crate::outbox::merge_suspects(lists)
    }

    /// Evaluates one rule at `now`: selection, the plugin call, the alert lifecycle and
    /// notifications. A failure is recorded in the rule's health; repeated failures
    /// quarantine the rule with exponential backoff.
    pub async fn evaluate(self: &Arc<Self>, rule: Arc<Rule>, now: i64) {
        let id = rule.id();
        if let Some(until) = self.health_of(&id).quarantined_until
            && now < until
        {
            self.metrics
                .inc("faultline_rule_evaluations_skipped_total", &[("rule", &id)]);
            return;
        }
        let started = Instant::now();
        let store = self.store.clone();
        let r = rule.clone();
        let result = tokio::task::spawn_blocking(move || evaluate_blocking(&r, &store, now))
            .await
            .unwrap_or_else(|e| {
                Err(PluginError {
                    rule: rule.id(),
                    plugin: rule.plugin.name.clone(),
                    failure: crate::runtime::Failure::Trap(format!("evaluation task failed: {e}")),
                })
            });
        let elapsed = started.elapsed();
        let m = &self.metrics;
        m.inc("faultline_rule_evaluations_total", &[("rule", &id)]);
        m.add(
            "faultline_rule_evaluation_duration_seconds_sum",
            &[("rule", &id)],
            elapsed.as_secs_f64(),
        );
        m.inc(
            "faultline_plugin_calls_total",
            &[("plugin", &rule.plugin.name), ("world", "detector")],
        );
        let observations = match result {
            Ok(o) => o,
            Err(e) => {
                m.inc(
                    "faultline_rule_evaluation_failures_total",
                    &[("rule", &id), ("reason", e.failure.reason())],
                );
                self.record_failure(&rule, now, elapsed, &e);
                return;
            }
        };
        self.record_success(&id, now, elapsed);
        let mut all = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let alerts = all.entry(id.clone()).or_default();
        let changes = alerts.update(now, observations, rule.for_, rule.keep_firing_for);
        for c in &changes {
            tracing::info!(rule = %id, alert = %c.labels, from = ?c.from, to = ?c.to, "alert changed");
        }
        if let Err(e) = persist::save(
            &self.db,
            &id,
            alerts,
            &changes,
            !rule.keep_firing_for.is_zero(),
        ) {
            tracing::error!(rule = %id, "saving alerts: {e}");
        }
        if !changes.is_empty() {
            self.wake.notify_one();
        }
        let mut counts = [0usize; 3];
        for a in all.values().flat_map(|r| r.iter()) {
            counts[a.status as usize] += 1;
        }
        for (s, n) in [Status::Pending, Status::Firing, Status::Resolved]
            .iter()
            .zip(counts)
        {
            m.set("faultline_alerts", &[("state", s.as_str())], n as f64);
        }
    }

    fn health_of(&self, id: &str) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    fn record_success(&self, id: &str, now: i64, elapsed: Duration) {
        let mut all = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = all.entry(id.to_string()).or_default();
        *h = Health {
            health: "ok",
            last_evaluation: Some(now),
            last_duration_seconds: elapsed.as_secs_f64(),
            ..Health::default()
        };
        self.metrics
            .set("faultline_rule_quarantined", &[("rule", id)], 0.0);
    }

    fn record_failure(&self, rule: &Rule, now: i64, elapsed: Duration, e: &PluginError) {
        let id = rule.id();
        let mut all = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = all.entry(id.clone()).or_default();
        h.last_evaluation = Some(now);
        h.last_duration_seconds = elapsed.as_secs_f64();
        h.last_error = Some(e.to_string());
        h.consecutive_failures += 1;
        h.health = "err";
        tracing::warn!(rule = %id, failures = h.consecutive_failures, "evaluation failed: {e}");
        // Quarantine after repeated failures, and again after each failed retry.
        if h.consecutive_failures >= QUARANTINE_AFTER {
            let interval = self
                .rules()
                .groups
                .iter()
                .find(|g| g.name == rule.group)
                .map_or(Duration::from_secs(15), |g| g.interval);
            let backoff = interval
                .saturating_mul(1 << h.quarantines.min(16))
                .min(MAX_QUARANTINE);
            h.quarantines += 1;
            h.quarantined_until = Some(now + backoff.as_millis() as i64);
            h.health = "quarantined";
            tracing::error!(rule = %id, ?backoff, "rule quarantined after {} failures", h.consecutive_failures);
            self.metrics
                .set("faultline_rule_quarantined", &[("rule", &id)], 1.0);
        }
    }

    /// Every rule with its health.
    pub fn rule_health(&self) -> Vec<(Arc<Rule>, Health)> {
        let all = self.health.lock().unwrap_or_else(|e| e.into_inner());
        self.rules()
            .rules()
            .map(|r| {
                let h = all.get(&r.id()).cloned().unwrap_or(Health {
                    health: "unknown",
                    ..Health::default()
                });
                (r.clone(), h)
            })
            .collect()
    }

    /// A snapshot of every rule's alerts: (rule id, alert).
    pub fn alerts(&self) -> Vec<(String, crate::alerts::Alert)> {
        let all = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = all
            .iter()
            .flat_map(|(id, r)| r.iter().map(move |a| (id.clone(), a.clone())))
            .collect();
        out.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
        out
    }
}

/// The blocking part of an evaluation: select, call the plugin, turn findings into
/// observations.
pub(crate) fn evaluate_blocking(
    rule: &Rule,
    store: &Store,
    now: i64,
) -> Result<Vec<Observation>, PluginError> {
    let mut exec = rule.exec.lock().unwrap_or_else(|e| e.into_inner());
    let exec = &mut *exec;
    store.select(
        rule.select.as_ref(),
        rule.range,
        rule.logs.as_ref().zip(rule.range),
        now,
        &mut exec.cache,
        &mut exec.selection,
    );
    let findings = exec.instance.evaluate(now, &mut exec.selection)?;
    Ok(findings
        .into_iter()
        .map(|f| observe(rule, f, &exec.selection))
        .collect())
}

/// An alert's labels and annotations from a finding: the series' labels without the metric
/// name, the finding's labels, the rule's labels, and `alertname`.
fn observe(rule: &Rule, f: crate::runtime::types::Finding, sel: &Selection) -> Observation {
    let mut labels = f
        .series
        .and_then(|id| sel.labels(id))
        .map_or_else(Labels::default, |l| (**l).clone());
    labels.remove("__name__");
    for l in &f.labels {
        labels.set(&l.name, &l.value);
    }
    for (k, v) in rule.labels.iter() {
        labels.set(k, v);
    }
    labels.set("alertname", &rule.name);
    let ctx = TemplateContext {
        labels: &labels,
        value: f.value,
        external_labels: None,
    };
    let mut annotations = Labels::from_pairs(
        rule.annotations
            .iter()
            .map(|(k, t)| (k.clone(), t.render(&ctx))),
    );
    for a in &f.annotations {
        annotations.set(&a.name, &a.value);
    }
    Observation {
        labels,
        annotations,
        value: f.value,
    }
}
