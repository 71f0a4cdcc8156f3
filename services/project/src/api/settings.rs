//! `project/{username}/settings/…`.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::Principal;
use kernel::extract::Json as Body;
use kernel::ApiError;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{list_query, page, username_scope};
use crate::settings::{self as svc, LIST};
use crate::Ctx;

#[derive(Debug, Deserialize)]
pub struct SettingInput {
    pub key: Option<String>,
    /// Absent and `null` differ: `null` is refused as a value.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    pub description: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

type Params = Path<HashMap<String, String>>;

fn parts(params: &HashMap<String, String>) -> (&str, &str) {
    (
        params.get("username").map_or("", String::as_str),
        params.get("id").map_or("", String::as_str),
    )
}

#[utoipa::path(get, path = "/api/v1/project/{username}/settings/", tag = "settings",
    params(("username" = String, Path)), responses((status = 200)))]
pub async fn list(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(username): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = username_scope(&ctx, &principal, &username).await?;
    let query = list_query(&LIST, &uri)?;
    let (total, rows) = svc::list(&ctx.pool, &scope, &query).await?;
    Ok(JsonOut(page(
        &uri,
        total,
        &query,
        rows.iter().map(|r| r.to_json()).collect(),
    )))
}

#[utoipa::path(post, path = "/api/v1/project/{username}/settings/", tag = "settings",
    params(("username" = String, Path)), responses((status = 201), (status = 400)))]
pub async fn create(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(username): Path<String>,
    Body(input): Body<SettingInput>,
) -> Result<Response, ApiError> {
    let scope = username_scope(&ctx, &principal, &username).await?;
    let mut errors = kernel::FieldErrors::new();
    if input.key.is_none() {
        errors.required("key");
    }
    if input.value.is_none() {
        errors.required("value");
    }
    errors.into_result()?;
    let row = svc::create(
        &ctx,
        &scope,
        input.key.as_deref().unwrap_or_default(),
        input.value.unwrap_or(Value::Null),
        input.description.as_deref().unwrap_or(""),
    )
    .await?;
    Ok((StatusCode::CREATED, JsonOut(row.to_json())).into_response())
}

#[utoipa::path(get, path = "/api/v1/project/{username}/settings/{id}/", tag = "settings",
    params(("username" = String, Path), ("id" = String, Path, description = "id or key")),
    responses((status = 200), (status = 404)))]
pub async fn retrieve(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
) -> Result<JsonOut<Value>, ApiError> {
    let (username, id) = parts(&params);
    let scope = username_scope(&ctx, &principal, username).await?;
    scope.require("project.view_setting", &crate::projects::GRANTS)?;
    Ok(JsonOut(svc::get(&ctx.pool, &scope, id).await?.to_json()))
}

#[utoipa::path(method(patch, put), path = "/api/v1/project/{username}/settings/{id}/", tag = "settings",
    params(("username" = String, Path), ("id" = String, Path)),
    responses((status = 200), (status = 400), (status = 404)))]
pub async fn update(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
    Body(input): Body<SettingInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let (username, id) = parts(&params);
    let scope = username_scope(&ctx, &principal, username).await?;
    if input.key.is_some() {
        let current = svc::get(&ctx.pool, &scope, id).await?;
        if input.key.as_deref() != Some(current.key.as_str()) {
            return Err(ApiError::field("key", "The key cannot be changed."));
        }
    }
    Ok(JsonOut(
        svc::update(&ctx, &scope, id, input.value, input.description)
            .await?
            .to_json(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/project/{username}/settings/{id}/", tag = "settings",
    params(("username" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404)))]
pub async fn destroy(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
) -> Result<StatusCode, ApiError> {
    let (username, id) = parts(&params);
    let scope = username_scope(&ctx, &principal, username).await?;
    svc::delete(&ctx, &scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
