//! Token pairs: login, rotation with a reuse grace and family revocation, project switch,
//! logout. All state changes happen in one transaction each.

use chrono::{DateTime, TimeZone, Utc};
use kernel::jwt::{new_jti, Claims, TokenError, TokenType};
use kernel::rbac::Role;
use kernel::{ApiError, Platform};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::data::users::UserRow;
use crate::data::{memberships, sessions, users};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub refresh: String,
    pub access: String,
}

struct Issued {
    pair: TokenPair,
    refresh_jti: String,
    refresh_expires: DateTime<Utc>,
}

fn issue(
    platform: &Platform,
    user: &UserRow,
    sid: Uuid,
    project_id: Option<i64>,
    role: Option<Role>,
) -> Result<Issued, ApiError> {
    let jwt = &platform.config().jwt;
    let now = Utc::now().timestamp();
    let claims = |token_type, ttl: i64| Claims {
        token_type,
        exp: now + ttl,
        iat: now,
        jti: new_jti(),
        user_id: user.id,
        username: user.username.clone(),
        email: Some(user.email.clone()),
        project_id,
        role: project_id.and(role),
        is_staff: user.is_staff || user.is_superuser,
        is_superuser: user.is_superuser,
        sid: Some(sid),
    };
    let access = claims(TokenType::Access, jwt.access_ttl_secs);
    let refresh = claims(TokenType::Refresh, jwt.refresh_ttl_secs);
    let refresh_expires = Utc
        .timestamp_opt(refresh.exp, 0)
        .single()
        .ok_or_else(|| ApiError::internal("refresh expiry out of range"))?;
    Ok(Issued {
        pair: TokenPair {
            access: platform.keys().sign(&access)?,
            refresh: platform.keys().sign(&refresh)?,
        },
        refresh_jti: refresh.jti,
        refresh_expires,
    })
}

fn blacklisted() -> ApiError {
    ApiError::unauthorized("token_not_valid", "Token is blacklisted")
}

fn invalid_refresh() -> ApiError {
    ApiError::unauthorized("token_not_valid", "Token is invalid or expired")
}

/// A new session for a user whose credentials were just checked.
pub async fn login(
    platform: &Platform,
    db: &PgPool,
    user: &UserRow,
    ip: &str,
    user_agent: Option<&str>,
) -> Result<TokenPair, ApiError> {
    let sid = Uuid::new_v4();
    let issued = issue(platform, user, sid, None, None)?;
    let mut tx = db.begin().await?;
    sessions::create(&mut *tx, sid, user.id, ip, user_agent).await?;
    sessions::add_refresh(&mut *tx, &issued.refresh_jti, sid, issued.refresh_expires).await?;
    users::record_login(&mut *tx, user.id).await?;
    tx.commit().await?;
    Ok(issued.pair)
}

/// Verifies a refresh token's signature and expiry.
pub fn decode_refresh(platform: &Platform, token: &str) -> Result<Claims, ApiError> {
    platform
        .keys()
        .verify(token, TokenType::Refresh)
        .map_err(|_| invalid_refresh())
}

/// Rotates a refresh token. Reuse of a rotated token within the grace window returns the same
/// successor pair; later reuse revokes the whole family.
pub async fn refresh(platform: &Platform, db: &PgPool, token: &str) -> Result<TokenPair, ApiError> {
    let claims = decode_refresh(platform, token)?;
    let grace = platform.config().jwt.refresh_reuse_grace_secs;
    let mut tx = db.begin().await?;
    let row = sessions::lock_refresh(&mut tx, &claims.jti)
        .await?
        .ok_or_else(invalid_refresh)?;
    if row.revoked_at.is_some() || row.session_revoked_at.is_some() {
        return Err(blacklisted());
    }
    if let Some(rotated_at) = row.rotated_at {
        let within_grace = (Utc::now() - rotated_at).num_seconds() < grace;
        if let (true, Some(access), Some(refresh)) = (
            within_grace,
            row.successor_access.clone(),
            row.successor_refresh.clone(),
        ) {
            return Ok(TokenPair { access, refresh });
        }
        sessions::revoke_session(&mut tx, row.sid).await?;
        tx.commit().await?;
        platform.verifier().revoke_session(&row.sid).await?;
        tracing::warn!(sid = %row.sid, user_id = row.user_id, "rotated refresh token reused: family revoked");
        return Err(blacklisted());
    }
    let user = users::by_id(&mut *tx, row.user_id)
        .await?
        .ok_or_else(invalid_refresh)?;
    if !user.is_active {
        return Err(ApiError::unauthorized("user_inactive", "User is inactive"));
    }
    // Claims are re-derived: the membership may have changed since the last token.
    let (project_id, role) = match row.project_id {
        Some(p) => match memberships::role_of(db, user.id, p).await? {
            Some(role) => (Some(p), Some(role)),
            None if user.is_superuser && memberships::project_exists(db, p).await? => {
                (Some(p), Some(Role::Admin))
            }
            None => (None, None),
        },
        None => (None, None),
    };
    let issued = issue(platform, &user, row.sid, project_id, role)?;
    sessions::add_refresh(
        &mut *tx,
        &issued.refresh_jti,
        row.sid,
        issued.refresh_expires,
    )
    .await?;
    sessions::mark_rotated(
        &mut *tx,
        &row.jti,
        &issued.refresh_jti,
        &issued.pair.access,
        &issued.pair.refresh,
    )
    .await?;
    sessions::touch(&mut *tx, row.sid, project_id).await?;
    sessions::clear_old_successors(&mut *tx, grace).await?;
    tx.commit().await?;
    platform.verifier().clear_stale(&row.sid).await?;
    Ok(issued.pair)
}

