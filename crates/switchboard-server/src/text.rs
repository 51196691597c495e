//! The one rule for text that crosses the edge: no U+0000 (NUL). PostgreSQL cannot store it in
//! a text column (SQLite can), so a NUL that reached the store failed on one dialect only: a
//! 500 for a login, a consumer locked out of `hello` by a JWT claim, a group commit failed
//! for a whole batch. Every text input — WebSocket frames, REST bodies, paths and queries, JWT
//! claims — is checked here, once, at the edge, and refused with `bad_request` (or
//! `token_invalid` for a token) naming the field, whatever the store.

use serde_json::Value;
use switchboard_protocol::ErrorCode;

use crate::error::ApiError;

const WHY: &str = "contains the NUL character (U+0000), which is not allowed in text";

/// Refuses a text holding NUL, naming its field.
pub fn nul_free(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(format!("{field} {WHY}")));
    }
    Ok(())
}

/// The same rule for a claim of a consumer token.
pub fn nul_free_claim(claim: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::new(ErrorCode::TokenInvalid, format!("the token's `{claim}` claim {WHY}")));
    }
    Ok(())
}

/// Whether a raw JSON text holds a string with NUL: JSON cannot carry the character itself,
/// only its escape `\u0000` — which counts unless its backslash is itself escaped (`\\u0000`
/// is a backslash and the text "u0000"). Linear, and allocation-free, for the hot path.
pub fn json_has_nul(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(found) = raw[from..].find("u0000") {
        let at = from + found;
        let backslashes = bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Refuses a JSON body with NUL in any string, or in any field name, naming where.
pub fn json_nul_free(value: &Value) -> Result<(), ApiError> {
    match first_nul(value, &mut String::new()) {
        Some(path) if path.is_empty() => Err(ApiError::bad_request(format!("the body {WHY}"))),
        Some(path) => Err(ApiError::bad_request(format!("`{path}` {WHY}"))),
        None => Ok(()),
    }
}

fn first_nul(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let len = path.len();
            path.push_str(&format!("[{index}]"));
            let found = first_nul(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(fields) => fields.iter().find_map(|(name, field)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            let found = if name.contains('\0') { Some(path.clone()) } else { first_nul(field, path) };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_escape_is_found_unless_its_backslash_is_escaped() {
        assert!(json_has_nul(r#"{"t":"send","text":"a\u0000b"}"#));
        assert!(json_has_nul(r#"{"text":"\\\u0000"}"#), "an escaped backslash, then NUL");
        assert!(!json_has_nul(r#"{"text":"\\u0000"}"#), "a backslash and the text u0000");
        assert!(!json_has_nul(r#"{"text":"u0000 \u00001"}"#.replace("\\u00001", "\\u0001").as_str()));
        assert!(!json_has_nul(r#"{"t":"ping"}"#));
        // What the scan says is what a decoder finds.
        for raw in [r#""a\u0000""#, r#""\\u0000""#, r#""\\\\\u0000""#, r#""\\\\u0000""#] {
            let decoded: String = serde_json::from_str(raw).unwrap();
            assert_eq!(json_has_nul(raw), decoded.contains('\0'), "{raw}");
        }
    }

    #[test]
    fn bodies_name_where_the_nul_is() {
        assert!(json_nul_free(&json!({"name": "ok", "list": ["a", 1, null]})).is_ok());
        let error = json_nul_free(&json!({"hours": {"weekly": [{"day": "mon\u{0}"}]}})).unwrap_err();
        assert_eq!(
            error.message,
            "`hours.weekly[0].day` contains the NUL character (U+0000), which is not allowed in text"
        );
        assert!(nul_free("email", "a\0@b").unwrap_err().message.starts_with("email contains the NUL"));
        assert_eq!(nul_free_claim("name", "x\0").unwrap_err().code, ErrorCode::TokenInvalid);
    }
}
