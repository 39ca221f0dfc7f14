//! `faultline new detector|localizer|recovery NAME`: a plugin crate that uses the SDK, with
//! a unit test, a rule file (and for a detector, a rule test) and a Makefile, that builds
//! and passes as generated. The Makefile runs the `faultline` binary that generated it
//! (`make test FAULTLINE=...` for another), and builds with the `plugin` profile, as the
//! bundled plugins are built.

use std::path::{Path, PathBuf};

/// The SDK of the source tree this binary was built from, if it is still there.
pub fn default_sdk() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    p.join("Cargo.toml")
        .is_file()
        .then(|| p.canonicalize().unwrap_or(p))
}

/// `my-rule` -> `MyRule`.
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |f| {
                std::iter::once(f.to_ascii_uppercase()).chain(c).collect()
            })
        })
        .collect()
}

/// Writes the crate into `dir` (which must not exist yet) and returns the files written;
/// its Makefile runs `faultline`.
pub fn create(
    world: &str,
    name: &str,
    dir: &Path,
    sdk: &Path,
    faultline: &Path,
) -> Result<Vec<PathBuf>, String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "invalid plugin name {name:?}: use lowercase letters, digits and dashes, starting with a letter"
        ));
    }
    if !matches!(world, "detector" | "localizer" | "recovery") {
        return Err(format!(
            "unknown world {world:?}: use detector, localizer or recovery"
        ));
    }
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    if !sdk.join("Cargo.toml").is_file() {
        return Err(format!(
            "no faultline-sdk at {} (give its folder with --sdk)",
            sdk.display()
        ));
    }
    let krate = name.replace('-', "_");
    let alert = camel(name);
    let sdk = sdk.display().to_string().replace('\\', "/");
    let mut files = vec![
        ("Cargo.toml".to_string(), cargo_toml(name, &sdk)),
        (
            ".gitignore".to_string(),
            "/target\n/rules/plugins/*.wasm\n".to_string(),
        ),
        (
            "Makefile".to_string(),
            makefile(name, &krate, world, &faultline.display().to_string()),
        ),
        ("src/lib.rs".to_string(), lib_rs(world, name, &alert)),
    ];
    match world {
        "detector" => {
            files.push((format!("rules/{name}.toml"), detector_rules(name, &alert)));
            files.push((
                format!("rules/{name}_test.toml"),
                detector_test(name, &alert),
            ));
        }
        "recovery" => files.push((format!("rules/{name}.toml"), recovery_rules(name))),
        _ => files.push((format!("rules/{name}.toml"), localizer_rules(name))),
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let p = dir.join(&rel);
        std::fs::create_dir_all(p.parent().expect("files are in the crate folder"))
            .and_then(|()| std::fs::write(&p, text))
            .map_err(|e| format!("writing {}: {e}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
faultline-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

# Small, fast components, as Faultline's own plugins are built (`--profile plugin`).
# Function names are kept so that a trap names them.
[profile.plugin]
inherits = "release"
opt-level = "s"
lto = true
strip = "debuginfo"
codegen-units = 1
panic = "abort"

# A crate of its own, not part of any enclosing workspace.
[workspace]
"#
    )
}

fn makefile(name: &str, krate: &str, world: &str, faultline: &str) -> String {
    let rule_test = if world == "detector" {
        format!("\t$(FAULTLINE) test rules/{name}_test.toml\n")
    } else {
        "\t$(FAULTLINE) check rules\n".to_string()
    };
    format!(
        r#"# make: build the component into rules/plugins/; make test: unit tests, then the rules.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# The faultline that generated this crate.
FAULTLINE ?= {faultline}

plugin:
	cargo build --profile plugin --target wasm32-wasip2
	mkdir -p rules/plugins
	cp $(TARGET_DIR)/wasm32-wasip2/plugin/{krate}.wasm rules/plugins/{name}.wasm

test: plugin
	cargo test
{rule_test}
.PHONY: plugin test
"#
    )
}

fn lib_rs(world: &str, name: &str, alert: &str) -> String {
    match world {
        "detector" => format!(
            r##"//! `{name}`: a Faultline detector. It finds the series whose latest value is above a bound.
//!
//! Edit `evaluate` to judge what you need; `cargo test` runs the unit tests natively, and
//! `make test` builds the component and runs the rule tests in `rules/` against it.

use faultline_sdk::detector::*;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {{
    /// A finding for every series whose latest value is above this.
    pub above: f64,
}}

/// The detector: one value per rule, kept between evaluations.
pub struct {alert} {{
    above: f64,
}}

impl Detector for {alert} {{
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {{
        if !p.above.is_finite() {{
            return Err("params: `above` must be a finite number".into());
        }}
        Ok(Self {{ above: p.above }})
    }}

    fn evaluate(&mut self, input: &Input) -> Result<Vec<Finding>, Error> {{
        Ok(input
            .series()
            .filter(|s| s.latest().value > self.above)
            .map(|s| Finding::for_series(&s).value(s.latest().value))
            .collect())
    }}
}}

export_detector!({alert});

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn finds_the_series_above_the_bound() {{
        let mut rule = {alert}::configure(r#"{{"above": 100}}"#).unwrap();
        let input = Input::builder()
            .now(60_000)
            .series([("instance", "a")], &[(45_000, 90.0), (60_000, 150.0)])
            .series([("instance", "b")], &[(60_000, 10.0)])
            .build();
        let findings = rule.evaluate(&input).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].series_labels().unwrap().get("instance"), Some("a"));
        assert_eq!(findings[0].value, Some(150.0));
    }}

    #[test]
    fn refuses_bad_params() {{
        assert!({alert}::configure("{{}}").is_err());
    }}
}}
"##
        ),
        "localizer" => format!(
            r##"//! `{name}`: a Faultline localizer. It suspects the instances that logged the most errors
//! during an incident.

use faultline_sdk::localizer::*;
use serde::Deserialize;

/// The rule's `params`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {{
    /// The label that names a component (default `instance`).
    #[serde(default = "default_by")]
    pub by: String,
}}

