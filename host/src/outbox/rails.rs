//! Safety rails of a recovery action, as pure planning: given the receiver's rails, the
//! incident and its ranked suspects, what the action acts on (its *target*) and the
//! suspects handed to the plugin, or why it must not run. The rails that need the history
//! of past actions (cooldown, rate limit) are answered by the queue, in the transaction
//! that writes the action.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::Labels;
use crate::model::incident::{Incident, IncidentStatus, Suspect, margin};
use crate::model::units::PromDuration;

/// Safety rails of a recovery action. The *target* of an action is the best suspect of the
/// incident (projected on `target` labels when given); without suspects it is the incident.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RailsConfig {
    /// Labels naming what the action acts on, e.g. `["instance"]`: the target is the best
    /// suspect that has them. Without a suspect that has them the action is skipped.
    #[serde(default)]
    pub target: Vec<String>,
    /// Suspects scoring below this are not acted on (skipped, and recorded).
    pub min_score: Option<f64>,
    /// The lead the target suspect needs over the next candidate target; below it the
    /// localization is ambiguous and an action with `target` labels is skipped (decision
    /// `ambiguous`). Default: `[localization] min_margin`.
    pub min_margin: Option<f64>,
    /// At most N actions per target per period, written `"3/1h"`.
    pub rate_limit: Option<RateLimit>,
    /// After an action on a target, no other action on it for this long.
    pub cooldown: Option<PromDuration>,
    /// Record and log what would be done; do nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// At most `count` actions per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: std::time::Duration,
}

