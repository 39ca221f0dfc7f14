//! The message value: the incident as a JSON event. Alerts have the shape of Alertmanager's
//! webhook alerts (as the `webhook` plugin sends them), so consumers can reuse their parsers.

use faultline_sdk::recovery::{Alert, Labels, RecoverInput, Suspect};
use serde::Serialize;

/// The event, version 1.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    receiver: &'a str,
    incident: IncidentPayload<'a>,
    alerts: Vec<AlertPayload<'a>>,
    suspects: Vec<SuspectPayload<'a>>,
    action: Action<'a>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IncidentPayload<'a> {
    id: &'a str,
    group_key: String,
    status: &'a str,
    group_labels: &'a Labels,
}

/// Alertmanager's webhook alert (`template.Alert`), fields in its order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertPayload<'a> {
    status: &'static str,
    labels: &'a Labels,
    annotations: &'a Labels,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

#[derive(Serialize)]
struct SuspectPayload<'a> {
    labels: &'a Labels,
    score: f64,
    reason: &'a str,
}

/// Which delivery of the action this message is: consumers deduplicate on the key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Action<'a> {
    receiver: &'a str,
    idempotency_key: &'a str,
    attempt: u32,
}

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of a firing alert.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The JSON value of the message for `input`'s incident.
pub(crate) fn value(input: &RecoverInput) -> Result<Vec<u8>, serde_json::Error> {
    let incident = &input.incident;
    let event = Event {
        version: "1",
        receiver: &input.receiver,
        incident: IncidentPayload {
            id: &incident.id,
            // As in Alertmanager: the root route's (empty) matchers, then the group's labels.
            group_key: if incident.group_key.is_empty() {
                format!("{{}}:{}", incident.group_labels)
            } else {
                incident.group_key.clone()
            },
            status: &incident.status,
            group_labels: &incident.group_labels,
        },
        alerts: incident.alerts.iter().map(|a| alert(a, input)).collect(),
        suspects: input.suspects.iter().map(suspect).collect(),
        action: Action {
            receiver: &input.receiver,
            idempotency_key: &input.idempotency_key,
            attempt: input.attempt,
        },
        external_url: &input.external_url,
    };
    serde_json::to_vec(&event)
}

fn alert<'a>(alert: &'a Alert, input: &'a RecoverInput) -> AlertPayload<'a> {
    let resolved = alert.state == "resolved";
    AlertPayload {
        status: if resolved { "resolved" } else { "firing" },
        labels: &alert.labels,
        annotations: &alert.annotations,
        starts_at: rfc3339(alert.active_at),
        ends_at: match alert.resolved_at {
            Some(at) if resolved => rfc3339(at),
            _ => ZERO_TIME.to_string(),
        },
        // Alerts Faultline's own rules found link to Faultline.
        generator_url: alert
            .generator_url
            .as_deref()
            .unwrap_or(&input.external_url),
        fingerprint: format!("{:016x}", alert.labels.fingerprint()),
    }
}

fn suspect(suspect: &Suspect) -> SuspectPayload<'_> {
    SuspectPayload {
        labels: &suspect.labels,
        score: suspect.score,
        reason: &suspect.reason,
    }
}

/// RFC 3339 in UTC with milliseconds, from milliseconds since the Unix epoch:
/// `2026-11-26T09:23:19.484Z`.
fn rfc3339(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// The proleptic Gregorian date `days` after 1970-01-01, by Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>): count in
/// 400-year eras of 146,097 days, with years starting on March 1st so the leap day is last.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_684_999_484), "2026-11-26T09:23:19.484Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }
}
