//! The caller's own profile and addresses (rows keyed by user, never by project).

use chrono::NaiveDate;
use kernel::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Profile {
    pub id: i64,
    #[sqlx(rename = "user_id")]
    pub user: i64,
    pub bio: String,
    pub phone: String,
    pub birth_date: Option<NaiveDate>,
    pub gender: String,
    pub company_name: String,
    pub position_title: String,
    pub profile_picture: Option<String>,
    #[sqlx(skip)]
    #[serde(default)]
    pub profile_picture_url: Option<String>,
}

/// Fields a client may set; `None` leaves the stored value.
#[derive(Debug, Default)]
pub struct ProfileInput {
    pub bio: Option<String>,
    pub phone: Option<String>,
    pub birth_date: Option<Option<NaiveDate>>,
    pub gender: Option<String>,
    pub company_name: Option<String>,
    pub position_title: Option<String>,
}

/// The profile and address columns as JSON objects keyed like the structs (for one-query reads).
pub const PROFILE_JSON: &str = "SELECT row_to_json(p) FROM (SELECT id, user_id AS \"user\", bio, phone, \
    birth_date, gender, company_name, position_title, profile_picture FROM profiles WHERE user_id = u.id) p";
pub const ADDRESSES_JSON: &str = "SELECT COALESCE(json_agg(a ORDER BY a.id), '[]') FROM (SELECT id, \
    user_id AS \"user\", address_type, street_address, address_line2, city, governorate, region, country, \
    postal_code, nearest_landmark, phone, is_default FROM addresses WHERE user_id = u.id) a";

const PROFILE: &str =
    "id, user_id, bio, phone, birth_date, gender, company_name, position_title, profile_picture";

pub async fn profile_of(
    db: impl PgExecutor<'_>,
    user_id: i64,
) -> Result<Option<Profile>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PROFILE} FROM profiles WHERE user_id = $1"
    ))
    .bind(user_id)
    .fetch_optional(db)
    .await?)
}

/// Creates the profile (`create_only`: fail when it exists) or updates the given fields.
pub async fn upsert_profile(
    db: &PgPool,
    user_id: i64,
    p: &ProfileInput,
    create_only: bool,
) -> Result<Option<Profile>, ApiError> {
    let conflict = if create_only {
        "DO NOTHING"
    } else {
        "DO UPDATE SET bio = COALESCE($2, profiles.bio), phone = COALESCE($3, profiles.phone), \
         birth_date = CASE WHEN $4 THEN $5 ELSE profiles.birth_date END, \
         gender = COALESCE($6, profiles.gender), company_name = COALESCE($7, profiles.company_name), \
         position_title = COALESCE($8, profiles.position_title), updated_at = now()"
    };
    Ok(sqlx::query_as(&format!(
        "INSERT INTO profiles (user_id, bio, phone, birth_date, gender, company_name, position_title) \
         VALUES ($1, COALESCE($2, ''), COALESCE($3, ''), $5, COALESCE($6, ''), COALESCE($7, ''), COALESCE($8, '')) \
         ON CONFLICT (user_id) {conflict} RETURNING {PROFILE}"
    ))
    .bind(user_id)
    .bind(&p.bio)
    .bind(&p.phone)
    .bind(p.birth_date.is_some())
    .bind(p.birth_date.flatten())
    .bind(&p.gender)
    .bind(&p.company_name)
    .bind(&p.position_title)
    .fetch_optional(db)
    .await?)
}

