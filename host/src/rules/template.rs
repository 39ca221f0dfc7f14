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

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::selector::lex_quoted;
use crate::model::Labels;

/// A template refused at load time, with the 1-based line and character of the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at line {line}, char {column}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What a template can refer to when it renders.
#[derive(Clone, Copy, Debug)]
pub struct TemplateContext<'a> {
    /// The alert's labels: `$labels` and `.Labels`.
    pub labels: &'a Labels,
    /// The alert's value: `$value` and `.Value`. `None` renders as empty text.
    pub value: Option<f64>,
    /// The external labels: `$externalLabels` and `.ExternalLabels`; `None` is no labels.
    pub external_labels: Option<&'a Labels>,
}

/// A parsed template. Display prints the source text.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    /// An output action: a pipeline of commands, each fed the previous one's result.
    Action(Vec<Command>),
}

#[derive(Clone, Debug)]
enum Command {
    /// Only as the first command of a pipeline.
    Operand(Operand),
    /// A function and its written arguments; a piped value comes after them, as in Go.
    Call(Func, Vec<Operand>),
}

#[derive(Clone, Debug)]
enum Operand {
    Label(LabelSet, String),
    Value,
    Str(String),
}

#[derive(Clone, Copy, Debug)]
enum LabelSet {
    Alert,
    External,
}

#[derive(Clone, Debug)]
enum Func {
    Humanize,
    Humanize1024,
    HumanizeDuration,
    HumanizePercentage,
    ToUpper,
    ToLower,
    /// `index $labels "name"`: the label set is fixed at parse time; the key is the argument.
    Index(LabelSet),
    /// The format is parsed at load time; the arguments are the values.
    Printf(Vec<Piece>),
}

#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    Verb(Verb),
}

#[derive(Clone, Copy, Debug)]
enum Verb {
    /// `%s` and `%v`.
    Plain,
    /// `%d`
    Int,
    /// `%f` (precision 6) and `%.Nf`.
    Float(usize),
}

/// Go template keywords, none of which Faultline runs.
const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    "nil", "true", "false",
];

/// Functions that Prometheus or Go templates have and Faultline does not.
const UNSUPPORTED: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "stripPort",
    "humanizeTimestamp",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "toTime",
    "toDuration",
    "now",
    "and",
    "or",
    "not",
    "len",
    "slice",
    "print",
    "println",
    "html",
    "js",
    "urlquery",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "call",
];

