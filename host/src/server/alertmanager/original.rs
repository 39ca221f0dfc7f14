//! `config.original` of `/api/v2/status`: the loaded routing tree, receivers, inhibit rules
//! and time intervals written as an Alertmanager configuration (YAML), so that `amtool config show`,
//! `amtool config routes` and `amtool config routes test` work against Faultline.
//!
//! Routes are written with their inherited settings resolved, which routes alike. A receiver
//! is written by name alone: its plugin has no Alertmanager integration to stand for it, and
//! its parameters may hold secrets. Without a `[route]`, the root route sends everything to
//! [`UNROUTED`], as `/api/v2/alerts` shows it. A string that is not a plain name is written
//! as a JSON string, which is a YAML double-quoted scalar, so no value can break the document.

use crate::dispatch::route::{GroupBy, Route, UNROUTED};
use crate::model::matcher::Matcher;
use crate::model::units::PromDuration;
use crate::rules::RuleSet;
use std::fmt::Write;

/// The configuration of a loaded rule set, as Alertmanager YAML.
pub fn render(rules: &RuleSet) -> String {
    let mut out = String::from("route:\n");
    match &rules.tree {
        Some(tree) => route(&mut out, tree, 1, false),
        None => {
            let _ = writeln!(out, "  receiver: {}", quoted(UNROUTED));
        }
    }
    let inhibit = rules.inhibitor.rules();
    if !inhibit.is_empty() {
        out.push_str("inhibit_rules:\n");
        for r in inhibit {
            out.push_str("- source_matchers:");
            matchers(&mut out, &r.source);
            out.push_str("  target_matchers:");
            matchers(&mut out, &r.target);
            out.push_str("  equal:");
            list(&mut out, r.equal.iter().map(|e| &**e));
        }
    }
    if !rules.time_intervals.is_empty() {
        // Each as configured, in JSON: a YAML flow mapping.
        out.push_str("time_intervals:\n");
        for t in rules.time_intervals.values() {
            let _ = writeln!(
                out,
                "- {}",
                serde_json::to_string(&t.config).unwrap_or_default()
            );
        }
    }
    out.push_str("receivers:\n");
    let names = rules.receivers.keys().map(|n| n.as_str());
    let unrouted = rules.tree.is_none().then_some(UNROUTED);
    for name in names.chain(unrouted) {
        let _ = writeln!(out, "- name: {}", quoted(name));
    }
    out
}

/// Writes a route's fields at `depth` (two spaces each), then its children; as a list
/// item (`item`), its first field follows a dash.
fn route(out: &mut String, r: &Route, depth: usize, item: bool) {
    let pad = "  ".repeat(depth);
    let first = if item {
        format!("{}- ", "  ".repeat(depth - 1))
    } else {
        pad.clone()
    };
    let _ = writeln!(out, "{first}receiver: {}", quoted(&r.receiver));
    if !r.matchers().is_empty() {
        let _ = write!(out, "{pad}matchers:");
        matchers(out, r.matchers());
    }
    let _ = write!(out, "{pad}group_by:");
    match &r.group_by {
        GroupBy::All => list(out, ["..."].into_iter()),
        GroupBy::Labels(names) => list(out, names.iter().map(|n| n.as_str())),
    }
    for (key, intervals) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        if !intervals.is_empty() {
            let _ = write!(out, "{pad}{key}:");
            list(out, intervals.iter().map(|t| t.config.name.as_str()));
        }
    }
    let _ = writeln!(out, "{pad}continue: {}", r.continue_);
    let _ = writeln!(out, "{pad}group_wait: {}", PromDuration(r.group_wait));
    // Alertmanager refuses zero intervals (Faultline takes them: notify every change).
    for (key, d) in [
        ("group_interval", r.group_interval),
        ("repeat_interval", r.repeat_interval),
    ] {
        if !d.is_zero() {
            let _ = writeln!(out, "{pad}{key}: {}", PromDuration(d));
        }
    }
    if !r.routes.is_empty() {
        let _ = writeln!(out, "{pad}routes:");
        for child in &r.routes {
            route(out, child, depth + 1, true);
        }
    }
}

/// Writes matchers as a YAML list of Alertmanager matcher strings, after a key.
fn matchers(out: &mut String, ms: &[Matcher]) {
    let texts: Vec<String> = ms.iter().map(Matcher::to_string).collect();
    list(out, texts.iter().map(|t| t.as_str()));
}

/// Writes a flow list (`["a", "b"]`) after a key, and ends the line.
fn list<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    let items: Vec<String> = items.map(quoted).collect();
    let _ = writeln!(out, " [{}]", items.join(", "));
}

/// A string as YAML: plain when it is a name that YAML reads as that string
/// (`db-team`), else double-quoted.
fn quoted(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .iter()
            .any(|w| w.eq_ignore_ascii_case(s));
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_anything_else_is_quoted() {
        assert_eq!(quoted("db-team"), "db-team");
        assert_eq!(quoted("(unrouted)"), "\"(unrouted)\"");
        assert_eq!(quoted("no"), "\"no\"");
        assert_eq!(quoted("9"), "\"9\"");
        assert_eq!(quoted("a: b\n- c"), "\"a: b\\n- c\"");
        assert_eq!(quoted(r#"team=~"a|b""#), r#""team=~\"a|b\"""#);
    }
}
