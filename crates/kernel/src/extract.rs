//! Request extractors whose rejections speak the contract: bad JSON → 400 `parse_error`, wrong
//! types → 400 field map, wrong content type → 415, too large → 413.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldErrors};

/// Maximum JSON body size, inserted as a request extension by the platform layer.
#[derive(Clone, Copy, Debug)]
pub struct JsonLimit(pub usize);

pub const DEFAULT_JSON_LIMIT: usize = 2 * 1024 * 1024;

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses JSON bytes into `T`, mapping serde's errors to the contract's shapes.
/// An empty body is `{}` (DRF reads it as empty data); text after the JSON value is a parse
/// error; a body that is not an object is refused (every body of the API is one); a string
/// holding NUL is a 400 naming its field (`text`), checked before any type.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}".as_slice(),
        Some(b'{') => bytes,
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(ApiError::not_a_dictionary())
        }
        Some(_) => bytes,
    };
    if crate::text::json_may_hold_null(bytes) {
        if let Some(field) = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .as_ref()
            .and_then(crate::text::find_null)
        {
            return Err(crate::text::null_error(field));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = deserialize_from(de)?;
    de.end().map_err(ApiError::parse_error)?;
    Ok(value)
}

fn deserialize_from<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                if let Some(field) = missing_field(&message) {
                    let field = if path == "." {
                        field
                    } else {
                        format!("{path}.{field}")
                    };
                    ApiError::validation(FieldErrors::single(field, "This field is required."))
                } else {
                    let field = if path == "." {
                        "non_field_errors".to_owned()
                    } else {
                        path
                    };
                    ApiError::validation(FieldErrors::single(field, data_message(&message)))
                }
            }
            _ => ApiError::parse_error(inner),
        }
    })
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde's message without its " at line 1 column 9" suffix.
fn data_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A path `{id}` segment: an integer, else the record cannot exist (404, never a 400 that would
/// tell a malformed id from a missing one).
pub fn path_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// JSON body extractor with contract-shaped rejections.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // An empty body without a content type is an empty object (DRF does the same).
            let limit = req
                .extensions()
                .get::<JsonLimit>()
                .map_or(DEFAULT_JSON_LIMIT, |l| l.0);
            let bytes = read_body(req, limit).await?;
            if ct.is_empty() && bytes.iter().all(u8::is_ascii_whitespace) {
                return parse_json(b"{}").map(Json);
            }
            return Err(ApiError::unsupported_media_type(&ct));
        }
        let limit = req
            .extensions()
            .get::<JsonLimit>()
            .map_or(DEFAULT_JSON_LIMIT, |l| l.0);
        let bytes = read_body(req, limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Query-string extractor: a type mismatch is a 400 field map.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                if let Some(param) = unknown_field(&message) {
                    return ApiError::validation(FieldErrors::single(param, "Unknown filter."));
                }
                let field = if path == "." {
                    missing_field(&message).unwrap_or_else(|| "non_field_errors".into())
                } else {
                    path
                };
                ApiError::validation(FieldErrors::single(field, message))
            })
    }
}

/// The query string as a map (a repeated key keeps its last value). Never rejects: handlers
/// validate the values they read.
#[derive(Clone, Debug, Default)]
pub struct Params(pub std::collections::BTreeMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Params(
            form_urlencoded_parse(parts.uri.query().unwrap_or(""))
                .into_owned()
                .collect(),
        ))
    }
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Login {
        #[allow(dead_code)]
        username: String,
        #[allow(dead_code)]
        age: Option<u8>,
    }

    #[test]
    fn syntax_errors_are_parse_errors() {
        let err = parse_json::<Login>(b"{bad json")
            .err()
            .map(|e| e.code().to_owned());
        assert_eq!(err.as_deref(), Some("parse_error"));
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = parse_json::<Login>(br#"{"username":"a","age":"x"}"#).err();
        let fields = err.as_ref().and_then(|e| e.field_errors()).cloned();
        assert!(fields.is_some_and(|f| format!("{f:?}").contains("age")));
        let err = parse_json::<Login>(br#"{}"#).err();
        assert_eq!(
            err.map(|e| e.body()),
            Some(serde_json::json!({"username": ["This field is required."]}))
        );
    }
}

/// A file part of a multipart form, held in memory (the router's body limit bounds it).
#[derive(Debug, Clone)]
pub struct FilePart {
    pub field: String,
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// A JSON body, or a multipart form whose text fields become a JSON object (a repeated name
/// becomes a list) and whose files are kept apart — the DRF parsers a create endpoint accepts.
pub struct JsonOrForm {
    pub body: serde_json::Value,
    pub files: Vec<FilePart>,
}

impl JsonOrForm {
    /// The one file sent as `field`, or `None`; two are refused.
    pub fn file(&mut self, field: &str) -> Result<Option<FilePart>, ApiError> {
        let mut found = self.files.iter().filter(|f| f.field == field);
        if found.next().is_some() && found.next().is_some() {
            return Err(ApiError::field(field, "Send one file per request."));
        }
        Ok(self
            .files
            .iter()
            .position(|f| f.field == field)
            .map(|i| self.files.remove(i)))
    }
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

impl<S> FromRequest<S> for JsonOrForm
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::multipart::{Multipart, MultipartRejection};
        use serde_json::{Map, Value};
        if !is_multipart(req.headers()) {
            let Json(body) = Json::<Value>::from_request(req, state).await?;
            return Ok(Self {
                body,
                files: Vec::new(),
            });
        }
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| match e {
                MultipartRejection::InvalidBoundary(_) => {
                    ApiError::unsupported_media_type("multipart/form-data without a boundary")
                }
                other => ApiError::bad_request("parse_error", other.body_text()),
            })?;
        let bad = |e: axum::extract::multipart::MultipartError| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(e.status(), "file_too_large", e.body_text())
            } else {
                ApiError::bad_request(
                    "parse_error",
                    format!("Malformed multipart body: {}", e.body_text()),
                )
            }
        };
        let mut body = Map::new();
        let mut files = Vec::new();
        while let Some(field) = form.next_field().await.map_err(bad)? {
            let name = field.name().unwrap_or("").to_owned();
            if let Some(file_name) = field.file_name().map(str::to_owned) {
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(bad)?;
                files.push(FilePart {
                    field: name,
                    file_name,
                    content_type,
                    bytes,
                });
                continue;
            }
            let text = field.text().await.map_err(bad)?;
            if text.len() > 64 * 1024 {
                return Err(ApiError::field(name, "A form field is too long."));
            }
            if text.contains('\0') || name.contains('\0') {
                return Err(crate::text::null_error(name.replace('\0', "")));
            }
            match body.get_mut(&name) {
                Some(Value::Array(items)) => items.push(Value::String(text)),
                Some(first) => {
                    let first = first.take();
                    body.insert(name, Value::Array(vec![first, Value::String(text)]));
                }
                None => {
                    body.insert(name, Value::String(text));
                }
            }
        }
        Ok(Self {
            body: Value::Object(body),
            files,
        })
    }
}
