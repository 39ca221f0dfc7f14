//! RFC 3339 timestamps, UTC to the second, as `kubectl rollout restart` writes them
//! (`2026-11-26T10:00:00Z`). Computed here: the plugin has only the host's clock in
//! milliseconds, and a date crate would be a large dependency for one format.

/// Formats `ms` (milliseconds since the Unix epoch) as `YYYY-MM-DDTHH:MM:SSZ`, dropping
/// the fraction of a second.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01: Howard Hinnant's
/// `civil_from_days`, which counts in 400-year eras starting on March 1st so that the leap
/// day falls at the end of each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(999), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59Z");
        // `date -u -d @1795687200`.
        assert_eq!(format_ms(1_795_687_200_000), "2026-11-26T10:00:00Z");
        assert_eq!(format_ms(1_795_685_249_484), "2026-11-26T09:27:29Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_ms(951_868_799_000), "2000-02-29T23:59:59Z");
        assert_eq!(format_ms(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(format_ms(253_402_300_799_000), "9999-12-31T23:59:59Z");
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
