//! Loading a rules directory: every rule file parsed, every plugin loaded and configured,
//! every reference (receivers, connections, grants) checked, and either a whole
//! [`RuleSet`] or every error found. Each kind of item is built in its own file of
//! `load/`: detection rules, receivers, localizers.

mod localizer;
mod receiver;
mod rule;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{LoadErrors, RuleError, line_of_item, toml_error};
use super::file::{LocalizationConfig, RuleFile};
use super::{Group, LoadContext, Localization, LocalizerRule, Rule, RuleSet, is_test_file};
use crate::dispatch::inhibit::{Inhibitor, validate_file};
use crate::dispatch::route::{Names, Route, RouteConfig};
use crate::dispatch::time_interval::TimeInterval;
use crate::model::is_label_name;
use crate::model::units::{ByteSize, PromDuration};
use crate::runtime::instance::Instance;
use crate::runtime::{
    Grants, HostContext, Identity, Limits, Plugin, RuleSettings, StateQuota, World,
};

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
            let interval = gc.interval.map_or(cx.defaults.interval, |d| d.0);
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
                if let Some(r) = loader.rule(path, text, &gc.name, interval, rc, &receivers) {
                    rules.push(Arc::new(r));
                }
            }
            groups.push(Arc::new(Group {
                name: gc.name.clone(),
                file: path.clone(),
                interval,
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
    let mut inhibit = Vec::new();
    let mut time_intervals: BTreeMap<String, Arc<TimeInterval>> = BTreeMap::new();
    let mut route: Option<(PathBuf, RouteConfig)> = None;
    let mut localization: Option<(PathBuf, Localization)> = None;
    for (path, text, file) in &parsed {
        if let Some(lc) = &file.localization {
            let checked = localization_of(lc).map_err(|(field, message)| RuleError {
                file: path.clone(),
                line: line_of_table(text, "[localization]"),
                item: None,
                field: Some(format!("localization.{field}")),
                message,
            });
            match (checked, &localization) {
                (Err(e), _) => loader.errors.push(e),
                (Ok(_), Some((first, _))) => loader.errors.push(RuleError {
                    file: path.clone(),
                    line: line_of_table(text, "[localization]"),
                    item: None,
                    field: Some("localization".into()),
                    message: format!("is already defined in {}", first.display()),
                }),
                (Ok(l), None) => localization = Some((path.clone(), l)),
            }
        }
        for tc in &file.time_intervals {
            let item = format!("time interval {:?}", tc.name);
            let line = line_of_item(text, &tc.name);
            let mut error = |field: Option<String>, message: String| {
                loader.errors.push(RuleError {
                    file: path.clone(),
                    line,
                    item: Some(item.clone()),
                    field,
                    message,
                })
            };
            if time_intervals.contains_key(&tc.name) {
                error(Some("name".into()), "is defined twice".into());
                continue;
            }
            match TimeInterval::new(tc) {
                Ok(t) => {
                    time_intervals.insert(tc.name.clone(), Arc::new(t));
                }
                Err(e) => error(Some(e.field), e.message),
            }
        }
        let (valid, errors) = validate_file(path, text, &file.inhibit_rules);
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
    let names = Names {
        receivers: &names,
        time_intervals: &time_intervals,
    };
    let tree = match &route {
        Some((path, rc)) => match Route::build(rc, &names) {
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
            inhibitor: Inhibitor::new(inhibit),
            tree,
            time_intervals,
            localizers,
            localization: localization.map(|(_, l)| l).unwrap_or_default(),
        })
    } else {
        Err(LoadErrors(loader.errors))
    }
}

pub(super) struct Loader<'a> {
    // Fields are read by the item loaders in `load/`.
    dir: &'a Path,
    cx: &'a LoadContext<'a>,
    plugins: HashMap<(String, u8), Arc<Plugin>>,
    errors: Vec<RuleError>,
}

impl Loader<'_> {
    pub(super) fn error(
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
    pub(super) fn plugin(&mut self, name: &str, world: World) -> Result<Arc<Plugin>, String> {
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

    /// Refuses a `memory` cap above what the engine reserves per instance, or above all
    /// plugins' budget: such an instance could never grow to it.
    pub(super) fn check_memory(
        &mut self,
        path: &Path,
        text: &str,
        name: &str,
        kind: &str,
        memory: Option<ByteSize>,
    ) {
        let max = self.cx.runtime.max_memory();
        if let Some(m) = memory
            && m.0 > max
        {
            self.error(
                path,
                text,
                name,
                kind,
                Some("memory"),
                format!(
                    "{m} is above the most one plugin may have, {} (the engine's maximum, \
                     or the server's plugin_memory_budget if lower)",
                    ByteSize(max)
                ),
            );
        }
    }

    /// A configured plugin instance: the defaults overridden by the item's limits, its
    /// params handed to the plugin (which may refuse them).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn instance(
        &self,
        plugin: &Arc<Plugin>,
        identity: Identity,
        rule: RuleSettings,
        state_scope: String,
        grants: Grants,
        defaults: &Limits,
        overrides: Overrides,
        params: &serde_json::Value,
    ) -> Result<Instance, crate::runtime::PluginError> {
        let limits = Limits {
            timeout: overrides.timeout.map_or(defaults.timeout, |d| d.0),
            memory: overrides.memory.map_or(defaults.memory, |m| m.0),
            max_output: defaults.max_output,
            state: StateQuota {
                keys: overrides.state_keys.unwrap_or(defaults.state.keys),
                bytes: overrides.state_bytes.map_or(defaults.state.bytes, |b| b.0),
            },
        };
        let ctx = HostContext {
            identity,
            rule,
            state_scope,
            db: self.cx.db.clone(),
            grants,
            io: self.cx.io.clone(),
            http: self.cx.http.clone(),
            connections: self.cx.connections.cloned().unwrap_or_default(),
        };
        Instance::new(plugin.clone(), ctx, limits, params.to_string())
    }
}

/// The limits a rules-directory item sets for its plugin instance, over the server's.
#[derive(Default)]
pub(super) struct Overrides {
    pub timeout: Option<PromDuration>,
    pub memory: Option<ByteSize>,
    pub state_bytes: Option<ByteSize>,
    pub state_keys: Option<usize>,
}

/// Names for an error message: `a, b` or `none`.
pub(super) fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A rule file's `params` as the JSON handed to plugins.
pub(super) fn json_params(params: &toml::Table) -> serde_json::Value {
    serde_json::to_value(params).unwrap_or_else(|_| serde_json::json!({}))
}

/// Validated `[localization]`, or the field that is wrong and why.
fn localization_of(lc: &LocalizationConfig) -> Result<Localization, (&'static str, String)> {
    let d = Localization::default();
    let entity = lc.entity.clone().unwrap_or(d.entity);
    if entity.is_empty() {
        return Err(("entity", "must name at least one label".into()));
    }
    if let Some(bad) = entity.iter().find(|l| !is_label_name(l)) {
        return Err(("entity", format!("{bad:?} is not a label name")));
    }
    let top = lc.top.unwrap_or(d.top);
    if top == 0 {
        return Err(("top", "must be at least 1".into()));
    }
    let min_margin = lc.min_margin.unwrap_or(d.min_margin);
    if !(0.0..=1.0).contains(&min_margin) {
        return Err(("min_margin", "must be between 0 and 1".into()));
    }
    Ok(Localization {
        entity,
        top,
        min_margin,
    })
}

/// The line of a table header such as `[localization]`.
fn line_of_table(text: &str, header: &str) -> Option<usize> {
    text.lines().position(|l| l.trim() == header).map(|i| i + 1)
}
