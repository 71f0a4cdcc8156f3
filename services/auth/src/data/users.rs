//! The `users` table.

use chrono::{DateTime, Utc};
use kernel::db::{map_db_error, ConstraintField};
use kernel::ApiError;
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

use crate::data::profiles::{Address, Profile, ADDRESSES_JSON, PROFILE_JSON};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

/// The User object of the contract (auth.md §3).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
    #[schema(value_type = Option<Object>)]
    pub profile: Option<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub address: Vec<serde_json::Value>,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            date_joined: u.date_joined,
            last_login: u.last_login,
            is_active: u.is_active,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
            is_verified: u.is_verified,
            profile: None,
            address: Vec::new(),
        }
    }
}

const COLUMNS: &str = "id, username, email, password_hash, first_name, last_name, is_active, \
    is_verified, is_staff, is_superuser, date_joined, last_login";

pub const UNIQUE: &[ConstraintField] = &[
    ConstraintField {
        constraint: "users_username_key",
        field: "username",
        message: "A user with that username already exists.",
    },
    ConstraintField {
        constraint: "users_email_key",
        field: "email",
        message: "A user with that email already exists.",
    },
];

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub active: bool,
    pub superuser: bool,
}

pub async fn insert(db: impl PgExecutor<'_>, user: &NewUser<'_>) -> Result<UserRow, ApiError> {
    sqlx::query_as(&format!(
        "INSERT INTO users (username, email, password_hash, first_name, last_name, is_active, \
         is_verified, is_staff, is_superuser) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7) \
         RETURNING {COLUMNS}"
    ))
    .bind(user.username)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.first_name)
    .bind(user.last_name)
    .bind(user.active)
    .bind(user.superuser)
    .fetch_one(db)
    .await
    .map_err(|e| map_db_error(e, UNIQUE))
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> Result<Option<UserRow>, ApiError> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// A username, or an email matched case-insensitively.
/// A user with their profile and addresses, in one round trip.
pub async fn with_details(
    db: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<(UserRow, Option<Profile>, Vec<Address>)>, ApiError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        profile: Option<sqlx::types::Json<Profile>>,
        address: sqlx::types::Json<Vec<Address>>,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, ({PROFILE_JSON}) AS profile, ({ADDRESSES_JSON}) AS address FROM users u WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user, r.profile.map(|p| p.0), r.address.0)))
}

pub async fn by_login(db: impl PgExecutor<'_>, login: &str) -> Result<Option<UserRow>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1) \
         ORDER BY (lower(username) = lower($1)) DESC LIMIT 1"
    ))
    .bind(login)
    .fetch_optional(db)
    .await?)
}

pub async fn by_email(db: impl PgExecutor<'_>, email: &str) -> Result<Option<UserRow>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(db)
    .await?)
}

pub async fn username_taken(
    db: &PgPool,
    username: &str,
    except: Option<i64>,
) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1) AND id IS DISTINCT FROM $2)",
    )
    .bind(username)
    .bind(except)
    .fetch_one(db)
    .await?)
}

pub async fn email_taken(db: &PgPool, email: &str, except: Option<i64>) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND id IS DISTINCT FROM $2)",
    )
    .bind(email)
    .bind(except)
    .fetch_one(db)
    .await?)
}

pub async fn record_login(db: impl PgExecutor<'_>, id: i64) -> Result<(), ApiError> {
    sqlx::query("UPDATE users SET last_login = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_password(db: impl PgExecutor<'_>, id: i64, hash: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(db)
        .await?;
    Ok(())
}

/// OTP verified: the account becomes verified, and active unless `only_verify`.
pub async fn mark_verified(
    db: impl PgExecutor<'_>,
    id: i64,
    activate: bool,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE users SET is_verified = TRUE, is_active = is_active OR $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(activate)
    .execute(db)
    .await?;
    Ok(())
}

pub struct ProfileChange<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
}

pub async fn update_profile(
    db: impl PgExecutor<'_>,
    id: i64,
    c: &ProfileChange<'_>,
) -> Result<UserRow, ApiError> {
    sqlx::query_as(&format!(
        "UPDATE users SET username = COALESCE($2, username), email = COALESCE($3, email), \
         first_name = COALESCE($4, first_name), last_name = COALESCE($5, last_name), \
         updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(c.username)
    .bind(c.email)
    .bind(c.first_name)
    .bind(c.last_name)
    .fetch_one(db)
    .await
    .map_err(|e| map_db_error(e, UNIQUE))
}

/// Filters of the staff user list.
#[derive(Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub ids: Option<Vec<i64>>,
}

pub async fn list(
    db: &PgPool,
    f: &UserFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<UserRow>), ApiError> {
    let pattern = f
        .search
        .as_ref()
        .map(|s| format!("%{}%", kernel::list::escape_like(s)));
    let filter = "($1::text IS NULL OR username ILIKE $1 OR email ILIKE $1 OR first_name ILIKE $1 \
        OR last_name ILIKE $1) AND ($2::bool IS NULL OR is_active = $2) \
        AND ($3::bool IS NULL OR is_staff = $3) AND ($4::bigint[] IS NULL OR id = ANY($4))";
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM users WHERE {filter}"))
        .bind(&pattern)
        .bind(f.is_active)
        .bind(f.is_staff)
        .bind(&f.ids)
        .fetch_one(db)
        .await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE {filter} ORDER BY id LIMIT $5 OFFSET $6"
    ))
    .bind(&pattern)
    .bind(f.is_active)
    .bind(f.is_staff)
    .bind(&f.ids)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    Ok((count, rows))
}

impl From<UserRow> for integration::users::UserSummary {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            is_active: u.is_active,
            email_verified: u.is_verified,
        }
    }
}

/// The in-process user lookups other services call (`integration::users`).
pub struct Directory(pub PgPool);

#[async_trait::async_trait]
impl integration::users::UserDirectory for Directory {
    async fn by_id(&self, id: i64) -> anyhow::Result<Option<integration::users::UserSummary>> {
        Ok(by_id(&self.0, id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map(Into::into))
    }

    async fn by_login(
        &self,
        login: &str,
    ) -> anyhow::Result<Option<integration::users::UserSummary>> {
        Ok(by_login(&self.0, login)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map(Into::into))
    }
}
