//! Rendering a parsed template for one alert: pipelines run left to right, each command
//! fed the previous one's value, as in Go's text/template.

use std::borrow::Cow;

use super::ast::{Command, Func, LabelSet, Node, Operand, Piece, TemplateContext, Verb};
use super::format::{format_g, humanize, humanize_1024, humanize_duration};

/// Renders parsed nodes for one alert.
pub fn render(nodes: &[Node], ctx: &TemplateContext<'_>) -> String {
    let mut out = String::new();
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(commands) => match run(commands, ctx) {
                Ok(value) => out.push_str(&value.text()),
                Err(e) => return format!("<error expanding template: {e}>"),
            },
        }
    }
    out
}

/// A value flowing through a pipeline.
enum Val<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    /// No value (`$value` of an alert without one): renders empty through every function.
    Missing,
}

impl Val<'_> {
    /// The value as Go's text/template prints it.
    fn text(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Num(v) => Cow::Owned(format_g(*v, None)),
            Val::Missing => Cow::Borrowed(""),
        }
    }

    /// The value as a number, reading a string as Prometheus's template functions do.
    fn number(&self, func: &str) -> Result<Option<f64>, String> {
        match self {
            Val::Num(v) => Ok(Some(*v)),
            Val::Str(s) => s.parse().map(Some).map_err(|_| {
                format!("error calling {func}: strconv.ParseFloat: parsing {s:?}: invalid syntax")
            }),
            Val::Missing => Ok(None),
        }
    }
}

fn run<'a>(commands: &'a [Command], ctx: &TemplateContext<'a>) -> Result<Val<'a>, String> {
    let mut piped: Option<Val<'a>> = None;
    for command in commands {
        piped = Some(match command {
            Command::Operand(operand) => operand.eval(ctx),
            Command::Call(func, args) => {
                let mut values: Vec<Val<'a>> = args.iter().map(|a| a.eval(ctx)).collect();
                values.extend(piped.take());
                func.call(values, ctx)?
            }
        });
    }
    Ok(piped.unwrap_or(Val::Missing))
}

impl Operand {
    fn eval<'a>(&'a self, ctx: &TemplateContext<'a>) -> Val<'a> {
        match self {
            Operand::Label(set, name) => Val::Str(Cow::Borrowed(lookup(ctx, *set, name))),
            Operand::Value => ctx.value.map_or(Val::Missing, Val::Num),
            Operand::Str(s) => Val::Str(Cow::Borrowed(s)),
        }
    }
}

/// A label's value; a missing label is empty, as in Prometheus.
fn lookup<'a>(ctx: &TemplateContext<'a>, set: LabelSet, name: &str) -> &'a str {
    let labels = match set {
        LabelSet::Alert => Some(ctx.labels),
        LabelSet::External => ctx.external_labels,
    };
    labels.and_then(|l| l.get(name)).unwrap_or("")
}

impl Func {
    fn name(&self) -> &'static str {
        match self {
            Func::Humanize => "humanize",
            Func::Humanize1024 => "humanize1024",
            Func::HumanizeDuration => "humanizeDuration",
            Func::HumanizePercentage => "humanizePercentage",
            Func::ToUpper => "toUpper",
            Func::ToLower => "toLower",
            Func::Index(_) => "index",
            Func::Printf(_) => "printf",
        }
    }

    /// Applies the function; the parser has checked the number of arguments.
    fn call<'a>(&self, args: Vec<Val<'a>>, ctx: &TemplateContext<'a>) -> Result<Val<'a>, String> {
        let missing = Val::Missing;
        let first = args.first().unwrap_or(&missing);
        let number = |f: fn(f64) -> String| {
            Ok(first
                .number(self.name())?
                .map_or(Val::Missing, |v| Val::Str(Cow::Owned(f(v)))))
        };
        match self {
            Func::Humanize => number(humanize),
            Func::Humanize1024 => number(humanize_1024),
            Func::HumanizeDuration => number(humanize_duration),
            Func::HumanizePercentage => number(|v| format!("{}%", format_g(v * 100.0, Some(4)))),
            Func::ToUpper | Func::ToLower if matches!(first, Val::Missing) => Ok(Val::Missing),
            Func::ToUpper => Ok(Val::Str(Cow::Owned(first.text().to_uppercase()))),
            Func::ToLower => Ok(Val::Str(Cow::Owned(first.text().to_lowercase()))),
            Func::Index(set) => Ok(Val::Str(Cow::Borrowed(lookup(ctx, *set, &first.text())))),
            Func::Printf(pieces) => {
                let mut out = String::new();
                let mut args = args.iter();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Verb(verb) => {
                            out.push_str(&format_verb(*verb, args.next().unwrap_or(&missing)));
                        }
                    }
                }
                Ok(Val::Str(Cow::Owned(out)))
            }
        }
    }
}

/// One printf verb. Numbers and numeric strings convert to what the verb needs; anything else
/// prints as Go prints a mismatch, `%!d(string=abc)`.
fn format_verb(verb: Verb, arg: &Val<'_>) -> String {
    let number = match arg {
        Val::Missing => return String::new(),
        Val::Num(v) => Some(*v),
        Val::Str(s) => s.parse::<f64>().ok(),
    };
    let mismatch = |verb: char| match arg {
        Val::Str(s) => format!("%!{verb}(string={s})"),
        _ => format!("%!{verb}(float64={})", arg.text()),
    };
    match (verb, number) {
        (Verb::Plain, _) => arg.text().into_owned(),
        (Verb::Int, Some(v)) if v.is_finite() && v.fract() == 0.0 => format!("{:.0}", v + 0.0),
        (Verb::Int, _) => mismatch('d'),
        (Verb::Float(precision), Some(v)) if v.is_finite() => format!("{v:.precision$}"),
        (Verb::Float(_), Some(v)) => format_g(v, None),
        (Verb::Float(_), None) => mismatch('f'),
    }
}
