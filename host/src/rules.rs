//! Rules: the rules directory loaded into validated runtime objects (groups of detection
//! rules, and receivers that run recovery plugins), each with its configured plugin
//! instance. A directory either loads whole or yields every error found, each naming the
//! file, line, rule and field.

pub mod duration;
mod file;
pub mod selector;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use file::{
    ByteSize, GrantsConfig, GroupConfig, InhibitRuleConfig, LocalizerConfig, RailsConfig,
    RateLimit, ReceiverConfig, RouteConfig, RuleConfig, RuleFile, SecretRef,
};

use crate::connections::{Connection, Connections};
use crate::db::Db;
use crate::matchers::parse_matchers;
use crate::model::Labels;
use crate::runtime::{
    Grants, HostContext, Identity, Instance, Limits, Plugin, Runtime, Selection, World,
};
use crate::store::MatchCache;
use selector::{LogSelector, Selector};
use template::Template;

/// One problem in a rules directory.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The rule or receiver concerned, e.g. `rule "HighLoad"`.
    pub item: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ":")?;
        if let Some(i) = &self.item {
            write!(f, " {i}:")?;
        }
        if let Some(fl) = &self.field {
            write!(f, " field `{fl}`:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every problem found while loading a rules directory.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadErrors(pub Vec<RuleError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// Defaults the server applies where a rule file is silent.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub interval: Duration,
    pub rule_limits: Limits,
    pub receiver_limits: Limits,
    pub max_attempts: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interval: Duration::from_secs(15),
            rule_limits: Limits::default(),
            receiver_limits: Limits {
                timeout: Duration::from_secs(30),
                ..Limits::default()
            },
            max_attempts: 10,
        }
    }
}

/// What loading needs from the server.
pub struct LoadContext<'a> {
    pub runtime: &'a Runtime,
    pub db: &'a Db,
    /// Extra folders searched for `<plugin>.wasm`, after the rules directory and its `plugins/`.
    pub plugin_dirs: &'a [PathBuf],
    pub defaults: &'a Defaults,
    /// Runtime that drives plugins' outbound I/O.
    pub io: Option<tokio::runtime::Handle>,
    pub http: reqwest::Client,
    /// The server's connections, which receivers' grants may name; `None` where none are
    /// used (`faultline test`), and grants are not checked against them.
    pub connections: Option<&'a Connections>,
}

/// A loaded rules directory.
pub struct RuleSet {
    pub groups: Vec<Arc<Group>>,
    pub receivers: BTreeMap<String, Arc<Receiver>>,
    /// Inhibition rules of every file, with the file each came from.
    pub inhibit_rules: Vec<(PathBuf, InhibitRuleConfig)>,
    /// The inhibit rules, validated and indexed.
    pub inhibitor: crate::inhibit::Inhibitor,
    /// The routing tree, if a file defines one.
    pub route: Option<(PathBuf, RouteConfig)>,
    /// The validated routing tree.
    pub tree: Option<crate::route::Route>,
    /// Localization rules, in file order.
    pub localizers: Vec<Arc<LocalizerRule>>,
}

impl RuleSet {
    /// The largest range any rule selects.
    pub fn max_range(&self) -> Duration {
        self.rules()
            .filter_map(|r| r.range)
            .chain(self.localizers.iter().map(|l| l.range))
            .max()
            .unwrap_or_default()
    }

    /// Every rule, group by group.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }
}

/// Rules evaluated together on one interval.
pub struct Group {
    pub name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub rules: Vec<Arc<Rule>>,
}

/// A validated detection rule and its plugin instance.
pub struct Rule {
    pub name: String,
    pub group: String,
    pub file: PathBuf,
    pub select: Option<Selector>,
    pub range: Option<Duration>,
    pub logs: Option<LogSelector>,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub labels: Labels,
    pub annotations: Vec<(String, Template)>,
    pub recovery: Option<String>,
    pub plugin: Arc<Plugin>,
    /// What one evaluation works with; locked for the evaluation.
    pub exec: Mutex<RuleExec>,
}

/// A rule's plugin instance and reusable evaluation buffers.
pub struct RuleExec {
    pub instance: Instance,
    pub cache: MatchCache,
    pub selection: Selection,
}

