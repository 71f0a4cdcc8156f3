//! Members ("collaborators") and groups: add, change role, remove, leave. Only the owner
//! grants or revokes `admin`; the owner can be neither removed nor demoted here.

use chrono::{DateTime, Utc};
use integration::project::{MemberAdded, MemberRemoved, MemberUpdated};
use integration::users::{SharedUserDirectory, UserSummary};
use kernel::auth::ProjectScope;
use kernel::list::{fetch_page, Field, Kind, ListQuery, ListSpec};
use kernel::rbac::{role_allows, Role};
use kernel::ApiError;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::projects::GRANTS;
use crate::Ctx;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: i64,
    pub project_id: i64,
    pub user_id: i64,
    pub role: String,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    pub invited_by: Option<i64>,
    pub joined_at: DateTime<Utc>,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

const COLUMNS: &str =
    "m.id, m.project_id, m.user_id, m.role, g.id AS group_id, g.name AS group_name, \
    m.invited_by, m.joined_at, m.username, m.email, m.first_name, m.last_name";
const FROM: &str = "FROM memberships m LEFT JOIN project_groups g \
    ON g.project_id = m.project_id AND g.role = m.role";

pub static LIST: ListSpec = ListSpec {
    filters: &[
        Field {
            name: "role",
            column: "m.role",
            kind: Kind::Text,
        },
        Field {
            name: "user_id",
            column: "m.user_id",
            kind: Kind::Int,
        },
    ],
    ordering: &[
        Field {
            name: "joined_at",
            column: "m.joined_at",
            kind: Kind::DateTime,
        },
        Field {
            name: "username",
            column: "m.username",
            kind: Kind::Text,
        },
    ],
    search: &["m.username", "m.email"],
    default_ordering: "joined_at",
    extra_params: &["project", "tenant_project_id", "user"],
};

impl MemberRow {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "project": self.project_id,
            "user": {
                "id": self.user_id,
                "username": self.username,
                "email": self.email,
                "first_name": self.first_name,
                "last_name": self.last_name,
            },
            "role": self.role,
            "group": self.group_id.map(|id| json!({"id": id, "name": self.group_name})),
            "invited_by": self.invited_by,
            "joined_at": self.joined_at,
        })
    }
}

/// The role of `user_id` in a live project.
pub async fn role_of(db: &PgPool, user_id: i64, project_id: i64) -> anyhow::Result<Option<Role>> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT m.role FROM memberships m JOIN projects p ON p.id = m.project_id \
         WHERE m.user_id = $1 AND m.project_id = $2 AND p.deleted_at IS NULL",
    )
    .bind(user_id)
    .bind(project_id)
    .fetch_optional(db)
    .await?;
    Ok(role.and_then(|r| r.parse().ok()))
}

pub async fn list(
    db: &PgPool,
    scope: &ProjectScope,
    query: &ListQuery,
) -> Result<(i64, Vec<MemberRow>), ApiError> {
    scope.require("project.view_member", &GRANTS)?;
    let project = scope.project_id();
    fetch_page(
        db,
        COLUMNS,
        &format!("{FROM} WHERE m.project_id = "),
        |qb| {
            qb.push_bind(project);
        },
        query,
        LIST.search,
    )
    .await
}

pub async fn get(
    db: impl PgExecutor<'_>,
    scope: &ProjectScope,
    id: i64,
) -> Result<MemberRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} {FROM} WHERE m.project_id = $1 AND m.id = $2"
    ))
    .bind(scope.project_id())
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(ApiError::not_found)
}

pub async fn by_user(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: i64,
) -> Result<Option<MemberRow>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} {FROM} WHERE m.project_id = $1 AND m.user_id = $2"
    ))
    .bind(project_id)
    .bind(user_id)
    .fetch_optional(db)
    .await?)
}

