//! Registration, one-time codes and passwords.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use kernel::auth::{ClientIp, MaybePrincipal};
use kernel::extract::Json;
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use once_cell::sync::Lazy;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::data::{sessions, users};
use crate::password::{self, Verdict};
use crate::{otp, throttle, tokens};

static USERNAME: Lazy<Option<Regex>> = Lazy::new(|| Regex::new(r"^[A-Za-z0-9@.+_-]{1,150}$").ok());
static EMAIL: Lazy<Option<Regex>> = Lazy::new(|| Regex::new(r"^[^@\s]+@[^@\s]+\.[^@\s]+$").ok());

pub fn check_username(errors: &mut FieldErrors, username: &str) {
    if !USERNAME.as_ref().is_some_and(|r| r.is_match(username)) {
        errors.add(
            "username",
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        );
    }
}

pub fn check_email(errors: &mut FieldErrors, email: &str) {
    if email.chars().count() > 254 || !EMAIL.as_ref().is_some_and(|r| r.is_match(email)) {
        errors.add("email", "Enter a valid email address.");
    }
}

pub fn check_name(errors: &mut FieldErrors, field: &str, value: &str) {
    if value.chars().count() > 150 {
        errors.add(field, "Ensure this field has no more than 150 characters.");
    }
}

fn required(errors: &mut FieldErrors, field: &str, value: &Option<String>) -> String {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => {
            errors.required(field);
            String::new()
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterInput {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

/// Create an inactive account and mail a verification code.
#[utoipa::path(post, path = "/api/v1/auth/auth/register/", tag = "account", request_body = RegisterInput,
    responses((status = 201, description = "`{success, message, id, username, email}`"), (status = 400, description = "username_exists / email_exists / field map")))]
pub async fn register(
    State(ctx): State<ServiceContext>,
    ip: ClientIp,
    Json(input): Json<RegisterInput>,
) -> Result<(StatusCode, JsonOut<Value>), ApiError> {
    let mut errors = FieldErrors::new();
    let username = required(&mut errors, "username", &input.username);
    let email = required(&mut errors, "email", &input.email);
    let pass = input.password.clone().filter(|p| !p.is_empty());
    if pass.is_none() {
        errors.required("password");
    }
    if !username.is_empty() {
        check_username(&mut errors, &username);
    }
    if !email.is_empty() {
        check_email(&mut errors, &email);
    }
    let first_name = input.first_name.unwrap_or_default();
    let last_name = input.last_name.unwrap_or_default();
    check_name(&mut errors, "first_name", &first_name);
    check_name(&mut errors, "last_name", &last_name);
    errors.into_result()?;
    let pass = pass.unwrap_or_default();
    password::check_rules(&pass, &username, &email, "password")?;
    throttle::register(&ctx.platform, ip.0).await?;
    if users::username_taken(&ctx.pool, &username, None).await? {
        let msg = "Username already exists. Please choose a different username.";
        return Err(ApiError::bad_request("username_exists", msg).with("error", msg));
    }
    if users::email_taken(&ctx.pool, &email, None).await? {
        let msg = "Email already exists. Please use a different email.";
        return Err(ApiError::bad_request("email_exists", msg).with("error", msg));
    }
    let hash = password::hash(pass).await?;
    let user = users::insert(
        &ctx.pool,
        &users::NewUser {
            username: &username,
            email: &email,
            password_hash: &hash,
            first_name: &first_name,
            last_name: &last_name,
            active: false,
            superuser: false,
        },
    )
    .await?;
    otp::send(&ctx.platform, &ctx.pool, &user.email, "verify").await?;
    tracing::info!(target: "audit", event = "user_registered", user_id = user.id);
    Ok((
        StatusCode::CREATED,
        JsonOut(json!({
            "success": true,
            "message": "Registration successful. A verification code was sent to your email.",
            "id": user.id,
            "username": user.username,
            "email": user.email,
        })),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailInput {
    #[serde(default)]
    email: Option<String>,
}

fn user_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "user_not_found", "User not found")
        .with("error", "User not found")
}

/// Send (or resend) a one-time code.
#[utoipa::path(post, path = "/api/v1/auth/auth/send-otp/", tag = "account", request_body = EmailInput,
    responses((status = 200, description = "`{success, message}`"), (status = 404, description = "user_not_found"), (status = 429, description = "cooldown")))]
