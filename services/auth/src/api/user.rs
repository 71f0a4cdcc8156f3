//! The current user, and the staff list of users.

use axum::extract::State;
use axum::Json as JsonOut;
use kernel::auth::Principal;
use kernel::extract::{Json, Query};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde::Deserialize;
use serde_json::Value;

use crate::api::account::{check_email, check_name, check_username};
use crate::api::media::MediaBase;
use crate::api::paging::PageRequest;
use crate::data::users::{self, User, UserFilter};

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/auth/auth/user/", tag = "user", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, description = "not_authenticated")))]
pub async fn get_user(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
) -> Result<JsonOut<User>, ApiError> {
    current_user(&ctx, &principal, &base).await.map(JsonOut)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserPatch {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

/// Update the caller's names, username or email (PUT is partial too).
#[utoipa::path(method(patch, put), path = "/api/v1/auth/auth/user/", tag = "user", security(("bearer" = [])), request_body = UserPatch,
    responses((status = 200, body = User), (status = 400, description = "field map")))]
pub async fn patch_user(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    Json(input): Json<UserPatch>,
) -> Result<JsonOut<User>, ApiError> {
    let mut errors = FieldErrors::new();
    let username = input.username.as_deref().map(str::trim);
    let email = input.email.as_deref().map(str::trim);
    if let Some(u) = username {
        check_username(&mut errors, u);
        if errors.is_empty()
            && users::username_taken(&ctx.pool, u, Some(principal.user_id())).await?
        {
            errors.add("username", "A user with that username already exists.");
        }
    }
    if let Some(e) = email {
        check_email(&mut errors, e);
        if users::email_taken(&ctx.pool, e, Some(principal.user_id())).await? {
            errors.add("email", "A user with that email already exists.");
        }
    }
    if let Some(v) = &input.first_name {
        check_name(&mut errors, "first_name", v);
    }
    if let Some(v) = &input.last_name {
        check_name(&mut errors, "last_name", v);
    }
    errors.into_result()?;
    let change = users::ProfileChange {
        username,
        email,
        first_name: input.first_name.as_deref(),
        last_name: input.last_name.as_deref(),
    };
    let mut tx = ctx.pool.begin().await?;
    let before = users::by_id(&mut *tx, principal.user_id())
        .await?
        .ok_or_else(ApiError::not_authenticated)?;
    let after = users::update_profile(&mut *tx, principal.user_id(), &change).await?;
    let changed: Vec<String> = [
        ("username", before.username != after.username),
        ("email", before.email != after.email),
        ("first_name", before.first_name != after.first_name),
        ("last_name", before.last_name != after.last_name),
    ]
    .into_iter()
    .filter(|(_, differs)| *differs)
    .map(|(name, _)| name.to_owned())
    .collect();
    if !changed.is_empty() {
        let event = integration::users::UserUpdated {
            user_id: after.id,
            changed,
            username: after.username.clone(),
            email: after.email.clone(),
            first_name: after.first_name.clone(),
            last_name: after.last_name.clone(),
        };
        ctx.outbox
            .record(&mut tx, None, Some(after.id), &event)
            .await?;
    }
    tx.commit().await?;
    ctx.outbox.flush().await;
    current_user(&ctx, &principal, &base).await.map(JsonOut)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserListParams {
    page: Option<String>,
    limit: Option<String>,
    page_size: Option<String>,
    search: Option<String>,
    is_active: Option<String>,
    is_staff: Option<String>,
    #[serde(rename = "id__in")]
    id_in: Option<String>,
}

fn boolean(field: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "true" || v == "1" => Ok(Some(true)),
        Some(v) if v == "false" || v == "0" => Ok(Some(false)),
        Some(_) => Err(ApiError::field(field, "Must be a valid boolean.")),
    }
}

/// Users (platform staff): auth's page-number pagination.
#[utoipa::path(get, path = "/api/v1/auth/auth/users/", tag = "user", security(("bearer" = [])), params(UserListParams),
    responses((status = 200, description = "`{count, total_pages, current_page, next, previous, limit, results}`"), (status = 403, description = "permission_denied")))]
pub async fn list_users(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Query(p): Query<UserListParams>,
) -> Result<JsonOut<Value>, ApiError> {
    let claims = principal.claims();
    if !(claims.is_staff || claims.is_superuser) {
        return Err(ApiError::permission_denied());
    }
    let page = PageRequest::parse(
        p.page.as_deref(),
        p.limit.as_deref(),
        p.page_size.as_deref(),
        10,
    )?;
    let ids = match p.id_in.as_deref() {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|id| id.trim().parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ApiError::field("id__in", "Enter a comma-separated list of integers.")
                })?,
        ),
    };
    let filter = UserFilter {
        search: p.search.filter(|s| !s.trim().is_empty()),
        is_active: boolean("is_active", p.is_active.as_deref())?,
        is_staff: boolean("is_staff", p.is_staff.as_deref())?,
        ids,
    };
    let (count, rows) = users::list(&ctx.pool, &filter, page.limit, page.offset()).await?;
    let results: Vec<Value> = rows
        .into_iter()
        .map(|u| {
            let mut v = serde_json::to_value(User::from(u)).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.remove("profile");
                m.remove("address");
            }
            v
        })
        .collect();
    page.body(count, results).map(JsonOut)
}

/// The current user.
pub async fn current_user(
    ctx: &ServiceContext,
    principal: &Principal,
    base: &crate::api::media::MediaBase,
) -> Result<User, ApiError> {
    let (row, profile, addresses) = users::with_details(&ctx.pool, principal.user_id())
        .await?
        .ok_or_else(ApiError::token_not_valid)?;
    let mut user = User::from(row);
    user.profile = profile.map(|p| serde_json::to_value(base.fill(p)).unwrap_or_default());
    user.address = addresses
        .into_iter()
        .map(|a| serde_json::to_value(a).unwrap_or_default())
        .collect();
    Ok(user)
}
