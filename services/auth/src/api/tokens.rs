//! Token routes: obtain (and the `login/` spellings), refresh, verify, change_project, logout,
//! JWKS.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json as JsonOut;
use kernel::auth::{ClientIp, Principal};
use kernel::extract::Json;
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::data::users;
use crate::password::{self, Verdict};
use crate::{throttle, tokens};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ObtainInput {
    /// A username, or an email (matched case-insensitively).
    #[serde(default, alias = "email")]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn no_active_account() -> ApiError {
    ApiError::unauthorized(
        "no_active_account",
        "No active account found with the given credentials",
    )
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

async fn obtain(
    ctx: &ServiceContext,
    ip: ClientIp,
    headers: &HeaderMap,
    input: ObtainInput,
) -> Result<Value, ApiError> {
    let mut errors = FieldErrors::new();
    let username = input.username.filter(|u| !u.trim().is_empty());
    let password = input.password.filter(|p| !p.is_empty());
    if username.is_none() {
        errors.required("username");
    }
    if password.is_none() {
        errors.required("password");
    }
    errors.into_result()?;
    let (username, password) = (username.unwrap_or_default(), password.unwrap_or_default());
    throttle::login_ip(&ctx.platform, ip.0).await?;
    let user = users::by_login(&ctx.pool, username.trim()).await?;
    throttle::login_account(&ctx.platform, ip.0, user.as_ref().map(|u| u.id), &username).await?;
    let verdict = password::verify(
        password.clone(),
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let user = match (user, verdict) {
        (Some(user), Verdict::Valid | Verdict::ValidNeedsRehash)
            if user.is_active && user.is_verified =>
        {
            if verdict == Verdict::ValidNeedsRehash {
                let hash = password::hash(password).await?;
                users::set_password(&ctx.pool, user.id, &hash).await?;
            }
            user
        }
        _ => {
            tracing::info!(target: "audit", event = "login_failed", ip = %ip.0);
            return Err(no_active_account());
        }
    };
    let pair = tokens::login(
        &ctx.platform,
        &ctx.pool,
        &user,
        &ip.0.to_string(),
        user_agent(headers),
    )
    .await?;
    tracing::info!(target: "audit", event = "login", user_id = user.id, ip = %ip.0);
    Ok(json!({
        "refresh": pair.refresh,
        "access": pair.access,
        "user": {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "is_staff": user.is_staff || user.is_superuser,
            "project_id": null,
        }
    }))
}

/// Obtain a token pair.
#[utoipa::path(post, path = "/api/v1/auth/auth/token/", tag = "tokens", request_body = ObtainInput,
    responses((status = 200, description = "`{refresh, access, user}`"), (status = 401, description = "no_active_account"), (status = 429, description = "throttled")))]
pub async fn obtain_pair(
    State(ctx): State<ServiceContext>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(input): Json<ObtainInput>,
) -> Result<JsonOut<Value>, ApiError> {
    obtain(&ctx, ip, &headers, input).await.map(JsonOut)
}

/// The `login/` spellings: the pair plus `success` and `token` (= access).
#[utoipa::path(post, path = "/api/v1/auth/login/", tag = "tokens", request_body = ObtainInput,
    responses((status = 200, description = "`{success, token, refresh, access, user}`"), (status = 401, description = "no_active_account")))]
pub async fn login(
    State(ctx): State<ServiceContext>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(input): Json<ObtainInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let mut body = obtain(&ctx, ip, &headers, input).await?;
    if let Some(map) = body.as_object_mut() {
        let access = map.get("access").cloned().unwrap_or(Value::Null);
        map.insert("success".into(), Value::Bool(true));
        map.insert("token".into(), access);
    }
    Ok(JsonOut(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshInput {
    #[serde(default)]
    refresh: Option<String>,
}

fn required_string(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::validation(FieldErrors::single(field, "This field is required.")))
}

/// Rotate a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/auth/token/refresh/", tag = "tokens", request_body = RefreshInput,
    responses((status = 200, body = tokens::TokenPair), (status = 401, description = "token_not_valid / user_inactive")))]
pub async fn refresh(
    State(ctx): State<ServiceContext>,
    Json(input): Json<RefreshInput>,
) -> Result<JsonOut<tokens::TokenPair>, ApiError> {
    let token = required_string(input.refresh, "refresh")?;
    tokens::refresh(&ctx.platform, &ctx.pool, token.trim())
        .await
        .map(JsonOut)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyInput {
    #[serde(default)]
    token: Option<String>,
}

/// Verify a token of either type.
#[utoipa::path(post, path = "/api/v1/auth/auth/token/verify/", tag = "tokens", request_body = VerifyInput,
    responses((status = 200, description = "`{}`"), (status = 401, description = "token_not_valid")))]
pub async fn verify(
    State(ctx): State<ServiceContext>,
    Json(input): Json<VerifyInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let token = required_string(input.token, "token")?;
    tokens::verify(&ctx.platform, &ctx.pool, token.trim()).await?;
    Ok(JsonOut(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeProjectInput {
    #[serde(default, alias = "projectId")]
    #[schema(value_type = Option<i64>)]
    project_id: Option<Value>,
}

/// Switch the session to a project (new pair with `project_id` and `role`).
#[utoipa::path(post, path = "/api/v1/auth/auth/token/change_project/", tag = "tokens", request_body = ChangeProjectInput,
    security(("bearer" = [])),
    responses((status = 200, body = tokens::TokenPair), (status = 403, description = "not_project_member")))]
pub async fn change_project(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Json(input): Json<ChangeProjectInput>,
) -> Result<JsonOut<tokens::TokenPair>, ApiError> {
    let project_id = match input.project_id {
        None | Some(Value::Null) => {
            return Err(ApiError::field("project_id", "This field is required."))
        }
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    }
    .filter(|id| *id > 0)
    .ok_or_else(|| ApiError::field("project_id", "A valid integer is required."))?;
    tokens::change_project(&ctx.platform, &ctx.pool, principal.claims(), project_id)
        .await
        .map(JsonOut)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutInput {
    #[serde(default)]
    refresh: Option<String>,
}

/// Revoke the caller's session; its access token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/auth/logout/", tag = "tokens", request_body = LogoutInput,
    security(("bearer" = [])),
    responses((status = 200, description = "`{success, detail}`"), (status = 401, description = "Token is blacklisted")))]
pub async fn logout(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Json(input): Json<LogoutInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let refresh = input.refresh.filter(|r| !r.trim().is_empty());
    tokens::logout(
        &ctx.platform,
        &ctx.pool,
        principal.claims(),
        refresh.as_deref().map(str::trim),
    )
    .await?;
    tracing::info!(target: "audit", event = "logout", user_id = principal.user_id());
    Ok(JsonOut(
        json!({"success": true, "detail": "Successfully logged out"}),
    ))
}

/// The public signing keys.
#[utoipa::path(get, path = "/api/v1/auth/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JWK Set")))]
pub async fn jwks(State(ctx): State<ServiceContext>) -> JsonOut<Value> {
    JsonOut(ctx.platform.keys().jwks())
}
