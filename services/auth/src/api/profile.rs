//! The caller's own profile and addresses; another user's row answers 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use chrono::NaiveDate;
use kernel::auth::Principal;
use kernel::extract::Json;
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Map, Value};

use crate::api::media::MediaBase;
use crate::data::profiles::{self, Address, AddressInput, Profile, ProfileInput};

/// Reads optional fields of a JSON object, collecting DRF-style errors.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    fn new(body: &'a Value) -> Result<Self, ApiError> {
        let map = body.as_object().ok_or_else(ApiError::not_a_dictionary)?;
        Ok(Self {
            map,
            errors: FieldErrors::new(),
        })
    }

    fn raw(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter().find_map(|k| self.map.get(*k))
    }

    fn text(&mut self, keys: &[&str], max: usize) -> Option<String> {
        match self.raw(keys)? {
            Value::String(s) if s.chars().count() <= max => Some(s.trim().to_owned()),
            Value::String(_) => {
                self.errors.add(
                    keys[0],
                    format!("Ensure this field has no more than {max} characters."),
                );
                None
            }
            Value::Null => Some(String::new()),
            _ => {
                self.errors.add(keys[0], "Not a valid string.");
                None
            }
        }
    }

    fn choice(&mut self, key: &str, allowed: &[&str]) -> Option<String> {
        let value = self.text(&[key], 64)?.to_ascii_lowercase();
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.errors
                .add(key, format!("\"{value}\" is not a valid choice."));
            None
        }
    }

    fn date(&mut self, keys: &[&str]) -> Option<Option<NaiveDate>> {
        match self.raw(keys)? {
            Value::Null => Some(None),
            Value::String(s) if s.is_empty() => Some(None),
            Value::String(s) => match s.parse::<NaiveDate>() {
                Ok(d) if d <= chrono::Utc::now().date_naive() => Some(Some(d)),
                Ok(_) => {
                    self.errors
                        .add(keys[0], "The date cannot be in the future.");
                    None
                }
                Err(_) => {
                    self.errors.add(
                        keys[0],
                        "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
                    );
                    None
                }
            },
            _ => {
                self.errors.add(
                    keys[0],
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
                );
                None
            }
        }
    }

    fn int(&mut self, key: &str) -> Option<Option<i64>> {
        match self.raw(&[key])? {
            Value::Null => Some(None),
            Value::Number(n) if n.as_i64().is_some_and(|v| v > 0) => Some(n.as_i64()),
            Value::String(s) if s.trim().parse::<i64>().is_ok_and(|v| v > 0) => {
                Some(s.trim().parse().ok())
            }
            _ => {
                self.errors.add(key, "A valid integer is required.");
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.raw(&[key])? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.as_str(), "true" | "1") => Some(true),
            Value::String(s) if matches!(s.as_str(), "false" | "0") => Some(false),
            _ => {
                self.errors.add(key, "Must be a valid boolean.");
                None
            }
        }
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        self.errors.into_result().map(|()| value)
    }
}

const GENDERS: &[&str] = &["", "male", "female", "other", "prefer_not_to_say"];

fn profile_input(body: &Value) -> Result<ProfileInput, ApiError> {
    let mut f = Fields::new(body)?;
    let input = ProfileInput {
        bio: f.text(&["bio"], 2000),
        phone: f.text(&["phone"], 32),
        birth_date: f.date(&["birth_date", "date_of_birth"]),
        gender: f.choice("gender", GENDERS),
        company_name: f.text(&["company_name"], 255),
        position_title: f.text(&["position_title"], 255),
    };
    f.finish(input)
}

