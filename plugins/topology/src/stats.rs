//! Health from data: one series' robust deviation from its own baseline and the onset of
//! that deviation (CUSUM). The crate documentation states the method; this is its code.

use faultline_sdk::stats::median;

/// How many σ from the baseline a sample must be to count as clearly changed when dating
/// a change (two in a row).
const CLEAR: f64 = 3.0;
/// How many σ from the baseline a sample must be to count as part of a change that a clear
/// sample ends, when dating it back.
const ELEVATED: f64 = 1.0;
/// Fewer baseline samples than this and the series falls back to its oldest third.
pub(crate) const MIN_BASELINE: usize = 5;
/// 1.4826 × MAD estimates the standard deviation of normal data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// √(π/2) × mean absolute deviation estimates the standard deviation of normal data.
const MEAN_AD_TO_SIGMA: f64 = 1.2533;
/// The scale is at least this fraction of |baseline median|...
const RELATIVE_FLOOR: f64 = 0.01;
/// ...and at least this, so that a constant baseline gives a large but finite z.
const ABSOLUTE_FLOOR: f64 = 1e-6;
/// |z| is capped here: beyond it, every deviation is simply enormous.
pub(crate) const Z_CAP: f64 = 1000.0;

/// Which moves of a metric count as faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Up,
    Down,
    Both,
}

impl Direction {
    pub(crate) fn parse(param: &str, value: &str) -> Result<Self, String> {
        match value {
            "up" => Ok(Self::Up),
            "down" => Ok(Self::Down),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "params: `{param}` must be \"up\", \"down\" or \"both\", not {other:?}"
            )),
        }
    }
}

/// CUSUM's drift `k` and decision threshold `h`, in baseline standard deviations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cusum {
    pub k: f64,
    pub h: f64,
}

/// How far one series moved, and since when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Deviation {
    /// The robust z in the counted direction (positive: moved the way that counts).
    pub strength: f64,
    /// +1 when the move is upward, -1 when downward.
    pub sign: f64,
    /// When the deviation began (the change point), milliseconds since the Unix epoch.
    pub onset: i64,
    /// The baseline median, and the median of the deviating stretch (or recent window).
    pub before: f64,
    pub after: f64,
}

/// The baseline's median and robust standard deviation: 1.4826 × MAD; when that is zero
/// (more than half of the samples equal), 1.2533 × the mean absolute deviation from the
/// median; never below max(1% of |median|, 1e-6).
pub(crate) fn robust_scale(baseline: &[f64]) -> (f64, f64) {
    let mut values = baseline.to_vec();
    let med = median(&mut values);
    let mut spread: Vec<f64> = baseline.iter().map(|v| (v - med).abs()).collect();
    let mut sigma = MAD_TO_SIGMA * median(&mut spread);
    let floor = (RELATIVE_FLOOR * med.abs()).max(ABSOLUTE_FLOOR);
    if sigma < floor {
        let mean_ad = spread.iter().sum::<f64>() / spread.len() as f64;
        sigma = sigma.max(MEAN_AD_TO_SIGMA * mean_ad);
    }
    (med, sigma.max(floor))
}

/// Judges one series (`times` ascending, `values` finite) split at `split`: samples before
/// it are the baseline, the others the recent window. `None` when it cannot be judged.
pub(crate) fn deviation(
    times: &[i64],
    values: &[f64],
    split: i64,
    direction: Direction,
    cusum: Cusum,
) -> Option<Deviation> {
    let n = values.len();
    let mut baseline = times.partition_point(|&t| t < split);
    if baseline < MIN_BASELINE {
        // Short history: the oldest third stands in for the baseline.
        baseline = n / 3;
        if baseline < 3 {
            return None;
        }
    }
    if baseline >= n {
        return None;
    }
    let judge = |sign: f64| judge(times, values, baseline, sign, cusum);
    match direction {
        Direction::Up => judge(1.0),
        Direction::Down => judge(-1.0),
        Direction::Both => match (judge(1.0), judge(-1.0)) {
            (Some(up), Some(down)) if down.strength > up.strength => Some(down),
            (up, down) => up.or(down),
        },
    }
}

/// One direction: scale against `values[..baseline]`, find the change with CUSUM, and
/// measure the deviating stretch. When the change began inside the baseline (a slow ramp
/// starting long before the alert), the baseline is re-estimated from the samples before
/// the change, once, if there are enough of them.
fn judge(
    times: &[i64],
    values: &[f64],
    baseline: usize,
    sign: f64,
    cusum: Cusum,
) -> Option<Deviation> {
    let (mut med, mut sigma) = robust_scale(&values[..baseline]);
    let mut stretch = excursion(values, baseline, med, sigma, sign, cusum);
    if let Some((begin, _)) = stretch
        && begin < baseline
        && begin >= MIN_BASELINE
    {
        let (med2, sigma2) = robust_scale(&values[..begin]);
        if let Some(again) = excursion(values, baseline, med2, sigma2, sign, cusum) {
            (med, sigma, stretch) = (med2, sigma2, Some(again));
        }
    }
    let (range, onset) = match stretch {
        Some((begin, end)) => (begin..end + 1, times[begin]),
        None => (baseline..values.len(), times[baseline]),
    };
    let after = median(&mut values[range].to_vec());
    let z = (sign * (after - med) / sigma).clamp(-Z_CAP, Z_CAP);
    Some(Deviation {
        strength: z,
        sign,
        onset,
        before: med,
        after,
    })
}

