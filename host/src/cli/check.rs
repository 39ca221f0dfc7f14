//! `faultline check`: loads a rules directory exactly as `serve` would (plugins compiled and
//! configured, references and grants checked), without serving it.

use crate::config::Config;
use crate::db::Db;
use crate::rules::error::{LoadErrors, RuleError};
use crate::rules::{LoadContext, RuleSet};
use crate::runtime::Runtime;

/// Loads the configured rules directory; every problem is one error.
pub fn check(config: &Config, runtime: &Runtime) -> Result<RuleSet, LoadErrors> {
    let error = |message: String| {
        LoadErrors(vec![RuleError {
            file: config.rules_dir.clone(),
            line: None,
            item: None,
            field: None,
            message,
        }])
    };
    let db = Db::in_memory().map_err(|e| error(e.to_string()))?;
    let connections = config.connections().map_err(error)?;
    crate::rules::load::load_dir(
        &config.rules_dir,
        &LoadContext {
            runtime,
            db: &db,
            plugin_dirs: &config.plugin_dirs,
            defaults: &config.rule_defaults(),
            io: None,
            http: crate::runtime::http_client(),
            connections: Some(&connections),
        },
    )
}