fn default_by() -> String {{
    "instance".into()
}}

/// The localizer.
pub struct {alert} {{
    by: String,
}}

impl Localizer for {alert} {{
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {{
        Ok(Self {{ by: p.by }})
    }}

    fn localize(&mut self, input: &LocalizeInput) -> Result<Vec<Suspect>, Error> {{
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for record in input.logs() {{
            if let Some(v) = record.labels().get(&self.by) {{
                *counts.entry(v.to_string()).or_default() += 1;
            }}
        }}
        let total: u32 = counts.values().sum();
        let mut suspects: Vec<Suspect> = counts
            .into_iter()
            .map(|(v, n)| {{
                Suspect::new()
                    .label(&self.by, &v)
                    .score(f64::from(n) / f64::from(total.max(1)))
                    .reason(format!("{{n}} of the {{total}} selected log lines"))
            }})
            .collect();
        suspects.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(suspects)
    }}
}}

export_localizer!({alert});

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn ranks_the_noisiest_instance_first() {{
        let data = Input::builder()
            .log([("instance", "db1")], 1, "timeout")
            .log([("instance", "db2")], 2, "timeout")
            .log([("instance", "db2")], 3, "refused")
            .build();
        let mut l = {alert}::configure("{{}}").unwrap();
        let suspects = l.localize(&LocalizeInput::new(Incident::default(), data)).unwrap();
        assert_eq!(suspects[0].labels.get("instance"), Some("db2"));
    }}
}}
"##
        ),
        _ => format!(
            r##"//! `{name}`: a Faultline recovery action. It POSTs the incident to a URL; the host only
//! lets it reach the hosts the rule file grants.

use faultline_sdk::http::{{ErrorKind, Request}};
#[cfg(test)]
use faultline_sdk::http::Response;
use faultline_sdk::recovery::*;
use serde::Deserialize;

/// The receiver's `params`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {{
    /// Where to POST.
    pub url: String,
}}

/// The recovery action.
pub struct {alert} {{
    url: String,
}}

impl Recovery for {alert} {{
    type Params = Params;

    fn new(p: Params) -> Result<Self, Error> {{
        if !p.url.starts_with("http://") && !p.url.starts_with("https://") {{
            return Err("params: `url` must be an http(s) URL".into());
        }}
        Ok(Self {{ url: p.url }})
    }}

    fn recover(&mut self, input: &RecoverInput) -> Outcome {{
        let body = format!(
            r#"{{{{"incident":"{{}}","status":"{{}}","alerts":{{}}}}}}"#,
            input.incident.id,
            input.incident.status,
            input.incident.alerts.len()
        );
        let req = Request::post(&self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &input.idempotency_key)
            .body(body);
        match http::send(req) {{
            Ok(r) if (200..300).contains(&r.status) => Outcome::Done(format!("HTTP {{}}", r.status)),
            Ok(r) if r.status >= 500 || r.status == 429 => Outcome::RetryLater(format!("HTTP {{}}", r.status)),
            Ok(r) => Outcome::Failed(format!("HTTP {{}}", r.status)),
            Err(e) if e.kind == ErrorKind::Transport => Outcome::RetryLater(e.message),
            Err(e) => Outcome::Failed(e.message),
        }}
    }}
}}

