//! Annotation and label templates, written as in Prometheus alerting rules: the output
//! actions of Go's text/template, such as `{{ $labels.instance }} is at {{ $value | humanize }}`.
//!
//! A template is parsed when its rule loads, so every mistake, and every construct Faultline
//! does not run (`if`, `range`, `query`, ...), is reported then, with its position. Rendering
//! at fire time cannot fail to produce text: a runtime error (such as `humanize` given a label
//! that is not a number) renders as `<error expanding template: ...>`, as in Prometheus.
//!
//! Numbers render as Go and Prometheus render them: `{{ $value }}` as Go's `%v` (`3`, `0.5`,
//! `1e+21`), and the `humanize` family as Prometheus's template functions do.
//!
//! `parse.rs` turns the source into the nodes of `ast.rs`; `render.rs` runs them for one
//! alert; `format.rs` prints numbers.

mod ast;
mod format;
mod parse;
mod render;

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use ast::Node;
pub use ast::{TemplateContext, TemplateError};

/// A parsed template. Display prints the source text.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a template, refusing anything Faultline cannot render.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            source: src.to_string(),
            nodes: parse::parse(src)?,
        })
    }

    /// Renders the template for one alert.
    pub fn render(&self, ctx: &TemplateContext<'_>) -> String {
        render::render(&self.nodes, ctx)
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(D::Error::custom)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::format::format_g;
    use super::*;
    use crate::model::Labels;
    use proptest::prelude::*;

    fn labels() -> Labels {
        Labels::from_pairs([
            ("__name__", "node_load1"),
            ("instance", "node3:9100"),
            ("job", "node"),
            ("ratio", "0.1234"),
            ("bytes", "1048576"),
        ])
    }

    fn render_with(src: &str, value: Option<f64>) -> String {
        let labels = labels();
        let external = Labels::from_pairs([("cluster", "eu-1")]);
        let ctx = TemplateContext {
            labels: &labels,
            value,
            external_labels: Some(&external),
        };
        Template::parse(src).unwrap().render(&ctx)
    }

    fn render(src: &str) -> String {
        render_with(src, Some(1234567.0))
    }

    fn err(src: &str) -> String {
        Template::parse(src).unwrap_err().to_string()
    }

    #[test]
    fn literal_text_and_labels() {
        assert_eq!(render("plain text"), "plain text");
        assert_eq!(render(""), "");
        assert_eq!(render("a }} b"), "a }} b");
        assert_eq!(
            render("{{ $labels.instance }} is down"),
            "node3:9100 is down"
        );
        assert_eq!(render("{{.Labels.job}}/{{ $.Labels.job }}"), "node/node");
        assert_eq!(render("[{{ $labels.missing }}]"), "[]");
        assert_eq!(render("{{ $labels.__name__ }}"), "node_load1");
        assert_eq!(render(r#"{{ index $labels "job" }}"#), "node");
        assert_eq!(render(r#"{{ index .Labels "nope" }}"#), "");
        assert_eq!(render("{{ $externalLabels.cluster }}"), "eu-1");
        assert_eq!(render("{{ .ExternalLabels.cluster }}"), "eu-1");
        assert_eq!(
            render(r#"{{ "quoted \"x\"" }} {{ `raw\n` }}"#),
            "quoted \"x\" raw\\n"
        );
        assert_eq!(render(r#"{{ printf "}}" }}"#), "}}");
        assert_eq!(render("{{ $labels.job | toUpper }}"), "NODE");
        assert_eq!(render(r#"{{ "ABC" | toLower }}"#), "abc");
    }

    #[test]
    fn value_renders_as_go_prints_a_float() {
        for (value, text) in [
            (3.0, "3"),
            (0.5, "0.5"),
            (1e21, "1e+21"),
            (100000.0, "100000"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
        ] {
            assert_eq!(render_with("{{ $value }}", Some(value)), text, "{value}");
            assert_eq!(render_with("{{ .Value }}", Some(value)), text, "{value}");
        }
        assert_eq!(render_with("[{{ $value }}]", None), "[]");
        assert_eq!(render_with("[{{ $value | humanize }}]", None), "[]");
        assert_eq!(render_with(r#"[{{ printf "%.2f" $value }}]"#, None), "[]");
    }

    #[test]
    fn humanize_matches_prometheus() {
        let h = |v: f64| render_with("{{ $value | humanize }}", Some(v));
        assert_eq!(h(1234567.0), "1.235M");
        assert_eq!(h(0.001234), "1.234m");
        assert_eq!(h(0.0), "0");
        assert_eq!(h(1.0), "1");
        assert_eq!(h(0.12), "120m");
        assert_eq!(h(1000.0), "1k");
        assert_eq!(h(-1234.0), "-1.234k");
        assert_eq!(h(12345.0), "12.35k");
        assert_eq!(h(1e30), "1e+06Y");
        assert_eq!(h(f64::INFINITY), "+Inf");
        assert_eq!(h(f64::NAN), "NaN");
        assert_eq!(render("{{ humanize $labels.bytes }}"), "1.049M");
    }

    #[test]
    fn humanize_1024_matches_prometheus() {
        let h = |v: f64| render_with("{{ $value | humanize1024 }}", Some(v));
        assert_eq!(h(0.0), "0");
        assert_eq!(h(1.0), "1");
        assert_eq!(h(1048576.0), "1Mi");
        assert_eq!(h(0.12), "0.12");
        assert_eq!(h(1536.0), "1.5ki");
        assert_eq!(h(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn humanize_percentage_matches_prometheus() {
        let h = |v: f64| render_with("{{ $value | humanizePercentage }}", Some(v));
        assert_eq!(h(0.1234), "12.34%");
        assert_eq!(h(-0.22222), "-22.22%");
        assert_eq!(h(0.0), "0%");
        assert_eq!(h(0.1234567), "12.35%");
        assert_eq!(h(1.23456), "123.5%");
        assert_eq!(render("{{ $labels.ratio | humanizePercentage }}"), "12.34%");
    }

    #[test]
    fn humanize_duration_matches_prometheus() {
        let h = |v: f64| render_with("{{ $value | humanizeDuration }}", Some(v));
        assert_eq!(h(3661.0), "1h 1m 1s");
        for (v, text) in [
            (0.0, "0s"),
            (1.0, "1s"),
            (60.0, "1m 0s"),
            (3600.0, "1h 0m 0s"),
            (86400.0, "1d 0h 0m 0s"),
            (86400.0 + 3600.0, "1d 1h 0m 0s"),
            (
                -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
                "-2d 3h 4m 5s",
            ),
            (899.99, "14m 59s"),
            (0.1, "100ms"),
            (0.0001, "100us"),
            (0.12345, "123.5ms"),
            (60.1, "1m 0s"),
            (60.5, "1m 0s"),
            (1.2345, "1.234s"),
            (12.345, "12.35s"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(h(v), text, "{v}");
        }
    }

    #[test]
    fn printf_verbs() {
        let p = |src: &str, v: f64| render_with(src, Some(v));
        assert_eq!(p(r#"{{ printf "%.2f" $value }}"#, 7.256), "7.26");
        assert_eq!(p(r#"{{ $value | printf "%.2f" }}"#, 7.256), "7.26");
        assert_eq!(p(r#"{{ printf "%.0f%%" $value }}"#, 99.5), "100%");
        assert_eq!(p(r#"{{ printf "%.2f" $value }}"#, 0.125), "0.12");
        assert_eq!(p(r#"{{ printf "%f" $value }}"#, 1.5), "1.500000");
        assert_eq!(p(r#"{{ printf "%.f" $value }}"#, 2.5), "2");
        assert_eq!(
            p(r#"{{ printf "%d requests" $value }}"#, 42.0),
            "42 requests"
        );
        assert_eq!(p(r#"{{ printf "%d" $value }}"#, 42.5), "%!d(float64=42.5)");
        assert_eq!(p(r#"{{ printf "%d" $value }}"#, -0.0), "0");
        assert_eq!(p(r#"{{ printf "%v|%s" $value $value }}"#, 0.5), "0.5|0.5");
        assert_eq!(p(r#"{{ printf "%.1f" $value }}"#, f64::INFINITY), "+Inf");
        assert_eq!(
            render(r#"{{ printf "%s on %s: %.1f" $labels.job $labels.instance $labels.ratio }}"#),
            "node on node3:9100: 0.1"
        );
        assert_eq!(render(r#"{{ printf "%d" $labels.bytes }}"#), "1048576");
        assert_eq!(
            render(r#"{{ printf "%f" $labels.job }}"#),
            "%!f(string=node)"
        );
        assert_eq!(
            render(r#"{{ printf "%d" $labels.job }}"#),
            "%!d(string=node)"
        );
        assert_eq!(render(r#"{{ printf "100%%" }}"#), "100%");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(render("a  \n {{- $labels.job -}} \n\t b"), "anodeb");
        assert_eq!(render("a {{- $labels.job }} b"), "anode b");
        assert_eq!(render("a {{ $labels.job -}} b"), "a nodeb");
        assert_eq!(render("a {{/* note */}} b"), "a  b");
        assert_eq!(render("a {{- /* note */ -}} b"), "ab");
        assert_eq!(render("x{{/* a }} b */}}y"), "xy");
        // `{{-3}}` is not a trim marker in Go: it would be the number -3.
        assert_eq!(
            err("{{-3}}"),
            "at line 1, char 3: number literals are not supported"
        );
    }

    #[test]
    fn runtime_errors_render_as_prometheus_does() {
        assert_eq!(
            render("value: {{ $labels.job | humanize }}"),
            r#"<error expanding template: error calling humanize: strconv.ParseFloat: parsing "node": invalid syntax>"#
        );
        assert_eq!(
            render("{{ $labels.missing | humanizeDuration }}"),
            r#"<error expanding template: error calling humanizeDuration: strconv.ParseFloat: parsing "": invalid syntax>"#
        );
    }

    #[test]
    fn unsupported_constructs_are_named() {
        assert_eq!(
            err("{{ range $labels }}x{{ end }}"),
            r#"at line 1, char 4: "range" is not supported in Faultline templates; only output actions such as {{ $labels.instance }} are"#
        );
        assert_eq!(
            err("ok\n  {{ if gt $value 1.0 }}big{{ end }}"),
            r#"at line 2, char 6: "if" is not supported in Faultline templates; only output actions such as {{ $labels.instance }} are"#
        );
        assert!(err("{{ with $labels }}{{ end }}").contains(r#""with" is not supported"#));
        assert!(err(r#"{{ define "x" }}{{ end }}"#).contains(r#""define" is not supported"#));
        assert_eq!(
            err(r#"{{ query "up" | first | value }}"#),
            r#"at line 1, char 4: function "query" is not supported in Faultline templates"#
        );
        assert_eq!(
            err("{{ $value | humanizeTimestamp }}"),
            r#"at line 1, char 13: function "humanizeTimestamp" is not supported in Faultline templates"#
        );
        assert_eq!(
            err("{{ frobnicate }}"),
            r#"at line 1, char 4: function "frobnicate" not defined"#
        );
        assert_eq!(
            err("{{ $x := 1 }}"),
            r#"at line 1, char 4: undefined variable "$x""#
        );
        assert_eq!(
            err("{{ $labels := 1 }}"),
            "at line 1, char 12: variable declarations are not supported"
        );
        assert_eq!(
            err("{{ humanize ($value) }}"),
            "at line 1, char 13: parenthesized pipelines are not supported"
        );
        assert_eq!(
            err("{{ $externalURL }}"),
            "at line 1, char 4: $externalURL is not supported in Faultline templates"
        );
    }

    #[test]
    fn parse_errors_give_the_position() {
        assert_eq!(
            err("ab {{ $labels.job"),
            "at line 1, char 4: unclosed action"
        );
        assert_eq!(err("{{"), "at line 1, char 1: unclosed action");
        assert_eq!(err("{{ }}"), "at line 1, char 4: missing value for command");
        assert_eq!(
            err("{{ $value | }}"),
            r#"at line 1, char 13: missing command after "|""#
        );
        assert_eq!(
            err("{{ $value | $value }}"),
            r#"at line 1, char 13: non executable command in pipeline stage 2: only a function can follow "|""#
        );
        assert_eq!(
            err("{{ $value $value }}"),
            "at line 1, char 11: can't give argument to non-function $value"
        );
        assert_eq!(
            err("{{ $labels }}"),
            r#"at line 1, char 4: $labels is a set of labels; use $labels.<name> or index $labels "<name>""#
        );
        assert_eq!(
            err("{{ . }}"),
            "at line 1, char 4: . cannot be printed; use .Labels.<name> or .Value"
        );
        assert_eq!(
            err("{{ .Foo }}"),
            "at line 1, char 4: can't evaluate field Foo; use .Labels.<name>, .ExternalLabels.<name> or .Value"
        );
        assert_eq!(
            err("{{ $labels.job.x }}"),
            "at line 1, char 15: can't evaluate field x of a value"
        );
        assert_eq!(
            err("{{ humanize $value $value }}"),
            "at line 1, char 4: wrong number of args for humanize: want 1 got 2"
        );
        assert_eq!(
            err("{{ $value | humanize $value }}"),
            "at line 1, char 13: wrong number of args for humanize: want 1 got 2"
        );
        assert_eq!(
            err("{{ humanize }}"),
            "at line 1, char 4: wrong number of args for humanize: want 1 got 0"
        );
        assert_eq!(
            err("{{ printf $value }}"),
            "at line 1, char 4: printf needs a string literal as its format"
        );
        assert_eq!(
            err(r#"{{ printf "%x" $value }}"#),
            r#"at line 1, char 11: printf verb "%x" is not supported; use %s, %v, %d, %f or %.<N>f"#
        );
        assert_eq!(
            err(r#"{{ printf "%5.2f" $value }}"#),
            r#"at line 1, char 11: printf verb "%5.2f" is not supported; use %s, %v, %d, %f or %.<N>f"#
        );
        assert_eq!(
            err(r#"{{ printf "%.2f %s" $value }}"#),
            r#"at line 1, char 4: printf format "%.2f %s" has 2 verbs but 1 arguments"#
        );
        assert_eq!(
            err(r#"{{ printf "50%" }}"#),
            r#"at line 1, char 11: printf format ends with a lone "%""#
        );
        assert_eq!(
            err(r#"{{ printf "%s" humanize }}"#),
            r#"at line 1, char 16: function "humanize" used as an argument; pipe into it instead, as in {{ $value | humanize }}"#
        );
        assert_eq!(
            err(r#"{{ index "job" $labels }}"#),
            r#"at line 1, char 4: index needs a label set first, as in index $labels "name""#
        );
        assert_eq!(
            err(r#"{{ "abc }}"#),
            "at line 1, char 4: unterminated quoted string"
        );
        assert_eq!(
            err("{{/* never closed }}"),
            "at line 1, char 1: unclosed comment"
        );
        assert_eq!(
            err("{{/* c */ }}"),
            "at line 1, char 10: comment ends before closing delimiter"
        );
        assert_eq!(
            err("{{ 'x' }}"),
            "at line 1, char 4: character constants are not supported"
        );
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Annotations {
        summary: Template,
    }

    #[test]
    fn loads_from_toml() {
        let a: Annotations =
            toml::from_str(r#"summary = "{{ $labels.instance }} at {{ $value | humanize }}""#)
                .unwrap();
        assert_eq!(
            a.summary.to_string(),
            "{{ $labels.instance }} at {{ $value | humanize }}"
        );
        let labels = labels();
        let ctx = TemplateContext {
            labels: &labels,
            value: Some(0.5),
            external_labels: None,
        };
        assert_eq!(a.summary.render(&ctx), "node3:9100 at 500m");
        let bad = toml::from_str::<Annotations>(r#"summary = "{{ range . }}""#)
            .err()
            .unwrap()
            .to_string();
        assert!(
            bad.contains(r#"at line 1, char 4: "range" is not supported"#),
            "{bad}"
        );
    }

    proptest! {
        #[test]
        fn parse_and_render_never_panic(s in ".*") {
            if let Ok(t) = Template::parse(&s) {
                render_with(&t.to_string(), Some(1.5));
            }
        }

        #[test]
        fn near_miss_templates_never_panic(
            s in r#"[a-z {}$.|"`%\-/*()\n]{0,12}(\{\{-? ?(\$labels\.job|\$value|\.Value|printf "%.2f %d"|humanize|\||-| )*-?\}\}){0,3}"#
        ) {
            if let Ok(t) = Template::parse(&s) {
                render_with(&s, Some(-0.5));
                render_with(&t.to_string(), None);
            }
        }

        #[test]
        fn shortest_form_reads_back_exactly(v in proptest::num::f64::ANY) {
            let text = format_g(v, None);
            let back: f64 = text.replace("Inf", "inf").parse().unwrap();
            prop_assert!(back == v || (v.is_nan() && back.is_nan()));
        }
    }
}