/// The role a request asks for: `role`, or `group` as a group id or name. Never `owner`.
pub async fn requested_role(
    db: &PgPool,
    scope: &ProjectScope,
    role: Option<&Value>,
    group: Option<&Value>,
) -> Result<Option<Role>, ApiError> {
    let role = match (role, group) {
        (Some(Value::String(r)), _) => {
            Some(r.parse::<Role>().map_err(|e| ApiError::field("role", e))?)
        }
        (Some(Value::Null) | None, Some(Value::Number(n))) => {
            let role: Option<String> = sqlx::query_scalar(
                "SELECT role FROM project_groups WHERE project_id = $1 AND id = $2",
            )
            .bind(scope.project_id())
            .bind(n.as_i64().unwrap_or(-1))
            .fetch_optional(db)
            .await?;
            Some(
                role.and_then(|r| r.parse().ok())
                    .ok_or_else(|| ApiError::field("group", "Unknown group."))?,
            )
        }
        (Some(Value::Null) | None, Some(Value::String(name))) => Some(
            name.parse::<Role>()
                .map_err(|_| ApiError::field("group", "Unknown group."))?,
        ),
        (Some(Value::Null) | None, None | Some(Value::Null)) => None,
        (Some(_), _) => return Err(ApiError::field("role", "A valid role is required.")),
        (_, Some(_)) => return Err(ApiError::field("group", "Unknown group.")),
    };
    if role == Some(Role::Owner) {
        return Err(ApiError::field(
            "role",
            "The owner role cannot be granted here; transfer ownership instead.",
        ));
    }
    Ok(role)
}

/// Only the owner grants or revokes admin.
fn check_admin_change(
    scope: &ProjectScope,
    from: Option<Role>,
    to: Option<Role>,
) -> Result<(), ApiError> {
    let touches_admin = from == Some(Role::Admin) || to == Some(Role::Admin);
    if touches_admin && scope.role() != Some(Role::Owner) && !scope.is_superuser() {
        return Err(ApiError::forbidden(
            "permission_denied",
            "Only the project owner can grant or revoke the admin role.",
        ));
    }
    Ok(())
}

pub fn users(ctx: &Ctx) -> Result<SharedUserDirectory, ApiError> {
    ctx.platform.lookup::<SharedUserDirectory>().ok_or_else(|| {
        ApiError::service_unavailable("User lookups are not available in this process.")
    })
}

/// Inserts a membership with the user's snapshot and records `project.member_added`.
pub async fn insert(
    ctx: &Ctx,
    tx: &mut PgConnection,
    project_id: i64,
    user: &UserSummary,
    role: Role,
    invited_by: Option<i64>,
) -> Result<MemberRow, ApiError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO memberships (project_id, user_id, role, invited_by, username, email, first_name, last_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id, user_id) DO NOTHING RETURNING id",
    )
    .bind(project_id)
    .bind(user.id)
    .bind(role.as_str())
    .bind(invited_by)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.first_name)
    .bind(&user.last_name)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| {
        ApiError::conflict(
            "already_member",
            "This user is already a member of the project.",
        )
    })?;
    ctx.outbox
        .record(
            &mut *tx,
            Some(project_id),
            invited_by,
            &MemberAdded {
                project_id,
                user_id: user.id,
                role: role.to_string(),
            },
        )
        .await?;
    sqlx::query_as(&format!("SELECT {COLUMNS} {FROM} WHERE m.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(Into::into)
}

pub async fn add(
    ctx: &Ctx,
    scope: &ProjectScope,
    user_id: i64,
    role: Option<Role>,
) -> Result<MemberRow, ApiError> {
    scope.require("project.add_member", &GRANTS)?;
    let role = role.unwrap_or(Role::Viewer);
    check_admin_change(scope, None, Some(role))?;
    let user = users(ctx)?
        .by_id(user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::field("user_id", "User not found."))?;
    let mut tx = ctx.pool.begin().await?;
    let member = insert(
        ctx,
        &mut tx,
        scope.project_id(),
        &user,
        role,
        Some(scope.user_id()),
    )
    .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(member)
}

pub async fn change_role(
    ctx: &Ctx,
    scope: &ProjectScope,
    id: i64,
    role: Role,
) -> Result<MemberRow, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let member = sqlx::query_as::<_, MemberRow>(&format!(
        "SELECT {COLUMNS} {FROM} WHERE m.project_id = $1 AND m.id = $2 FOR UPDATE OF m"
    ))
    .bind(scope.project_id())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    scope.require("project.change_member", &GRANTS)?;
    let previous: Role = member.role.parse().map_err(ApiError::internal)?;
    if previous == Role::Owner {
        return Err(ApiError::rule(
            "owner_cannot_leave",
            "The owner cannot be demoted; transfer ownership first.",
        ));
    }
    check_admin_change(scope, Some(previous), Some(role))?;
    if previous != role {
        sqlx::query("UPDATE memberships SET role = $2 WHERE id = $1")
            .bind(id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        ctx.outbox
            .record(
                &mut tx,
                Some(scope.project_id()),
                Some(scope.user_id()),
                &MemberUpdated {
                    project_id: scope.project_id(),
                    user_id: member.user_id,
                    role: role.to_string(),
                    previous_role: previous.to_string(),
                },
            )
            .await?;
    }
    let member = get(&mut *tx, scope, id).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(member)
}

/// Removes a member (`delete_member`), or the caller themself (leave).
pub async fn remove(ctx: &Ctx, scope: &ProjectScope, id: i64) -> Result<(), ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let member = sqlx::query_as::<_, MemberRow>(&format!(
        "SELECT {COLUMNS} {FROM} WHERE m.project_id = $1 AND m.id = $2 FOR UPDATE OF m"
    ))
    .bind(scope.project_id())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    let role: Role = member.role.parse().map_err(ApiError::internal)?;
    if role == Role::Owner {
        return Err(ApiError::rule(
            "owner_cannot_leave",
            "The owner cannot leave or be removed; transfer ownership first.",
        ));
    }
    if member.user_id != scope.user_id() {
        scope.require("project.delete_member", &GRANTS)?;
        check_admin_change(scope, Some(role), None)?;
    }
    sqlx::query("DELETE FROM memberships WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &MemberRemoved {
                project_id: scope.project_id(),
                user_id: member.user_id,
                role: role.to_string(),
            },
        )
        .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub role: String,
}

