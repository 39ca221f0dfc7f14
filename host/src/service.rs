//! The running service: it owns the handles (store, database, engine, rules, alert state,
//! dispatcher, outbox), spawns the loops (one per rule group, the dispatcher, the delivery
//! loop, scrapes, housekeeping, reload triggers) and swaps the rules in on reload. The
//! stages themselves live in their modules; this file only wires them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::alerts::Alert;
use crate::alerts::book::AlertBook;
use crate::alerts::external::ExternalAlerts;
use crate::auth::Tokens;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::connections::Connections;
use crate::db::{Db, DbError};
use crate::detect::{Health, HealthBook, Verdict};
use crate::dispatch::mute::Muter;
use crate::dispatch::silences::Silences;
use crate::dispatch::{Dispatcher, IncidentView, Routed};
use crate::history::History;
use crate::lag::{Lag, Lags};
use crate::metrics::Metrics;
use crate::model::time::now_ms;
use crate::outbox::Outbox;
use crate::rules::error::{LoadErrors, RuleError};
use crate::rules::vanished::Vanished;
use crate::rules::{LoadContext, Receiver, Rule, RuleSet};
use crate::runtime::{Runtime, RuntimeError};
use crate::schedule::Schedule;
use crate::store::{Store, StoreLimits};
use crate::workers::Worker;

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

