//! Data mode, with health series: entities and their health, onsets, explaining away, the
//! causal scores and the reasons.

use std::collections::{BTreeMap, BTreeSet};

use faultline_sdk::localizer::*;
use faultline_sdk::text::{number, series_name};

use crate::Topology;
use crate::graph::Graph;
use crate::stats::{self, Deviation};

/// An explained symptom's score is its confidence times this.
const EXPLAINED: f64 = 0.2;
/// A late candidate's penalty decays towards one half over this.
const LATE_SCALE_MS: f64 = 120_000.0;
/// The share of an entity's strongest deviation that another of its series needs to date
/// the entity's onset.
const STRONG_SHARE: f64 = 0.5;
/// The share of a symptom's confidence that a dependency's anomaly needs to explain it.
const EXPLAINER_SHARE: f64 = 0.7;

/// One entity: a service, or one instance of it, with its strongest series.
#[derive(Debug)]
struct Entity<'a> {
    service: &'a str,
    instance: Option<&'a str>,
    /// The strongest series: its metric as PromQL writes it, and its deviation.
    metric: String,
    top: Deviation,
    /// The strength and onset of each of its anomalous series.
    anomalies: Vec<(f64, i64)>,
    /// When it became anomalous: the earliest onset among its anomalous series that are at
    /// least half as strong as its strongest. A weak drift of some other series (memory
    /// creeping up for an hour) does not date an entity whose errors jumped a minute ago.
    onset: Option<i64>,
}

impl Entity<'_> {
    /// "db on node7", or "db".
    fn who(&self) -> String {
        match self.instance {
            Some(instance) => format!("{} on {instance}", self.service),
            None => self.service.to_string(),
        }
    }

    /// "http_error_ratio +20.1σ (0.01 → 0.4) since 12:01:50".
    fn evidence(&self) -> String {
        let d = &self.top;
        format!(
            "{} {:+.1}σ ({} → {}) since {}",
            self.metric,
            d.sign * d.strength,
            number(d.before),
            number(d.after),
            stats::clock(self.onset.unwrap_or(d.onset)),
        )
    }
}

/// A service's health, from its entities.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Health {
    /// Anomalous since this onset.
    Anomalous(i64),
    Healthy,
    /// No health series.
    Unknown,
}

