//! Sessions (refresh-token families) and the refresh tokens issued in them.

use chrono::{DateTime, Utc};
use kernel::ApiError;
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

pub async fn create(
    db: impl PgExecutor<'_>,
    sid: Uuid,
    user_id: i64,
    ip: &str,
    user_agent: Option<&str>,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO sessions (sid, user_id, ip, user_agent) VALUES ($1, $2, $3, $4)")
        .bind(sid)
        .bind(user_id)
        .bind(ip)
        .bind(user_agent.map(|ua| ua.chars().take(255).collect::<String>()))
        .execute(db)
        .await?;
    Ok(())
}

pub async fn add_refresh(
    db: impl PgExecutor<'_>,
    jti: &str,
    sid: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO refresh_tokens (jti, sid, expires_at) VALUES ($1, $2, $3)")
        .bind(jti)
        .bind(sid)
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub jti: String,
    pub sid: Uuid,
    pub user_id: i64,
    pub rotated_at: Option<DateTime<Utc>>,
    pub successor_access: Option<String>,
    pub successor_refresh: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub session_revoked_at: Option<DateTime<Utc>>,
    pub project_id: Option<i64>,
}

/// Locks the token row for the rest of the transaction (concurrent refreshes serialise here).
pub async fn lock_refresh(
    tx: &mut Transaction<'_, Postgres>,
    jti: &str,
) -> Result<Option<RefreshRow>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT r.jti, r.sid, s.user_id, r.rotated_at, r.successor_access, r.successor_refresh, \
         r.revoked_at, s.revoked_at AS session_revoked_at, s.project_id \
         FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid WHERE r.jti = $1 FOR UPDATE OF r, s",
    )
    .bind(jti)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn find_refresh(
    db: impl PgExecutor<'_>,
    jti: &str,
) -> Result<Option<RefreshRow>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT r.jti, r.sid, s.user_id, r.rotated_at, r.successor_access, r.successor_refresh, \
         r.revoked_at, s.revoked_at AS session_revoked_at, s.project_id \
         FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid WHERE r.jti = $1",
    )
    .bind(jti)
    .fetch_optional(db)
    .await?)
}

/// Marks `jti` rotated into `successor`, keeping the successor pair for the grace window.
pub async fn mark_rotated(
    db: impl PgExecutor<'_>,
    jti: &str,
    successor: &str,
    access: &str,
    refresh: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = now(), replaced_by = $2, successor_access = $3, \
         successor_refresh = $4 WHERE jti = $1",
    )
    .bind(jti)
    .bind(successor)
    .bind(access)
    .bind(refresh)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets successor pairs older than the grace window (they are bearer credentials).
pub async fn clear_old_successors(
    db: impl PgExecutor<'_>,
    grace_secs: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE refresh_tokens SET successor_access = NULL, successor_refresh = NULL \
         WHERE successor_access IS NOT NULL AND rotated_at < now() - make_interval(secs => $1)",
    )
    .bind(grace_secs as f64)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn touch(
    db: impl PgExecutor<'_>,
    sid: Uuid,
    project_id: Option<i64>,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE sessions SET last_used_at = now(), project_id = $2 WHERE sid = $1")
        .bind(sid)
        .bind(project_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes the whole family: the session and every refresh token in it.
pub async fn revoke_session(db: &mut Transaction<'_, Postgres>, sid: Uuid) -> Result<(), ApiError> {
    sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, now()) WHERE sid = $1")
        .bind(sid)
        .execute(&mut **db)
        .await?;
    revoke_refresh_tokens(&mut **db, sid).await
}

/// Revokes the refresh tokens of a session that stays alive (project switch).
pub async fn revoke_refresh_tokens(db: impl PgExecutor<'_>, sid: Uuid) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, now()), \
         successor_access = NULL, successor_refresh = NULL WHERE sid = $1",
    )
    .bind(sid)
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes every live session of a user except `keep`; returns the revoked ids.
pub async fn revoke_user_sessions(
    tx: &mut Transaction<'_, Postgres>,
    user_id: i64,
    keep: Option<Uuid>,
) -> Result<Vec<Uuid>, ApiError> {
    let sids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL \
         AND sid IS DISTINCT FROM $2 RETURNING sid",
    )
    .bind(user_id)
    .bind(keep)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, now()), \
         successor_access = NULL, successor_refresh = NULL WHERE sid = ANY($1)",
    )
    .bind(&sids)
    .execute(&mut **tx)
    .await?;
    Ok(sids)
}
