//! `faultline test`: rule unit tests in the spirit of `promtool test rules`. A test file
//! names rule files, gives input series in promtool's expanding notation (`1+2x3`, `_`,
//! `stale`) and log lines at times, and lists the alerts expected to fire at given times,
//! with their labels and annotations (exact, or matched by a regex where the text varies).
//! The rules run with their real Wasm plugins, on simulated time starting at 0.
//!
//! ```toml
//! rule_files = ["node.toml"]
//! evaluation_interval = "15s"
//!
//! [[test]]
//! name = "high load fires after its for"
//! interval = "15s"
//! input_series = [
//!     { series = 'node_load1{job="node", instance="web1"}', values = "1 5x8" },
//! ]
//!
//! [[test.alert_rule_test]]
//! eval_time = "1m"
//! alertname = "HighLoad"
//! exp_alerts = [
//!     { exp_labels = { severity = "warning", job = "node", instance = "web1" },
//!       exp_annotations_match = { summary = "Load 5 on web1" } },
//! ]
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alerts::{RuleAlerts, Status};
use crate::db::Db;
use crate::model::units::PromDuration;
use crate::model::{Labels, LogRecord, STALE_NAN_BITS, Sample, SeriesSamples};
use crate::rules::selector::Selector;
use crate::rules::{Defaults, LoadContext, RuleSet};
use crate::runtime::Runtime;
use crate::store::{Store, StoreLimits};

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files under test, relative to the test file.
    pub rule_files: Vec<PathBuf>,
    /// How often rules are evaluated (default 1m).
    #[serde(default)]
    pub evaluation_interval: Option<PromDuration>,
    /// The test cases.
    #[serde(rename = "test", default)]
    pub tests: Vec<TestCase>,
}

/// One test case: inputs and expectations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[serde(default)]
    pub name: String,
    /// Step between the values of an input series (default 1m).
    #[serde(default)]
    pub interval: Option<PromDuration>,
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    #[serde(default)]
    pub input_logs: Vec<InputLog>,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTest>,
}

/// A series and its values in promtool's expanding notation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// The series' labels in Prometheus notation: `metric{a="b"}`.
    pub series: String,
    /// Values, one per interval from time 0: `1 2 3`, `1+1x10`, `5x3`, `_` (none), `stale`.
    pub values: String,
}

/// Log lines of one stream at given times.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputLog {
    /// The stream's labels: `{app="api", instance="a"}`.
    pub stream: String,
    /// The lines, each at a time.
    pub lines: Vec<LogLine>,
}

/// One log line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// When, from time 0.
    pub at: PromDuration,
    pub line: String,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The alerts of one rule expected to fire at one time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    pub eval_time: PromDuration,
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected firing alert.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    /// Its labels, `alertname` aside.
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    /// Annotations it must have, each exactly (annotations not listed are not checked).
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
    /// Annotations matched by regular expressions (whole text) instead of exactly.
    #[serde(default)]
    pub exp_annotations_match: BTreeMap<String, String>,
}

/// What running one test file found.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: usize,
    /// Test cases with at least one failed expectation.
    pub failed_cases: usize,
    /// One entry per failed expectation, saying what was expected and what came.
    pub failures: Vec<String>,
}

/// Runs a test file. An `Err` is a file that cannot run (bad syntax, rules that do not load).
pub fn run_file(path: &Path, plugin_dirs: &[PathBuf], runtime: &Runtime) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TestFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let files: Vec<PathBuf> = file.rule_files.iter().map(|f| dir.join(f)).collect();
    let eval_interval = file
        .evaluation_interval
        .map_or(Duration::from_secs(60), |d| d.0);
    let mut report = Report::default();
    for (i, case) in file.tests.iter().enumerate() {
        report.cases += 1;
        let name = if case.name.is_empty() {
            format!("#{}", i + 1)
        } else {
            format!("{:?}", case.name)
        };
        // Every case starts from nothing: fresh plugin instances and state.
        let db = Db::in_memory().map_err(|e| e.to_string())?;
        let defaults = Defaults {
            interval: eval_interval,
            ..Defaults::default()
        };
        let rules = crate::rules::load::load_files(
            &dir,
            files.clone(),
            &LoadContext {
                runtime,
                db: &db,
                plugin_dirs,
                defaults: &defaults,
                io: None,
                http: crate::runtime::http_client(),
                connections: None,
            },
        )
        .map_err(|e| format!("{}: the rules do not load:\n{e}", path.display()))?;
        let failures = run_case(&rules, case, eval_interval)
            .map_err(|e| format!("{}: test {name}: {e}", path.display()))?;
        report.failed_cases += usize::from(!failures.is_empty());
        for f in failures {
            report
                .failures
                .push(format!("{}: test {name}: {f}", path.display()));
        }
    }
    Ok(report)
}

