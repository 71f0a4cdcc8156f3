//! Collaborators, users and groups of a project (`project/{username}/account/…` and the
//! `account/collaborators/?project=` aliases).

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::Principal;
use kernel::extract::Json as Body;
use kernel::ApiError;
use serde_json::{json, Value};

use crate::api::{flexible_scope, int_id, list_query, page, username_scope};
use crate::members::{self as svc, LIST};
use crate::Ctx;

type Params = Path<HashMap<String, String>>;

fn username(params: &HashMap<String, String>) -> Option<&str> {
    params.get("username").map(String::as_str)
}

#[utoipa::path(get, path = "/api/v1/project/{username}/account/collaborators/", tag = "members",
    params(("username" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn list(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = flexible_scope(&ctx, &principal, username(&params), &uri, &headers).await?;
    let query = list_query(&LIST, &uri)?;
    let (total, rows) = svc::list(&ctx.pool, &scope, &query).await?;
    Ok(JsonOut(page(
        &uri,
        total,
        &query,
        rows.iter().map(|m| m.to_json()).collect(),
    )))
}

#[utoipa::path(post, path = "/api/v1/project/{username}/account/collaborators/", tag = "members",
    params(("username" = String, Path)),
    responses((status = 201), (status = 400), (status = 403), (status = 409)))]
pub async fn add(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<Response, ApiError> {
    // The body's `project` is an alias of `?project=`.
    let uri = match body
        .get("project")
        .and_then(|p| p.as_i64().or_else(|| p.as_str()?.parse().ok()))
    {
        Some(p) if username(&params).is_none() => {
            format!("{}?project={p}", uri.path()).parse().unwrap_or(uri)
        }
        _ => uri,
    };
    let scope = flexible_scope(&ctx, &principal, username(&params), &uri, &headers).await?;
    let user_id = match body.get("user_id").or_else(|| body.get("user")) {
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| ApiError::field("user_id", "A valid integer is required."))?,
        None => return Err(ApiError::field("user_id", "This field is required.")),
    };
    let role = svc::requested_role(&ctx.pool, &scope, body.get("role"), body.get("group")).await?;
    let member = svc::add(&ctx, &scope, user_id, role).await?;
    Ok((StatusCode::CREATED, JsonOut(member.to_json())).into_response())
}

#[utoipa::path(method(patch, put), path = "/api/v1/project/{username}/account/collaborators/{id}/", tag = "members",
    params(("username" = String, Path), ("id" = i64, Path)),
    responses((status = 200), (status = 403), (status = 404), (status = 422)))]
pub async fn update(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = flexible_scope(&ctx, &principal, username(&params), &uri, &headers).await?;
    let id = int_id(params.get("id").map_or("", String::as_str))?;
    let role = svc::requested_role(&ctx.pool, &scope, body.get("role"), body.get("group"))
        .await?
        .ok_or_else(|| ApiError::field("role", "This field is required."))?;
    Ok(JsonOut(
        svc::change_role(&ctx, &scope, id, role).await?.to_json(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/project/{username}/account/collaborators/{id}/", tag = "members",
    params(("username" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 403), (status = 404), (status = 422)))]
pub async fn remove(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let scope = flexible_scope(&ctx, &principal, username(&params), &uri, &headers).await?;
    let id = int_id(params.get("id").map_or("", String::as_str))?;
    svc::remove(&ctx, &scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/project/{username}/account/collaborators/check_membership/", tag = "members",
    params(("username" = String, Path)), responses((status = 200)))]
pub async fn check_membership(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let not_member = json!({"is_member": false, "role": null, "group": null, "joined_at": null});
    let scope = match flexible_scope(&ctx, &principal, username(&params), &uri, &headers).await {
        Ok(scope) => scope,
        Err(e) if matches!(e.status().as_u16(), 403 | 404) => return Ok(JsonOut(not_member)),
        Err(e) => return Err(e),
    };
    let user = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "user" || k == "user_id")
        .map(|(_, v)| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::field("user", "A valid integer is required."))
        })
        .transpose()?
        .unwrap_or(principal.user_id());
    if user != principal.user_id() {
        scope.require("project.view_member", &crate::projects::GRANTS)?;
    }
    Ok(JsonOut(
        match svc::by_user(&ctx.pool, scope.project_id(), user).await? {
            Some(m) => json!({
                "is_member": true, "role": m.role,
                "group": m.group_id.map(|id| json!({"id": id, "name": m.group_name})),
                "joined_at": m.joined_at,
            }),
            None => not_member,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/project/{username}/account/users/", tag = "members",
    params(("username" = String, Path)), responses((status = 200)))]
pub async fn users(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(username): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = username_scope(&ctx, &principal, &username).await?;
    let query = list_query(&LIST, &uri)?;
    let (total, rows) = svc::list(&ctx.pool, &scope, &query).await?;
    let results = rows
        .iter()
        .map(|m| {
            json!({
                "id": m.user_id, "username": m.username, "email": m.email,
                "first_name": m.first_name, "last_name": m.last_name, "role": m.role,
            })
        })
        .collect();
    Ok(JsonOut(page(&uri, total, &query, results)))
}

#[utoipa::path(get, path = "/api/v1/project/{username}/groups/", tag = "members",
    params(("username" = String, Path)), responses((status = 200, description = "Bare array")))]
pub async fn groups(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(username): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = username_scope(&ctx, &principal, &username).await?;
    Ok(JsonOut(Value::Array(svc::groups(&ctx.pool, &scope).await?)))
}
