//! Mounting an async-graphql schema at a service's `/graphql` (conventions.md §7): POST JSON or
//! `application/graphql`, GET `?query=` for queries only, GraphiQL for browsers, document errors
//! as HTTP 400 without `data`, and the caller's identity and language in the context.

use async_graphql::{ErrorExtensions, ObjectType, Schema, SubscriptionType};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::AuthState;

/// Largest accepted GraphQL body.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Deserialize)]
struct GraphqlBody {
    query: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
}

/// The language of a GraphQL request, for resolvers.
#[derive(Clone, Copy, Debug)]
pub struct RequestLanguage(pub &'static str);

fn document_error(status: StatusCode, message: &str, code: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code, "status": status.as_u16()}}]});
    (status, Json(body)).into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// HTTP status for a response: 400 for document errors (no data), 401 when the request carried
/// an invalid bearer, 429 when throttled, else 200 (an anonymous caller's UNAUTHENTICATED
/// errors travel in the body, conventions §8).
fn http_status(response: &async_graphql::Response, invalid_bearer: bool) -> StatusCode {
    if response.errors.is_empty() {
        return StatusCode::OK;
    }
    // Document errors (parse, validation) carry neither a path nor a platform code; resolver
    // errors carry one or the other (a dynamic root field's error may lack its path).
    let execution = response.errors.iter().any(|e| {
        !e.path.is_empty()
            || e.extensions
                .as_ref()
                .is_some_and(|ext| ext.get("code").is_some())
    });
    if response.data == async_graphql::Value::Null && !execution {
        return StatusCode::BAD_REQUEST;
    }
    for error in &response.errors {
        if let Some(ext) = &error.extensions {
            if let Some(async_graphql::Value::Number(n)) = ext.get("status") {
                match n.as_u64() {
                    Some(401) if invalid_bearer => return StatusCode::UNAUTHORIZED,
                    Some(429) => return StatusCode::TOO_MANY_REQUESTS,
                    _ => {}
                }
            }
        }
    }
    StatusCode::OK
}

/// What runs a GraphQL request: a derived schema, or a dynamic one built from resources.
#[async_trait::async_trait]
pub trait Executor: Clone + Send + Sync + 'static {
    async fn run(&self, request: async_graphql::Request) -> async_graphql::Response;

    /// Where anonymous reads of this schema are cached, like public REST reads (the service
    /// and its name, whose writes invalidate them); `None`: not cached.
    fn public_cache(&self) -> Option<(&crate::service::ServiceContext, &'static str)> {
        None
    }
}

#[async_trait::async_trait]
impl<Q, M, S> Executor for Schema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    async fn run(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.execute(request).await
    }
}

/// `/graphql` routes serving `schema`; `public_path` is where GraphiQL should post.
pub fn routes<E: Executor>(schema: E, public_path: &'static str) -> Router {
    Router::new()
        .route("/graphql", get(handle::<E>).post(handle::<E>))
        .with_state((schema, public_path))
}

