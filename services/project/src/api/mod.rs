//! REST handlers: extract, call a service function, shape the response.

pub mod attachments;
pub mod invitations;
pub mod members;
pub mod projects;
pub mod settings;

use axum::http::{HeaderMap, Uri};
use kernel::auth::{scope_in, Principal, ProjectScope};
use kernel::list::{page_body, ListQuery, ListSpec};
use kernel::ApiError;
use serde_json::Value;

use crate::attachments::Urls;
use crate::{Ctx, Directory};

/// `http://host` of this request, or the configured public base URL.
pub fn origin(ctx: &Ctx, headers: &HeaderMap) -> String {
    if let Some(base) = &ctx.platform.config().public_base_url {
        return base.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get("x-forwarded-host")
        .filter(|_| ctx.platform.config().trust_forwarded_for)
        .or_else(|| headers.get(axum::http::header::HOST))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub fn urls(ctx: &Ctx, headers: &HeaderMap) -> Urls {
    Urls::new(ctx, origin(ctx, headers))
}

pub fn list_query(spec: &ListSpec, uri: &Uri) -> Result<ListQuery, ApiError> {
    ListQuery::from_query(spec, uri.query())
}

/// The DRF page; `next`/`previous` are path + query.
pub fn page(uri: &Uri, total: i64, query: &ListQuery, results: Vec<Value>) -> Value {
    page_body(uri.path(), uri.query(), total, query, results)
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

/// Routes with an optional `{username}`: the URL's project, else `?project=` (an alias of
/// `X-Project-ID`, same membership rule), else the request's scope (header or token).
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
        .map(|(_, v)| v.into_owned());
    match param {
        Some(raw) => {
            let id = raw
                .trim()
                .parse::<i64>()
                .map_err(|_| ApiError::field("project", "A valid integer is required."))?;
            named_scope(ctx, principal, Some(id)).await
        }
        None => kernel::auth::resolve_scope(&ctx.platform, principal, headers).await,
    }
}

/// A path `{id}` that must be an integer; anything else is a missing record.
pub fn int_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}
