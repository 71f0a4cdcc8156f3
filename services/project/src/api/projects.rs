//! `project/projects/…`, public lookups, languages and features.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::Principal;
use kernel::extract::Json as Body;
use kernel::ApiError;
use serde_json::{json, Value};

use crate::api::{key_scope, list_query, page, urls, username_scope};
use crate::attachments::Urls;
use crate::projects::{self as svc, ProjectInput, ProjectRow, LANGUAGES, LIST};
use crate::Ctx;

/// The Project object of the contract.
pub fn project_json(row: &ProjectRow, urls: &Urls) -> Value {
    let logo = match (&row.logo_attachment_id, &row.logo_key) {
        (Some(id), Some(key)) => {
            json!({"id": id, "path": urls.public(key), "url": urls.public(key)})
        }
        _ => Value::Null,
    };
    json!({
        "id": row.id,
        "title": row.title,
        "display_name": row.title,
        "name": row.title,
        "description": row.description,
        "username": row.username,
        "unique_identifier": row.unique_identifier,
        "template": row.template,
        "owner_id": row.owner_id,
        "logo": logo,
        "features": row.features,
        "supported_languages": row.supported_languages,
        "default_language": row.default_language,
        "is_active": row.is_active,
        "role": row.role,
        "storage_quota_bytes": row.storage_quota_bytes,
        "storage_used_bytes": row.storage_used_bytes,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "deleted_at": row.deleted_at,
    })
}

#[utoipa::path(get, path = "/api/v1/project/projects/", tag = "projects",
    responses((status = 200, description = "The caller's projects, paginated")))]
pub async fn list(
    State(ctx): State<Ctx>,
    principal: Principal,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let query = list_query(&LIST, &uri)?;
    let (total, rows) = svc::list(&ctx.pool, &principal, &query).await?;
    let urls = urls(&ctx, &headers);
    Ok(JsonOut(page(
        &uri,
        total,
        &query,
        rows.iter().map(|r| project_json(r, &urls)).collect(),
    )))
}

#[utoipa::path(post, path = "/api/v1/project/projects/", tag = "projects",
    responses((status = 201, description = "Created; the caller is the owner")))]
pub async fn create(
    State(ctx): State<Ctx>,
    principal: Principal,
    headers: HeaderMap,
    Body(input): Body<ProjectInput>,
) -> Result<Response, ApiError> {
    let row = svc::create(&ctx, &principal, input).await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(project_json(&row, &urls(&ctx, &headers))),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/project/projects/{key}/", tag = "projects",
    params(("key" = String, Path, description = "unique_identifier or id")),
    responses((status = 200, description = "Project with owner and settings"), (status = 404)))]
pub async fn retrieve(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = key_scope(&ctx, &principal, &key).await?;
    scope.require("project.view_project", &svc::GRANTS)?;
    let row = svc::get(&ctx.pool, &scope).await?;
    let (owner, settings) = svc::detail_extras(&ctx.pool, &row).await?;
    let mut body = project_json(&row, &urls(&ctx, &headers));
    body["owner"] = owner;
    body["settings"] = settings;
    Ok(JsonOut(body))
}

#[utoipa::path(method(patch, put), path = "/api/v1/project/projects/{key}/", tag = "projects",
    params(("key" = String, Path)), responses((status = 200), (status = 403), (status = 404)))]
pub async fn update(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(key): Path<String>,
    headers: HeaderMap,
    Body(input): Body<ProjectInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = key_scope(&ctx, &principal, &key).await?;
    let row = svc::update(&ctx, &scope, input).await?;
    Ok(JsonOut(project_json(&row, &urls(&ctx, &headers))))
}

#[utoipa::path(delete, path = "/api/v1/project/projects/{key}/", tag = "projects",
    params(("key" = String, Path)), responses((status = 204), (status = 403), (status = 404)))]
pub async fn destroy(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let scope = key_scope(&ctx, &principal, &key).await?;
    svc::delete(&ctx, &scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn project_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "Project not found")
        .with("error", "Project not found")
}

#[utoipa::path(get, path = "/api/v1/project/projects/by-username/{username}/", tag = "projects",
    params(("username" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn by_username(
    State(ctx): State<Ctx>,
    Path(username): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let row = svc::public_by_username(&ctx.pool, &username)
        .await?
        .ok_or_else(project_not_found)?;
    Ok(JsonOut(json!({
        "id": row.id, "username": row.username, "title": row.title,
        "display_name": row.title, "is_active": row.is_active,
    })))
}

#[utoipa::path(get, path = "/api/v1/project/info/{username}/", tag = "projects",
    params(("username" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn info(
    State(ctx): State<Ctx>,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let row = svc::public_by_username(&ctx.pool, &username)
        .await?
        .ok_or_else(project_not_found)?;
    let body = project_json(&row, &urls(&ctx, &headers));
    Ok(JsonOut(json!({
        "id": row.id, "title": row.title, "username": row.username, "logo": body["logo"],
        "unique_identifier": row.unique_identifier, "template": row.template,
        "supported_languages": row.supported_languages, "default_language": row.default_language,
    })))
}

#[utoipa::path(get, path = "/api/v1/project/data/languages/", tag = "projects",
    responses((status = 200, description = "Bare array of {code, name}")))]
pub async fn languages() -> JsonOut<Value> {
    JsonOut(Value::Array(
        LANGUAGES
            .iter()
            .map(|(c, n)| json!({"code": c, "name": n}))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/project/{username}/features/", tag = "projects",
    params(("username" = String, Path)), responses((status = 200)))]
pub async fn features(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(username): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = username_scope(&ctx, &principal, &username).await?;
    let rows = svc::features(&ctx.pool, &scope).await?;
    let results: Vec<Value> = rows
        .iter()
        .map(|f| json!({
            "id": f.id, "name": f.name, "type": f.kind, "title": f.title,
            "description": f.description, "default_fields": f.default_fields, "enabled": f.enabled,
        }))
        .collect();
    Ok(JsonOut(json!({"count": results.len(), "results": results})))
}
