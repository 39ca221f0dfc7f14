//! RFC 3339 timestamps in UTC, from the milliseconds since the Unix epoch that the host's
//! [`clock`](crate::clock) and inputs give. Computed here: a date crate would be a large
//! dependency of every plugin for one format.

/// Formats `ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC with milliseconds,
/// as Alertmanager writes `startsAt` and `endsAt`.
///
/// ```
/// use faultline_sdk::time::rfc3339;
///
/// assert_eq!(rfc3339(1_795_684_999_484), "2026-11-26T09:23:19.484Z");
/// assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
/// ```
pub fn rfc3339(ms: i64) -> String {
    let millis = ms.rem_euclid(1000);
    format!("{}.{millis:03}Z", date_time(ms))
}

/// Formats `ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC to the second,
/// dropping the fraction, as `kubectl rollout restart` writes its annotation.
///
/// ```
/// use faultline_sdk::time::rfc3339_seconds;
///
/// assert_eq!(rfc3339_seconds(1_795_687_200_999), "2026-11-26T10:00:00Z");
/// ```
pub fn rfc3339_seconds(ms: i64) -> String {
    format!("{}Z", date_time(ms))
}

/// `YYYY-MM-DDTHH:MM:SS` of the second that holds `ms`.
fn date_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")
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
    fn known_instants() {
        let at = |ms, millis: &str, seconds: &str| {
            assert_eq!(rfc3339(ms), millis);
            assert_eq!(rfc3339_seconds(ms), seconds);
        };
        at(0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00Z");
        at(999, "1970-01-01T00:00:00.999Z", "1970-01-01T00:00:00Z");
        at(-1, "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59Z");
        at(
            951_782_400_000,
            "2000-02-29T00:00:00.000Z",
            "2000-02-29T00:00:00Z",
        );
        at(
            951_868_799_999,
            "2000-02-29T23:59:59.999Z",
            "2000-02-29T23:59:59Z",
        );
        at(
            1_795_684_999_484,
            "2026-11-26T09:23:19.484Z",
            "2026-11-26T09:23:19Z",
        );
        at(
            1_795_685_249_484,
            "2026-11-26T09:27:29.484Z",
            "2026-11-26T09:27:29Z",
        );
        // `date -u -d @1795687200`.
        at(
            1_795_687_200_000,
            "2026-11-26T10:00:00.000Z",
            "2026-11-26T10:00:00Z",
        );
        at(
            4_107_542_400_000,
            "2100-03-01T00:00:00.000Z",
            "2100-03-01T00:00:00Z",
        );
        at(
            253_402_300_799_000,
            "9999-12-31T23:59:59.000Z",
            "9999-12-31T23:59:59Z",
        );
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walks 1900..2400 day by day: dates must advance by exactly one, with February
        // having 29 days exactly in Gregorian leap years.
        let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let mut previous = civil_from_days(-25_568); // 1899-12-31
        assert_eq!(previous, (1899, 12, 31));
        for days in -25_567..157_000 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let month_len = match pm {
                2 if leap(py) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if pd < month_len {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            previous = (y, m, d);
        }
    }
}
