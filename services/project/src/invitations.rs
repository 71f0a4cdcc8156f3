//! Invitations: by email (or a username, resolved to its email), accepted by the invited
//! address, expiring. The token is mailed, never returned; only its SHA-256 is stored.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use integration::project::InvitationCreated;
use kernel::auth::{Principal, ProjectScope};
use kernel::list::{fetch_page, Field, Kind, ListQuery, ListSpec};
use kernel::mailer::Mail;
use kernel::rbac::Role;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::members::{self, MemberRow};
use crate::projects::GRANTS;
use crate::Ctx;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: i64,
    pub project_id: i64,
    pub email: String,
    pub role: String,
    pub status: String,
    pub message: String,
    pub invited_by_id: i64,
    pub invited_by_username: String,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, project_id, email, role, \
    CASE WHEN status = 'pending' AND expires_at <= now() THEN 'expired' ELSE status END AS status, \
    message, invited_by_id, invited_by_username, expires_at, accepted_at, created_at";

pub static LIST: ListSpec = ListSpec {
    filters: &[
        Field {
            name: "status",
            column: "(CASE WHEN status = 'pending' AND expires_at <= now() THEN 'expired' ELSE status END)",
            kind: Kind::Text,
        },
        Field { name: "email", column: "lower(email)", kind: Kind::Text },
        Field { name: "role", column: "role", kind: Kind::Text },
    ],
    ordering: &[
        Field { name: "created_at", column: "created_at", kind: Kind::DateTime },
        Field { name: "expires_at", column: "expires_at", kind: Kind::DateTime },
    ],
    search: &["email"],
    default_ordering: "-created_at",
    extra_params: &[],
};