impl Template {
    /// Parses a template, refusing anything Faultline cannot render.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut p = Parser { src, pos: 0 };
        let mut nodes = Vec::new();
        let mut trim_text_start = false;
        loop {
            let rest = p.rest();
            let open = rest.find("{{");
            let mut text = &rest[..open.unwrap_or(rest.len())];
            if trim_text_start {
                text = text.trim_start_matches(is_space);
            }
            let Some(open) = open.map(|i| p.pos + i) else {
                push_text(&mut nodes, text);
                break;
            };
            p.pos = open + 2;
            // `{{- ` trims the text before it; Go wants a space after the dash (`{{-3}}` is -3).
            if p.rest().starts_with('-') && p.rest()[1..].starts_with(is_space) {
                text = text.trim_end_matches(is_space);
                p.pos += 2;
            }
            push_text(&mut nodes, text);
            trim_text_start = if p.rest().starts_with("/*") {
                p.comment(open)?
            } else {
                let (commands, trim) = p.action(open)?;
                nodes.push(Node::Action(commands));
                trim
            };
        }
        Ok(Template {
            source: src.to_string(),
            nodes,
        })
    }

    /// Renders the template for one alert.
    pub fn render(&self, ctx: &TemplateContext<'_>) -> String {
        let mut out = String::new();
        for node in &self.nodes {
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
}

fn push_text(nodes: &mut Vec<Node>, text: &str) {
    if text.is_empty() {
        return;
    }
    // Text on both sides of a comment is one run.
    if let Some(Node::Text(last)) = nodes.last_mut() {
        last.push_str(text);
    } else {
        nodes.push(Node::Text(text.to_string()));
    }
}

/// The white space that trim markers remove, as Go defines it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
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

/// A word of an action, before it is known where it is used.
enum Word<'a> {
    Func(&'a str),
    Operand(Operand),
    /// `$labels`, `.Labels`, `$externalLabels`, `.ExternalLabels`.
    Labels(LabelSet),
    /// `.` or `$`.
    Root,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn err(&self, at: usize, message: impl Into<String>) -> TemplateError {
        let before = &self.src[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TemplateError {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: message.into(),
        }
    }

    /// Consumes a closing delimiter, `}}` or ` -}}`, and says whether it trims what follows.
    fn close(&mut self) -> Option<bool> {
        let rest = self.rest();
        if rest.starts_with("}}") {
            self.pos += 2;
            Some(false)
        } else if rest.starts_with(is_space) && rest[1..].starts_with("-}}") {
            self.pos += 4;
            Some(true)
        } else {
            None
        }
    }

    fn at_close(&self) -> bool {
        let rest = self.rest();
        rest.starts_with("}}") || (rest.starts_with(is_space) && rest[1..].starts_with("-}}"))
    }

    /// Skips white space inside an action, but not the space of a ` -}}`.
    fn skip_space(&mut self) {
        while self.rest().starts_with(is_space) && !self.at_close() {
            self.pos += 1;
        }
    }

    /// A `{{/* ... */}}` comment, from its `/*`. Returns whether it trims what follows.
    fn comment(&mut self, open: usize) -> Result<bool, TemplateError> {
        let end = self.rest()[2..]
            .find("*/")
            .ok_or_else(|| self.err(open, "unclosed comment"))?;
        self.pos += 2 + end + 2;
        self.close()
            .ok_or_else(|| self.err(self.pos, "comment ends before closing delimiter"))
    }

    /// An output action, after its `{{` (and trim marker). Returns its pipeline and whether it
    /// trims what follows.
    fn action(&mut self, open: usize) -> Result<(Vec<Command>, bool), TemplateError> {
        let mut commands = Vec::new();
        loop {
            let command = self.command(open, commands.len())?;
            commands.push(command);
            if let Some(trim) = self.close() {
                return Ok((commands, trim));
            }
            self.pos += 1; // the `|` that ended the command
        }
    }

    /// One command of a pipeline, up to a `|` or the end of the action.
    fn command(&mut self, open: usize, stage: usize) -> Result<Command, TemplateError> {
        let mut words = Vec::new();
        loop {
            self.skip_space();
            if self.rest().is_empty() {
                return Err(self.err(open, "unclosed action"));
            }
            if self.at_close() || self.rest().starts_with('|') {
                break;
            }
            let at = self.pos;
            let word = self.word()?;
            words.push((at, &self.src[at..self.pos], word));
        }
        let Some(((at, text, first), args)) = words.split_first() else {
            return Err(self.err(
                self.pos,
                if stage == 0 {
                    "missing value for command"
                } else {
                    "missing command after \"|\""
                },
            ));
        };
        match first {
            Word::Func(name) => self.call(name, *at, args, stage > 0),
            _ if stage > 0 => Err(self.err(
                *at,
                format!(
                    "non executable command in pipeline stage {}: only a function can follow \"|\"",
                    stage + 1
                ),
            )),
            _ if !args.is_empty() => Err(self.err(
                args[0].0,
                format!("can't give argument to non-function {text}"),
            )),
            _ => Ok(Command::Operand(self.scalar(*at, text, first)?)),
        }
    }

    /// A function call with its written arguments; `piped` says whether a value is piped in.
    fn call(
        &self,
        name: &str,
        at: usize,
        args: &[(usize, &str, Word<'_>)],
        piped: bool,
    ) -> Result<Command, TemplateError> {
        let argc = args.len() + usize::from(piped);
        let scalars = |args: &[(usize, &str, Word<'_>)]| -> Result<Vec<Operand>, TemplateError> {
            args.iter()
                .map(|(at, text, word)| self.scalar(*at, text, word))
                .collect()
        };
        let func = match name {
            "humanize" => Func::Humanize,
            "humanize1024" => Func::Humanize1024,
            "humanizeDuration" => Func::HumanizeDuration,
            "humanizePercentage" => Func::HumanizePercentage,
            "toUpper" => Func::ToUpper,
            "toLower" => Func::ToLower,
            "printf" => {
                let Some((format_at, _, Word::Operand(Operand::Str(format)))) = args.first() else {
                    return Err(self.err(at, "printf needs a string literal as its format"));
                };
                let pieces = parse_printf(format).map_err(|m| self.err(*format_at, m))?;
                let verbs = pieces
                    .iter()
                    .filter(|p| matches!(p, Piece::Verb(_)))
                    .count();
                if verbs != argc - 1 {
                    return Err(self.err(
                        at,
                        format!(
                            "printf format {format:?} has {verbs} verbs but {} arguments",
                            argc - 1
                        ),
                    ));
                }
                return Ok(Command::Call(Func::Printf(pieces), scalars(&args[1..])?));
            }
            "index" => {
                let Some((_, _, Word::Labels(set))) = args.first() else {
                    return Err(self.err(
                        at,
                        "index needs a label set first, as in index $labels \"name\"",
                    ));
                };
                if argc != 2 {
                    return Err(self.err(
                        at,
                        format!("wrong number of args for index: want 2 got {argc}"),
                    ));
                }
                return Ok(Command::Call(Func::Index(*set), scalars(&args[1..])?));
            }
            name if UNSUPPORTED.contains(&name) => {
                return Err(self.err(
                    at,
                    format!("function {name:?} is not supported in Faultline templates"),
                ));
            }
            name => return Err(self.err(at, format!("function {name:?} not defined"))),
        };
        if argc != 1 {
            return Err(self.err(
                at,
                format!("wrong number of args for {name}: want 1 got {argc}"),
            ));
        }
        Ok(Command::Call(func, scalars(args)?))
    }

    /// A word used as a value: a label, the value or a string.
    fn scalar(&self, at: usize, text: &str, word: &Word<'_>) -> Result<Operand, TemplateError> {
        match word {
            Word::Operand(operand) => Ok(operand.clone()),
            Word::Labels(_) => Err(self.err(
                at,
                format!("{text} is a set of labels; use {text}.<name> or index {text} \"<name>\""),
            )),
            Word::Root => Err(self.err(
                at,
                format!("{text} cannot be printed; use .Labels.<name> or .Value"),
            )),
            Word::Func(name) => Err(self.err(
                at,
                format!(
                    "function {name:?} used as an argument; pipe into it instead, \
                     as in {{{{ $value | {name} }}}}"
                ),
            )),
        }
    }

    fn ident(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn word(&mut self) -> Result<Word<'a>, TemplateError> {
        let at = self.pos;
        let c = self.rest().chars().next().unwrap_or_default();
        match c {
            '"' | '`' => {
                let (value, end) =
                    lex_quoted(self.src, at).map_err(|(at, reason)| self.err(at, reason))?;
                self.pos = end;
                Ok(Word::Operand(Operand::Str(value)))
            }
            '$' => {
                self.pos += 1;
                let word = match self.ident() {
                    "" => Word::Root,
                    "labels" => Word::Labels(LabelSet::Alert),
                    "externalLabels" => Word::Labels(LabelSet::External),
                    "value" => Word::Operand(Operand::Value),
                    "externalURL" => {
                        return Err(
                            self.err(at, "$externalURL is not supported in Faultline templates")
                        );
                    }
                    name => return Err(self.err(at, format!("undefined variable \"${name}\""))),
                };
                self.fields(word)
            }
            '.' => self.fields(Word::Root),
            c if c.is_alphabetic() || c == '_' => {
                let name = self.ident();
                if KEYWORDS.contains(&name) {
                    return Err(self.err(
                        at,
                        format!(
                            "{name:?} is not supported in Faultline templates; only output \
                             actions such as {{{{ $labels.instance }}}} are"
                        ),
                    ));
                }
                Ok(Word::Func(name))
            }
            '0'..='9' | '-' | '+' => Err(self.err(at, "number literals are not supported")),
            '\'' => Err(self.err(at, "character constants are not supported")),
            '(' | ')' => Err(self.err(at, "parenthesized pipelines are not supported")),
            ':' | '=' => Err(self.err(at, "variable declarations are not supported")),
            c => Err(self.err(at, format!("unexpected {c:?} in action"))),
        }
    }

    /// The `.Field` chain after a variable or a leading `.`.
    fn fields(&mut self, mut word: Word<'a>) -> Result<Word<'a>, TemplateError> {
        while self.rest().starts_with('.') {
            let at = self.pos;
            self.pos += 1;
            let field = self.ident();
            word = match (word, field) {
                (Word::Root, "") => Word::Root,
                (_, "") => return Err(self.err(at, "unexpected \".\"")),
                (Word::Root, "Labels") => Word::Labels(LabelSet::Alert),
                (Word::Root, "ExternalLabels") => Word::Labels(LabelSet::External),
                (Word::Root, "Value") => Word::Operand(Operand::Value),
                (Word::Root, "ExternalURL") => {
                    return Err(
                        self.err(at, ".ExternalURL is not supported in Faultline templates")
                    );
                }
                (Word::Root, field) => {
                    return Err(self.err(
                        at,
                        format!(
                            "can't evaluate field {field}; use .Labels.<name>, \
                             .ExternalLabels.<name> or .Value"
                        ),
                    ));
                }
                (Word::Labels(set), name) => Word::Operand(Operand::Label(set, name.to_string())),
                (_, field) => {
                    return Err(self.err(at, format!("can't evaluate field {field} of a value")));
                }
            };
        }
        Ok(word)
    }
}

/// Parses a printf format, allowing only the verbs Faultline formats: `%s %v %d %f %.Nf %%`.
fn parse_printf(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        text.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (verb, len) = match rest.chars().next() {
            Some('%') => {
                text.push('%');
                rest = &rest[1..];
                continue;
            }
            Some('s' | 'v') => (Verb::Plain, 1),
            Some('d') => (Verb::Int, 1),
            Some('f') => (Verb::Float(6), 1),
            Some('.') => {
                let digits = rest[1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len() - 1);
                if !rest[1 + digits..].starts_with('f') {
                    return Err(unsupported_verb(rest));
                }
                // Go reads `%.f` as precision 0.
                let precision = rest[1..1 + digits].parse().unwrap_or(0);
                if precision > 100 {
                    return Err(format!("printf precision {precision} is above 100"));
                }
                (Verb::Float(precision), digits + 2)
            }
            Some(_) => return Err(unsupported_verb(rest)),
            None => return Err("printf format ends with a lone \"%\"".into()),
        };
        rest = &rest[len..];
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Verb(verb));
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn unsupported_verb(after_percent: &str) -> String {
    let len = after_percent
        .find(|c: char| c.is_alphabetic())
        .map_or(after_percent.len(), |i| {
            i + after_percent[i..].chars().next().map_or(0, char::len_utf8)
        });
    format!(
        "printf verb \"%{}\" is not supported; use %s, %v, %d, %f or %.<N>f",
        &after_percent[..len]
    )
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

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        (v, prefix) = scale_up(v);
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// A value below 1 scaled by thousands until it is at least 1 (or out of prefixes), and the
/// SI prefix that says by how much.
fn scale_up(mut v: f64) -> (f64, &'static str) {
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    (v, prefix)
}

/// Prometheus's `humanize1024`: binary prefixes, 4 significant digits.
fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`, or `1.234s`, `12.5ms`.
fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        // Go truncates toward zero; `as` does too (and saturates where Go's is undefined).
        let whole = v as i64;
        let (seconds, minutes) = (whole % 60, whole / 60 % 60);
        let (hours, days) = (whole / 3600 % 24, whole / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v, Some(4)))
        };
    }
    let (v, prefix) = scale_up(v);
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Go's `strconv.FormatFloat(v, 'g', precision, 64)`; `None` is the shortest exact form
/// (precision -1), which is also how Go's `%v` and text/template print a float64.
fn format_g(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's exact formatting rounds ties to even, like Go's; it supplies the digits.
    let sci = match precision {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(|b| b.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let nd = digits.len() as i64;
    let dp = exponent.parse::<i64>().unwrap_or(0) + 1;
    let digit = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |d| char::from(*d))
    };

    let mut prec = precision.map_or(nd, |p| p.max(1) as i64);
    let eprec = match precision {
        None => 6,
        Some(_) if prec > nd && nd >= dp => nd,
        Some(_) => prec,
    };
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        prec = prec.min(nd);
        out.push(digit(0));
        if prec > 1 {
            out.push('.');
            (1..prec).for_each(|i| out.push(digit(i)));
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else {
        if prec > dp {
            prec = nd;
        }
        if dp > 0 {
            (0..dp).for_each(|i| out.push(digit(i)));
        } else {
            out.push('0');
        }
        let fraction = (prec - dp).max(0);
        if fraction > 0 {
            out.push('.');
            (0..fraction).for_each(|i| out.push(digit(dp + i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
