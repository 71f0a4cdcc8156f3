//! REST handlers: extract, call a service function, shape the response.

pub mod attachments;
pub mod invitations;
pub mod members;
pub mod projects;
pub mod settings;

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, Uri};
use kernel::auth::{scope_in, Principal, ProjectScope};
use kernel::list::{page_body, ListQuery, ListSpec};
use kernel::ApiError;
use serde_json::Value;

use crate::attachments::Urls;
use crate::{Ctx, Directory};

/// The origin of this platform's links (configured, else the request's).
pub fn origin(ctx: &Ctx, headers: &HeaderMap) -> String {
    kernel::service::public_origin(ctx.platform.config(), headers)
}

pub fn urls(ctx: &Ctx, headers: &HeaderMap) -> Urls {
    Urls::new(ctx, origin(ctx, headers))
}

pub fn list_query(spec: &ListSpec, uri: &Uri) -> Result<ListQuery, ApiError> {
    ListQuery::from_query(spec, uri.query())
}

/// The DRF page; `next`/`previous` are path + query.
pub fn page(uri: &Uri, total: i64, query: &ListQuery, results: Vec<Value>) -> Value {
    serde_json::json!(page_body(uri.path(), uri.query(), total, query, results))
}

/// The scope of the project a URL names: members (and platform staff) only; anyone else, and
/// any unknown or deleted project, gets 404.
pub async fn named_scope(
    ctx: &Ctx,
    principal: &Principal,
    project_id: Option<i64>,
) -> Result<ProjectScope, ApiError> {
    let id = project_id.ok_or_else(ApiError::not_found)?;
    scope_in(principal, id, &Directory(ctx.pool.clone()))
        .await?
        .ok_or_else(ApiError::not_found)
}

/// `project/{username}/…`.
pub async fn username_scope(
    ctx: &Ctx,
    principal: &Principal,
    username: &str,
) -> Result<ProjectScope, ApiError> {
    let id = crate::projects::id_by_username(&ctx.pool, username).await?;
    named_scope(ctx, principal, id).await
}

/// `project/projects/{key}/`.
pub async fn key_scope(
    ctx: &Ctx,
    principal: &Principal,
    key: &str,
) -> Result<ProjectScope, ApiError> {
    let id = crate::projects::find_id(&ctx.pool, crate::projects::Key::parse(key)).await?;
    named_scope(ctx, principal, id).await
}

/// Routes with an optional `{username}`: the URL's project (404 to outsiders), else the aliases
/// of `X-Project-ID` with its membership rule (403 `not_project_member`): `X-Project:
/// <username>`, `?project=` / `?tenant_project_id=`; else the request's scope (header or token).
pub async fn flexible_scope(
    ctx: &Ctx,
    principal: &Principal,
    username: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<ProjectScope, ApiError> {
    if let Some(username) = username {
        return username_scope(ctx, principal, username).await;
    }
    let param = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "project" || k == "tenant_project_id")
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    let named = headers
        .get("x-project")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let id = match (param, named) {
        (Some((field, raw)), _) => Some(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::field(field, "A valid integer is required."))?,
        ),
        (None, Some(username)) => Some(
            crate::projects::id_by_username(&ctx.pool, &username)
                .await?
                .ok_or_else(not_member)?,
        ),
        (None, None) => None,
    };
    match id {
        Some(id) => scope_in(principal, id, &Directory(ctx.pool.clone()))
            .await?
            .ok_or_else(not_member),
        None => kernel::auth::resolve_scope(&ctx.platform, principal, headers).await,
    }
}

fn not_member() -> ApiError {
    ApiError::forbidden(
        "not_project_member",
        "You are not a member of this project.",
    )
}

/// The project a request without `{username}` acts in (see [`flexible_scope`]).
pub struct Scoped(pub ProjectScope);

impl FromRequestParts<Ctx> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &Ctx,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, ctx).await?;
        flexible_scope(ctx, &principal, None, &parts.uri, &parts.headers)
            .await
            .map(Scoped)
    }
}

pub use kernel::extract::path_id as int_id;