/// The service.
pub struct Service {
    config: Config,
    store: Arc<Store>,
    db: Db,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    /// Alerts received from other programs (Alertmanager API, webhooks).
    external: ExternalAlerts,
    silences: Silences,
    /// The configuration's connections, granted to recovery actions by name.
    connections: Connections,
    rules: RwLock<Arc<RuleSet>>,
    /// The recovery receivers of rules that vanished on a reload, for their alerts.
    vanished: Vanished,
    alerts: AlertBook,
    health: HealthBook,
    dispatcher: Dispatcher,
    /// Recovery actions: written before they are attempted.
    outbox: Arc<Outbox>,
    /// Wakes the dispatcher when alerts changed.
    wake: Notify,
    /// The last hour of the service's own figures, for the console's plots.
    history: History,
    /// When each rule group last started an evaluation.
    lag: Lag,
    /// The API's tokens, from `[auth]`.
    tokens: Tokens,
    /// Bumped by each successful reload: evaluation loops of older generations stop.
    generation: watch::Sender<u64>,
    reload_status: Mutex<ReloadStatus>,
    /// Serializes reloads.
    reloading: tokio::sync::Mutex<()>,
    ready: AtomicBool,
    /// This instance's part in a cluster (`[cluster]`), if any.
    cluster: Option<Arc<Cluster>>,
    /// Gained Kafka partitions still replaying: rules wait and `/-/ready` says so.
    kafka_replaying: Arc<crate::ingest::kafka::Replaying>,
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

/// Loads the configured rules directory.
fn load_rules(
    config: &Config,
    runtime: &Runtime,
    db: &Db,
    connections: &Connections,
) -> Result<RuleSet, LoadErrors> {
    crate::rules::load::load_dir(
        &config.rules_dir,
        &LoadContext {
            runtime,
            db,
            plugin_dirs: &config.plugin_dirs,
            defaults: &config.rule_defaults(),
            io: tokio::runtime::Handle::try_current().ok(),
            http: crate::runtime::http_client(),
            connections: Some(connections),
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
        let db = Db::open(&crate::db::file(&config.data_dir))?;
        let metrics = Arc::new(Metrics::default());
        let runtime = Runtime::new(&config.runtime_config(metrics.clone()))?;
        let connections = config.connections().map_err(StartError::Config)?;
        let tokens = Tokens::load(&config.auth, &config.rules_dir).map_err(StartError::Config)?;
        let rules = load_rules(&config, &runtime, &db, &connections)?;
        let hold_until = now_ms() + config.restore_grace.0.as_millis() as i64;
        let alerts = AlertBook::open(&db, hold_until).map_err(DbError::from)?;
        let store = Arc::new(Store::new(StoreLimits {
            max_series: config.max_series,
            lookback: config.lookback.0,
            ..StoreLimits::default()
        }));
        store.retain_at_least(rules.max_range());
        metrics.set("faultline_rules_loaded", &[], rules.rules().count() as f64);
        metrics.set("faultline_config_last_reload_successful", &[], 1.0);
        let outbox = Arc::new(Outbox::new(db.clone(), metrics.clone()));
        let cluster = config
            .cluster
            .clone()
            .map(|c| Cluster::new(c, metrics.clone()));
        let dispatcher = Dispatcher::new(db.clone(), outbox.clone(), cluster.is_some());
        let now = now_ms();
        let external = ExternalAlerts::open(&db, now)?;
        let silences = Silences::open(&db)?;
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
            vanished: Vanished::default(),
            alerts,
            health: HealthBook::default(),
            dispatcher,
            outbox,
            wake: Notify::new(),
            history: History::default(),
            lag: Lag::default(),
            tokens,
            generation: watch::channel(0).0,
            reload_status: Mutex::new(ReloadStatus {
                success: true,
                last_attempt: Some(now),
                last_success: Some(now),
                errors: Vec::new(),
            }),
            reloading: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
            cluster,
            kafka_replaying: Arc::default(),
        }))
    }

    /// The server configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The windows of recent data.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Faultline's own metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Alerts received from other programs.
    pub fn external(&self) -> &ExternalAlerts {
        &self.external
    }

    /// The silences.
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// The recovery outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The last hour of the service's own figures.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The API's tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The loaded rules.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The receiver named `name`: a loaded one, or else the `recovery` receiver of a rule
    /// that vanished while its alerts are still held.
    pub fn receiver(&self, name: &str) -> Option<Arc<Receiver>> {
        let current = self.rules().receivers.get(name).cloned();
        current.or_else(|| self.vanished.receiver(name))
    }

    /// Whether the service is ready: its loops run, and neither a rule group's evaluation
    /// nor a receiver's due actions are behind by more than `ready_max_lag`; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("Faultline is starting".into());
        }
        if let Some(c) = &self.cluster {
            c.readiness()?;
        }
        let (evaluation, delivery) = self.lags();
        let replaying = self.kafka_replaying.count();
        if replaying > 0 {
            return Err(format!(
                "Faultline is replaying {replaying} gained Kafka partitions"
            ));
        }
        match crate::lag::behind(&evaluation, &delivery, self.config.ready_max_lag.0) {
            Some(why) => Err(format!("Faultline is behind: {why}")),
            None => Ok(()),
        }
    }

    /// Each rule group's evaluation lag and each receiver's delivery lag, by name.
    fn lags(&self) -> (Lags, Lags) {
        let now = now_ms();
        let evaluation = self.lag.evaluation(now);
        let mut delivery: Lags = self
            .rules()
            .receivers
            .keys()
            .map(|r| (r.clone(), Duration::ZERO))
            .collect();
        for (receiver, since) in self.outbox.due_since(now) {
            match delivery.iter_mut().find(|(r, _)| *r == receiver) {
                Some((_, lag)) => *lag = crate::lag::millis(now - since),
                None => delivery.push((receiver, crate::lag::millis(now - since))),
            }
        }
        (evaluation, delivery)
    }

    /// Sets the lag gauges.
    fn record_lags(&self) {
        let (evaluation, delivery) = self.lags();
        let gauges = [
            ("faultline_evaluation_lag_seconds", "group", evaluation),
            ("faultline_delivery_lag_seconds", "receiver", delivery),
        ];
        for (family, label, lags) in gauges {
            for (name, lag) in lags {
                let labels = [(label, name.as_str())];
                self.metrics.set(family, &labels, lag.as_secs_f64());
            }
        }
    }

    /// Starts a loop per rule group, the dispatcher, the delivery loop, scrapes, the reload
    /// triggers and housekeeping.
    pub fn start(self: &Arc<Self>) {
        if let Some(warning) = self.rules().unrouted() {
            tracing::warn!("{warning}");
        }
        self.spawn_groups();
        crate::ingest::scrape::start(
            &self.config.scrape,
            self.config.max_body.0,
            &self.store,
            &self.metrics,
        );
        self.start_kafka();
        let svc = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = svc.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let s = svc.clone();
                let pass = move || {
                    s.retire_vanished(now_ms());
                    s.dispatch_tick()
                };
                if let Err(e) = tokio::task::spawn_blocking(pass).await {
                    tracing::error!("dispatcher pass failed: {e}");
                }
            }
        });
        let svc = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                svc.store.gc(now_ms());
                svc.external.gc(now_ms());
                svc.silences.gc(now_ms());
                let s = svc.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || s.prune(now_ms())).await {
                    tracing::error!("pruning the database failed: {e}");
                }
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
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                svc.record_lags();
            }
        });
        let svc = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::history::INTERVAL);
            loop {
                tick.tick().await;
                let now = now_ms();
                let external_firing = svc.external.counts(now).0;
                svc.history.record(&svc.metrics, external_firing, now);
            }
        });
        let svc = self.clone();
        tokio::spawn(crate::outbox::deliver::run(
            self.outbox.clone(),
            move |name| svc.receiver(name),
            self.config.external_url(),
            self.cluster.clone(),
        ));
        if let Some(cluster) = &self.cluster {
            cluster.start();
            let (svc, cluster) = (self.clone(), cluster.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    cluster.replicate("silences", &svc.silences).await;
                }
            });
        }
        let mut triggers =
            crate::reload::triggers(&self.config.rules_dir, self.config.reload.quiet_period);
        let svc = self.clone();
        tokio::spawn(async move {
            while triggers.recv().await.is_some() {
                svc.reload().await.ok();
            }
        });
        self.ready.store(true, Ordering::Relaxed);
    }

    /// A consumer per `[[kafka_source]]`, writing where HTTP ingestion writes: the windows,
    /// and external alerts (durably, as `POST /api/v2/alerts`).
    fn start_kafka(self: &Arc<Self>) {
        if self.config.kafka_source.is_empty() {
            return;
        }
        let (svc, io) = (self.clone(), tokio::runtime::Handle::current());
        let alerts = move |alerts| {
            let receive = svc
                .external
                .receive(alerts, now_ms(), svc.config.resolve_timeout.0);
            io.block_on(receive).map_err(|e| e.to_string())
        };
        let sink = crate::ingest::kafka::Sink {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            limits: crate::ingest::Limits {
                max_body_bytes: self.config.max_body.0,
                ..Default::default()
            },
            alerts: Box::new(alerts),
            hand_over: {
                let svc = self.clone();
                Box::new(move |only_theirs| svc.alerts.hand_over(only_theirs, now_ms()))
            },
        };
        let store = self.store.clone();
        crate::ingest::kafka::start(
            &self.config.kafka_source,
            Arc::new(sink),
            move || store.window(),
            &self.kafka_replaying,
        );
    }

    /// A loop per rule group of the current rules, evaluating on a thread of its own; each
    /// stops when the generation changes.
    fn spawn_groups(self: &Arc<Self>) {
        let generation = *self.generation.borrow();
        let rules = self.rules();
        let aligned = self.cluster.is_some();
        self.lag.keep(rules.groups.iter().map(|g| g.name.as_str()));
        for group in rules.groups.clone() {
            let svc = self.clone();
            let mut changed = self.generation.subscribe();
            self.lag.started(&group.name, group.interval, now_ms());
            tokio::spawn(async move {
                let worker = match Worker::new(format!("rules {}", group.name)) {
                    Ok(worker) => worker,
                    Err(e) => {
                        // Its lag grows from here, and /-/ready says so.
                        tracing::error!(group = %group.name, "cannot start the group's thread: {e}");
                        return;
                    }
                };
                let mut schedule = Schedule::new(&group.name, group.interval, aligned);
                loop {
                    let mut at = None;
                    tokio::select! {
                        t = schedule.tick() => at = t,
                        _ = changed.changed() => {}
                    }
                    if *changed.borrow() != generation {
                        return;
                    }
                    svc.lag.started(&group.name, group.interval, now_ms());
                    let started = Instant::now();
                    for rule in &group.rules {
                        // A reload replaced this group: stop at once, so a stale loop holds
                        // its plugin instances no longer than one evaluation.
                        if *changed.borrow() != generation {
                            return;
                        }
                        let (rule, now) = (rule.clone(), at.unwrap_or_else(now_ms));
                        svc.evaluate(rule, group.interval, now, &worker).await;
                    }
                    svc.metrics.set(
                        "faultline_rule_group_last_duration_seconds",
                        &[("group", &group.name)],
                        started.elapsed().as_secs_f64(),
                    );
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
            Err(LoadErrors(vec![RuleError {
                file: self.config.rules_dir.clone(),
                line: None,
                item: None,
                field: None,
                message: format!("reload task failed: {e}"),
            }]))
        });
        let now = now_ms();
        let mut status = self.reload_status.lock().unwrap_or_else(|e| e.into_inner());
        status.last_attempt = Some(now);
        match loaded {
            Ok(rules) => {
                let ids: HashSet<String> = rules.rules().map(|r| r.id()).collect();
                self.store.retain_at_least(rules.max_range());
                self.metrics
                    .set("faultline_rules_loaded", &[], ids.len() as f64);
                if let Some(warning) = rules.unrouted() {
                    tracing::warn!("{warning}");
                }
                self.vanished.reloaded(&self.rules(), &rules);
                *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
                self.generation.send_modify(|g| *g += 1);
                self.spawn_groups();
                // Alerts of rules that are gone are kept for the grace period, then resolve.
                self.retire_vanished(now);
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

    /// Resolves the alerts of rules missing for longer than `[reload] vanished_grace` (their
    /// own `recovery` receiver hears it too), and forgets what vanished rules left once
    /// their alerts are gone.
    fn retire_vanished(&self, now: i64) {
        let ids: HashSet<String> = self.rules().rules().map(|r| r.id()).collect();
        let grace = self.config.reload.vanished_grace.0;
        let held = self.alerts.retire(&ids, now, grace);
        self.vanished.retain(|id| self.alerts.holds(id));
        self.metrics
            .set("faultline_rules_vanished", &[], held as f64);
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
        // The alerts are shared, not copied, and taken under the book's lock; the rules'
        // receivers are looked up once the lock is let go.
        let mut by_rule = Vec::new();
        self.alerts.each_rule(|id, alerts| {
            let shared: Vec<_> = alerts.shared().map(|(f, a)| (f, a.clone())).collect();
            by_rule.push((id.to_string(), shared));
        });
        let mut out = Vec::with_capacity(by_rule.iter().map(|(_, a)| a.len()).sum());
        for (id, alerts) in by_rule {
            let recovery = match recovery.get(&id) {
                Some(loaded) => loaded.clone(),
                None => self.vanished.recovery(&id),
            };
            out.extend(alerts.into_iter().map(|(fingerprint, alert)| Routed {
                recovery: recovery.clone(),
                fingerprint,
                alert,
            }));
        }
        out
    }

    /// A [`Muter`] for one pass at `now`: the silences active then, and `alerts` (every alert
    /// of the pass, rule and external) as the sources of the loaded inhibit rules.
    pub fn muter<'a>(&self, alerts: impl IntoIterator<Item = &'a Alert>, now: i64) -> Muter<'a> {
        Muter::new(
            self.silences.index(now),
            self.rules().inhibitor.index(alerts),
        )
    }

    /// One dispatcher pass over every alert: mute, route and group, then localize the groups
    /// that will notify and hand them to the outbox. External alerts join rule alerts here:
    /// routed alike, muted alike (silences and inhibition).
    pub fn dispatch_tick(&self) {
        // Right after a restart, a partial set of alerts would look like resolutions.
        if !self.external.is_loaded() {
            return;
        }
        let now = now_ms();
        let rules = self.rules();
        let mut alerts = self.routed_alerts();
        alerts.extend(
            self.external
                .alerts(now)
                .into_iter()
                .map(|(fingerprint, alert)| Routed {
                    alert,
                    fingerprint,
                    recovery: None,
                }),
        );
        let muter = self.muter(alerts.iter().map(|r| &*r.alert), now);
        let receivers = self.vanished.receivers(&rules.receivers);
        self.dispatcher.tick(
            now,
            *self.generation.borrow(),
            &alerts,
            &|a| muter.is_muted(&a.labels),
            rules.tree.as_ref(),
            &receivers,
            &|incident, members| {
                crate::localize::localize(
                    &rules,
                    &self.store,
                    &self.metrics,
                    incident,
                    members,
                    now,
                )
            },
        );
    }

    /// Deletes what the retention lets go at `now`: finished actions, decisions and
    /// notification log entries.
    pub fn prune(&self, now: i64) {
        let h = self.config.retention.horizons(&self.rules(), now);
        match self.outbox.prune(h.outbox, h.decisions) {
            Ok((0, 0)) => {}
            Ok((actions, decisions)) => {
                tracing::info!(
                    actions,
                    decisions,
                    "deleted finished actions and decisions past their retention"
                )
            }
            Err(e) => tracing::error!("deleting old actions and decisions: {e}"),
        }
        match self.dispatcher.prune_log(h.nflog) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                entries = n,
                "deleted notification log entries past their retention"
            ),
            Err(e) => tracing::error!("deleting old notification log entries: {e}"),
        }
    }

    /// Leaves the cluster, if in one, so another instance takes over at once.
    pub async fn stop(&self) {
        if let Some(c) = &self.cluster {
            c.leave().await;
        }
    }

    /// The incidents notified lately, with their suspects, newest first.
    pub fn incidents(&self) -> Vec<IncidentView> {
        self.dispatcher.incidents()
    }

    /// Evaluates one rule at `now` and applies its findings to the rule's alerts. A failure
    /// is recorded in the rule's health; repeated failures quarantine the rule.
    pub async fn evaluate(
        self: &Arc<Self>,
        rule: Arc<Rule>,
        interval: Duration,
        now: i64,
        worker: &Worker,
    ) {
        let id = rule.id();
        let m = &self.metrics;
        // A quarantined rule does not run; no rule does while gained Kafka partitions
        // replay (half a window would fire or resolve what the whole one does not).
        if self.health.quarantined(&id, now).is_some() || self.kafka_replaying.count() > 0 {
            m.inc("faultline_rule_evaluations_skipped_total", &[("rule", &id)]);
            return;
        }
        let (result, elapsed) = crate::detect::evaluate(&rule, &self.store, now, worker).await;
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
                let verdict = self.health.failed(&id, interval, now, elapsed, &e);
                let (Verdict::Failed { failures } | Verdict::Quarantined { failures, .. }) =
                    verdict;
                tracing::warn!(rule = %id, failures, "evaluation failed: {e}");
                if let Verdict::Quarantined { backoff, .. } = verdict {
                    tracing::error!(rule = %id, ?backoff, "rule quarantined after {failures} failures");
                    m.set("faultline_rule_quarantined", &[("rule", &id)], 1.0);
                }
                return;
            }
        };
        self.health.succeeded(&id, now, elapsed);
        m.set("faultline_rule_quarantined", &[("rule", &id)], 0.0);
        if self
            .alerts
            .apply(&id, now, observations, rule.for_, rule.keep_firing_for)
        {
            self.wake.notify_one();
        }
        for (status, n) in self.alerts.counts() {
            m.set("faultline_alerts", &[("state", status.as_str())], n as f64);
        }
    }

    /// Every rule with its health.
    pub fn rule_health(&self) -> Vec<(Arc<Rule>, Health)> {
        self.rules()
            .rules()
            .map(|r| (r.clone(), self.health.get(&r.id())))
            .collect()
    }

    /// A snapshot of every rule's alerts: (rule id, alert), ordered by labels.
    pub fn alerts(&self) -> Vec<(String, Alert)> {
        self.alerts.snapshot()
    }
}
