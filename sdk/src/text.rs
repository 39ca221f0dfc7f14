//! Text for people: how numbers and series read in a suspect's reason or a finding's
//! annotation.

use crate::labels::Labels;

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

/// A series as PromQL writes it, without the labels a reason already names (`entity`) and
/// without its name among the braces: `http_request_duration_seconds{quantile="0.99"}`;
/// `the series` when nothing is left.
///
/// ```
/// use faultline_sdk::Labels;
/// use faultline_sdk::text::series_name;
///
/// let labels = Labels::from([("__name__", "latency"), ("instance", "n7"), ("quantile", "0.99")]);
/// assert_eq!(series_name(&labels, &["instance"]), r#"latency{quantile="0.99"}"#);
/// ```
pub fn series_name(labels: &Labels, entity: &[&str]) -> String {
    let mut rest = labels.clone();
    for name in entity.iter().copied().chain(["__name__"]) {
        rest.remove(name);
    }
    let name = labels.get("__name__").unwrap_or("");
    match (name, rest.is_empty()) {
        ("", true) => "the series".to_string(),
        (name, true) => name.to_string(),
        (name, false) => format!("{name}{rest}"),
    }
}
