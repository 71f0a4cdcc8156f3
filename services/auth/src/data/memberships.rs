//! Auth's projection of project memberships, read by change_project, refresh and the kernel's
//! project-scope check, fed by the project service's events.

use std::time::Duration;

use async_trait::async_trait;
use integration::project::{
    MemberAdded, MemberRemoved, MemberUpdated, ProjectCreated, ProjectDeleted,
};
use kernel::auth::MembershipDirectory;
use kernel::cache::SharedCache;
use kernel::events::{begin_once, Envelope, EventHandler};
use kernel::rbac::Role;
use kernel::Platform;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// The role of a user in a live project: the owner of record is `owner`, else the membership.
pub async fn role_of(db: &PgPool, user_id: i64, project_id: i64) -> anyhow::Result<Option<Role>> {
    let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT p.owner_id, m.role FROM projects p \
         LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $1 \
         WHERE p.id = $2 AND p.deleted_at IS NULL",
    )
    .bind(user_id)
    .bind(project_id)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some((Some(owner), _)) if owner == user_id => Some(Role::Owner),
        Some((_, Some(role))) => role.parse().ok(),
        _ => None,
    })
}

pub async fn project_exists(db: &PgPool, project_id: i64) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1 AND deleted_at IS NULL)",
    )
    .bind(project_id)
    .fetch_one(db)
    .await?)
}

/// Records a project and its owner (what `project.created` will carry).
pub async fn upsert_project(
    db: impl PgExecutor<'_>,
    project_id: i64,
    owner_id: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO projects (id, owner_id) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE \
         SET owner_id = EXCLUDED.owner_id, deleted_at = NULL, updated_at = now()",
    )
    .bind(project_id)
    .bind(owner_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Records a membership (what `project.member_added/updated` will carry).
pub async fn upsert_member(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: i64,
    role: Role,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role.as_str())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn remove_member(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: i64,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND user_id = $2")
        .bind(project_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete_project(db: impl PgExecutor<'_>, project_id: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE projects SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(project_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Live sessions acting in `project_id` (all of the project's when `user_id` is `None`).
async fn sessions_in(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: Option<i64>,
) -> anyhow::Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT sid FROM sessions WHERE project_id = $1 AND revoked_at IS NULL \
         AND ($2::bigint IS NULL OR user_id = $2)",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_all(db)
    .await?)
}

/// Applies `project.*` events to the projection, once each (inbox), then marks the sessions
/// whose role changed stale: their access tokens are refused and the client refreshes, which
/// re-derives role and project from the projection.
pub struct Consumer {
    pub pool: PgPool,
    pub platform: Platform,
}

pub const CONSUMER: &str = "auth";
pub const SUBSCRIBES: &[&str] = &["project.*"];

#[async_trait]
impl EventHandler for Consumer {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(mut tx) = begin_once(&self.pool, CONSUMER, envelope).await? else {
            return Ok(());
        };
        // (project, user) whose sessions must refresh; user None = everyone in the project.
        let mut stale: Option<(i64, Option<i64>)> = None;
        // A deleted project, whose live mark is cleared once the deletion is committed.
        let mut deleted: Option<i64> = None;
        if let Some(e) = envelope.decode::<ProjectCreated>() {
            let e = e?;
            upsert_project(&mut *tx, e.project_id, e.owner_id).await?;
            upsert_member(&mut *tx, e.project_id, e.owner_id, Role::Owner).await?;
        } else if let Some(e) = envelope.decode::<MemberAdded>() {
            let e = e?;
            upsert_member(&mut *tx, e.project_id, e.user_id, parse_role(&e.role)?).await?;
        } else if let Some(e) = envelope.decode::<MemberUpdated>() {
            let e = e?;
            let role = parse_role(&e.role)?;
            upsert_member(&mut *tx, e.project_id, e.user_id, role).await?;
            if role == Role::Owner {
                upsert_project(&mut *tx, e.project_id, e.user_id).await?;
            }
            stale = Some((e.project_id, Some(e.user_id)));
        } else if let Some(e) = envelope.decode::<MemberRemoved>() {
            let e = e?;
            remove_member(&mut *tx, e.project_id, e.user_id).await?;
            stale = Some((e.project_id, Some(e.user_id)));
        } else if let Some(e) = envelope.decode::<ProjectDeleted>() {
            let e = e?;
            delete_project(&mut *tx, e.project_id).await?;
            stale = Some((e.project_id, None));
            deleted = Some(e.project_id);
        }
        // Marked before the commit: if marking fails the event is retried whole; if the commit
        // fails after marking, the affected clients only refresh once more.
        if let Some((project_id, user_id)) = stale {
            for sid in sessions_in(&mut *tx, project_id, user_id).await? {
                self.platform.verifier().mark_stale(&sid).await?;
            }
        }
        tx.commit().await?;
        if let Some(project_id) = deleted {
            self.platform.cache().delete(&live_key(project_id)).await?;
        }
        Ok(())
    }
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    role.parse()
        .map_err(|e: String| anyhow::anyhow!("membership event with a bad role: {e}"))
}

/// How long a project seen live is believed live without asking the database: every public
/// read names its project, and a cached public page should cost no round trip. A deletion
/// clears the mark as soon as this service applies it.
const LIVE_TTL: Duration = Duration::from_secs(60);

fn live_key(project_id: i64) -> String {
    format!("project:live:{project_id}")
}

/// The in-process directory the kernel asks when `X-Project-ID` names another project.
pub struct Directory {
    pub pool: PgPool,
    pub cache: SharedCache,
}

#[async_trait]
impl MembershipDirectory for Directory {
    async fn role_of(&self, user_id: i64, project_id: i64) -> anyhow::Result<Option<Role>> {
        role_of(&self.pool, user_id, project_id).await
    }

    async fn project_exists(&self, project_id: i64) -> anyhow::Result<bool> {
        let key = live_key(project_id);
        if let Ok(Some(_)) = self.cache.get(&key).await {
            return Ok(true);
        }
        let live = project_exists(&self.pool, project_id).await?;
        if live {
            if let Err(e) = self.cache.set(&key, "1", LIVE_TTL).await {
                tracing::warn!(error = %e, "live project mark not cached");
            }
        }
        Ok(live)
    }
}
