//! Text for people: how numbers read in a suspect's reason or a finding's annotation.

/// `value` with three significant digits and no trailing zeros (`1.9`, `0.21`, `1234`), in
/// scientific notation when very small or very large (`1.50e-7`).
///
/// ```
/// use faultline_sdk::text::number;
///
/// assert_eq!(number(0.21000), "0.21");
/// assert_eq!(number(1234.6), "1235");
/// assert_eq!(number(0.0000001), "1.00e-7");
/// ```
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        return "0".to_string();
    }
    if !(1e-4..1e15).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = (2 - magnitude.log10().floor() as i32).max(0) as usize;
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    text
}