impl Rule {
    /// `group/name`: how the rule is named in logs, metrics and the API.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

/// A validated recovery action and its plugin instance.
pub struct Receiver {
    pub name: String,
    pub file: PathBuf,
    pub plugin: Arc<Plugin>,
    pub max_attempts: u32,
    /// How long an action is retried before it is dead-lettered.
    pub max_age: Duration,
    pub send_resolved: bool,
    pub rails: RailsConfig,
    pub instance: Mutex<Instance>,
}

/// A validated localization rule and its plugin instance.
pub struct LocalizerRule {
    pub name: String,
    pub file: PathBuf,
    pub matchers: Vec<crate::rules::selector::Matcher>,
    pub select: Option<Selector>,
    pub logs: Option<LogSelector>,
    pub range: Duration,
    pub plugin: Arc<Plugin>,
    pub exec: Mutex<RuleExec>,
}

impl LocalizerRule {
    /// Whether the rule applies to an incident with these alerts' labels.
    pub fn applies<'a>(&self, mut alerts: impl Iterator<Item = &'a Labels>) -> bool {
        self.matchers.is_empty() || alerts.any(|l| crate::matchers::matches_all(&self.matchers, l))
    }
}

/// Whether a file in the rules directory is a rule unit test (`*_test.toml`) rather than a
/// rule file.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.toml"))
}

/// Reads and validates every rule file (`*.toml` but `*_test.toml`) in `dir`, loading and
/// configuring plugins.
pub fn load_dir(dir: &Path, cx: &LoadContext<'_>) -> Result<RuleSet, LoadErrors> {
    let files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "toml") && p.is_file() && !is_test_file(p)
            })
            .collect(),
        Err(e) => {
            return Err(LoadErrors(vec![RuleError {
                file: dir.to_path_buf(),
                line: None,
                item: None,
                field: None,
                message: format!("cannot read the rules directory: {e}"),
            }]));
        }
    };
    load_files(dir, files, cx)
}

/// Reads and validates the given rule files; plugins are looked for in `dir`, its
/// `plugins/` folder and the context's plugin folders.
pub fn load_files(
    dir: &Path,
    mut files: Vec<PathBuf>,
    cx: &LoadContext<'_>,
) -> Result<RuleSet, LoadErrors> {
    let mut errors = Vec::new();
    files.sort();
    let mut parsed = Vec::new();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => match toml::from_str::<RuleFile>(&text) {
                Ok(f) => parsed.push((path, text, f)),
                Err(e) => errors.push(toml_error(&path, &text, &e)),
            },
            Err(e) => errors.push(RuleError {
                file: path,
                line: None,
                item: None,
                field: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    let mut loader = Loader {
        dir,
        cx,
        plugins: HashMap::new(),
        errors,
    };
    let mut receivers = BTreeMap::new();
    for (path, text, file) in &parsed {
        for rc in &file.receivers {
            if receivers.contains_key(&rc.name) {
                loader.error(
                    path,
                    text,
                    &rc.name,
                    "receiver",
                    Some("name"),
                    "is defined twice".into(),
                );
                continue;
            }
            if let Some(r) = loader.receiver(path, text, rc) {
                receivers.insert(rc.name.clone(), Arc::new(r));
            }
        }
    }
    let mut groups = Vec::new();
    let mut group_names = HashMap::new();
    for (path, text, file) in &parsed {
        for gc in &file.groups {
            if group_names.insert(gc.name.clone(), path.clone()).is_some() {
                loader.error(
                    path,
                    text,
                    &gc.name,
                    "group",
                    Some("name"),
                    "is defined twice".into(),
                );
                continue;
            }
            let mut rules: Vec<Arc<Rule>> = Vec::new();
            for rc in &gc.rules {
                if rules.iter().any(|r| r.name == rc.name) {
                    loader.error(
                        path,
                        text,
                        &rc.name,
                        "rule",
                        Some("name"),
                        format!("is defined twice in group {:?}", gc.name),
                    );
                    continue;
                }
                if let Some(r) = loader.rule(path, text, &gc.name, rc, &receivers) {
                    rules.push(Arc::new(r));
                }
            }
            groups.push(Arc::new(Group {
                name: gc.name.clone(),
                file: path.clone(),
                interval: gc.interval.map_or(cx.defaults.interval, |d| d.0),
                rules,
            }));
        }
    }
    let mut localizers: Vec<Arc<LocalizerRule>> = Vec::new();
    for (path, text, file) in &parsed {
        for lc in &file.localizers {
            if localizers.iter().any(|l| l.name == lc.name) {
                loader.error(
                    path,
                    text,
                    &lc.name,
                    "localizer",
                    Some("name"),
                    "is defined twice".into(),
                );
                continue;
            }
            if let Some(l) = loader.localizer(path, text, lc) {
                localizers.push(Arc::new(l));
            }
        }
    }
    let mut inhibit_rules = Vec::new();
    let mut inhibit = Vec::new();
    let mut route: Option<(PathBuf, RouteConfig)> = None;
    for (path, text, file) in &parsed {
        inhibit_rules.extend(file.inhibit_rules.iter().map(|r| (path.clone(), r.clone())));
        let (valid, errors) = crate::inhibit::validate_file(path, text, &file.inhibit_rules);
        inhibit.extend(valid);
        loader.errors.extend(errors);
        if let Some(r) = &file.route {
            if let Some((first, _)) = &route {
                loader.errors.push(RuleError {
                    file: path.clone(),
                    line: None,
                    item: None,
                    field: Some("route".into()),
                    message: format!("the routing tree is already defined in {}", first.display()),
                });
            } else {
                route = Some((path.clone(), r.clone()));
            }
        }
    }
    let names: Vec<&str> = receivers.keys().map(String::as_str).collect();
    let tree = match &route {
        Some((path, rc)) => match crate::route::Route::build(rc, &names) {
            Ok(t) => Some(t),
            Err(message) => {
                loader.errors.push(RuleError {
                    file: path.clone(),
                    line: None,
                    item: None,
                    field: Some("route".into()),
                    message,
                });
                None
            }
        },
        None => None,
    };
    if loader.errors.is_empty() {
        Ok(RuleSet {
            groups,
            receivers,
            inhibit_rules,
            inhibitor: crate::inhibit::Inhibitor::new(inhibit),
            route,
            tree,
            localizers,
        })
    } else {
        Err(LoadErrors(loader.errors))
    }
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> RuleError {
    let line = e.span().map(|s| line_of(text, s.start));
    RuleError {
        file: path.to_path_buf(),
        line,
        item: line.and_then(|l| enclosing_item(text, l)),
        field: None,
        message: e.message().trim().to_string(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The `name = "..."` of the table a line belongs to, as `rule "X"` (or group, receiver).
fn enclosing_item(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = (0..line.min(lines.len()))
        .rev()
        .find(|i| lines[*i].trim_start().starts_with('['))?;
    let kind = match lines[start].trim() {
        "[[group.rule]]" => "rule",
        "[[group]]" => "group",
        "[[receiver]]" => "receiver",
        _ => return None,
    };
    let name = lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
        })?;
    Some(format!("{kind} {name:?}"))
}

/// The line where `[[...]]` item `name` is declared.
fn line_of_item(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "name" && v.trim().trim_matches('"') == name)
        })
        .map(|i| i + 1)
}

struct Loader<'a> {
    dir: &'a Path,
    cx: &'a LoadContext<'a>,
    plugins: HashMap<(String, u8), Arc<Plugin>>,
    errors: Vec<RuleError>,
}

