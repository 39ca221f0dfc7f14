//! A parsed template: text and output actions, each a pipeline of commands; what a
//! template may refer to when it renders; and what a refused template says.

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

#[derive(Clone, Debug)]
pub enum Node {
    Text(String),
    /// An output action: a pipeline of commands, each fed the previous one's result.
    Action(Vec<Command>),
}

#[derive(Clone, Debug)]
pub enum Command {
    /// Only as the first command of a pipeline.
    Operand(Operand),
    /// A function and its written arguments; a piped value comes after them, as in Go.
    Call(Func, Vec<Operand>),
}

#[derive(Clone, Debug)]
pub enum Operand {
    Label(LabelSet, String),
    Value,
    Str(String),
}

#[derive(Clone, Copy, Debug)]
pub enum LabelSet {
    Alert,
    External,
}

#[derive(Clone, Debug)]
pub enum Func {
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
pub enum Piece {
    Text(String),
    Verb(Verb),
}

#[derive(Clone, Copy, Debug)]
pub enum Verb {
    /// `%s` and `%v`.
    Plain,
    /// `%d`
    Int,
    /// `%f` (precision 6) and `%.Nf`.
    Float(usize),
}
