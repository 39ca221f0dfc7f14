//! Parsing a template's source into nodes, refusing at load time every construct Faultline
//! does not run, with the line and character of the problem.

use super::ast::{Command, Func, LabelSet, Node, Operand, Piece, TemplateError, Verb};
use crate::rules::selector::lex_quoted;

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

/// Parses a template's source.
pub fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
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
    Ok(nodes)
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
