//! Loading a detection rule: its selectors, `for`, labels, annotation templates and
//! receiver, and its configured plugin instance.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Loader, Overrides, json_params, known};
use crate::model::Labels;
use crate::rules::error::line_of_item;
use crate::rules::file::RuleConfig;
use crate::rules::template::Template;
use crate::rules::{Receiver, Rule, RuleExec};
use crate::runtime::{Grants, Identity, RuleSettings, World};

impl Loader<'_> {
    pub(super) fn rule(
        &mut self,
        path: &Path,
        text: &str,
        group: &str,
        interval: Duration,
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
        let series_inputs = rc.select.as_ref().map_or(&[][..], |i| i.names());
        let log_inputs = rc.logs.as_ref().map_or(&[][..], |i| i.names());
        if let Some(name) = log_inputs.iter().find(|n| series_inputs.contains(n)) {
            err(
                self,
                "logs",
                format!("input {name:?} is also a `select` input: a plugin reads inputs by name"),
            );
        }
        if rc.range.is_some_and(|r| r.0.is_zero()) {
            err(self, "range", "must be more than 0s".into());
        }
        let mut labels = Labels::default();
        for (k, v) in &rc.labels {
            if !crate::model::is_label_name(k) {
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
        self.check_memory(path, text, &rc.name, "rule", rc.memory);
        if rc.state_keys == Some(0) || rc.state_bytes.is_some_and(|b| b.0 == 0) {
            err(
                self,
                "state_keys",
                "state_keys and state_bytes must be above 0".into(),
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
            RuleSettings {
                range: rc.range.map(|r| r.0),
                interval,
                series_inputs: series_inputs.to_vec(),
                log_inputs: log_inputs.to_vec(),
            },
            format!("rule:{id}"),
            Grants::default(),
            &self.cx.defaults.rule_limits,
            Overrides {
                timeout: rc.timeout,
                memory: rc.memory,
                state_bytes: rc.state_bytes,
                state_keys: rc.state_keys,
            },
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
            line: line_of_item(text, &rc.name),
            select: rc.select.clone(),
            range: rc.range.map(|r| r.0),
            logs: rc.logs.clone(),
            for_: rc.for_.0,
            keep_firing_for: rc.keep_firing_for.0,
            labels,
            annotations,
            recovery: rc.recovery.clone(),
            plugin,
            exec: Mutex::new(RuleExec::new(instance)),
        })
    }
}