export_recovery!({alert});

#[cfg(test)]
mod tests {{
    use super::*;
    use faultline_sdk::testing;

    #[test]
    fn posts_and_maps_the_status() {{
        testing::reset();
        let mut r = {alert}::configure(r#"{{"url": "http://127.0.0.1:5001/hook"}}"#).unwrap();
        testing::http_respond(Ok(Response::new(200)));
        let out = r.recover(&RecoverInput::default());
        assert!(matches!(out, Outcome::Done(_)), "{{out:?}}");
        assert_eq!(testing::http_requests()[0].url, "http://127.0.0.1:5001/hook");
        testing::http_respond(Ok(Response::new(503)));
        assert!(matches!(r.recover(&RecoverInput::default()), Outcome::RetryLater(_)));
    }}
}}
"##
        ),
    }
}

fn detector_rules(name: &str, alert: &str) -> String {
    format!(
        r#"# A rule using the `{name}` plugin (rules/plugins/{name}.wasm, built by `make`).

[[group]]
name = "{name}"
interval = "15s"

[[group.rule]]
name = "{alert}"
plugin = "{name}"
select = "queue_depth"
for = "1m"
params = {{ above = 100 }}
labels = {{ severity = "warning" }}
annotations = {{ summary = "queue depth {{{{ $value }}}} on {{{{ $labels.instance }}}}" }}
"#
    )
}

fn detector_test(name: &str, alert: &str) -> String {
    format!(
        r#"# Rule tests: `faultline test rules/{name}_test.toml` (or `make test`).

rule_files = ["{name}.toml"]
evaluation_interval = "15s"

[[test]]
name = "fires after a minute above the bound, for that instance only"
interval = "15s"
input_series = [
    {{ series = 'queue_depth{{instance="a"}}', values = "50 150x8" }},
    {{ series = 'queue_depth{{instance="b"}}', values = "10x8" }},
]

# Above the bound since 15s, but `for` is 1m: pending, not firing yet.
[[test.alert_rule_test]]
eval_time = "30s"
alertname = "{alert}"
exp_alerts = []

[[test.alert_rule_test]]
eval_time = "2m"
alertname = "{alert}"
exp_alerts = [
    {{ exp_labels = {{ instance = "a", severity = "warning" }}, exp_annotations = {{ summary = "queue depth 150 on a" }} }},
]
"#
    )
}

fn recovery_rules(name: &str) -> String {
    format!(
        r#"# A receiver using the `{name}` plugin (rules/plugins/{name}.wasm, built by `make`).
# Route alerts to it with `recovery = "{name}"` on a rule, or from the routing tree.

[[receiver]]
name = "{name}"
plugin = "{name}"
params = {{ url = "http://127.0.0.1:5001/hook" }}
grants = {{ http = ["127.0.0.1:5001"] }}
"#
    )
}

fn localizer_rules(name: &str) -> String {
    format!(
        r#"# The `{name}` localizer (rules/plugins/{name}.wasm, built by `make`).
# Localizer rules select the incidents they apply to and the data they need; until this
# directory has one, `faultline check` validates the file as an empty rule file.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(camel("my-rule"), "MyRule");
        let dir = tempfile::tempdir().unwrap();
        let sdk = default_sdk().unwrap();
        let bin = Path::new("/opt/faultline");
        let err = create("detector", "Bad_Name", &dir.path().join("x"), &sdk, bin).unwrap_err();
        assert!(err.contains("invalid plugin name"));
        assert!(
            create("sensor", "ok", &dir.path().join("x"), &sdk, bin)
                .unwrap_err()
                .contains("unknown world")
        );
        let files = create("detector", "queue-depth", &dir.path().join("q"), &sdk, bin).unwrap();
        assert_eq!(files.len(), 6);
        let lib = std::fs::read_to_string(dir.path().join("q/src/lib.rs")).unwrap();
        assert!(lib.contains("export_detector!(QueueDepth);"));
        let make = std::fs::read_to_string(dir.path().join("q/Makefile")).unwrap();
        assert!(make.contains("FAULTLINE ?= /opt/faultline\n"), "{make}");
        assert!(make.contains("cargo build --profile plugin --target wasm32-wasip2"));
        assert!(
            create("detector", "queue-depth", &dir.path().join("q"), &sdk, bin)
                .unwrap_err()
                .contains("already exists")
        );
    }
}