impl std::str::FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid rate limit {s:?}: expected a count and a period such as \"3/1h\"");
        let (n, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per: PromDuration = per.trim().parse().map_err(|_| bad())?;
        if count == 0 || per.0.is_zero() {
            return Err(format!(
                "invalid rate limit {s:?}: the count and the period must be more than 0"
            ));
        }
        Ok(RateLimit { count, per: per.0 })
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why an action does not run.
#[derive(Debug, PartialEq)]
pub struct Skip {
    /// The decision recorded: `skipped`, or `ambiguous` when the suspects do not tell
    /// clearly enough what to act on.
    pub decision: &'static str,
    /// The target the action would have had, when there was one.
    pub target: String,
    pub reason: String,
}

impl Skip {
    fn skipped(reason: String) -> Skip {
        Skip {
            decision: "skipped",
            target: String::new(),
            reason,
        }
    }
}

/// What an action acts on, and what it is given.
#[derive(Debug, PartialEq)]
pub struct Choice {
    /// The target: the best suspect's labels (projected on the rails' `target` labels), or
    /// the incident's group key when there is no suspect.
    pub target: String,
    /// The suspects handed to the plugin: those scoring at least `min_score`, the target's
    /// first.
    pub suspects: Vec<Suspect>,
    /// Whether the best candidate leads the next by less than the margin (a notification
    /// says so; an action with `target` labels does not get here).
    pub ambiguous: bool,
}

/// Chooses the target of an action on `incident`, or says why the action must not run.
/// `min_margin` is the localization's own, which the rails may raise or lower.
pub fn choose(
    rails: &RailsConfig,
    send_resolved: bool,
    incident: &Incident,
    ranked: &[Suspect],
    min_margin: f64,
) -> Result<Choice, Skip> {
    if incident.status == IncidentStatus::Resolved && !send_resolved {
        return Err(Skip::skipped(
            "the incident resolved, and resolved incidents are not sent (send_resolved = false)"
                .into(),
        ));
    }
    let min_margin = rails.min_margin.unwrap_or(min_margin);
    let min_score = rails.min_score.unwrap_or(f64::NEG_INFINITY);
    let mut suspects: Vec<Suspect> = ranked
        .iter()
        .filter(|s| s.score >= min_score)
        .cloned()
        .collect();
    let target = if !rails.target.is_empty() {
        let found = suspects.iter().position(|s| {
            let l = s.label_set();
            rails.target.iter().all(|t| l.get(t).is_some())
        });
        let Some(i) = found else {
            return Err(Skip::skipped(format!(
                "no suspect with labels {:?}{} to act on",
                rails.target,
                rails
                    .min_score
                    .map(|m| format!(" scoring at least {m}"))
                    .unwrap_or_default()
            )));
        };
        let best = suspects.remove(i);
        let target = project(&best, &rails.target);
        // The runner-up is the best suspect naming another target: every suspect counts,
        // also those under `min_score`, since acting on the wrong one is what must not happen.
        let runner_up = ranked
            .iter()
            .filter(|s| rails.target.iter().all(|t| s.label_set().get(t).is_some()))
            .find(|s| project(s, &rails.target) != target);
        let lead = best.score - runner_up.map_or(0.0, |s| s.score);
        if lead < min_margin {
            let next = runner_up.map_or_else(
                || "nothing".to_string(),
                |s| format!("{} ({:.3})", project(s, &rails.target), s.score),
            );
            return Err(Skip {
                decision: "ambiguous",
                target: target.clone(),
                reason: format!(
                    "localization is ambiguous: {target} ({:.3}) leads {next} by {lead:.3}, \
                     under the margin of {min_margin}; not acting on a guess",
                    best.score
                ),
            });
        }
        suspects.insert(0, best);
        return Ok(Choice {
            target,
            suspects,
            ambiguous: false,
        });
    } else if let Some(best) = suspects.first() {
        best.label_set().to_string()
    } else if rails.min_score.is_some() {
        return Err(Skip::skipped(format!(
            "no suspect scoring at least {min_score} ({} suspects below)",
            ranked.len()
        )));
    } else {
        incident.group_key.clone()
    };
    let ambiguous = margin(ranked).is_some_and(|m| m < min_margin);
    Ok(Choice {
        target,
        suspects,
        ambiguous,
    })
}

/// A suspect's labels projected on the `target` labels, as text: what an action acts on.
fn project(s: &Suspect, target: &[String]) -> String {
    let l = s.label_set();
    Labels::from_pairs(
        target
            .iter()
            .map(|t| (t.clone(), l.get(t).unwrap_or_default().to_string())),
    )
    .to_string()
}

/// The idempotency key of an action: stable per receiver, group, episode of its alerts
/// (`alerts_key`) and target, so a restart that plans it again finds it already written.
pub fn idempotency_key(receiver: &str, group_key: &str, alerts_key: &[u8], target: &str) -> String {
    let mut h = Sha256::new();
    h.update(receiver.as_bytes());
    h.update([0]);
    h.update(group_key.as_bytes());
    h.update([0]);
    h.update(alerts_key);
    h.update([0]);
    h.update(target.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(status: IncidentStatus) -> Incident {
        Incident {
            id: "i".into(),
            group_key: "{}:{}".into(),
            group_labels: Vec::new(),
            status,
            alerts: Vec::new(),
        }
    }

    fn suspect(labels: &[(&str, &str)], score: f64) -> Suspect {
        Suspect::of(labels, score, "")
    }

    fn rails(target: &[&str], min_score: Option<f64>, min_margin: Option<f64>) -> RailsConfig {
        RailsConfig {
            target: target.iter().map(|t| t.to_string()).collect(),
            min_score,
            min_margin,
            ..RailsConfig::default()
        }
    }

    #[test]
    fn the_target_is_the_best_suspect_with_the_target_labels() {
        let ranked = [
            suspect(&[("service", "db")], 0.9),
            suspect(&[("instance", "n4"), ("service", "db")], 0.8),
            suspect(&[("instance", "n1")], 0.3),
        ];
        let firing = incident(IncidentStatus::Firing);
        let c = choose(
            &rails(&["instance"], None, None),
            true,
            &firing,
            &ranked,
            0.1,
        )
        .unwrap();
        assert_eq!(c.target, r#"{instance="n4"}"#);
        assert_eq!(c.suspects[0], ranked[1]);
        assert!(!c.ambiguous);
    }

    #[test]
    fn a_target_that_does_not_lead_clearly_is_ambiguous_and_not_acted_on() {
        let ranked = [
            suspect(&[("instance", "n4")], 0.62),
            suspect(&[("instance", "n7")], 0.58),
        ];
        let firing = incident(IncidentStatus::Firing);
        let skip = choose(
            &rails(&["instance"], None, None),
            true,
            &firing,
            &ranked,
            0.1,
        )
        .unwrap_err();
        assert_eq!(skip.decision, "ambiguous");
        assert_eq!(skip.target, r#"{instance="n4"}"#);
        assert!(
            skip.reason.contains(r#"{instance="n7"} (0.580)"#),
            "{}",
            skip.reason
        );
        // The receiver's own margin overrides the localization's.
        let c = choose(
            &rails(&["instance"], None, Some(0.01)),
            true,
            &firing,
            &ranked,
            0.1,
        );
        assert_eq!(c.unwrap().target, r#"{instance="n4"}"#);
        // A receiver without a target is not stopped, but told.
        let c = choose(&rails(&[], None, None), true, &firing, &ranked, 0.1).unwrap();
        assert!(c.ambiguous);
    }

    #[test]
    fn suspects_under_min_score_cannot_be_targets_and_resolved_is_not_sent() {
        let ranked = [suspect(&[("instance", "n4")], 0.3)];
        let firing = incident(IncidentStatus::Firing);
        let skip = choose(
            &rails(&["instance"], Some(0.5), None),
            true,
            &firing,
            &ranked,
            0.1,
        )
        .unwrap_err();
        assert_eq!(skip.decision, "skipped");
        assert!(
            skip.reason.contains("scoring at least 0.5"),
            "{}",
            skip.reason
        );
        let resolved = incident(IncidentStatus::Resolved);
        let skip = choose(&rails(&[], None, None), false, &resolved, &ranked, 0.1).unwrap_err();
        assert!(
            skip.reason.contains("send_resolved = false"),
            "{}",
            skip.reason
        );
        // Without suspects and without rails the incident itself is the target.
        let c = choose(&rails(&[], None, None), true, &firing, &[], 0.1).unwrap();
        assert_eq!(c.target, "{}:{}");
    }
}
