//! Statistics that judgements share: robust ones, which a few outliers do not move.

/// The median of non-empty `values`, which it reorders (in linear time). Of an even count,
/// the mean of the two middle values.
///
/// ```
/// use faultline_sdk::stats::median;
///
/// assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
/// assert_eq!(median(&mut [7.0]), 7.0);
/// ```
///
/// # Panics
///
/// When `values` is empty.
pub fn median(values: &mut [f64]) -> f64 {
    let (len, mid) = (values.len(), values.len() / 2);
    let (below, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if len % 2 == 1 {
        upper
    } else {
        // The largest of the lower half is the other middle value.
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}
