//! The notification body: Alertmanager's webhook payload, version 4, so receivers written
//! for Alertmanager take Faultline's notifications unchanged.

use faultline_sdk::recovery::{Alert, Labels, RecoverInput};
use serde::Serialize;
use serde_json::Value;

/// What Alertmanager 0.25 POSTs (`notify/webhook.Message`), fields in its order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification<'a> {
    receiver: &'a str,
    status: &'a str,
    alerts: Vec<AlertPayload<'a>>,
    group_labels: &'a Labels,
    common_labels: Labels,
    common_annotations: Labels,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    group_key: String,
    truncated_alerts: u32,
}

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

/// A suspect in the template context: the SDK's type, as JSON.
#[derive(Serialize)]
struct SuspectPayload<'a> {
    labels: &'a Labels,
    score: f64,
    reason: &'a str,
}

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of a firing alert.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The JSON body notifying `input`'s incident.
pub(crate) fn body(input: &RecoverInput) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&notification(input))
}

/// What a `body_template` is rendered against: the notification, plus `suspects` (labels,
/// score, reason; best first) and `idempotencyKey`. Those two stay out of [`body`], which
/// is exactly Alertmanager's.
pub(crate) fn context(input: &RecoverInput) -> Result<Value, serde_json::Error> {
    let mut context = serde_json::to_value(notification(input))?;
    let suspects: Vec<_> = input
        .suspects
        .iter()
        .map(|s| SuspectPayload {
            labels: &s.labels,
            score: s.score,
            reason: &s.reason,
        })
        .collect();
    if let Value::Object(map) = &mut context {
        map.insert("suspects".to_string(), serde_json::to_value(suspects)?);
        map.insert(
            "idempotencyKey".to_string(),
            Value::from(input.idempotency_key.as_str()),
        );
    }
    Ok(context)
}

fn notification(input: &RecoverInput) -> Notification<'_> {
    let incident = &input.incident;
    let alerts = &incident.alerts;
    Notification {
        receiver: &input.receiver,
        status: &incident.status,
        alerts: alerts.iter().map(|a| alert(a, input)).collect(),
        group_labels: &incident.group_labels,
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        external_url: &input.external_url,
        version: "4",
        // The root route's (empty) matchers, then the group's labels.
        group_key: if incident.group_key.is_empty() {
            format!("{{}}:{}", incident.group_labels)
        } else {
            incident.group_key.clone()
        },
        truncated_alerts: 0,
    }
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

/// The pairs that every set has, with the same value (none without sets).
fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::new();
    };
    let mut common = first.clone();
    for set in sets {
        let differing: Vec<String> = common
            .iter()
            .filter(|&(name, value)| set.get(name) != Some(value))
            .map(|(name, _)| name.to_string())
            .collect();
        for name in differing {
            common.remove(&name);
        }
    }
    common
}

/// RFC 3339 in UTC with milliseconds, from milliseconds since the Unix epoch:
/// `2026-11-26T09:23:19.484Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
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
        assert_eq!(rfc3339(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(1_795_684_999_484), "2026-11-26T09:23:19.484Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn common_keeps_equal_pairs_only() {
        let a = Labels::from([("job", "node"), ("instance", "a"), ("env", "prod")]);
        let b = Labels::from([("job", "node"), ("instance", "b")]);
        assert_eq!(
            common([&a, &b].into_iter()),
            Labels::from([("job", "node")])
        );
        assert_eq!(common([&a].into_iter()), a);
        assert_eq!(common(std::iter::empty()), Labels::new());
    }
}