impl Loader<'_> {
    fn error(
        &mut self,
        path: &Path,
        text: &str,
        name: &str,
        kind: &str,
        field: Option<&str>,
        message: String,
    ) {
        self.errors.push(RuleError {
            file: path.to_path_buf(),
            line: line_of_item(text, name),
            item: Some(format!("{kind} {name:?}")),
            field: field.map(str::to_string),
            message,
        });
    }

    /// Finds and loads a plugin component for a world.
    fn plugin(&mut self, name: &str, world: World) -> Result<Arc<Plugin>, String> {
        if let Some(p) = self.plugins.get(&(name.to_string(), world as u8)) {
            return Ok(p.clone());
        }
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(format!("invalid plugin name {name:?}"));
        }
        let file = format!("{name}.wasm");
        let mut candidates = vec![self.dir.join(&file), self.dir.join("plugins").join(&file)];
        candidates.extend(self.cx.plugin_dirs.iter().map(|d| d.join(&file)));
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(format!(
                "no plugin {name:?} found (looked for {})",
                looked.join(", ")
            ));
        };
        let p = self
            .cx
            .runtime
            .load(name, path, world)
            .map_err(|e| e.to_string())?;
        self.plugins
            .insert((name.to_string(), world as u8), p.clone());
        Ok(p)
    }

    /// A configured plugin instance: the defaults overridden by the item's `timeout` and
    /// `memory`, its params handed to the plugin (which may refuse them).
    #[allow(clippy::too_many_arguments)]
    fn instance(
        &self,
        plugin: &Arc<Plugin>,
        identity: Identity,
        state_scope: String,
        grants: Grants,
        defaults: &Limits,
        (timeout, memory): (Option<duration::PromDuration>, Option<ByteSize>),
        params: &serde_json::Value,
    ) -> Result<Instance, crate::runtime::PluginError> {
        let limits = Limits {
            timeout: timeout.map_or(defaults.timeout, |d| d.0),
            memory: memory.map_or(defaults.memory, |m| m.0),
            max_output: defaults.max_output,
        };
        let ctx = HostContext {
            identity,
            state_scope,
            db: self.cx.db.clone(),
            grants,
            io: self.cx.io.clone(),
            http: self.cx.http.clone(),
            connections: self.cx.connections.cloned().unwrap_or_default(),
        };
        Instance::new(plugin.clone(), ctx, limits, params.to_string())
    }

    fn rule(
        &mut self,
        path: &Path,
        text: &str,
        group: &str,
        rc: &RuleConfig,
        receivers: &BTreeMap<String, Arc<Receiver>>,
    ) -> Option<Rule> {
        let before = self.errors.len();
        let err = |s: &mut Self, field: &str, msg: String| {
            s.error(path, text, &rc.name, "rule", Some(field), msg)
        };
        if rc.name.is_empty() {
            err(self, "name", "must not be empty".into());
        }
        if rc.select.is_none() && rc.logs.is_none() {
            err(
                self,
                "select",
                "a rule needs `select` (series) or `logs` (log records), or both".into(),
            );
        }
        if rc.logs.is_some() && rc.range.is_none() {
            err(
                self,
                "range",
                "a rule with `logs` needs a `range`, the window of records it sees".into(),
            );
        }
        if rc.range.is_some_and(|r| r.0.is_zero()) {
            err(self, "range", "must be more than 0s".into());
        }
        let mut labels = Labels::default();
        for (k, v) in &rc.labels {
            if !crate::ingest::is_label_name(k) {
                err(self, "labels", format!("invalid label name {k:?}"));
            }
            labels.set(k, v);
        }
        let mut annotations = Vec::new();
        for (k, v) in &rc.annotations {
            match Template::parse(v) {
                Ok(t) => annotations.push((k.clone(), t)),
                Err(e) => err(self, "annotations", format!("{k}: {e}")),
            }
        }
        if let Some(r) = &rc.recovery
            && !receivers.contains_key(r)
        {
            let known = known(receivers.keys().map(String::as_str));
            err(
                self,
                "recovery",
                format!("no receiver named {r:?} (known: {known})"),
            );
        }
        let plugin = self
            .plugin(&rc.plugin, World::Detector)
            .map_err(|m| err(self, "plugin", m))
            .ok();
        if self.errors.len() > before {
            return None;
        }
        let plugin = plugin?;
        let id = format!("{group}/{}", rc.name);
        let instance = match self.instance(
            &plugin,
            Identity {
                rule: id.clone(),
                plugin: rc.plugin.clone(),
            },
            format!("rule:{id}"),
            Grants::default(),
            &self.cx.defaults.rule_limits,
            (rc.timeout, rc.memory),
            &json_params(&rc.params),
        ) {
            Ok(i) => i,
            Err(e) => {
                err(self, "params", e.failure.to_string());
                return None;
            }
        };
        Some(Rule {
            name: rc.name.clone(),
            group: group.to_string(),
            file: path.to_path_buf(),
            select: rc.select.clone(),
            range: rc.range.map(|r| r.0),
            logs: rc.logs.clone(),
            for_: rc.for_.0,
            keep_firing_for: rc.keep_firing_for.0,
            labels,
            annotations,
            recovery: rc.recovery.clone(),
            plugin,
            exec: Mutex::new(RuleExec {
                instance,
                cache: MatchCache::default(),
                selection: Selection::default(),
            }),
        })
    }

    fn receiver(&mut self, path: &Path, text: &str, rc: &ReceiverConfig) -> Option<Receiver> {
        let before = self.errors.len();
        let err = |s: &mut Self, field: &str, msg: String| {
            s.error(path, text, &rc.name, "receiver", Some(field), msg)
        };
        let secret = match rc.grants.secret.as_ref().map(|r| r.read(self.dir)) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(m)) => {
                err(self, "grants.secret", m);
                None
            }
        };
        if let Some(connections) = self.cx.connections {
            for name in rc.grants.connections.iter() {
                if connections.get(name).is_some() {
                    continue;
                }
                let known = known(connections.names());
                err(
                    self,
                    "grants.connections",
                    format!(
                        "no connection named {name:?} in the server configuration (known: {known})"
                    ),
                );
            }
        }
        let kafka_connections = rc
            .grants
            .connections
            .iter()
            .filter(|n| {
                self.cx
                    .connections
                    .and_then(|c| c.get(n))
                    .is_some_and(|c| matches!(**c, Connection::Kafka(_)))
            })
            .count();
        if kafka_connections > 1 {
            err(
                self,
                "grants.connections",
                "grants more than one Kafka connection: Kafka produce would not know which to use"
                    .into(),
            );
        }
        for l in &rc.rails.target {
            if !crate::ingest::is_label_name(l) {
                err(self, "rails.target", format!("invalid label name {l:?}"));
            }
        }
        if let Some(m) = rc.rails.min_score
            && !m.is_finite()
        {
            err(self, "rails.min_score", "must be a finite number".into());
        }
        let plugin = self
            .plugin(&rc.plugin, World::Recovery)
            .map_err(|m| err(self, "plugin", m))
            .ok();
        if self.errors.len() > before {
            return None;
        }
        let plugin = plugin?;
        let instance = self.instance(
            &plugin,
            Identity {
                rule: format!("receiver {}", rc.name),
                plugin: rc.plugin.clone(),
            },
            format!("receiver:{}", rc.name),
            Grants {
                http: rc.grants.http.clone(),
                kafka: rc.grants.kafka.clone(),
                secret,
                connections: rc.grants.connections.clone(),
            },
            &self.cx.defaults.receiver_limits,
            (rc.timeout, rc.memory),
            &json_params(&rc.params),
        );
        match instance {
            Ok(instance) => Some(Receiver {
                name: rc.name.clone(),
                file: path.to_path_buf(),
                plugin,
                max_attempts: rc
                    .max_attempts
                    .unwrap_or(self.cx.defaults.max_attempts)
                    .max(1),
                max_age: rc.max_age.map_or(DEFAULT_MAX_AGE, |d| d.0),
                send_resolved: rc.send_resolved.unwrap_or(true),
                rails: rc.rails.clone(),
                instance: Mutex::new(instance),
            }),
            Err(e) => {
                err(self, "params", e.failure.to_string());
                None
            }
        }
    }
}