pub async fn clear_picture(db: &PgPool, user_id: i64) -> Result<bool, ApiError> {
    let done = sqlx::query(
        "UPDATE profiles SET profile_picture = NULL, updated_at = now() WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Address {
    pub id: i64,
    #[sqlx(rename = "user_id")]
    pub user: i64,
    pub address_type: String,
    pub street_address: String,
    pub address_line2: String,
    pub city: String,
    pub governorate: Option<i64>,
    pub region: String,
    pub country: String,
    pub postal_code: String,
    pub nearest_landmark: String,
    pub phone: String,
    pub is_default: bool,
}

#[derive(Debug, Default)]
pub struct AddressInput {
    pub address_type: Option<String>,
    pub street_address: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub governorate: Option<Option<i64>>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub nearest_landmark: Option<String>,
    pub phone: Option<String>,
    pub is_default: Option<bool>,
}

const ADDRESS: &str =
    "id, user_id, address_type, street_address, address_line2, city, governorate, \
    region, country, postal_code, nearest_landmark, phone, is_default";

pub async fn addresses_of(db: impl PgExecutor<'_>, user_id: i64) -> Result<Vec<Address>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ADDRESS} FROM addresses WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await?)
}

pub async fn address(
    db: impl PgExecutor<'_>,
    user_id: i64,
    id: i64,
) -> Result<Option<Address>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ADDRESS} FROM addresses WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// Serialises address writes of one user, so "one default" and "first is default" hold
/// under concurrency.
async fn lock_user(tx: &mut Transaction<'_, Postgres>, user_id: i64) -> Result<(), ApiError> {
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn clear_default(tx: &mut Transaction<'_, Postgres>, user_id: i64) -> Result<(), ApiError> {
    sqlx::query("UPDATE addresses SET is_default = FALSE WHERE user_id = $1 AND is_default")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn create_address(
    db: &PgPool,
    user_id: i64,
    a: &AddressInput,
) -> Result<Address, ApiError> {
    let mut tx = db.begin().await?;
    lock_user(&mut tx, user_id).await?;
    let first: bool =
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM addresses WHERE user_id = $1)")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    let is_default = first || a.is_default == Some(true);
    if is_default {
        clear_default(&mut tx, user_id).await?;
    }
    let row = sqlx::query_as(&format!(
        "INSERT INTO addresses (user_id, address_type, street_address, address_line2, city, governorate, \
         region, country, postal_code, nearest_landmark, phone, is_default) VALUES ($1, COALESCE($2, 'home'), \
         COALESCE($3, ''), COALESCE($4, ''), COALESCE($5, ''), $6, COALESCE($7, ''), COALESCE($8, 'Jordan'), \
         COALESCE($9, ''), COALESCE($10, ''), COALESCE($11, ''), $12) RETURNING {ADDRESS}"
    ))
    .bind(user_id)
    .bind(&a.address_type)
    .bind(&a.street_address)
    .bind(&a.address_line2)
    .bind(&a.city)
    .bind(a.governorate.flatten())
    .bind(&a.region)
    .bind(&a.country)
    .bind(&a.postal_code)
    .bind(&a.nearest_landmark)
    .bind(&a.phone)
    .bind(is_default)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn update_address(
    db: &PgPool,
    user_id: i64,
    id: i64,
    a: &AddressInput,
) -> Result<Option<Address>, ApiError> {
    let mut tx = db.begin().await?;
    lock_user(&mut tx, user_id).await?;
    if a.is_default == Some(true) {
        clear_default(&mut tx, user_id).await?;
    }
    let row = sqlx::query_as(&format!(
        "UPDATE addresses SET address_type = COALESCE($3, address_type), \
         street_address = COALESCE($4, street_address), address_line2 = COALESCE($5, address_line2), \
         city = COALESCE($6, city), governorate = CASE WHEN $7 THEN $8 ELSE governorate END, \
         region = COALESCE($9, region), country = COALESCE($10, country), \
         postal_code = COALESCE($11, postal_code), nearest_landmark = COALESCE($12, nearest_landmark), \
         phone = COALESCE($13, phone), is_default = COALESCE($14, is_default), updated_at = now() \
         WHERE user_id = $1 AND id = $2 RETURNING {ADDRESS}"
    ))
    .bind(user_id)
    .bind(id)
    .bind(&a.address_type)
    .bind(&a.street_address)
    .bind(&a.address_line2)
    .bind(&a.city)
    .bind(a.governorate.is_some())
    .bind(a.governorate.flatten())
    .bind(&a.region)
    .bind(&a.country)
    .bind(&a.postal_code)
    .bind(&a.nearest_landmark)
    .bind(&a.phone)
    .bind(a.is_default)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes an address; when it was the default, the oldest remaining one becomes default.
pub async fn delete_address(db: &PgPool, user_id: i64, id: i64) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    lock_user(&mut tx, user_id).await?;
    let was_default: Option<bool> = sqlx::query_scalar(
        "DELETE FROM addresses WHERE user_id = $1 AND id = $2 RETURNING is_default",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if was_default == Some(true) {
        sqlx::query(
            "UPDATE addresses SET is_default = TRUE WHERE id = \
             (SELECT id FROM addresses WHERE user_id = $1 ORDER BY id LIMIT 1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(was_default.is_some())
}

/// Sets the picture (creating the profile if needed); returns the previous key.
pub async fn set_picture(
    db: &PgPool,
    user_id: i64,
    key: &str,
) -> Result<(Profile, Option<String>), ApiError> {
    let mut tx = db.begin().await?;
    let old: Option<Option<String>> =
        sqlx::query_scalar("SELECT profile_picture FROM profiles WHERE user_id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let profile = sqlx::query_as(&format!(
        "INSERT INTO profiles (user_id, profile_picture) VALUES ($1, $2) ON CONFLICT (user_id) \
         DO UPDATE SET profile_picture = EXCLUDED.profile_picture, updated_at = now() RETURNING {PROFILE}"
    ))
    .bind(user_id)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((profile, old.flatten()))
}
