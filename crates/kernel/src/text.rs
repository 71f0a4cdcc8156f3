//! Text PostgreSQL cannot store. A `text` column refuses the NUL character (`\u0000`), so every
//! way a string reaches a service (JSON bodies, form fields, query parameters, GraphQL
//! arguments and variables) is checked here once, and refused with a 400 naming the field,
//! before anything is written. Header values cannot carry NUL at all (HTTP refuses them).

use serde_json::Value;

use crate::error::{ApiError, FieldErrors};

/// DRF's wording for the same refusal.
pub const NULL_MESSAGE: &str = "Null characters are not allowed.";

/// The 400 naming `field`.
pub fn null_error(field: impl Into<String>) -> ApiError {
    ApiError::validation(FieldErrors::single(field.into(), NULL_MESSAGE))
}

/// Whether JSON text may hold a NUL in a string: the only way to write one is the `\u0000`
/// escape (a raw NUL byte is not JSON). A cheap scan, so clean bodies are parsed once.
pub fn json_may_hold_null(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\\u0000").is_some()
}

/// The dotted path of the first string or key in `value` holding a NUL (iteratively: the
/// depth of `value` costs no stack). The root itself is `non_field_errors`.
pub fn find_null(value: &Value) -> Option<String> {
    let mut stack: Vec<(&Value, String)> = vec![(value, String::new())];
    while let Some((value, path)) = stack.pop() {
        let join = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            Value::String(s) if s.contains('\0') => {
                return Some(if path.is_empty() {
                    "non_field_errors".to_owned()
                } else {
                    path
                })
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((item, join(&i.to_string())));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains('\0') {
                        return Some(join(&key.replace('\0', "")));
                    }
                    stack.push((item, join(key)));
                }
            }
            _ => {}
        }
    }
    None
}

/// A query string's first parameter (name or value) holding a NUL once decoded.
pub fn query_null(query: &str) -> Option<String> {
    if !query.contains("%00") && !query.contains('\0') {
        return None;
    }
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.replace('\0', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_field_holding_a_null() {
        assert_eq!(find_null(&json!({"name": "ok", "tags": ["a", "b"]})), None);
        assert_eq!(
            find_null(&json!({"name": "ok", "items": [{"sku": "a"}, {"sku": "a\u{0}b"}]})),
            Some("items.1.sku".to_owned())
        );
        assert_eq!(find_null(&json!({"a\u{0}": 1})), Some("a".to_owned()));
        assert_eq!(
            find_null(&json!("x\u{0}")),
            Some("non_field_errors".to_owned())
        );
        assert!(json_may_hold_null(br#"{"a":"x\u0000"}"#));
        assert!(!json_may_hold_null(br#"{"a":"x"}"#));
    }

    #[test]
    fn finds_the_query_parameter_holding_a_null() {
        assert_eq!(query_null("search=a%00b&page=1"), Some("search".to_owned()));
        assert_eq!(query_null("page=1&x%00y=2"), Some("xy".to_owned()));
        assert_eq!(query_null("search=a%2500b"), None);
        assert_eq!(query_null("search=abc"), None);
    }
}