async fn handle<E: Executor>(
    State((schema, public_path)): State<(E, &'static str)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return document_error(
                StatusCode::BAD_REQUEST,
                "The request body is too large.",
                "QUERY_TOO_COMPLEX",
            )
        }
    };
    let input = match parse_input(&parts.method, &parts.headers, parts.uri.query(), &body) {
        Ok(Some(input)) => input,
        Ok(None) => {
            return Html(
                async_graphql::http::GraphiQLSource::build()
                    .endpoint(public_path)
                    .finish(),
            )
            .into_response()
        }
        Err((status, message, code)) => return document_error(status, &message, code),
    };
    let Some(query) = input.query.filter(|q| !q.trim().is_empty()) else {
        return document_error(
            StatusCode::BAD_REQUEST,
            "Must provide query string.",
            "BAD_REQUEST",
        );
    };
    let screened = match crate::graphql_guard::screen(
        &query,
        input.operation_name.as_deref(),
        input.variables.as_ref(),
    ) {
        Ok(screened) => screened,
        Err(refusal) => return (StatusCode::BAD_REQUEST, Json(refusal.body())).into_response(),
    };
    if parts.method == Method::GET && screened.is_mutation {
        return document_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Mutations must be sent with POST.",
            "METHOD_NOT_ALLOWED",
        );
    }
    let mut request = async_graphql::Request::new(query);
    request.set_parsed_query(screened.document);
    if let Some(name) = input.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = input.variables.filter(|v| !v.is_null()) {
        request = request.variables(async_graphql::Variables::from_json(vars));
    }
    let lang = crate::lang::resolve(&parts);
    let cache = match screened.is_mutation {
        true => None,
        false => public_cache_key(&schema, &parts, &request, lang).await,
    };
    if let Some((svc, key)) = &cache {
        if let Some(hit) = crate::resource::public_cache::get(svc, key).await {
            return hit.into_response();
        }
    }
    request = request
        .data(RequestLanguage(lang))
        .data(parts.headers.clone());
    if let Some(state) = parts.extensions.get::<AuthState>() {
        request = request.data(state.clone());
    }
    if let Some(platform) = parts.extensions.get::<crate::platform::Platform>() {
        request = request.data(platform.clone());
    }
    let response = schema.run(request).await;
    let invalid_bearer = matches!(
        parts.extensions.get::<AuthState>(),
        Some(AuthState::Invalid)
    );
    let status = http_status(&response, invalid_bearer);
    let mut body = serde_json::to_value(&response).unwrap_or(Value::Null);
    if let (Some((svc, key)), true) = (&cache, response.errors.is_empty()) {
        crate::resource::public_cache::put(svc, key, &body.to_string()).await;
    }
    if status == StatusCode::BAD_REQUEST {
        if let Some(map) = body.as_object_mut() {
            map.remove("data");
        }
    }
    (status, Json(body)).into_response()
}

/// The cache key of an anonymous query naming its project in `X-Project-ID`, when the schema
/// is cached: the document, operation, variables and language, under the project's version.
async fn public_cache_key<'a, E: Executor>(
    schema: &'a E,
    parts: &axum::http::request::Parts,
    request: &async_graphql::Request,
    lang: &str,
) -> Option<(&'a crate::service::ServiceContext, String)> {
    use sha2::{Digest, Sha256};
    let (svc, service) = schema.public_cache()?;
    let anonymous = matches!(
        parts.extensions.get::<AuthState>(),
        None | Some(AuthState::Anonymous)
    );
    if !anonymous {
        return None;
    }
    let project = crate::auth::project_header(&parts.headers)?.ok()?;
    let mut hash = Sha256::new();
    hash.update(request.query.as_bytes());
    hash.update([0]);
    hash.update(request.operation_name.as_deref().unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_string(&request.variables).unwrap_or_default());
    let digest = hex::encode(hash.finalize());
    let key =
        crate::resource::public_cache::key(svc, service, project, &format!("gql:{lang}:{digest}"))
            .await?;
    Some((svc, key))
}

