//! Loading a receiver: its plugin, grants (hosts, topics, connections, secret), retry
//! limits and safety rails.

use std::path::Path;

use super::{Loader, Overrides, json_params, known};
use crate::connections::Connection;
use crate::rules::file::ReceiverConfig;
use crate::rules::{DEFAULT_MAX_AGE, Receiver};
use crate::runtime::pool::Pool;
use crate::runtime::{Grants, Identity, RuleSettings, World};

/// Actions a receiver attempts at once unless it says otherwise.
const DEFAULT_CONCURRENCY: usize = 4;
/// The most a receiver may ask for: each attempt at once holds a plugin instance.
const MAX_CONCURRENCY: usize = 64;

impl Loader<'_> {
    pub(super) fn receiver(
        &mut self,
        path: &Path,
        text: &str,
        rc: &ReceiverConfig,
    ) -> Option<Receiver> {
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
            if !crate::model::is_label_name(l) {
                err(self, "rails.target", format!("invalid label name {l:?}"));
            }
        }
        if let Some(m) = rc.rails.min_score
            && !m.is_finite()
        {
            err(self, "rails.min_score", "must be a finite number".into());
        }
        if let Some(n) = rc.concurrency
            && !(1..=MAX_CONCURRENCY).contains(&n)
        {
            err(
                self,
                "concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}, got {n}"),
            );
        }
        self.check_memory(path, text, &rc.name, "receiver", rc.memory);
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
            RuleSettings::default(),
            format!("receiver:{}", rc.name),
            Grants {
                http: rc.grants.http.clone(),
                kafka: rc.grants.kafka.clone(),
                secret,
                connections: rc.grants.connections.clone(),
            },
            &self.cx.defaults.receiver_limits,
            Overrides {
                timeout: rc.timeout,
                memory: rc.memory,
                ..Overrides::default()
            },
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
                send_resolved_after_mute: rc.send_resolved_after_mute.unwrap_or(true),
                rails: rc.rails.clone(),
                instances: Pool::new(instance, rc.concurrency.unwrap_or(DEFAULT_CONCURRENCY)),
            }),
            Err(e) => {
                err(self, "params", e.failure.to_string());
                None
            }
        }
    }
}
