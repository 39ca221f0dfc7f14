//! Rule parameters: the JSON the host passes to `configure`, into the plugin's `Params`.

use serde::de::DeserializeOwned;

/// Parses `params`, with errors worded for the rule's author: `params: missing field
/// `above``. serde_json's position suffix is dropped: it points into JSON the host made
/// from the rule file, which the author never saw.
pub(crate) fn parse<P: DeserializeOwned>(params: &str) -> Result<P, String> {
    serde_json::from_str(params).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(end) if e.line() > 0 => &message[..end],
            _ => &message,
        };
        format!("params: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        above: f64,
    }

    #[test]
    fn errors_name_the_field_without_json_positions() {
        let err = parse::<Params>("{}").unwrap_err();
        assert_eq!(err, "params: missing field `above`");
        let err = parse::<Params>(r#"{"above": 1, "blow": 2}"#).unwrap_err();
        assert_eq!(err, "params: unknown field `blow`, expected `above`");
        let err = parse::<Params>(r#"{"above": "high"}"#).unwrap_err();
        assert_eq!(err, r#"params: invalid type: string "high", expected f64"#);
        assert!(parse::<Params>(r#"{"above": 1}"#).is_ok());
    }
}