fn run_case(
    rules: &RuleSet,
    case: &TestCase,
    eval_interval: Duration,
) -> Result<Vec<String>, String> {
    let step = case.interval.map_or(60_000, |d| d.0.as_millis() as i64);
    // All input samples and log records, by time.
    let mut samples: Vec<(i64, Labels, f64)> = Vec::new();
    for s in &case.input_series {
        let labels = series_labels(&s.series)?;
        for (i, v) in expand(&s.values)?.into_iter().enumerate() {
            if let Some(v) = v {
                samples.push((i as i64 * step, labels.clone(), v));
            }
        }
    }
    samples.sort_by_key(|s| s.0);
    let mut logs: Vec<LogRecord> = Vec::new();
    for l in &case.input_logs {
        let labels = series_labels(&l.stream)?;
        for line in &l.lines {
            logs.push(LogRecord {
                labels: labels.clone(),
                ts: line.at.0.as_millis() as i64,
                line: line.line.clone(),
                fields: line.fields.clone().into_iter().collect(),
            });
        }
    }
    logs.sort_by_key(|l| l.ts);
    let store = Store::new(StoreLimits::default());
    store.retain_at_least(rules.max_range());
    let last = case
        .alert_rule_test
        .iter()
        .map(|t| t.eval_time.0.as_millis() as i64)
        .max()
        .unwrap_or(0);
    let eval_ms = eval_interval.as_millis().max(1) as i64;
    let mut alerts: BTreeMap<String, RuleAlerts> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut si, mut li) = (0, 0);
    let mut t = 0;
    while t <= last {
        let batch: Vec<SeriesSamples> = samples[si..]
            .iter()
            .take_while(|s| s.0 <= t)
            .map(|(ts, labels, v)| SeriesSamples {
                labels: labels.clone(),
                samples: vec![Sample { ts: *ts, value: *v }],
            })
            .collect();
        si += batch.len();
        store.append(batch);
        let n = logs[li..].iter().take_while(|l| l.ts <= t).count();
        store.append_logs(logs[li..li + n].to_vec());
        li += n;
        for rule in rules.rules() {
            let observations =
                crate::detect::evaluate_blocking(rule, &store, t).map_err(|e| e.to_string())?;
            alerts.entry(rule.name.clone()).or_default().update(
                t,
                observations,
                rule.for_,
                rule.keep_firing_for,
            );
        }
        // Expectations at this time (eval times between steps are checked at the next one).
        for test in case.alert_rule_test.iter().filter(|a| {
            let at = a.eval_time.0.as_millis() as i64;
            at <= t && at > t - eval_ms
        }) {
            if !rules.rules().any(|r| r.name == test.alertname) {
                return Err(format!(
                    "no rule named {:?} in the rule files",
                    test.alertname
                ));
            }
            let got: Vec<_> = alerts
                .get(&test.alertname)
                .map(|r| {
                    r.iter()
                        .filter(|a| a.status == Status::Firing)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if let Some(f) = compare(test, &got)? {
                failures.push(f);
            }
        }
        t += eval_ms;
    }
    Ok(failures)
}

fn compare(test: &AlertTest, got: &[crate::alerts::Alert]) -> Result<Option<String>, String> {
    let mut unmatched: Vec<&crate::alerts::Alert> = got.iter().collect();
    let mut all_found = true;
    let expected: Vec<Labels> = test
        .exp_alerts
        .iter()
        .map(|exp| {
            let mut labels =
                Labels::from_pairs(exp.exp_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            labels.set("alertname", &test.alertname);
            labels
        })
        .collect();
    for (exp, labels) in test.exp_alerts.iter().zip(&expected) {
        let mut regexes = Vec::new();
        for (k, re) in &exp.exp_annotations_match {
            let r = regex::Regex::new(&format!("^(?s:{re})$"))
                .map_err(|e| format!("exp_annotations_match {k}: invalid regex {re:?}: {e}"))?;
            regexes.push((k.as_str(), r));
        }
        let pos = unmatched.iter().position(|a| {
            a.labels == *labels
                && exp
                    .exp_annotations
                    .iter()
                    .all(|(k, v)| a.annotations.get(k) == Some(v.as_str()))
                && regexes
                    .iter()
                    .all(|(k, r)| a.annotations.get(k).is_some_and(|v| r.is_match(v)))
        });
        match pos {
            Some(i) => {
                unmatched.remove(i);
            }
            None => all_found = false,
        }
    }
    if all_found && unmatched.is_empty() {
        return Ok(None);
    }
    let mut msg = format!(
        "alertname {:?} at {}:\n",
        test.alertname,
        crate::model::units::format_duration(test.eval_time.0)
    );
    msg.push_str("  expected:\n");
    if test.exp_alerts.is_empty() {
        msg.push_str("    (no firing alerts)\n");
    }
    // Both sides in label notation: `{name="value"}`, regexes as `{name=~"regex"}`.
    for (exp, labels) in test.exp_alerts.iter().zip(&expected) {
        let _ = write!(msg, "    {labels}");
        if !exp.exp_annotations.is_empty() || !exp.exp_annotations_match.is_empty() {
            let pairs: Vec<String> = exp
                .exp_annotations
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .chain(
                    exp.exp_annotations_match
                        .iter()
                        .map(|(k, re)| format!("{k}=~{re:?}")),
                )
                .collect();
            let _ = write!(msg, " annotations {{{}}}", pairs.join(", "));
        }
        msg.push('\n');
    }
    msg.push_str("  got:\n");
    if got.is_empty() {
        msg.push_str("    (no firing alerts)\n");
    }
    for a in got {
        let _ = writeln!(msg, "    {} annotations {}", a.labels, a.annotations);
    }
    Ok(Some(msg.trim_end().to_string()))
}

/// Labels from `metric{a="b"}` notation (equality matchers only).
fn series_labels(text: &str) -> Result<Labels, String> {
    let sel = Selector::parse(text).map_err(|e| format!("series {text:?}: {e}"))?;
    let mut pairs = Vec::new();
    for m in sel.matchers() {
        if m.op() != crate::model::matcher::MatchOp::Equal {
            return Err(format!(
                "series {text:?}: only `=` can name an input series"
            ));
        }
        pairs.push((m.name().to_string(), m.value().to_string()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// promtool's expanding notation: `a+bxn` is a, a+b, ... (n+1 values); `a-bxn` counts down;
/// `axn` repeats a n+1 times; `_` is no sample, `_xn` n of them; `stale` a staleness marker.
pub fn expand(values: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in values.split_whitespace() {
        let bad = |why: &str| format!("values: {item:?}: {why}");
        if item == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN_BITS)));
            continue;
        }
        let (base, times) = match item.rsplit_once('x') {
            Some((b, n)) => (
                b,
                Some(
                    n.parse::<usize>()
                        .map_err(|_| bad("expected a count after `x`"))?,
                ),
            ),
            None => (item, None),
        };
        if base == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // The operator is a `+` or `-` after the first character (which may be a sign).
        let split = base
            .char_indices()
            .skip(1)
            .find(|(i, c)| (*c == '+' || *c == '-') && !base[..*i].ends_with(['e', 'E']));
        let (start, inc) = match split {
            Some((i, c)) => {
                let inc: f64 = base[i + 1..]
                    .parse()
                    .map_err(|_| bad("invalid increment"))?;
                (&base[..i], if c == '-' { -inc } else { inc })
            }
            None => (base, 0.0),
        };
        let start: f64 = start.parse().map_err(|_| bad("not a number"))?;
        match times {
            None if split.is_some() => return Err(bad("an increment needs a count: `a+bxn`")),
            None => out.push(Some(start)),
            Some(n) => out.extend((0..=n).map(|i| Some(start + inc * i as f64))),
        }
    }
    Ok(out)
}

/// `faultline test`: runs every file and prints a report; returns whether all passed.
pub fn run(files: &[PathBuf], plugin_dirs: &[PathBuf]) -> bool {
    let runtime = match crate::runtime::Runtime::with_data_dir(None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faultline: {e}");
            return false;
        }
    };
    let mut ok = true;
    for f in files {
        match run_file(f, plugin_dirs, &runtime) {
            Ok(r) if r.failures.is_empty() => println!("{}: {} tests passed", f.display(), r.cases),
            Ok(r) => {
                ok = false;
                for failure in &r.failures {
                    println!("FAILED {failure}");
                }
                println!(
                    "{}: {} of {} tests failed ({} failed checks)",
                    f.display(),
                    r.failed_cases,
                    r.cases,
                    r.failures.len()
                );
            }
            Err(e) => {
                ok = false;
                println!("FAILED {e}");
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_notation() {
        assert_eq!(
            expand("1 2 3").unwrap(),
            vec![Some(1.0), Some(2.0), Some(3.0)]
        );
        assert_eq!(
            expand("1+2x3").unwrap(),
            vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
        );
        assert_eq!(
            expand("-2-1x2").unwrap(),
            vec![Some(-2.0), Some(-3.0), Some(-4.0)]
        );
        assert_eq!(expand("5x2").unwrap(), vec![Some(5.0); 3]);
        assert_eq!(
            expand("_ 1 _x2").unwrap(),
            vec![None, Some(1.0), None, None]
        );
        assert_eq!(expand("1e3").unwrap(), vec![Some(1000.0)]);
        assert!(expand("stale").unwrap()[0].unwrap().is_nan());
        assert!(expand("1+x3").unwrap_err().contains("invalid increment"));
        assert!(expand("abc").unwrap_err().contains("not a number"));
        assert!(expand("1+1").unwrap_err().contains("needs a count"));
    }
}
