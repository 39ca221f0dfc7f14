//! What a plugin says about a failure (its error text, a receiver's answer it quotes) before
//! the host stores or logs it: the secrets the plugin's grants give it (its signing secret,
//! its connections' tokens, named secrets and passwords) replaced by `<redacted>`, then cut
//! to [`MAX_ERROR`] bytes.

use crate::connections::secrets::Substitution;

/// The most of a plugin's error text that is kept, in bytes.
const MAX_ERROR: usize = 512;

/// `text` scrubbed of `secrets` and cut to [`MAX_ERROR`] bytes, on a character boundary,
/// with a marker saying how long it was.
pub fn redact(text: &str, secrets: &Substitution) -> String {
    let text = secrets.scrub_str(text);
    if text.len() <= MAX_ERROR {
        return text;
    }
    let mut end = MAX_ERROR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated from {} bytes]", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_and_long_text_is_cut_on_a_char_boundary() {
        let secrets = Substitution::of([b"tok3n".to_vec()]);
        assert_eq!(
            redact("answered 500: Bearer tok3n", &secrets),
            "answered 500: Bearer <redacted>"
        );
        let long = format!("a{}", "é".repeat(600));
        let cut = redact(&long, &secrets);
        assert!(cut.ends_with("… [truncated from 1201 bytes]"), "{cut}");
        assert_eq!(cut.len(), 511 + "… [truncated from 1201 bytes]".len());
    }
}