impl InvitationRow {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "project_id": self.project_id,
            "email": self.email,
            "role": self.role,
            "status": self.status,
            "message": self.message,
            "invited_by": {"id": self.invited_by_id, "username": self.invited_by_username},
            "expires_at": self.expires_at,
            "accepted_at": self.accepted_at,
            "created_at": self.created_at,
        })
    }
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `j***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

pub async fn list(
    db: &PgPool,
    scope: &ProjectScope,
    query: &ListQuery,
) -> Result<(i64, Vec<InvitationRow>), ApiError> {
    scope.require("project.add_member", &GRANTS)?;
    let project = scope.project_id();
    fetch_page(
        db,
        COLUMNS,
        "FROM invitations WHERE project_id = ",
        |qb| {
            qb.push_bind(project);
        },
        query,
        LIST.search,
    )
    .await
}

pub struct NewInvitation {
    /// An email, or a username resolved to its account's email.
    pub email: String,
    pub role: Option<Role>,
    pub message: String,
}

/// Creates (201) or refreshes a pending invitation for the same address (200, `false`), then
/// mails the link.
pub async fn create(
    ctx: &Ctx,
    scope: &ProjectScope,
    project_title: &str,
    input: NewInvitation,
) -> Result<(InvitationRow, bool), ApiError> {
    scope.require("project.add_member", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let role = input.role.unwrap_or(Role::Viewer);
    if role == Role::Owner {
        errors.add("role", "The owner role cannot be granted by invitation.");
    }
    if input.message.chars().count() > 500 {
        errors.add(
            "message",
            "Ensure this field has no more than 500 characters.",
        );
    }
    let login = input.email.trim();
    if login.is_empty() {
        errors.required("email");
    }
    errors.into_result()?;
    if role == Role::Admin && scope.role() != Some(Role::Owner) && !scope.is_superuser() {
        return Err(ApiError::forbidden(
            "permission_denied",
            "Only the project owner can invite admins.",
        ));
    }
    let email = if login.contains('@') {
        if login.len() > 254
            || login.starts_with('@')
            || login.ends_with('@')
            || login.contains(char::is_whitespace)
        {
            return Err(ApiError::field("email", "Enter a valid email address."));
        }
        login.to_owned()
    } else {
        members::users(ctx)?
            .by_login(login)
            .await?
            .map(|u| u.email)
            .ok_or_else(|| ApiError::field("email", "No user with this username."))?
    };
    let token = new_token();
    let expires_at =
        Utc::now() + Duration::hours(ctx.platform.config().project.invitation_ttl_hours);
    let mut tx = ctx.pool.begin().await?;
    // Serialises invitations of one project (the pending cap and the one-pending rule).
    sqlx::query("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
        .bind(scope.project_id())
        .execute(&mut *tx)
        .await?;
    let already: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE project_id = $1 AND lower(email) = lower($2))",
    )
    .bind(scope.project_id())
    .bind(&email)
    .fetch_one(&mut *tx)
    .await?;
    if already {
        return Err(ApiError::conflict(
            "already_member",
            "This user is already a member of the project.",
        ));
    }
    sqlx::query("UPDATE invitations SET status = 'expired', updated_at = now() WHERE project_id = $1 AND status = 'pending' AND expires_at <= now()")
        .bind(scope.project_id())
        .execute(&mut *tx)
        .await?;
    let refreshed: Option<InvitationRow> = sqlx::query_as(&format!(
        "UPDATE invitations SET role = $3, message = $4, token_hash = $5, expires_at = $6, \
         updated_at = now() WHERE project_id = $1 AND lower(email) = lower($2) AND status = 'pending' \
         RETURNING {COLUMNS}"
    ))
    .bind(scope.project_id())
    .bind(&email)
    .bind(role.as_str())
    .bind(&input.message)
    .bind(hash(&token))
    .bind(expires_at)
    .fetch_optional(&mut *tx)
    .await?;
    let (row, created) = match refreshed {
        Some(row) => (row, false),
        None => {
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM invitations WHERE project_id = $1 AND status = 'pending'",
            )
            .bind(scope.project_id())
            .fetch_one(&mut *tx)
            .await?;
            let cap = ctx.platform.config().project.max_pending_invitations;
            if pending >= cap {
                return Err(ApiError::rule(
                    "too_many_invitations",
                    format!("A project can have at most {cap} pending invitations."),
                ));
            }
            let invited_by: String = sqlx::query_scalar(
                "SELECT username FROM memberships WHERE project_id = $1 AND user_id = $2",
            )
            .bind(scope.project_id())
            .bind(scope.user_id())
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default();
            let row: InvitationRow = sqlx::query_as(&format!(
                "INSERT INTO invitations (project_id, email, role, message, token_hash, invited_by_id, \
                 invited_by_username, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            ))
            .bind(scope.project_id())
            .bind(&email)
            .bind(role.as_str())
            .bind(&input.message)
            .bind(hash(&token))
            .bind(scope.user_id())
            .bind(invited_by)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?;
            ctx.outbox
                .record(
                    &mut tx,
                    Some(scope.project_id()),
                    Some(scope.user_id()),
                    &InvitationCreated {
                        project_id: scope.project_id(),
                        invitation_id: row.id,
                        email: email.clone(),
                        role: role.to_string(),
                    },
                )
                .await?;
            (row, true)
        }
    };
    tx.commit().await?;
    ctx.outbox.flush().await;
    let link = format!(
        "{}/invitations/{token}",
        ctx.platform
            .config()
            .project
            .web_base_url
            .trim_end_matches('/')
    );
    let mail = Mail {
        to: email.clone(),
        subject: format!("You are invited to {project_title} on ZoneVast"),
        body: format!(
            "{} invited you to join {project_title} as {role}.\n\n{}\n\nAccept the invitation: {link}\n\nThis link expires on {}.",
            row.invited_by_username,
            input.message,
            expires_at.format("%Y-%m-%d %H:%M UTC")
        ),
    };
    if let Err(e) = ctx.platform.mailer().send(mail).await {
        tracing::warn!(error = %e, invitation = row.id, "invitation mail not sent");
    }
    Ok((row, created))
}

pub async fn revoke(ctx: &Ctx, scope: &ProjectScope, id: i64) -> Result<(), ApiError> {
    scope.require("project.add_member", &GRANTS)?;
    let done = sqlx::query(
        "UPDATE invitations SET status = 'revoked', updated_at = now() \
         WHERE id = $1 AND project_id = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(scope.project_id())
    .execute(&ctx.pool)
    .await?
    .rows_affected();
    if done == 0 {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM invitations WHERE id = $1 AND project_id = $2)",
        )
        .bind(id)
        .bind(scope.project_id())
        .fetch_one(&ctx.pool)
        .await?;
        if !exists {
            return Err(ApiError::not_found());
        }
    }
    Ok(())
}

/// The invitation behind a token, with its live project (public view).
pub async fn by_token(db: &PgPool, token: &str) -> Result<(InvitationRow, Value), ApiError> {
    let row: InvitationRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1"
    ))
    .bind(hash(token))
    .fetch_optional(db)
    .await?
    .ok_or_else(ApiError::not_found)?;
    let project: Option<(String, String)> =
        sqlx::query_as("SELECT title, username FROM projects WHERE id = $1 AND deleted_at IS NULL")
            .bind(row.project_id)
            .fetch_optional(db)
            .await?;
    let (title, username) = project.ok_or_else(ApiError::not_found)?;
    Ok((
        row,
        json!({"title": title, "username": username, "logo": Value::Null}),
    ))
}

/// Accepts as the invited address: one transaction, the `pending → accepted` step is
/// conditional, so a concurrent second accept gets 409.
pub async fn accept(ctx: &Ctx, principal: &Principal, token: &str) -> Result<MemberRow, ApiError> {
    let (row, _) = by_token(&ctx.pool, token).await?;
    let user = members::users(ctx)?
        .by_id(principal.user_id())
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(ApiError::not_authenticated)?;
    if !user.email.eq_ignore_ascii_case(&row.email) || !user.email_verified {
        return Err(ApiError::forbidden(
            "invitation_email_mismatch",
            "This invitation was sent to another email address (or yours is not verified).",
        ));
    }
    match row.status.as_str() {
        "pending" => {}
        "expired" => return Err(gone()),
        _ => return Err(not_pending()),
    }
    let mut tx = ctx.pool.begin().await?;
    let role: Option<String> = sqlx::query_scalar(
        "UPDATE invitations SET status = 'accepted', accepted_at = now(), updated_at = now() \
         WHERE id = $1 AND status = 'pending' AND expires_at > now() RETURNING role",
    )
    .bind(row.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(role) = role else {
        return Err(not_pending());
    };
    let role: Role = role.parse().map_err(ApiError::internal)?;
    let member = members::insert(
        ctx,
        &mut tx,
        row.project_id,
        &user,
        role,
        Some(row.invited_by_id),
    )
    .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(member)
}

pub async fn decline(ctx: &Ctx, token: &str) -> Result<String, ApiError> {
    let (row, _) = by_token(&ctx.pool, token).await?;
    match row.status.as_str() {
        "pending" => {}
        "expired" => return Err(gone()),
        _ => return Err(not_pending()),
    }
    let done = sqlx::query("UPDATE invitations SET status = 'declined', updated_at = now() WHERE id = $1 AND status = 'pending'")
        .bind(row.id)
        .execute(&ctx.pool)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(not_pending());
    }
    Ok("declined".into())
}

/// The caller's pending invitations (by their email).
pub async fn mine(ctx: &Ctx, principal: &Principal) -> Result<Vec<InvitationRow>, ApiError> {
    let user = members::users(ctx)?
        .by_id(principal.user_id())
        .await?
        .ok_or_else(ApiError::not_authenticated)?;
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE lower(email) = lower($1) AND status = 'pending' \
         AND expires_at > now() ORDER BY created_at DESC LIMIT 100"
    ))
    .bind(&user.email)
    .fetch_all(&ctx.pool)
    .await?)
}

fn gone() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::GONE,
        "invitation_expired",
        "This invitation has expired.",
    )
}

fn not_pending() -> ApiError {
    ApiError::conflict(
        "invitation_not_pending",
        "This invitation is no longer pending.",
    )
}

/// The sweeper's half of expiry (reads apply it too).
pub async fn expire_due(db: &PgPool) -> anyhow::Result<u64> {
    Ok(sqlx::query("UPDATE invitations SET status = 'expired', updated_at = now() WHERE status = 'pending' AND expires_at <= now()")
        .execute(db)
        .await?
        .rows_affected())
}
