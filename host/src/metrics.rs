//! Faultline's own metrics, served on `/metrics` in the Prometheus text format: counters and
//! gauges with labels, in a registry small enough to need no library.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// The metric families Faultline exposes: name, type, help.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "faultline_recovery_decisions_total",
        "counter",
        "Recovery decisions (queued, done, retry, failed, dead, skipped, dry-run, retried), by receiver.",
    ),
    (
        "faultline_outbox_actions",
        "gauge",
        "Recovery actions in the outbox, by state (pending, done, dead, dry-run).",
    ),
    (
        "faultline_localization_failures_total",
        "counter",
        "Failed localizer calls, by localization rule and reason.",
    ),
    (
        "faultline_rule_evaluations_total",
        "counter",
        "Rule evaluations, by rule.",
    ),
    (
        "faultline_rule_evaluation_failures_total",
        "counter",
        "Failed rule evaluations, by rule and reason.",
    ),
    (
        "faultline_rule_evaluation_duration_seconds_sum",
        "counter",
        "Total time spent evaluating each rule.",
    ),
    (
        "faultline_rule_evaluations_skipped_total",
        "counter",
        "Evaluations skipped because the rule was quarantined or Kafka partitions were replaying.",
    ),
    (
        "faultline_rule_quarantined",
        "gauge",
        "1 while a rule is quarantined after repeated failures.",
    ),
    (
        "faultline_rule_group_last_duration_seconds",
        "gauge",
        "How long each rule group's last evaluation took: its rules' plugin calls and their alerts' update and save.",
    ),
    (
        "faultline_evaluation_lag_seconds",
        "gauge",
        "How far each rule group is past its next due evaluation (0 when on schedule).",
    ),
    (
        "faultline_delivery_lag_seconds",
        "gauge",
        "How long each receiver's oldest due recovery action has waited (0 when none waits).",
    ),
    (
        "faultline_plugin_log_dropped_total",
        "counter",
        "Plugin log lines dropped over the rule's rate limit, by rule.",
    ),
    (
        "faultline_plugin_calls_total",
        "counter",
        "Calls into plugins, by plugin and world.",
    ),
    ("faultline_alerts", "gauge", "Alerts held, by state."),
    (
        "faultline_cluster_leader",
        "gauge",
        "1 while this instance is the cluster's leader and delivers recovery actions ([cluster]).",
    ),
    (
        "faultline_cluster_fenced",
        "gauge",
        "1 while this instance won the election but could not renew its lease for half its TTL: it delivers nothing.",
    ),
    (
        "faultline_request_bodies",
        "gauge",
        "Request bodies being read, and waiting for a turn ([listener] max_concurrent_bodies), by state.",
    ),
    (
        "faultline_notifications_total",
        "counter",
        "Recovery attempts, by receiver and outcome.",
    ),
    (
        "faultline_samples_ingested_total",
        "counter",
        "Samples accepted, by source.",
    ),
    (
        "faultline_log_records_ingested_total",
        "counter",
        "Log records accepted, by source.",
    ),
    (
        "faultline_ingest_rejected_total",
        "counter",
        "Requests refused, by source and status code.",
    ),
    (
        "faultline_dropped_total",
        "counter",
        "Data dropped by the store's limits, by reason.",
    ),
    ("faultline_series", "gauge", "Series held in memory."),
    (
        "faultline_kafka_partitions_assigned",
        "gauge",
        "Kafka partitions this instance consumes, by source.",
    ),
    (
        "faultline_kafka_partitions_replaying",
        "gauge",
        "Gained Kafka partitions still replaying the window, by source (rules wait meanwhile).",
    ),
    (
        "faultline_kafka_messages_total",
        "counter",
        "Kafka messages taken into the window or refused as malformed, by source and outcome.",
    ),
    (
        "faultline_log_streams",
        "gauge",
        "Log streams held in memory.",
    ),
    ("faultline_rules_loaded", "gauge", "Rules loaded."),
    (
        "faultline_rules_vanished",
        "gauge",
        "Rules no longer loaded whose alerts are still held (in their grace period, or resolved lately).",
    ),
    (
        "faultline_reload_failures_total",
        "counter",
        "Failed reloads of the rules directory.",
    ),
    (
        "faultline_config_last_reload_successful",
        "gauge",
        "1 if the last reload of the rules directory succeeded.",
    ),
    (
        "faultline_alerts_received_total",
        "counter",
        "External alerts received, by source (api, webhook) and status.",
    ),
    (
        "faultline_alerts_invalid_total",
        "counter",
        "Requests with invalid external alerts, by source.",
    ),
    (
        "faultline_external_alerts",
        "gauge",
        "External alerts held, by state.",
    ),
    ("faultline_silences", "gauge", "Silences, by state."),
    // Alertmanager 0.25's names, labels and help, so its dashboards and meta-alerts work.
    // An integration is a receiver's plugin.
    ("alertmanager_alerts", "gauge", "How many alerts by state."),
    (
        "alertmanager_alerts_received_total",
        "counter",
        "The total number of received alerts.",
    ),
    (
        "alertmanager_alerts_invalid_total",
        "counter",
        "The total number of received alerts that were invalid.",
    ),
    (
        "alertmanager_notifications_total",
        "counter",
        "The total number of attempted notifications.",
    ),
    (
        "alertmanager_notifications_failed_total",
        "counter",
        "The total number of failed notifications.",
    ),
    (
        "alertmanager_notification_requests_total",
        "counter",
        "The total number of attempted notification requests.",
    ),
    (
        "alertmanager_notification_requests_failed_total",
        "counter",
        "The total number of failed notification requests.",
    ),
    (
        "alertmanager_silences",
        "gauge",
        "How many silences by state.",
    ),
];

/// A registry of labelled values.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(&'static str, String), f64>>,
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s
}

impl Metrics {
    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<(&'static str, String), f64>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&str, &str)], by: f64) {
        *self
            .values()
            .entry((name, render_labels(labels)))
            .or_default() += by;
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        self.values().insert((name, render_labels(labels)), v);
    }

    /// A value, for tests.
    pub fn get(&self, name: &'static str, labels: &[(&str, &str)]) -> Option<f64> {
        self.values().get(&(name, render_labels(labels))).copied()
    }

    /// Every value of family `name`, with its labels as `/metrics` writes them
    /// (`receiver="hook",outcome="done"`).
    pub fn family(&self, name: &'static str) -> Vec<(String, f64)> {
        self.values()
            .range((name, String::new())..)
            .take_while(|((n, _), _)| *n == name)
            .map(|((_, labels), v)| (labels.clone(), *v))
            .collect()
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let values = self.values();
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), v) in values.range((*name, String::new())..) {
                if n != name {
                    break;
                }
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_escaped_labels() {
        let m = Metrics::default();
        m.inc("faultline_rule_evaluations_total", &[("rule", "g/a\"b")]);
        m.inc("faultline_rule_evaluations_total", &[("rule", "g/a\"b")]);
        m.set("faultline_series", &[], 7.0);
        let text = m.render();
        assert!(
            text.contains("faultline_rule_evaluations_total{rule=\"g/a\\\"b\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("faultline_series 7\n"));
        assert!(text.contains("# TYPE faultline_alerts gauge"));
    }
}
