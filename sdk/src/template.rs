//! `{{ ... }}` placeholders in text, as plugins take them in params (a webhook's body, a
//! Kubernetes target's name). This only finds them: what a placeholder may hold, and what
//! fills it, is the plugin's business.
//!
//! ```
//! use faultline_sdk::template::{Piece, Unclosed, pieces};
//!
//! let found: Vec<_> = pieces("web-{{ shard }}{{x}}").collect();
//! assert_eq!(
//!     found,
//!     [Ok(Piece::Text("web-")), Ok(Piece::Placeholder("shard")), Ok(Piece::Placeholder("x"))]
//! );
//! let found: Vec<_> = pieces("a }} b {{ c").collect();
//! assert_eq!(found, [Ok(Piece::Text("a }} b ")), Err(Unclosed)]);
//! ```

/// A piece of a template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text, never empty. A `}}` without its `{{` is left in it, for the plugin to
    /// refuse or keep.
    Text(&'a str),
    /// What stands between `{{` and the next `}}`, spaces around it trimmed (possibly empty).
    Placeholder(&'a str),
}

/// A `{{` that no `}}` closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclosed;

/// The pieces of `text`, in order. An unclosed `{{` ends them with `Err(Unclosed)`, after the
/// pieces before it, so a plugin checking each piece in turn reports the first fault.
pub fn pieces(text: &str) -> impl Iterator<Item = Result<Piece<'_>, Unclosed>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let piece = match rest.find("{{") {
            None => Ok(Piece::Text(std::mem::take(&mut rest))),
            Some(0) => match rest[2..].find("}}") {
                None => {
                    rest = "";
                    Err(Unclosed)
                }
                Some(close) => {
                    let inside = &rest[2..2 + close];
                    rest = &rest[2 + close + 2..];
                    Ok(Piece::Placeholder(inside.trim()))
                }
            },
            Some(open) => {
                let text = &rest[..open];
                rest = &rest[open..];
                Ok(Piece::Text(text))
            }
        };
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<Result<Piece<'_>, Unclosed>> {
        pieces(text).collect()
    }

    #[test]
    fn splits_text_and_placeholders() {
        use Piece::{Placeholder as P, Text as T};
        assert_eq!(all(""), []);
        assert_eq!(all("plain"), [Ok(T("plain"))]);
        assert_eq!(
            all("{{a}}-{{ b.c }} x"),
            [Ok(P("a")), Ok(T("-")), Ok(P("b.c")), Ok(T(" x"))]
        );
        assert_eq!(all("{{ }}{{}}"), [Ok(P("")), Ok(P(""))]);
        // The first `}}` closes, whatever precedes it.
        assert_eq!(all("{{ {{ a }} }}"), [Ok(P("{{ a")), Ok(T(" }}"))]);
        assert_eq!(all("{{{}}"), [Ok(P("{"))]);
    }

    #[test]
    fn an_unclosed_placeholder_ends_the_pieces() {
        assert_eq!(
            all("x {{ a }} {{ b"),
            [
                Ok(Piece::Text("x ")),
                Ok(Piece::Placeholder("a")),
                Ok(Piece::Text(" ")),
                Err(Unclosed)
            ]
        );
        assert_eq!(all("{{}"), [Err(Unclosed)]);
    }
}