/// Own profile as a 0–1 element list.
#[utoipa::path(get, path = "/api/v1/auth/profile/", tag = "profile", security(("bearer" = [])), responses((status = 200, body = Vec<Profile>)))]
pub async fn list_profile(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
) -> Result<JsonOut<Vec<Profile>>, ApiError> {
    Ok(JsonOut(
        profiles::profile_of(&ctx.pool, principal.user_id())
            .await?
            .into_iter()
            .map(|p| base.fill(p))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/profile/", tag = "profile", security(("bearer" = [])), responses((status = 201, body = Profile), (status = 400, description = "profile_exists / field map")))]
pub async fn create_profile(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let input = profile_input(&body)?;
    match profiles::upsert_profile(&ctx.pool, principal.user_id(), &input, true).await? {
        Some(profile) => Ok((StatusCode::CREATED, JsonOut(base.fill(profile))).into_response()),
        None => {
            let msg = "Profile already exists. Use PATCH to update it.";
            Err(ApiError::bad_request("profile_exists", msg).with("error", msg))
        }
    }
}

/// PATCH/PUT `profile/`: create or update the caller's profile.
#[utoipa::path(method(patch, put), path = "/api/v1/auth/profile/", tag = "profile", security(("bearer" = [])), responses((status = 200, body = Profile), (status = 400, description = "field map")))]
pub async fn upsert_profile(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    Json(body): Json<Value>,
) -> Result<JsonOut<Profile>, ApiError> {
    let input = profile_input(&body)?;
    profiles::upsert_profile(&ctx.pool, principal.user_id(), &input, false)
        .await?
        .map(|p| JsonOut(base.fill(p)))
        .ok_or_else(|| ApiError::internal("profile upsert returned nothing"))
}

async fn own_profile(
    ctx: &ServiceContext,
    principal: &Principal,
    id: i64,
) -> Result<Profile, ApiError> {
    profiles::profile_of(&ctx.pool, principal.user_id())
        .await?
        .filter(|p| p.id == id)
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/api/v1/auth/profile/{id}/", tag = "profile", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, body = Profile), (status = 404, description = "not the caller's")))]
pub async fn get_profile(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    Path(id): Path<String>,
) -> Result<JsonOut<Profile>, ApiError> {
    let id = id.parse().map_err(|_| ApiError::not_found())?;
    own_profile(&ctx, &principal, id)
        .await
        .map(|p| JsonOut(base.fill(p)))
}

#[utoipa::path(method(patch, put), path = "/api/v1/auth/profile/{id}/", tag = "profile", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, body = Profile), (status = 404, description = "not the caller's")))]
pub async fn patch_profile(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Profile>, ApiError> {
    let id = id.parse().map_err(|_| ApiError::not_found())?;
    own_profile(&ctx, &principal, id).await?;
    upsert_profile(State(ctx), principal, base, Json(body)).await
}

#[utoipa::path(method(delete, post), path = "/api/v1/auth/profile/remove_picture/", tag = "profile", security(("bearer" = [])), responses((status = 200, description = "`{message}`"), (status = 404, description = "no profile")))]
pub async fn remove_picture(
    State(ctx): State<ServiceContext>,
    principal: Principal,
) -> Result<JsonOut<Value>, ApiError> {
    if !profiles::clear_picture(&ctx.pool, principal.user_id()).await? {
        return Err(ApiError::not_found());
    }
    Ok(JsonOut(
        json!({"message": "Profile picture removed successfully"}),
    ))
}

const ADDRESS_TYPES: &[&str] = &["home", "work", "other"];

fn address_input(body: &Value) -> Result<AddressInput, ApiError> {
    let mut f = Fields::new(body)?;
    let input = AddressInput {
        address_type: f.choice("address_type", ADDRESS_TYPES),
        street_address: f.text(&["street_address", "address_line1"], 255),
        address_line2: f.text(&["address_line2"], 255),
        city: f.text(&["city"], 100),
        governorate: f.int("governorate"),
        region: f.text(&["region", "state"], 100),
        country: f.text(&["country"], 100),
        postal_code: f.text(&["postal_code"], 20),
        nearest_landmark: f.text(&["nearest_landmark"], 255),
        phone: f.text(&["phone"], 32),
        is_default: f.boolean("is_default"),
    };
    f.finish(input)
}

#[utoipa::path(get, path = "/api/v1/auth/address/", tag = "profile", security(("bearer" = [])), responses((status = 200, body = Vec<Address>)))]
pub async fn list_addresses(
    State(ctx): State<ServiceContext>,
    principal: Principal,
) -> Result<JsonOut<Vec<Address>>, ApiError> {
    profiles::addresses_of(&ctx.pool, principal.user_id())
        .await
        .map(JsonOut)
}

#[utoipa::path(post, path = "/api/v1/auth/address/", tag = "profile", security(("bearer" = [])), responses((status = 201, body = Address), (status = 400, description = "field map")))]
pub async fn create_address(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<(StatusCode, JsonOut<Address>), ApiError> {
    let input = address_input(&body)?;
    let address = profiles::create_address(&ctx.pool, principal.user_id(), &input).await?;
    Ok((StatusCode::CREATED, JsonOut(address)))
}

fn address_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

#[utoipa::path(get, path = "/api/v1/auth/address/{id}/", tag = "profile", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, body = Address), (status = 404, description = "not the caller's")))]
pub async fn get_address(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<JsonOut<Address>, ApiError> {
    profiles::address(&ctx.pool, principal.user_id(), address_id(&id)?)
        .await?
        .map(JsonOut)
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(method(patch, put), path = "/api/v1/auth/address/{id}/", tag = "profile", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, body = Address), (status = 404, description = "not the caller's")))]
pub async fn patch_address(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Address>, ApiError> {
    let input = address_input(&body)?;
    profiles::update_address(&ctx.pool, principal.user_id(), address_id(&id)?, &input)
        .await?
        .map(JsonOut)
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(delete, path = "/api/v1/auth/address/{id}/", tag = "profile", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 204), (status = 404, description = "not the caller's")))]
pub async fn delete_address(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if profiles::delete_address(&ctx.pool, principal.user_id(), address_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}
