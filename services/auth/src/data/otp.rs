//! One-time codes, stored salted and hashed per (email, purpose).

use chrono::{DateTime, Utc};
use kernel::ApiError;
use sqlx::{PgExecutor, Postgres, Transaction};

#[derive(Debug, sqlx::FromRow)]
pub struct OtpRow {
    pub id: i64,
    pub purpose: String,
    pub salt: String,
    pub code_hash: String,
    pub attempts: i32,
    pub expires_at: DateTime<Utc>,
}

/// Replaces any unused code of the email with a new one.
pub async fn replace(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
    purpose: &str,
    salt: &str,
    code_hash: &str,
    ttl_secs: i64,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM otp_codes WHERE lower(email) = lower($1) AND used_at IS NULL")
        .bind(email)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO otp_codes (email, purpose, salt, code_hash, expires_at) \
         VALUES (lower($1), $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(email)
    .bind(purpose)
    .bind(salt)
    .bind(code_hash)
    .bind(ttl_secs as f64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Codes sent to the email within the last `secs` seconds, and the age of the newest.
pub async fn recent(
    db: impl PgExecutor<'_>,
    email: &str,
    secs: i64,
) -> Result<(i64, Option<f64>), ApiError> {
    Ok(sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - max(created_at))::float8 FROM otp_codes \
         WHERE lower(email) = lower($1) AND created_at > now() - make_interval(secs => $2)",
    )
    .bind(email)
    .bind(secs as f64)
    .fetch_one(db)
    .await?)
}

/// The live code of the email (unused, unexpired, fewer than 5 wrong tries), locked.
pub async fn live(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
) -> Result<Option<OtpRow>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, purpose, salt, code_hash, attempts, expires_at FROM otp_codes \
         WHERE lower(email) = lower($1) AND used_at IS NULL AND expires_at > now() AND attempts < 5 \
         ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
    )
    .bind(email)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn count_failure(db: impl PgExecutor<'_>, id: i64) -> Result<(), ApiError> {
    sqlx::query("UPDATE otp_codes SET attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn consume(db: impl PgExecutor<'_>, id: i64) -> Result<(), ApiError> {
    sqlx::query("UPDATE otp_codes SET used_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
