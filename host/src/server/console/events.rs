//! `GET /api/v1/events`: server-sent events telling an open console what changed, so it
//! fetches the part that did. Each second the stream compares a few cheap figures with the
//! ones it sent last and sends an event per figure that changed:
//!
//! - `alerts`: alert counts by state (rules and external);
//! - `silences`: the silences' version;
//! - `decisions`: the newest decision's id;
//! - `reload`: the time of the last reload attempt.
//!
//! The data of every event is the whole snapshot, as JSON. The first snapshot is sent at
//! once; a comment line every 15 s keeps proxies from closing an idle stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;

use crate::model::time::now_ms;
use crate::outbox::DecisionQuery;
use crate::server::Shared;

/// The figures an event compares.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    alerts: Vec<(String, f64)>,
    external_alerts: (usize, usize),
    silences: u64,
    decisions: i64,
    reload: Option<i64>,
}

impl Snapshot {
    fn take(svc: &Shared) -> Snapshot {
        let now = now_ms();
        let newest = DecisionQuery {
            limit: Some(1),
            ..DecisionQuery::default()
        };
        Snapshot {
            alerts: svc.metrics().family("faultline_alerts"),
            external_alerts: svc.external().counts(now),
            silences: svc.silences().version(),
            decisions: svc.outbox().decisions(&newest).first().map_or(0, |d| d.id),
            reload: svc.reload_status().last_attempt,
        }
    }

    /// The names of the figures that differ from `before`.
    fn changes(&self, before: &Snapshot) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.alerts != before.alerts || self.external_alerts != before.external_alerts {
            changed.push("alerts");
        }
        if self.silences != before.silences {
            changed.push("silences");
        }
        if self.decisions != before.decisions {
            changed.push("decisions");
        }
        if self.reload != before.reload {
            changed.push("reload");
        }
        changed
    }
}

pub async fn events_stream(
    State(svc): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = (svc, None::<Snapshot>, Vec::<Event>::new());
    let stream = futures_util::stream::unfold(start, |(svc, last, mut queued)| async move {
        let mut last = last;
        while queued.is_empty() {
            if last.is_some() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let now = Snapshot::take(&svc);
            let data = serde_json::to_string(&now).unwrap_or_default();
            let names = match &last {
                None => vec!["hello"],
                Some(before) => now.changes(before),
            };
            queued = names
                .into_iter()
                .rev()
                .map(|name| Event::default().event(name).data(data.clone()))
                .collect();
            last = Some(now);
        }
        let event = queued.pop()?;
        Some((Ok(event), (svc, last, queued)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