pub async fn send_otp(
    State(ctx): State<ServiceContext>,
    Json(input): Json<EmailInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let email = required(&mut errors, "email", &input.email);
    errors.into_result()?;
    let user = users::by_email(&ctx.pool, &email)
        .await?
        .ok_or_else(user_not_found)?;
    let purpose = if user.is_verified { "reset" } else { "verify" };
    otp::send(&ctx.platform, &ctx.pool, &user.email, purpose).await?;
    Ok(JsonOut(
        json!({"success": true, "message": "OTP sent to your email."}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyOtpInput {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    otp: Option<String>,
}

/// Verify the account with its code.
#[utoipa::path(post, path = "/api/v1/auth/auth/verify-otp/", tag = "account", request_body = VerifyOtpInput,
    responses((status = 200, description = "activated"), (status = 400, description = "invalid_otp")))]
pub async fn verify_otp(
    State(ctx): State<ServiceContext>,
    Json(input): Json<VerifyOtpInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let email = required(&mut errors, "email", &input.email);
    let code = required(&mut errors, "otp", &input.otp);
    errors.into_result()?;
    let user = users::by_email(&ctx.pool, &email).await?;
    let purpose = otp::consume(&ctx.pool, &email, &code).await?;
    let user =
        user.ok_or_else(|| ApiError::bad_request("invalid_otp", "Invalid or expired OTP"))?;
    // A verification code activates; a reset code only proves the address.
    users::mark_verified(&ctx.pool, user.id, purpose == "verify" || !user.is_verified).await?;
    tracing::info!(target: "audit", event = "user_verified", user_id = user.id);
    Ok(JsonOut(
        json!({"message": "OTP verified successfully, account activated."}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetInput {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    otp: Option<String>,
    #[serde(default)]
    new_password: Option<String>,
}

/// Reset a forgotten password with a code (with only `email`: send the code).
#[utoipa::path(post, path = "/api/v1/auth/auth/password/reset/", tag = "account", request_body = ResetInput,
    responses((status = 200, description = "reset"), (status = 400, description = "invalid_otp / field map")))]
pub async fn password_reset(
    State(ctx): State<ServiceContext>,
    Json(input): Json<ResetInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let email = required(&mut errors, "email", &input.email);
    errors.clone().into_result()?;
    if input.otp.is_none() && input.new_password.is_none() {
        let user = users::by_email(&ctx.pool, &email)
            .await?
            .ok_or_else(user_not_found)?;
        otp::send(&ctx.platform, &ctx.pool, &user.email, "reset").await?;
        return Ok(JsonOut(json!({"message": "Password reset email sent"})));
    }
    let code = required(&mut errors, "otp", &input.otp);
    let new_password = required(&mut errors, "new_password", &input.new_password);
    errors.into_result()?;
    let user = users::by_email(&ctx.pool, &email).await?;
    if let Some(user) = &user {
        password::check_rules(&new_password, &user.username, &user.email, "new_password")?;
    }
    otp::consume(&ctx.pool, &email, &code).await?;
    let user =
        user.ok_or_else(|| ApiError::bad_request("invalid_otp", "Invalid or expired OTP"))?;
    let hash = password::hash(new_password).await?;
    let mut tx = ctx.pool.begin().await?;
    users::set_password(&mut *tx, user.id, &hash).await?;
    users::mark_verified(&mut *tx, user.id, !user.is_verified).await?;
    let sids = sessions::revoke_user_sessions(&mut tx, user.id, None).await?;
    tx.commit().await?;
    tokens::revoke_cached(&ctx.platform, &sids).await?;
    tracing::info!(target: "audit", event = "password_reset", user_id = user.id);
    Ok(JsonOut(json!({"detail": "Password has been reset."})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeInput {
    #[serde(default, alias = "old_password")]
    current_password: Option<String>,
    #[serde(default)]
    new_password: Option<String>,
    /// Only without a token.
    #[serde(default)]
    email: Option<String>,
}

/// Change the password (bearer, or tokenless with `email`); other sessions are revoked.
#[utoipa::path(post, path = "/api/v1/auth/auth/password/change/", tag = "account", request_body = ChangeInput,
    responses((status = 200, description = "changed"), (status = 400, description = "current_password incorrect")))]
pub async fn password_change(
    State(ctx): State<ServiceContext>,
    ip: ClientIp,
    MaybePrincipal(principal): MaybePrincipal,
    Json(input): Json<ChangeInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let current = input.current_password.clone().filter(|p| !p.is_empty());
    if current.is_none() {
        errors.required("current_password");
    }
    let new_password = required(&mut errors, "new_password", &input.new_password);
    let user = match &principal {
        Some(p) => users::by_id(&ctx.pool, p.user_id()).await?,
        None => {
            let email = required(&mut errors, "email", &input.email);
            errors.clone().into_result()?;
            throttle::login_ip(&ctx.platform, ip.0).await?;
            let user = users::by_email(&ctx.pool, &email).await?;
            throttle::login_account(&ctx.platform, ip.0, user.as_ref().map(|u| u.id), &email)
                .await?;
            user
        }
    };
    errors.into_result()?;
    let incorrect = || ApiError::field("current_password", "Current password is incorrect.");
    let verdict = password::verify(
        current.unwrap_or_default(),
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let user = match (user, verdict) {
        (Some(u), Verdict::Valid | Verdict::ValidNeedsRehash) if u.is_active => u,
        _ => return Err(incorrect()),
    };
    password::check_rules(&new_password, &user.username, &user.email, "new_password")?;
    let hash = password::hash(new_password).await?;
    let keep = principal.as_ref().and_then(|p| p.claims().sid);
    let mut tx = ctx.pool.begin().await?;
    users::set_password(&mut *tx, user.id, &hash).await?;
    let sids = sessions::revoke_user_sessions(&mut tx, user.id, keep).await?;
    tx.commit().await?;
    tokens::revoke_cached(&ctx.platform, &sids).await?;
    tracing::info!(target: "audit", event = "password_changed", user_id = user.id);
    Ok(JsonOut(
        json!({"message": "Password changed successfully."}),
    ))
}