/// Names for an error message: `a, b` or `none`.
fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// How long a recovery action is retried unless its receiver says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// How far back a localizer's data goes unless it says otherwise.
pub const DEFAULT_LOCALIZER_RANGE: Duration = Duration::from_secs(3600);

/// A rule file's `params` as the JSON handed to plugins.
fn json_params(params: &toml::Table) -> serde_json::Value {
    serde_json::to_value(params).unwrap_or_else(|_| serde_json::json!({}))
}

impl Loader<'_> {
    fn localizer(
        &mut self,
        path: &Path,
        text: &str,
        lc: &LocalizerConfig,
    ) -> Option<LocalizerRule> {
        let before = self.errors.len();
        let err = |s: &mut Self, field: &str, msg: String| {
            s.error(path, text, &lc.name, "localizer", Some(field), msg)
        };
        if lc.name.is_empty() {
            err(self, "name", "must not be empty".into());
        }
        let mut matchers = Vec::new();
        for m in &lc.matchers {
            match parse_matchers(m) {
                Ok(ms) => matchers.extend(ms),
                Err(e) => err(self, "match", e),
            }
        }
        if lc.range.is_some_and(|r| r.0.is_zero()) {
            err(self, "range", "must be more than 0s".into());
        }
        let mut params = json_params(&lc.params);
        for (key, file) in &lc.files {
            let f = if file.is_relative() {
                self.dir.join(file)
            } else {
                file.clone()
            };
            let value = std::fs::read_to_string(&f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))
                .and_then(|t| {
                    serde_json::from_str::<serde_json::Value>(&t)
                        .map_err(|e| format!("{} is not valid JSON: {e}", f.display()))
                });
            match value {
                Ok(v) => {
                    params[key.as_str()] = v;
                }
                Err(m) => err(self, "files", format!("{key}: {m}")),
            }
        }
        let plugin = self
            .plugin(&lc.plugin, World::Localizer)
            .map_err(|m| err(self, "plugin", m))
            .ok();
        if self.errors.len() > before {
            return None;
        }
        let plugin = plugin?;
        let id = format!("localizer {}", lc.name);
        let instance = match self.instance(
            &plugin,
            Identity {
                rule: id,
                plugin: lc.plugin.clone(),
            },
            format!("localizer:{}", lc.name),
            Grants::default(),
            &self.cx.defaults.rule_limits,
            (lc.timeout, lc.memory),
            &params,
        ) {
            Ok(i) => i,
            Err(e) => {
                err(self, "params", e.failure.to_string());
                return None;
            }
        };
        Some(LocalizerRule {
            name: lc.name.clone(),
            file: path.to_path_buf(),
            matchers,
            select: lc.select.clone(),
            logs: lc.logs.clone(),
            range: lc.range.map_or(DEFAULT_LOCALIZER_RANGE, |r| r.0),
            plugin,
            exec: Mutex::new(RuleExec {
                instance,
                cache: MatchCache::default(),
                selection: Selection::default(),
            }),
        })
    }
}