/// A rejected request: status, message, code.
type Rejection = (StatusCode, String, &'static str);
type Parsed = Result<Option<GraphqlBody>, Rejection>;

/// `Ok(None)` = a browser asking for GraphiQL.
fn parse_input(method: &Method, headers: &HeaderMap, query: Option<&str>, body: &Bytes) -> Parsed {
    if *method == Method::GET {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let Some(q) = get("query") else {
            return if wants_html(headers) {
                Ok(None)
            } else {
                Err((
                    StatusCode::BAD_REQUEST,
                    "Must provide query string.".to_owned(),
                    "BAD_REQUEST",
                ))
            };
        };
        let variables = match get("variables") {
            Some(v) => Some(serde_json::from_str(&v).map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "Variables are invalid JSON.".to_owned(),
                    "BAD_REQUEST",
                )
            })?),
            None => None,
        };
        return Ok(Some(GraphqlBody {
            query: Some(q),
            variables,
            operation_name: get("operationName"),
        }));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/graphql") {
        return Ok(Some(GraphqlBody {
            query: Some(String::from_utf8_lossy(body).into_owned()),
            variables: None,
            operation_name: None,
        }));
    }
    serde_json::from_slice::<GraphqlBody>(body)
        .map(Some)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("JSON parse error - {e}"),
                "BAD_REQUEST",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object};
    use tower::ServiceExt;

    struct Query;

    #[Object]
    impl Query {
        async fn hello(&self, ctx: &async_graphql::Context<'_>) -> String {
            let lang = ctx.data_opt::<RequestLanguage>().map_or("?", |l| l.0);
            format!("hello in {lang}")
        }
    }

    fn app() -> Router {
        routes(
            Schema::build(Query, EmptyMutation, EmptySubscription)
                .limit_depth(15)
                .finish(),
            "/graphql/test",
        )
    }

    async fn call(req: axum::http::Request<axum::body::Body>) -> (StatusCode, Value) {
        let response = app().oneshot(req).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn post(body: &str) -> axum::http::Request<axum::body::Body> {
        axum::http::Request::post("/graphql")
            .header("content-type", "application/json")
            .header("accept-language", "ar")
            .body(axum::body::Body::from(body.to_owned()))
            .expect("request")
    }

    #[tokio::test]
    async fn typename_and_language() {
        let (status, body) = call(post(r#"{"query":"{ __typename hello }"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["data"],
            json!({"__typename": "Query", "hello": "hello in ar"})
        );
    }

    #[tokio::test]
    async fn document_errors_are_400_without_data() {
        let (status, body) = call(post(r#"{"query":"{ xyz }"}"#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.get("data").is_none());
        assert!(body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown field \"xyz\"") || m.contains("xyz")));
        let (status, _) = call(post("{bad")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn get_serves_queries_graphiql_and_refuses_mutations() {
        let get = |uri: &str, accept: &str| {
            axum::http::Request::get(uri)
                .header("accept", accept)
                .body(axum::body::Body::empty())
                .expect("req")
        };
        let (status, body) = call(get("/graphql?query=%7B__typename%7D", "application/json")).await;
        assert_eq!(
            (status, body["data"]["__typename"].clone()),
            (StatusCode::OK, json!("Query"))
        );
        let (status, _) = call(get("/graphql?query=mutation%7Bx%7D", "application/json")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let response = app()
            .oneshot(get("/graphql", "text/html"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let html = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert!(String::from_utf8_lossy(&html).contains("/graphql/test"));
    }
}

/// The platform error as a GraphQL error (conventions.md §8): `extensions.code`, `status`,
/// `type`, and for validation the REST field map under `fields` plus the first `field`.
pub fn to_graphql_error(err: &crate::error::ApiError) -> async_graphql::Error {
    let status = err.status().as_u16();
    let (code, kind) = match (status, err.code()) {
        (400, "project_required") => ("PROJECT_REQUIRED", "Exception"),
        (400, _) => ("VALIDATION_ERROR", "ValidationError"),
        (401, _) => ("UNAUTHENTICATED", "Exception"),
        (403, _) => ("FORBIDDEN", "Exception"),
        (404, _) => ("NOT_FOUND", "NotFound"),
        (409, _) => ("CONFLICT", "Exception"),
        (422, _) => ("BUSINESS_RULE", "Exception"),
        (429, _) => ("RATE_LIMITED", "Exception"),
        (502..=504, _) => ("SERVICE_ERROR", "Exception"),
        _ => ("INTERNAL_SERVER_ERROR", "Exception"),
    };
    let (message, fields) = match err.field_errors() {
        Some(_) => {
            let body = err.body();
            let first = body
                .as_object()
                .and_then(|m| m.iter().next())
                .map(|(k, v)| {
                    let msg = v.get(0).and_then(Value::as_str).unwrap_or("Invalid value.");
                    (k.clone(), format!("{k}: {msg}"))
                });
            (
                first
                    .as_ref()
                    .map_or_else(|| "Invalid input.".to_owned(), |f| f.1.clone()),
                Some((body, first.map(|f| f.0))),
            )
        }
        None => (err.detail().to_owned(), None),
    };
    let reason = err.code().to_owned();
    async_graphql::Error::new(message).extend_with(move |_, ext| {
        ext.set("code", code);
        ext.set("status", status);
        ext.set("type", kind);
        if code == "CONFLICT" || code == "BUSINESS_RULE" {
            ext.set("reason", reason.clone());
        }
        if let Some((body, first)) = &fields {
            if let Ok(value) = async_graphql::Value::from_json(body.clone()) {
                ext.set("fields", value);
            }
            if let Some(first) = first {
                ext.set("field", first.clone());
            }
        }
    })
}

/// Where a GraphQL list starts and how many rows it takes (§7.1 arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub offset: i64,
    pub limit: i64,
}

/// The list arguments of §7.1 that choose a window.
#[derive(Clone, Debug, Default)]
pub struct WindowArgs {
    pub pagination_offset: Option<i64>,
    pub pagination_limit: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub first: Option<i64>,
    pub after: Option<String>,
    pub last: Option<i64>,
    pub before: Option<String>,
}

/// Opaque cursor: base64 JSON `{"offset":N}`; the documented `{"id":"123"}` form decodes too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    Offset(i64),
    Id(i64),
}

pub fn encode_cursor(offset: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(json!({"offset": offset}).to_string())
}

pub fn decode_cursor(cursor: &str) -> Option<Cursor> {
    use base64::Engine;
    let trimmed = cursor.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let int = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    if let Some(offset) = value.get("offset").and_then(int) {
        return (offset >= 0).then_some(Cursor::Offset(offset));
    }
    value.get("id").and_then(int).map(Cursor::Id)
}

/// Resolves the window. `position_of` turns a `{"id"}` cursor into the row's offset in the
/// current order (the resource knows how). Defaults: `default_limit`, clamped to 100.
pub fn window(
    args: &WindowArgs,
    default_limit: i64,
    position_of: impl Fn(i64) -> Option<i64>,
) -> Result<Window, crate::error::ApiError> {
    use crate::error::ApiError;
    let invalid = |msg: &str| ApiError::field("pagination", msg);
    let offset_style = args.pagination_offset.is_some()
        || args.pagination_limit.is_some()
        || args.limit.is_some()
        || args.offset.is_some();
    let cursor_style = args.first.is_some()
        || args.after.is_some()
        || args.last.is_some()
        || args.before.is_some();
    if offset_style && cursor_style {
        return Err(invalid(
            "Use either offset/limit or first/after/last/before, not both.",
        ));
    }
    let numbers = [
        args.pagination_offset,
        args.pagination_limit,
        args.limit,
        args.offset,
        args.first,
        args.last,
    ];
    if numbers.iter().flatten().any(|n| *n < 0) {
        return Err(invalid("Pagination values must not be negative."));
    }
    let clamp = |n: i64| n.min(100);
    if !cursor_style {
        let limit = clamp(
            args.pagination_limit
                .or(args.limit)
                .unwrap_or(default_limit),
        );
        let offset = args.pagination_offset.or(args.offset).unwrap_or(0);
        return Ok(Window { offset, limit });
    }
    let resolve = |cursor: &str| -> Result<i64, ApiError> {
        match decode_cursor(cursor) {
            Some(Cursor::Offset(o)) => Ok(o),
            Some(Cursor::Id(id)) => {
                position_of(id).ok_or_else(|| invalid("The cursor names no row of this list."))
            }
            None => Err(invalid("The cursor is not valid.")),
        }
    };
    let start = match &args.after {
        Some(c) => resolve(c)? + 1,
        None => 0,
    };
    let end = match &args.before {
        Some(c) => Some(resolve(c)?),
        None => None,
    };
    let (offset, limit) = match (args.first, args.last, end) {
        (Some(first), _, end) => (
            start,
            clamp(end.map_or(first, |e| first.min((e - start).max(0)))),
        ),
        (None, Some(last), Some(end)) => {
            let from = (end - last).max(start);
            (from, clamp(end - from))
        }
        (None, Some(last), None) => {
            return Err(invalid(&format!("`last: {last}` needs `before`.")))
        }
        (None, None, Some(end)) => (start, clamp((end - start).max(0))),
        (None, None, None) => (start, clamp(default_limit)),
    };
    Ok(Window { offset, limit })
}

/// `pageInfo` of a window over `total` rows.
pub fn page_info(window: Window, returned: i64, total: i64) -> Value {
    json!({
        "hasNextPage": window.offset + returned < total,
        "hasPreviousPage": window.offset > 0,
        "startCursor": (returned > 0).then(|| encode_cursor(window.offset)),
        "endCursor": (returned > 0).then(|| encode_cursor(window.offset + returned - 1)),
        "totalCount": total,
    })
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_accept_the_documented_id_form() {
        assert_eq!(decode_cursor(&encode_cursor(41)), Some(Cursor::Offset(41)));
        assert_eq!(decode_cursor("eyJpZCI6IjEyMyJ9"), Some(Cursor::Id(123)));
        assert_eq!(decode_cursor("eyJpZCI6IjEyMyJ9=="), Some(Cursor::Id(123)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }

    #[test]
    fn windows_follow_the_list_conventions() {
        let none = |_| None;
        let w = |args: WindowArgs| window(&args, 20, none);
        assert_eq!(
            w(WindowArgs::default()).ok(),
            Some(Window {
                offset: 0,
                limit: 20
            })
        );
        assert_eq!(
            w(WindowArgs {
                pagination_offset: Some(40),
                pagination_limit: Some(1000),
                ..Default::default()
            })
            .ok(),
            Some(Window {
                offset: 40,
                limit: 100
            })
        );
        assert_eq!(
            w(WindowArgs {
                first: Some(2),
                after: Some(encode_cursor(1)),
                ..Default::default()
            })
            .ok(),
            Some(Window {
                offset: 2,
                limit: 2
            })
        );
        assert_eq!(
            w(WindowArgs {
                last: Some(3),
                before: Some(encode_cursor(10)),
                ..Default::default()
            })
            .ok(),
            Some(Window {
                offset: 7,
                limit: 3
            })
        );
        assert!(w(WindowArgs {
            limit: Some(5),
            first: Some(5),
            ..Default::default()
        })
        .is_err());
        assert!(w(WindowArgs {
            limit: Some(-1),
            ..Default::default()
        })
        .is_err());
        let by_id = window(
            &WindowArgs {
                first: Some(5),
                after: Some("eyJpZCI6IjEyMyJ9".into()),
                ..Default::default()
            },
            20,
            |id| (id == 123).then_some(9),
        );
        assert_eq!(
            by_id.ok(),
            Some(Window {
                offset: 10,
                limit: 5
            })
        );
        let info = page_info(
            Window {
                offset: 0,
                limit: 2,
            },
            2,
            5,
        );
        assert_eq!(
            (info["hasNextPage"].clone(), info["totalCount"].clone()),
            (json!(true), json!(5))
        );
    }

    #[test]
    fn platform_errors_become_graphql_errors() {
        let err = to_graphql_error(&crate::error::ApiError::field(
            "title",
            "This field is required.",
        ));
        let ext = err.extensions.expect("extensions");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("VALIDATION_ERROR"))
        );
        assert_eq!(ext.get("field"), Some(&async_graphql::Value::from("title")));
        assert_eq!(err.message, "title: This field is required.");
        let err = to_graphql_error(&crate::error::ApiError::rule(
            "insufficient_stock",
            "Not enough stock.",
        ));
        let ext = err.extensions.expect("extensions");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("BUSINESS_RULE"))
        );
        assert_eq!(
            ext.get("reason"),
            Some(&async_graphql::Value::from("insufficient_stock"))
        );
    }
}

/// The authenticated caller of a GraphQL request (401-shaped error otherwise).
pub fn principal(
    ctx: &async_graphql::Context<'_>,
) -> async_graphql::Result<crate::auth::Principal> {
    maybe_principal(ctx)?
        .ok_or_else(|| to_graphql_error(&crate::error::ApiError::not_authenticated()))
}

/// The caller if any: anonymous is `None`, an invalid bearer is still an error.
pub fn maybe_principal(
    ctx: &async_graphql::Context<'_>,
) -> async_graphql::Result<Option<crate::auth::Principal>> {
    match ctx.data_opt::<AuthState>() {
        Some(AuthState::Authenticated(claims)) => Ok(Some(crate::auth::Principal(claims.clone()))),
        Some(AuthState::Invalid) => {
            Err(to_graphql_error(&crate::error::ApiError::token_not_valid()))
        }
        _ => Ok(None),
    }
}

/// The caller's project scope (token or `X-Project-ID`), as REST builds it.
pub async fn project_scope(
    ctx: &async_graphql::Context<'_>,
) -> async_graphql::Result<crate::auth::ProjectScope> {
    use crate::error::ApiError;
    let principal = principal(ctx)?;
    let platform = ctx
        .data_opt::<crate::platform::Platform>()
        .ok_or_else(|| to_graphql_error(&ApiError::internal("platform missing")))?;
    let headers = ctx.data_opt::<HeaderMap>().cloned().unwrap_or_default();
    crate::auth::resolve_scope(platform, &principal, &headers)
        .await
        .map_err(|e| to_graphql_error(&e))
}

/// `pageInfo` as a GraphQL object (conventions.md §7: one type for both edge shapes).
#[derive(async_graphql::SimpleObject, Clone, Debug)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
    pub total_count: i64,
}

impl PageInfo {
    pub fn of(window: Window, returned: i64, total: i64) -> Self {
        Self {
            has_next_page: window.offset + returned < total,
            has_previous_page: window.offset > 0,
            start_cursor: (returned > 0).then(|| encode_cursor(window.offset)),
            end_cursor: (returned > 0).then(|| encode_cursor(window.offset + returned - 1)),
            total_count: total,
        }
    }
}

/// The `pagination { offset limit }` input of §7.1.
#[derive(async_graphql::InputObject, Clone, Debug, Default)]
pub struct PaginationInput {
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// Builds `{Thing}Edge` (`node`, `cursor` and every field of the node) and `{Thing}Connection`
/// (`edges`, `pageInfo`, `totalCount`) for a GraphQL object type.
#[macro_export]
macro_rules! graphql_connection {
    ($connection:ident, $edge:ident, $node:ty) => {
        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $edge {
            #[graphql(flatten)]
            pub fields: $node,
            pub node: $node,
            pub cursor: String,
        }

        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $connection {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::PageInfo,
            pub total_count: i64,
        }

        impl $connection {
            pub fn new(window: $crate::graphql::Window, nodes: Vec<$node>, total: i64) -> Self {
                let returned = nodes.len() as i64;
                let edges = nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, node)| $edge {
                        fields: node.clone(),
                        node,
                        cursor: $crate::graphql::encode_cursor(window.offset + i as i64),
                    })
                    .collect();
                Self {
                    edges,
                    page_info: $crate::graphql::PageInfo::of(window, returned, total),
                    total_count: total,
                }
            }
        }
    };
}
