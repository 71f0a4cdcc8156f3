//! Mounting an async-graphql schema at a service's `/graphql` (conventions.md §7): POST JSON or
//! `application/graphql`, GET `?query=` for queries only, GraphiQL for browsers, document errors
//! as HTTP 400 without `data`, and the caller's identity and language in the context.

use async_graphql::{ObjectType, Schema, SubscriptionType};
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

fn is_mutation(query: &str, operation: Option<&str>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let of = |t: OperationType| t == OperationType::Mutation || t == OperationType::Subscription;
    match doc.operations {
        DocumentOperations::Single(op) => of(op.node.ty),
        DocumentOperations::Multiple(ops) => match operation {
            Some(name) => ops.get(name).is_some_and(|op| of(op.node.ty)),
            None => ops.values().any(|op| of(op.node.ty)),
        },
    }
}

/// HTTP status for a response: 400 for document errors (no data), else the status of the
/// first error that carries a 401 or 429, else 200.
fn http_status(response: &async_graphql::Response) -> StatusCode {
    if response.errors.is_empty() {
        return StatusCode::OK;
    }
    if response.data == async_graphql::Value::Null {
        return StatusCode::BAD_REQUEST;
    }
    for error in &response.errors {
        if let Some(ext) = &error.extensions {
            if let Some(async_graphql::Value::Number(n)) = ext.get("status") {
                match n.as_u64() {
                    Some(401) => return StatusCode::UNAUTHORIZED,
                    Some(429) => return StatusCode::TOO_MANY_REQUESTS,
                    _ => {}
                }
            }
        }
    }
    StatusCode::OK
}

/// `/graphql` routes serving `schema`; `public_path` is where GraphiQL should post.
pub fn routes<Q, M, S>(schema: Schema<Q, M, S>, public_path: &'static str) -> Router
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    Router::new()
        .route("/graphql", get(handle::<Q, M, S>).post(handle::<Q, M, S>))
        .with_state((schema, public_path))
}

async fn handle<Q, M, S>(
    State((schema, public_path)): State<(Schema<Q, M, S>, &'static str)>,
    req: Request,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
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
    if parts.method == Method::GET && is_mutation(&query, input.operation_name.as_deref()) {
        return document_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Mutations must be sent with POST.",
            "METHOD_NOT_ALLOWED",
        );
    }
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = input.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = input.variables.filter(|v| !v.is_null()) {
        request = request.variables(async_graphql::Variables::from_json(vars));
    }
    let lang = crate::lang::resolve(&parts);
    request = request
        .data(RequestLanguage(lang))
        .data(parts.headers.clone());
    if let Some(state) = parts.extensions.get::<AuthState>() {
        request = request.data(state.clone());
    }
    if let Some(platform) = parts.extensions.get::<crate::platform::Platform>() {
        request = request.data(platform.clone());
    }
    let response = schema.execute(request).await;
    let status = http_status(&response);
    let mut body = serde_json::to_value(&response).unwrap_or(Value::Null);
    if status == StatusCode::BAD_REQUEST {
        if let Some(map) = body.as_object_mut() {
            map.remove("data");
        }
    }
    (status, Json(body)).into_response()
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
