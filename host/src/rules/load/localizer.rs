//! Loading a localization rule: its matchers, selectors, range, data files and configured
//! plugin instance.

use std::path::Path;
use std::sync::Mutex;

use super::{Loader, Overrides, json_params};
use crate::model::matcher::parse_matchers;
use crate::rules::file::LocalizerConfig;
use crate::rules::{DEFAULT_LOCALIZER_RANGE, LocalizerRule, RuleExec};
use crate::runtime::{Grants, Identity, RuleSettings, World};

impl Loader<'_> {
    pub(super) fn localizer(
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
        if lc.weight.is_some_and(|w| !(w.is_finite() && w > 0.0)) {
            err(self, "weight", "must be a number above 0".into());
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
        self.check_memory(path, text, &lc.name, "localizer", lc.memory);
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
            RuleSettings::default(),
            format!("localizer:{}", lc.name),
            Grants::default(),
            &self.cx.defaults.rule_limits,
            Overrides {
                timeout: lc.timeout,
                memory: lc.memory,
                ..Overrides::default()
            },
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
            weight: lc.weight.unwrap_or(1.0),
            plugin,
            exec: Mutex::new(RuleExec::new(instance)),
        })
    }
}
