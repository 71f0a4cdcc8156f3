//! The platform error: one type, rendered in the contract's shapes in exactly one place.
//!
//! Validation errors are DRF field maps (400); everything else is `{"detail", "code"}` plus
//! optional extra keys. Internal causes are logged with the request id, never returned.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::observe::current_request_id;

/// Field name → messages, rendered as `{"field": ["message"]}`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// The messages of one field.
    pub fn get(&self, field: &str) -> Option<&Vec<String>> {
        self.0.get(field)
    }

    pub fn required(&mut self, field: &str) {
        self.add(field, "This field is required.");
    }

    /// Field → messages, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when no error was recorded, else the 400 error.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self))
        }
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<Map<_, _>>(),
        )
    }
}

/// Boxed so that `Result<T, ApiError>` stays small on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: String,
    fields: Option<FieldErrors>,
    extra: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// A lost race the whole operation may be retried after (deadlock, serialization).
    transient: bool,
    /// A 400 whose body is not a flat field map (per-line errors of a list).
    nested: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            status,
            code: code.into(),
            detail: detail.into(),
            fields: None,
            extra: Map::new(),
            headers: Vec::new(),
            transient: false,
            nested: None,
        }))
    }

    /// 400 with one field map per item of the list `field` (DRF's nested shape) when any item
    /// has errors: `{"items": [{}, {"quantity": ["…"]}]}`.
    pub fn per_item(field: &str, items: &[FieldErrors]) -> Result<(), Self> {
        if items.iter().all(FieldErrors::is_empty) {
            return Ok(());
        }
        let shaped: Vec<Value> = items.iter().map(FieldErrors::to_value).collect();
        let mut body = Map::new();
        body.insert(field.to_owned(), Value::Array(shaped));
        Err(Self::nested(Value::Object(body)))
    }

    /// 400 with DRF's nested shape, e.g. `{"items": [{}, {"quantity": ["…"]}]}`.
    pub fn nested(body: Value) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "invalid", "Invalid input.");
        error.0.nested = Some(body);
        error
    }

    /// Marks a lost race that a retry of the whole operation may win.
    pub fn transient(mut self) -> Self {
        self.0.transient = true;
        self
    }

    pub fn is_transient(&self) -> bool {
        self.0.transient
    }

    /// 400 with a DRF field map.
    pub fn validation(fields: FieldErrors) -> Self {
        let mut err = Self::new(StatusCode::BAD_REQUEST, "invalid", "Invalid input.");
        err.0.fields = Some(fields);
        err
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(FieldErrors::single(field, message))
    }

    /// The same error with the messages of field `from` filed under `to` (an input that is
    /// called differently where the error is reported).
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        if let Some(fields) = self.0.fields.as_mut() {
            if let Some(messages) = fields.0.remove(from) {
                fields.0.entry(to.to_owned()).or_default().extend(messages);
            }
        }
        self
    }

    pub fn bad_request(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn parse_error(cause: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "parse_error",
            format!("JSON parse error - {cause}"),
        )
    }

    pub fn not_authenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
        )
    }

    /// The simplejwt body for an access token that fails verification.
    pub fn token_not_valid() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "token_not_valid",
            "Given token not valid for any token type",
        )
        .with(
            "messages",
            json!([{
                "token_class": "AccessToken",
                "token_type": "access",
                "message": "Token is invalid or expired"
            }]),
        )
    }

    pub fn unauthorized(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn permission_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "You do not have permission to perform this action.",
        )
    }

    pub fn forbidden(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// A signed-in caller naming a project they are not a member of (conventions §3).
    pub fn not_project_member() -> Self {
        Self::forbidden(
            "not_project_member",
            "You are not a member of this project.",
        )
    }

    /// A body that is not a JSON object (DRF's wording).
    pub fn not_a_dictionary() -> Self {
        Self::field("non_field_errors", "Invalid data. Expected a dictionary.")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed.",
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Unsupported media type \"{content_type}\" in request."),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body exceeds the limit of {limit} bytes."),
        )
    }

    pub fn conflict(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 422: a business rule said no (`insufficient_stock`, `invalid_transition`…).
    pub fn rule(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn throttled(retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("Request was throttled. Expected available in {secs} seconds."),
        )
        .with_header(header::RETRY_AFTER, &secs.to_string())
    }

    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            detail,
        )
        .with_header(header::RETRY_AFTER, "5")
    }

    pub fn bad_gateway() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "The upstream service failed.",
        )
    }

    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "The upstream service did not answer in time.",
        )
    }

    /// 500: the cause is logged here with the request id and never shown to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, request_id = %current_request_id().unwrap_or_default(), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "A server error occurred.",
        )
    }

    /// Adds a key to the body (`error`, `details`, `messages`…).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.0.headers.push((name, value));
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn code(&self) -> &str {
        &self.0.code
    }

    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    pub fn field_errors(&self) -> Option<&FieldErrors> {
        self.0.fields.as_ref()
    }

    pub fn body(&self) -> Value {
        let this = &self.0;
        if let Some(nested) = &this.nested {
            return nested.clone();
        }
        if let Some(fields) = &this.fields {
            return fields.to_value();
        }
        let mut body = Map::new();
        body.insert("detail".into(), Value::String(this.detail.clone()));
        body.insert("code".into(), Value::String(this.code.to_string()));
        for (k, v) in &this.extra {
            body.insert(k.clone(), v.clone());
        }
        if this.status.is_server_error() {
            if let Some(id) = current_request_id() {
                body.insert("request_id".into(), Value::String(id));
            }
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.status.as_u16(),
            self.0.code,
            self.0.detail
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let inner = *self.0;
        let mut response = (inner.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if inner.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            );
        }
        for (name, value) in inner.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        crate::db::map_db_error(err, &[])
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<ApiError>() {
            Ok(api) => api,
            Err(other) => ApiError::internal(format!("{other:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_renders_a_field_map() {
        let mut errors = FieldErrors::new();
        errors.required("username");
        errors.add("password", "Too short.");
        let err = ApiError::validation(errors);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.body(),
            json!({"username": ["This field is required."], "password": ["Too short."]})
        );
    }

    #[test]
    fn throttled_sets_retry_after_at_least_one() {
        let response = ApiError::throttled(0).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let response = ApiError::not_authenticated().into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"api\""
        );
    }

    #[test]
    fn internal_hides_the_cause() {
        let err = ApiError::internal("password=hunter2 in connection string");
        assert!(!err.body().to_string().contains("hunter2"));
        assert_eq!(err.code(), "server_error");
    }
}
