//! Invitations: managed under `project/{username}/account/invitations/`, answered by token.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::Principal;
use kernel::extract::Json as Body;
use kernel::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{int_id, list_query, page, username_scope};
use crate::invitations::{self as svc, mask_email, NewInvitation, LIST};
use crate::Ctx;

type Params = Path<HashMap<String, String>>;

#[derive(Debug, Deserialize)]
pub struct InvitationInput {
    #[serde(alias = "username")]
    pub email: Option<String>,
    pub role: Option<kernel::rbac::Role>,
    #[serde(default)]
    pub message: String,
}

#[utoipa::path(get, path = "/api/v1/project/{username}/account/invitations/", tag = "invitations",
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

#[utoipa::path(post, path = "/api/v1/project/{username}/account/invitations/", tag = "invitations",
    params(("username" = String, Path)),
    responses((status = 201), (status = 200, description = "Pending invitation refreshed"), (status = 409), (status = 422)))]
pub async fn create(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(username): Path<String>,
    Body(input): Body<InvitationInput>,
) -> Result<Response, ApiError> {
    let scope = username_scope(&ctx, &principal, &username).await?;
    let project = crate::projects::get(&ctx.pool, &scope).await?;
    let email = input
        .email
        .ok_or_else(|| ApiError::field("email", "This field is required."))?;
    let (row, created) = svc::create(
        &ctx,
        &scope,
        &project.title,
        NewInvitation {
            email,
            role: input.role,
            message: input.message,
        },
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, JsonOut(row.to_json())).into_response())
}

#[utoipa::path(delete, path = "/api/v1/project/{username}/account/invitations/{id}/", tag = "invitations",
    params(("username" = String, Path), ("id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn revoke(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(params): Params,
) -> Result<StatusCode, ApiError> {
    let scope = username_scope(
        &ctx,
        &principal,
        params.get("username").map_or("", String::as_str),
    )
    .await?;
    svc::revoke(
        &ctx,
        &scope,
        int_id(params.get("id").map_or("", String::as_str))?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/project/invitations/{token}/", tag = "invitations",
    params(("token" = String, Path)), responses((status = 200), (status = 404)))]
pub async fn show(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let (row, project) = svc::by_token(&ctx.pool, &token).await?;
    Ok(JsonOut(json!({
        "project": project,
        "email": mask_email(&row.email),
        "role": row.role,
        "status": row.status,
        "expires_at": row.expires_at,
        "invited_by": {"username": row.invited_by_username},
    })))
}

#[utoipa::path(post, path = "/api/v1/project/invitations/{token}/accept/", tag = "invitations",
    params(("token" = String, Path)),
    responses((status = 200), (status = 403), (status = 409), (status = 410)))]
pub async fn accept(
    State(ctx): State<Ctx>,
    principal: Principal,
    Path(token): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let member = svc::accept(&ctx, &principal, &token).await?;
    let (_, project) = svc::by_token(&ctx.pool, &token).await?;
    let mut project = project;
    project["id"] = json!(member.project_id);
    Ok(JsonOut(
        json!({"member": member.to_json(), "project": project}),
    ))
}

#[utoipa::path(post, path = "/api/v1/project/invitations/{token}/decline/", tag = "invitations",
    params(("token" = String, Path)), responses((status = 200), (status = 409), (status = 410)))]
pub async fn decline(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(
        json!({"status": svc::decline(&ctx, &token).await?}),
    ))
}

#[utoipa::path(get, path = "/api/v1/project/invitations/mine/", tag = "invitations",
    responses((status = 200, description = "The caller's pending invitations")))]
pub async fn mine(
    State(ctx): State<Ctx>,
    principal: Principal,
) -> Result<JsonOut<Value>, ApiError> {
    let rows = svc::mine(&ctx, &principal).await?;
    Ok(JsonOut(Value::Array(
        rows.iter().map(|r| r.to_json()).collect(),
    )))
}