/// `token/verify/`: either token type; signature, expiry and revocation.
pub async fn verify(platform: &Platform, db: &PgPool, token: &str) -> Result<(), ApiError> {
    let invalid = || ApiError::unauthorized("token_not_valid", "Token is invalid or expired");
    match platform.keys().verify(token, TokenType::Access) {
        Ok(_) => {
            return platform
                .verifier()
                .authenticate(token)
                .await
                .map(|_| ())
                .map_err(|_| invalid());
        }
        Err(TokenError::WrongType) => {}
        Err(_) => return Err(invalid()),
    }
    let claims = platform
        .keys()
        .verify(token, TokenType::Refresh)
        .map_err(|_| invalid())?;
    let row = sessions::find_refresh(db, &claims.jti)
        .await?
        .ok_or_else(invalid)?;
    if row.revoked_at.is_some() || row.session_revoked_at.is_some() || row.rotated_at.is_some() {
        return Err(blacklisted());
    }
    Ok(())
}

/// A pair for `project_id` in the same session; the session's earlier refresh tokens die.
pub async fn change_project(
    platform: &Platform,
    db: &PgPool,
    caller: &Claims,
    project_id: i64,
) -> Result<TokenPair, ApiError> {
    let not_member = || {
        ApiError::forbidden(
            "not_project_member",
            "User is not a member of this project.",
        )
        .with("error", "User is not a member of this project.")
    };
    let user = users::by_id(db, caller.user_id)
        .await?
        .ok_or_else(ApiError::token_not_valid)?;
    let role = match memberships::role_of(db, user.id, project_id).await? {
        Some(role) => role,
        None if user.is_superuser && memberships::project_exists(db, project_id).await? => {
            Role::Admin
        }
        None => return Err(not_member()),
    };
    let sid = caller.sid.ok_or_else(ApiError::token_not_valid)?;
    let issued = issue(platform, &user, sid, Some(project_id), Some(role))?;
    let mut tx = db.begin().await?;
    sessions::revoke_refresh_tokens(&mut *tx, sid).await?;
    sessions::add_refresh(&mut *tx, &issued.refresh_jti, sid, issued.refresh_expires).await?;
    sessions::touch(&mut *tx, sid, Some(project_id)).await?;
    tx.commit().await?;
    Ok(issued.pair)
}

/// Revokes the caller's session (and the given refresh token's, if it is the caller's).
pub async fn logout(
    platform: &Platform,
    db: &PgPool,
    caller: &Claims,
    refresh: Option<&str>,
) -> Result<(), ApiError> {
    let mut sids = Vec::new();
    if let Some(token) = refresh {
        let claims = decode_refresh(platform, token)?;
        let row = sessions::find_refresh(db, &claims.jti)
            .await?
            .ok_or_else(invalid_refresh)?;
        if row.user_id != caller.user_id {
            return Err(invalid_refresh());
        }
        if row.revoked_at.is_some() || row.session_revoked_at.is_some() {
            return Err(blacklisted());
        }
        sids.push(row.sid);
    }
    if let Some(sid) = caller.sid {
        sids.push(sid);
    }
    let mut tx = db.begin().await?;
    for sid in &sids {
        sessions::revoke_session(&mut tx, *sid).await?;
    }
    tx.commit().await?;
    for sid in &sids {
        platform.verifier().revoke_session(sid).await?;
    }
    platform.verifier().revoke_jti(&caller.jti).await?;
    Ok(())
}

/// After the transaction that revoked `sids` committed: refuse their access tokens too.
pub async fn revoke_cached(platform: &Platform, sids: &[Uuid]) -> Result<(), ApiError> {
    for sid in sids {
        platform.verifier().revoke_session(sid).await?;
    }
    Ok(())
}
