//! Localization: for an incident about to be notified, every localization rule whose `match`
//! fits one of its alerts ranks suspects from the data it selects; the rankings merge into
//! one, best first. A failing localizer is logged and counted; the others still count.
//!
//! Suspects merge on the *entity* they name, not on their exact label sets: the first label
//! of `[localization] entity` that a suspect has (`instance`, else `node`, `pod`, `service`)
//! is its key, so `{instance="n4", service="db"}` from a graph localizer and `{instance="n4"}`
//! from a log localizer are one suspect, with the labels of both. An entity's score is the
//! weighted mean of the scores the localizers that answered gave it (a localizer that did
//! not name it counts 0), so it stays in [0, 1] and means the same in every incident;
//! evidence from one cascade is not added up as if it were independent. The top `top`
//! suspects are kept, after merging. The localization is *ambiguous* when the top suspect
//! leads the next by less than `min_margin`.

use serde::Serialize;

use crate::alerts::Alert;
use crate::metrics::Metrics;
use crate::model::incident::{Incident, Pair, Suspect, margin};
use crate::rules::{Localization, RuleSet};
use crate::store::Store;

/// The merged ranking of an incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ranking {
    /// Best first.
    pub suspects: Vec<Suspect>,
    /// How far the top suspect leads the next (its whole score when it is alone); `None`
    /// without suspects.
    pub margin: Option<f64>,
    /// Whether the top suspect leads by less than `min_margin`.
    pub ambiguous: bool,
    /// `[localization] min_margin`, the lead a clear localization needs.
    #[serde(skip)]
    pub min_margin: f64,
}

/// Runs every localization rule of `rules` that applies to `incident` at `now`, and merges
/// their rankings.
pub fn localize(
    rules: &RuleSet,
    store: &Store,
    metrics: &Metrics,
    incident: &Incident,
    alerts: &[&Alert],
    now: i64,
) -> Ranking {
    let mut answers = Vec::new();
    for l in &rules.localizers {
        if !l.applies(alerts.iter().map(|a| &a.labels)) {
            continue;
        }
        let mut exec = l.exec.lock().unwrap_or_else(|e| e.into_inner());
        let exec = &mut *exec;
        store.select(
            l.select.as_slice(),
            Some(l.range),
            l.logs.as_slice(),
            l.range,
            now,
            &mut exec.cache,
            &mut exec.selection,
        );
        metrics.inc(
            "faultline_plugin_calls_total",
            &[("plugin", &l.plugin.name), ("world", "localizer")],
        );
        match exec.instance.localize(now, incident, &mut exec.selection) {
            Ok(suspects) => {
                tracing::info!(localizer = %l.name, incident = %incident.id, suspects = suspects.len(), "localized");
                answers.push(Answer {
                    localizer: l.name.clone(),
                    weight: l.weight,
                    suspects,
                });
            }
            Err(e) => {
                tracing::warn!(localizer = %l.name, incident = %incident.id, "localization failed: {e}");
                metrics.inc(
                    "faultline_localization_failures_total",
                    &[("localizer", &l.name), ("reason", e.failure.reason())],
                );
            }
        }
    }
    rank(answers, &rules.localization)
}

/// One localizer's answer for an incident.
#[derive(Debug)]
pub struct Answer {
    pub localizer: String,
    pub weight: f64,
    pub suspects: Vec<Suspect>,
}

/// Merges the answers on entities, ranks them, keeps the top ones and judges the lead.
pub fn rank(answers: Vec<Answer>, settings: &Localization) -> Ranking {
    // Localizers that named nobody have no opinion: they do not dilute the others.
    let answers: Vec<Answer> = answers
        .into_iter()
        .filter(|a| a.suspects.iter().any(|s| s.score.is_finite()))
        .collect();
    let total: f64 = answers.iter().map(|a| a.weight).sum();
    let mut merged: Vec<Merged> = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        for s in answer.suspects.iter().filter(|s| s.score.is_finite()) {
            let key = entity_key(&s.labels, &settings.entity);
            let at = match merged.iter().position(|m| m.key == key) {
                Some(at) => at,
                None => {
                    merged.push(Merged {
                        key,
                        labels: Vec::new(),
                        scores: vec![0.0; answers.len()],
                        reasons: Vec::new(),
                    });
                    merged.len() - 1
                }
            };
            let m = &mut merged[at];
            for p in &s.labels {
                if !m.labels.iter().any(|q| q.name == p.name) {
                    m.labels.push(p.clone());
                }
            }
            let score = s.score.clamp(0.0, 1.0);
            if score >= m.scores[i] {
                m.scores[i] = score;
            }
            m.reasons
                .push(format!("{}: {}", answer.localizer, s.reason));
        }
    }
    let mut suspects: Vec<Suspect> = merged
        .into_iter()
        .map(|m| {
            let weighted: f64 = m
                .scores
                .iter()
                .zip(&answers)
                .map(|(s, a)| s * a.weight)
                .sum();
            let mut labels = m.labels;
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            Suspect {
                labels,
                score: if total > 0.0 { weighted / total } else { 0.0 },
                reason: m.reasons.join("; "),
            }
        })
        .collect();
    // Stable: equal scores keep the order the localizers gave.
    suspects.sort_by(|a, b| b.score.total_cmp(&a.score));
    suspects.truncate(settings.top);
    let margin = margin(&suspects);
    Ranking {
        ambiguous: margin.is_some_and(|m| m < settings.min_margin),
        margin,
        suspects,
        min_margin: settings.min_margin,
    }
}