/// Every codename of this service (for the groups' permission lists).
pub const CODENAMES: &[&str] = &[
    "project.view_project",
    "project.add_project",
    "project.change_project",
    "project.delete_project",
    "project.transfer_project",
    "project.view_member",
    "project.add_member",
    "project.change_member",
    "project.delete_member",
    "project.view_invitation",
    "project.add_invitation",
    "project.change_invitation",
    "project.delete_invitation",
    "project.view_setting",
    "project.add_setting",
    "project.change_setting",
    "project.delete_setting",
    "project.view_attachment",
    "project.add_attachment",
    "project.change_attachment",
    "project.delete_attachment",
    "project.view_webhook",
    "project.add_webhook",
    "project.change_webhook",
    "project.delete_webhook",
    "project.view_feature",
];

pub async fn groups(db: &PgPool, scope: &ProjectScope) -> Result<Vec<Value>, ApiError> {
    scope.require("project.view_project", &GRANTS)?;
    let rows: Vec<GroupRow> = sqlx::query_as(
        "SELECT id, name, role FROM project_groups WHERE project_id = $1 ORDER BY id",
    )
    .bind(scope.project_id())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|g| {
            let permissions: Vec<&str> = match g.role.parse::<Role>() {
                Ok(role) => CODENAMES
                    .iter()
                    .copied()
                    .filter(|c| role_allows(role, c, &GRANTS))
                    .collect(),
                Err(_) => Vec::new(),
            };
            json!({"id": g.id, "name": g.name, "role": g.role, "permissions": permissions})
        })
        .collect())
}

/// Consumes `user.updated`: members' snapshots follow the user's identity (once per event).
pub struct SnapshotUpdater {
    pub pool: PgPool,
}

#[async_trait::async_trait]
impl kernel::events::EventHandler for SnapshotUpdater {
    async fn handle(&self, envelope: &kernel::events::Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<integration::users::UserUpdated>() else {
            return Ok(());
        };
        let event = event?;
        let Some(mut tx) = kernel::events::begin_once(&self.pool, "project", envelope).await?
        else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE memberships SET username = $2, email = $3, first_name = $4, last_name = $5 \
             WHERE user_id = $1",
        )
        .bind(event.user_id)
        .bind(&event.username)
        .bind(&event.email)
        .bind(&event.first_name)
        .bind(&event.last_name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