/// Data mode: health, onsets, and the causal ranking, as the crate documentation states.
impl Topology {
    pub(crate) fn by_data(
        &self,
        input: &LocalizeInput,
        edges: &BTreeMap<&str, BTreeSet<&str>>,
        health: &[Series],
    ) -> Vec<Suspect> {
        let now = input.now();
        let start = input.incident().start().unwrap_or(now);
        let split = start.saturating_sub(self.window_ms);

        let mut entities = BTreeMap::<(&str, Option<&str>), Entity>::new();
        for series in health {
            let labels = series.labels();
            let Some(service) = labels.get(&self.label) else {
                continue;
            };
            let instance = labels.get(&self.instance_label);
            let (times, values): (Vec<i64>, Vec<f64>) = series
                .samples()
                .filter(|s| s.value.is_finite() && s.timestamp <= now)
                .map(|s| (s.timestamp, s.value))
                .unzip();
            let name = labels.get("__name__").unwrap_or("");
            let direction = self.directions.get(name).copied().unwrap_or(self.direction);
            let Some(d) = stats::deviation(&times, &values, split, direction, self.cusum) else {
                continue;
            };
            let anomalous = d.strength >= self.threshold;
            let entity = entities
                .entry((service, instance))
                .or_insert_with(|| Entity {
                    service,
                    instance,
                    metric: series_name(labels, &[&self.label, &self.instance_label]),
                    top: d,
                    anomalies: Vec::new(),
                    onset: None,
                });
            if d.strength > entity.top.strength {
                entity.top = d;
                entity.metric = series_name(labels, &[&self.label, &self.instance_label]);
            }
            if anomalous {
                entity.anomalies.push((d.strength, d.onset));
            }
        }
        let mut entities: Vec<Entity> = entities.into_values().collect();
        for e in &mut entities {
            let strong = e.top.strength * STRONG_SHARE;
            e.onset = e
                .anomalies
                .iter()
                .filter(|(z, _)| *z >= strong)
                .map(|&(_, t)| t)
                .min();
        }

        let g = self.graph_with(edges, entities.iter().map(|e| e.service));
        let mut status = vec![Health::Unknown; g.names.len()];
        for e in &entities {
            let s = g.index[e.service];
            status[s] = match (status[s], e.onset) {
                (Health::Anomalous(a), Some(b)) => Health::Anomalous(a.min(b)),
                (Health::Anomalous(a), None) => Health::Anomalous(a),
                (_, Some(b)) => Health::Anomalous(b),
                (_, None) => Health::Healthy,
            };
        }
        let onset_of = |s: usize| match status[s] {
            Health::Anomalous(t) => Some(t),
            _ => None,
        };
        let confidence = |z: f64| 1.0 - (-(z - self.threshold + 1.0) / self.scale).exp();
        // How confident each service's anomaly is: its most anomalous entity's.
        let mut service_z = vec![f64::NEG_INFINITY; g.names.len()];
        for e in entities.iter().filter(|e| e.onset.is_some()) {
            let z = &mut service_z[g.index[e.service]];
            *z = z.max(e.top.strength);
        }
        let strength_of = |s: usize| confidence(service_z[s]);
        // From each anomalous service, the services reached through non-healthy ones.
        let walks: BTreeMap<usize, Vec<Option<usize>>> = (0..g.names.len())
            .filter(|&s| onset_of(s).is_some())
            .map(|s| (s, g.walk_through(s, |d| status[d] != Health::Healthy)))
            .collect();

        // Each anomalous entity with the services that explain it, earliest first.
        let tolerance = self.tolerance_ms;
        let judged: Vec<(&Entity, i64, Vec<usize>)> = entities
            .iter()
            .filter_map(|e| {
                let onset = e.onset?;
                let s = g.index[e.service];
                let mut explainers: Vec<usize> = walks
                    .iter()
                    .filter(|&(&d, _)| d != s && walks[&s][d].is_some())
                    .filter(|&(&d, _)| {
                        // A faint anomaly (a series drifting a few σ) does not explain a
                        // strong one: the explainer must be at least half as confident.
                        strength_of(d) >= EXPLAINER_SHARE * confidence(e.top.strength)
                    })
                    .filter(|&(&d, walk_d)| {
                        let onset_d = onset_of(d).unwrap_or(i64::MAX);
                        let cycle = walk_d[s].is_some();
                        if cycle {
                            onset_d.saturating_add(tolerance) < onset
                        } else {
                            onset_d <= onset.saturating_add(tolerance)
                        }
                    })
                    .map(|(&d, _)| d)
                    .collect();
                explainers.sort_by_key(|&d| (onset_of(d), d));
                Some((e, onset, explainers))
            })
            .collect();
        // A candidate that started after another at least as confident is less likely the
        // first cause; a weaker early one (a drifting series) does not count against it.
        let earliest_as_strong = |e: &Entity, z: f64| {
            judged
                .iter()
                .filter(|(o, _, by)| by.is_empty() && !std::ptr::eq(*o, e))
                .filter(|(o, _, _)| confidence(o.top.strength) >= confidence(z))
                .min_by_key(|(o, onset, _)| (*onset, o.service, o.instance))
        };
        let mut suspects: Vec<(f64, i64, &Entity, String)> = judged
            .iter()
            .map(|(e, onset, by)| {
                let s = g.index[e.service];
                let c = confidence(e.top.strength);
                let Some(&d) = by.first() else {
                    let mut reason = self.candidate(&g, &status, &judged, e, *onset);
                    let earliest = earliest_as_strong(e, e.top.strength);
                    let lag = earliest.map_or(0, |(_, t0, _)| onset - t0);
                    let factor = if lag > tolerance {
                        let (first, _, _) = earliest.expect("a candidate is earlier");
                        reason.push_str(&format!(
                            "; started {} after the earliest candidate ({})",
                            stats::duration(lag),
                            first.who()
                        ));
                        0.5 + 0.5 * (-((lag - tolerance) as f64) / LATE_SCALE_MS).exp()
                    } else {
                        1.0
                    };
                    return (c * factor, *onset, *e, reason);
                };
                let path = g.path(&walks[&s], s, d);
                let via = &path[1..path.len() - 1];
                let via = if via.is_empty() {
                    String::new()
                } else {
                    format!(" via {}", g.join(via.iter().copied(), " -> "))
                };
                let onset_d = onset_of(d).unwrap_or(*onset);
                let when = match onset - onset_d {
                    0 => "at the same time".to_string(),
                    lead if lead > 0 => format!("{} earlier", stats::duration(lead)),
                    lag => format!("{} later, within the tolerance", stats::duration(-lag)),
                };
                let reason = format!(
                    "{}: {}; explained by {}{via} (anomalous {when})",
                    e.who(),
                    e.evidence(),
                    g.names[d]
                );
                (EXPLAINED * c, *onset, *e, reason)
            })
            .collect();
        suspects.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then((a.2.service, a.2.instance).cmp(&(b.2.service, b.2.instance)))
        });
        suspects
            .into_iter()
            .map(|(score, _, e, reason)| {
                let mut suspect = Suspect::new()
                    .label(&self.label, e.service)
                    .score(score)
                    .reason(reason);
                if let Some(instance) = e.instance {
                    suspect = suspect.label(&self.instance_label, instance);
                }
                suspect
            })
            .collect()
    }

    /// A candidate's reason: "db on node7: ... since 12:01:10, 40 s before its callers; api,
    /// frontend fail downstream of it; its dependencies (disk) are healthy".
    fn candidate(
        &self,
        g: &Graph,
        status: &[Health],
        judged: &[(&Entity, i64, Vec<usize>)],
        e: &Entity,
        onset: i64,
    ) -> String {
        let s = g.index[e.service];
        let mut reason = format!("{}: {}", e.who(), e.evidence());
        // The services with an entity this one's service explains, by their earliest onset.
        let mut downstream = BTreeMap::<usize, i64>::new();
        for (other, t, by) in judged {
            if by.contains(&s) {
                let o = g.index[other.service];
                let first = downstream.entry(o).or_insert(*t);
                *first = (*first).min(*t);
            }
        }
        if let Some(&first) = downstream.values().min() {
            let lead = first - onset;
            if lead > 0 {
                reason.push_str(&format!(", {} before its callers", stats::duration(lead)));
            } else {
                reason.push_str(", together with its callers");
            }
            let mut callers: Vec<(i64, usize)> = downstream.iter().map(|(&o, &t)| (t, o)).collect();
            callers.sort();
            reason.push_str(&format!(
                "; {} fail downstream of it",
                g.join(callers.into_iter().map(|(_, o)| o), ", ")
            ));
        } else {
            reason.push_str("; no anomalous service depends on it");
        }
        let deps: Vec<usize> = g.deps[s].iter().copied().filter(|&d| d != s).collect();
        let anomalous: Vec<usize> = deps
            .iter()
            .copied()
            .filter(|&d| matches!(status[d], Health::Anomalous(_)))
            .collect();
        if !anomalous.is_empty() {
            reason.push_str(&format!(
                "; its anomalous dependencies ({}) started later",
                g.join(anomalous, ", ")
            ));
        } else if !deps.is_empty() && deps.iter().all(|&d| status[d] == Health::Healthy) {
            reason.push_str(&format!(
                "; its dependencies ({}) are healthy",
                g.join(deps, ", ")
            ));
        }
        reason
    }
}