/// One entity being merged: its key, the union of its labels, its best score from each
/// localizer, and their reasons.
struct Merged {
    key: String,
    labels: Vec<Pair>,
    scores: Vec<f64>,
    reasons: Vec<String>,
}

/// What names a suspect's entity: its first `entity` label, or else its whole label set.
fn entity_key(labels: &[Pair], entity: &[String]) -> String {
    for name in entity {
        if let Some(p) = labels.iter().find(|p| &p.name == name) {
            return format!("{}={}", p.name, p.value);
        }
    }
    let mut all: Vec<String> = labels
        .iter()
        .map(|p| format!("{}={}", p.name, p.value))
        .collect();
    all.sort();
    all.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suspect(l: &[(&str, &str)], score: f64) -> Suspect {
        Suspect::of(l, score, "r")
    }

    fn answer(localizer: &str, weight: f64, suspects: Vec<Suspect>) -> Answer {
        Answer {
            localizer: localizer.into(),
            weight,
            suspects,
        }
    }

    #[test]
    fn suspects_merge_on_the_entity_not_the_label_set() {
        let ranking = rank(
            vec![
                answer(
                    "graph",
                    1.0,
                    vec![suspect(&[("service", "db"), ("instance", "n4")], 0.8)],
                ),
                answer(
                    "logs",
                    1.0,
                    vec![
                        suspect(&[("instance", "n1")], 0.9),
                        suspect(&[("instance", "n4")], 0.6),
                    ],
                ),
            ],
            &Localization::default(),
        );
        let s = &ranking.suspects;
        assert_eq!(s.len(), 2);
        // n4: (0.8 + 0.6) / 2, with the labels of both; n1: (0 + 0.9) / 2.
        assert_eq!(s[0].label_set().get("instance"), Some("n4"));
        assert_eq!(s[0].label_set().get("service"), Some("db"));
        assert!((s[0].score - 0.7).abs() < 1e-9, "{}", s[0].score);
        assert_eq!(s[0].reason, "graph: r; logs: r");
        assert!((s[1].score - 0.45).abs() < 1e-9);
        assert!((ranking.margin.unwrap() - 0.25).abs() < 1e-9);
        assert!(!ranking.ambiguous);
    }

    #[test]
    fn one_cascade_is_not_added_up_as_independent_evidence() {
        // Two localizers that both see the same loud symptom: it does not climb towards 1.
        let ranking = rank(
            vec![
                answer("a", 1.0, vec![suspect(&[("instance", "web1")], 0.8)]),
                answer("b", 1.0, vec![suspect(&[("instance", "web1")], 0.8)]),
            ],
            &Localization::default(),
        );
        assert!((ranking.suspects[0].score - 0.8).abs() < 1e-9);
    }

    #[test]
    fn weights_top_k_after_merging_and_ambiguity() {
        // Each localizer alone would keep n9 out of its top 2; merged, it leads.
        let ranking = rank(
            vec![
                answer(
                    "graph",
                    3.0,
                    vec![
                        suspect(&[("instance", "n1")], 0.5),
                        suspect(&[("instance", "n2")], 0.45),
                        suspect(&[("instance", "n9")], 0.4),
                    ],
                ),
                answer(
                    "metrics",
                    1.0,
                    vec![
                        suspect(&[("instance", "n3")], 0.9),
                        suspect(&[("instance", "n4")], 0.8),
                        suspect(&[("instance", "n9")], 0.75),
                    ],
                ),
                // Named nobody: no opinion, no dilution.
                answer("silent", 5.0, Vec::new()),
            ],
            &Localization {
                top: 2,
                min_margin: 0.2,
                ..Localization::default()
            },
        );
        let names: Vec<_> = ranking
            .suspects
            .iter()
            .map(|s| {
                s.label_set()
                    .get("instance")
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["n9", "n1"]);
        assert!((ranking.suspects[0].score - (3.0 * 0.4 + 0.75) / 4.0).abs() < 1e-9);
        assert!(ranking.ambiguous, "{ranking:?}");
    }

    #[test]
    fn suspects_without_entity_labels_merge_on_their_whole_label_set() {
        let ranking = rank(
            vec![
                answer(
                    "a",
                    1.0,
                    vec![suspect(&[("zone", "z1"), ("rack", "r")], 0.4)],
                ),
                answer(
                    "b",
                    1.0,
                    vec![suspect(&[("rack", "r"), ("zone", "z1")], 0.4)],
                ),
            ],
            &Localization::default(),
        );
        assert_eq!(ranking.suspects.len(), 1);
        assert!((ranking.suspects[0].score - 0.4).abs() < 1e-9);
        assert_eq!(ranking.margin, Some(0.4));
    }
}
