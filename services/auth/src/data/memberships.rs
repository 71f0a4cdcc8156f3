//! Auth's projection of project memberships, read by change_project, refresh and the kernel's
//! project-scope check.

use async_trait::async_trait;
use kernel::auth::MembershipDirectory;
use kernel::rbac::Role;
use sqlx::PgPool;

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
pub async fn upsert_project(db: &PgPool, project_id: i64, owner_id: i64) -> anyhow::Result<()> {
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
    db: &PgPool,
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

/// The in-process directory the kernel asks when `X-Project-ID` names another project.
pub struct Directory(pub PgPool);

#[async_trait]
impl MembershipDirectory for Directory {
    async fn role_of(&self, user_id: i64, project_id: i64) -> anyhow::Result<Option<Role>> {
        role_of(&self.0, user_id, project_id).await
    }

    async fn project_exists(&self, project_id: i64) -> anyhow::Result<bool> {
        project_exists(&self.0, project_id).await
    }
}