/// One-sided CUSUM over the standardized series u = sign × (x − med) / sigma:
/// S₀ = 0, Sᵢ = max(0, Sᵢ₋₁ + uᵢ − k). An excursion is a run of S > 0; it raises an alarm
/// when S exceeds h. Of the alarmed excursions that reach the recent window (end at or after
/// index `recent`), the one with the highest peak (the latest on a tie) is the change:
/// `(first index, last index)`. Its first index, where S last left zero, is the onset.
fn excursion(
    values: &[f64],
    recent: usize,
    med: f64,
    sigma: f64,
    sign: f64,
    Cusum { k, h }: Cusum,
) -> Option<(usize, usize)> {
    let mut best: Option<(f64, usize, usize)> = None;
    let mut close = |peak: f64, begin: usize, end: usize| {
        if peak > h && end >= recent && best.is_none_or(|(p, _, _)| peak >= p) {
            best = Some((peak, begin, end));
        }
    };
    let (mut s, mut begin, mut peak) = (0.0_f64, 0, 0.0_f64);
    for (i, &x) in values.iter().enumerate() {
        let next = (s + sign * (x - med) / sigma - k).max(0.0);
        if next > 0.0 {
            if s == 0.0 {
                (begin, peak) = (i, 0.0);
            }
            peak = peak.max(next);
        } else if s > 0.0 {
            close(peak, begin, i - 1);
        }
        s = next;
    }
    if s > 0.0 {
        close(peak, begin, values.len() - 1);
    }
    best.map(|(_, begin, end)| (sharpen(values, begin, end, med, sigma, sign), end))
}

/// Where a change really starts within its CUSUM run. S leaves zero on any sample above the
/// baseline, so a run of ordinary noise (or of a slow drift) just before a jump would date
/// the jump minutes early. So: find the first sample of the run that, with the next one, is
/// clearly changed, then walk back over the samples still elevated (one dip allowed). Both
/// bars are relative to the size of the change L (the median of the run after the first
/// clear sample, in σ): clear is at least [`CLEAR`] σ and L/4, elevated at least
/// [`ELEVATED`] σ and L/10. A jump is dated from the jump, a slow ramp from where it began.
fn sharpen(values: &[f64], begin: usize, end: usize, med: f64, sigma: f64, sign: f64) -> usize {
    let u = |i: usize| sign * (values[i] - med) / sigma;
    let first_above =
        |bar: f64| (begin..=end).find(|&i| u(i) >= bar && (i == end || u(i + 1) >= bar));
    let Some(first) = first_above(CLEAR) else {
        return begin;
    };
    let level = median(&mut (first..=end).map(u).collect::<Vec<_>>());
    let Some(mut at) = first_above(CLEAR.max(level / 4.0)) else {
        return first;
    };
    let elevated = ELEVATED.max(level / 10.0);
    while at > begin {
        let dip = |i: usize| u(i) < elevated;
        if dip(at - 1) && (at - 1 == begin || dip(at - 2)) {
            break;
        }
        at -= 1;
    }
    at
}

/// A duration for a person: "40 s", "3 min", "3 min 20 s".
pub(crate) fn duration(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) if m < 10 => format!("{m} min {s} s"),
        (m, _) => format!("{m} min"),
    }
}

/// `HH:MM:SS` in UTC.
pub(crate) fn clock(ms: i64) -> String {
    let text = faultline_sdk::time::rfc3339_seconds(ms);
    text.get(11..19).unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSUM: Cusum = Cusum { k: 0.5, h: 5.0 };

    #[test]
    fn a_step_is_found_where_it_starts() {
        let times: Vec<i64> = (0..100).map(|i| i * 1000).collect();
        let values: Vec<f64> = (0..100)
            .map(|i| {
                let noise = [0.0, 0.1, -0.1, 0.05, -0.05][i % 5];
                if i >= 70 { 2.0 + noise } else { 1.0 + noise }
            })
            .collect();
        let d = deviation(&times, &values, 60_000, Direction::Up, CUSUM).unwrap();
        assert_eq!(d.onset, 70_000);
        assert!(d.strength > 8.0, "{d:?}");
        // Not a fall.
        let d = deviation(&times, &values, 60_000, Direction::Down, CUSUM).unwrap();
        assert!(d.strength < 0.0, "{d:?}");
    }

    #[test]
    fn constant_baselines_stay_finite() {
        let times: Vec<i64> = (0..40).map(|i| i * 1000).collect();
        for (before, after) in [(0.0, 0.0), (0.0, 0.3), (0.2, 0.2), (0.2, 5.0), (7.0, 0.0)] {
            let values: Vec<f64> = (0..40)
                .map(|i| if i < 30 { before } else { after })
                .collect();
            let d = deviation(&times, &values, 25_000, Direction::Both, CUSUM).unwrap();
            assert!(d.strength.is_finite() && d.strength.abs() <= Z_CAP, "{d:?}");
            if before == after {
                assert_eq!(d.strength, 0.0);
            } else {
                assert!(d.strength >= 10.0, "{d:?}");
                assert_eq!(d.onset, 30_000);
            }
        }
    }

    #[test]
    fn short_history_uses_the_oldest_third() {
        let times: Vec<i64> = (0..9).map(|i| i * 1000).collect();
        let values = [1.0, 1.1, 0.9, 1.0, 1.05, 5.0, 5.1, 5.0, 4.9];
        // No sample before the split: the first 3 are the baseline.
        let d = deviation(&times, &values, 0, Direction::Up, CUSUM).unwrap();
        assert!(d.strength > 10.0, "{d:?}");
        assert_eq!(
            deviation(&times[..5], &values[..5], 0, Direction::Up, CUSUM),
            None
        );
    }

    #[test]
    fn formats() {
        assert_eq!(duration(40_000), "40 s");
        assert_eq!(duration(180_000), "3 min");
        assert_eq!(duration(200_000), "3 min 20 s");
        assert_eq!(duration(1_500_000), "25 min");
        assert_eq!(clock(1_795_684_999_484), "09:23:19");
    }
}
