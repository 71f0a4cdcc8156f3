//! `/graphql/project`: typed objects and connections over the same service functions as REST
//! (contract §8: `projects`, `project`, `attachments`, `attachment`, `projectSettings`, plus
//! members, invitations and their mutations). camelCase; `name` = title.

use async_graphql::{Context, EmptySubscription, Json, Object, Schema, SimpleObject};
use axum::Router;
use chrono::{DateTime, Utc};
use kernel::auth::ProjectScope;
use kernel::graphql::{
    principal, project_scope, to_graphql_error, window, PaginationInput, Window, WindowArgs,
};
use kernel::graphql_connection;
use kernel::list::{parse_graphql_filter, parse_graphql_order, ListQuery, ListSpec, Page};
use kernel::ApiError;
use serde_json::Value;

use crate::attachments::{AttachmentRow, Urls};
use crate::invitations::InvitationRow;
use crate::members::MemberRow;
use crate::projects::ProjectRow;
use crate::settings::SettingRow;
use crate::{attachments, invitations, members, projects, settings, Ctx};

type GqlResult<T> = async_graphql::Result<T>;

fn gql(e: ApiError) -> async_graphql::Error {
    to_graphql_error(&e)
}

fn ctx<'a>(c: &Context<'a>) -> GqlResult<&'a Ctx> {
    c.data::<Ctx>()
}

fn urls(c: &Context<'_>, ctx: &Ctx) -> Urls {
    let headers = c
        .data_opt::<axum::http::HeaderMap>()
        .cloned()
        .unwrap_or_default();
    crate::api::urls(ctx, &headers)
}

#[derive(SimpleObject, Clone)]
pub struct Logo {
    pub id: i64,
    pub url: String,
    pub path: String,
}

#[derive(SimpleObject, Clone)]
pub struct Language {
    pub code: String,
    pub name: String,
}

#[derive(SimpleObject, Clone)]
pub struct Project {
    pub id: i64,
    pub title: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub username: String,
    pub unique_identifier: String,
    pub template: String,
    pub owner_id: i64,
    pub logo: Option<Logo>,
    pub features: Vec<String>,
    pub supported_languages: Vec<Language>,
    pub default_language: String,
    pub is_active: bool,
    /// The caller's role in it.
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Project {
    fn from_row(row: &ProjectRow, urls: &Urls) -> Self {
        let languages = row
            .supported_languages
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| Language {
                        code: l["code"].as_str().unwrap_or_default().to_owned(),
                        name: l["name"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            id: row.id,
            title: row.title.clone(),
            name: row.title.clone(),
            display_name: row.title.clone(),
            description: row.description.clone(),
            username: row.username.clone(),
            unique_identifier: row.unique_identifier.clone(),
            template: row.template.clone(),
            owner_id: row.owner_id,
            logo: match (row.logo_attachment_id, &row.logo_key) {
                (Some(id), Some(key)) => Some(Logo {
                    id,
                    url: urls.public(key),
                    path: urls.public(key),
                }),
                _ => None,
            },
            features: row.features.clone(),
            supported_languages: languages,
            default_language: row.default_language.clone(),
            is_active: row.is_active,
            role: row.role.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct MemberUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(SimpleObject, Clone)]
pub struct Group {
    pub id: i64,
    pub name: String,
}

#[derive(SimpleObject, Clone)]
pub struct Member {
    pub id: i64,
    pub user_id: i64,
    pub project_id: i64,
    pub user: MemberUser,
    pub role: String,
    pub group: Option<Group>,
    pub invited_by: Option<i64>,
    pub joined_at: DateTime<Utc>,
}

impl From<&MemberRow> for Member {
    fn from(m: &MemberRow) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            project_id: m.project_id,
            user: MemberUser {
                id: m.user_id,
                username: m.username.clone(),
                email: m.email.clone(),
                first_name: m.first_name.clone(),
                last_name: m.last_name.clone(),
            },
            role: m.role.clone(),
            group: m.group_id.map(|id| Group {
                id,
                name: m.group_name.clone().unwrap_or_default(),
            }),
            invited_by: m.invited_by,
            joined_at: m.joined_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct Inviter {
    pub id: i64,
    pub username: String,
}

#[derive(SimpleObject, Clone)]
pub struct Invitation {
    pub id: i64,
    pub project_id: i64,
    pub email: String,
    pub role: String,
    pub status: String,
    pub message: String,
    pub invited_by: Inviter,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&InvitationRow> for Invitation {
    fn from(r: &InvitationRow) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            email: r.email.clone(),
            role: r.role.clone(),
            status: r.status.clone(),
            message: r.message.clone(),
            invited_by: Inviter {
                id: r.invited_by_id,
                username: r.invited_by_username.clone(),
            },
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            created_at: r.created_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct ProjectSetting {
    pub id: i64,
    pub key: String,
    pub value: Json<Value>,
    pub description: String,
    pub project: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&SettingRow> for ProjectSetting {
    fn from(r: &SettingRow) -> Self {
        Self {
            id: r.id,
            key: r.key.clone(),
            value: Json(r.value.clone()),
            description: r.description.clone(),
            project: r.project_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct Dimensions {
    pub width: i32,
    pub height: i32,
}

#[derive(SimpleObject, Clone)]
pub struct Attachment {
    pub id: i64,
    pub original_name: String,
    pub file_name: String,
    pub file_type: String,
    pub mime_type: String,
    pub size: i64,
    pub file_size: i64,
    pub upload_status: String,
    pub file_url: Option<String>,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub tenant_project_id: i64,
    pub project: i64,
    pub visibility: String,
    pub description: String,
    pub dimensions: Option<Dimensions>,
    pub checksum_sha256: Option<String>,
    pub uploaded_by: Inviter,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Attachment {
    async fn from_row(row: &AttachmentRow, ctx: &Ctx, urls: &Urls) -> Result<Self, ApiError> {
        let file_url = match row.upload_status.as_str() {
            "completed" => Some(
                urls.read(
                    ctx.platform.storage(),
                    &row.storage_key,
                    row.visibility == "public",
                    std::time::Duration::from_secs(3600),
                )
                .await?,
            ),
            _ => None,
        };
        Ok(Self {
            id: row.id,
            original_name: row.original_name.clone(),
            file_name: row.original_name.clone(),
            file_type: row.category.clone(),
            mime_type: row.mime_type.clone(),
            size: row.size,
            file_size: row.size,
            upload_status: row.upload_status.clone(),
            file_url,
            entity_type: row.entity_type.clone(),
            entity_id: row.entity_id.clone(),
            tenant_project_id: row.project_id,
            project: row.project_id,
            visibility: row.visibility.clone(),
            description: row.description.clone(),
            dimensions: row
                .width
                .zip(row.height)
                .map(|(width, height)| Dimensions { width, height }),
            checksum_sha256: row.checksum_sha256.clone(),
            uploaded_by: Inviter {
                id: row.uploaded_by_id,
                username: row.uploaded_by_username.clone(),
            },
            uploaded_at: row.uploaded_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

graphql_connection!(ProjectConnection, ProjectEdge, Project);
graphql_connection!(MemberConnection, MemberEdge, Member);
graphql_connection!(InvitationConnection, InvitationEdge, Invitation);
graphql_connection!(ProjectSettingConnection, ProjectSettingEdge, ProjectSetting);
graphql_connection!(AttachmentConnection, AttachmentEdge, Attachment);

/// The list arguments of conventions.md §7.1, shared by every list field.
#[derive(Default)]
pub struct ListArgs {
    pub search: Option<String>,
    pub filter: Option<Json<Value>>,
    pub order_by: Option<Json<Value>>,
    pub pagination: Option<PaginationInput>,
    pub first: Option<i64>,
    pub after: Option<String>,
    pub last: Option<i64>,
    pub before: Option<String>,
}

/// A list query over the same allow-lists as REST, and its window.
fn list_query(spec: &'static ListSpec, args: ListArgs) -> Result<(ListQuery, Window), ApiError> {
    let mut query = ListQuery::from_query(spec, None)?;
    if let Some(Json(filter)) = &args.filter {
        query.filter = parse_graphql_filter(spec, filter)?;
    }
    if let Some(Json(order)) = &args.order_by {
        query.ordering = parse_graphql_order(spec, order)?;
    }
    query.search = args
        .search
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let pagination = args.pagination.unwrap_or_default();
    let window = window(
        &WindowArgs {
            pagination_offset: pagination.offset,
            pagination_limit: pagination.limit,
            first: args.first,
            after: args.after,
            last: args.last,
            before: args.before,
            ..WindowArgs::default()
        },
        20,
        |_| None,
    )?;
    query.page = Page::Offset {
        limit: window.limit,
        offset: window.offset,
    };
    Ok((query, window))
}

pub struct Query;

// GraphQL list fields take the conventions' eight list arguments.
#[allow(clippy::too_many_arguments)]
#[Object]
impl Query {
    /// The caller's projects.
    async fn projects(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        order_by: Option<Json<Value>>,
        pagination: Option<PaginationInput>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<ProjectConnection> {
        let args = ListArgs {
            search,
            filter,
            order_by,
            pagination,
            first,
            after,
            last,
            before,
        };
        let ctx = ctx(c)?;
        let principal = principal(c)?;
        let (query, window) = list_query(&projects::LIST, args).map_err(gql)?;
        let (total, rows) = projects::list(&ctx.pool, &principal, &query)
            .await
            .map_err(gql)?;
        let urls = urls(c, ctx);
        Ok(ProjectConnection::new(
            window,
            rows.iter().map(|r| Project::from_row(r, &urls)).collect(),
            total,
        ))
    }

    /// One project by id or unique identifier (members only).
    async fn project(&self, c: &Context<'_>, id: String) -> GqlResult<Option<Project>> {
        let ctx = ctx(c)?;
        let scope = crate::api::key_scope(ctx, &principal(c)?, &id)
            .await
            .map_err(gql)?;
        let row = projects::get(&ctx.pool, &scope).await.map_err(gql)?;
        Ok(Some(Project::from_row(&row, &urls(c, ctx))))
    }

    /// Files of the caller's current project.
    async fn attachments(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        order_by: Option<Json<Value>>,
        pagination: Option<PaginationInput>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<AttachmentConnection> {
        let args = ListArgs {
            search,
            filter,
            order_by,
            pagination,
            first,
            after,
            last,
            before,
        };
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let (query, window) = list_query(&attachments::LIST, args).map_err(gql)?;
        let (total, rows) = attachments::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        let urls = urls(c, ctx);
        let mut nodes = Vec::with_capacity(rows.len());
        for row in &rows {
            nodes.push(Attachment::from_row(row, ctx, &urls).await.map_err(gql)?);
        }
        Ok(AttachmentConnection::new(window, nodes, total))
    }

    async fn attachment(&self, c: &Context<'_>, id: i64) -> GqlResult<Option<Attachment>> {
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let row = attachments::get(&ctx.pool, &scope, id).await.map_err(gql)?;
        Ok(Some(
            Attachment::from_row(&row, ctx, &urls(c, ctx))
                .await
                .map_err(gql)?,
        ))
    }

    /// Settings of the caller's current project.
    async fn project_settings(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        order_by: Option<Json<Value>>,
        pagination: Option<PaginationInput>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<ProjectSettingConnection> {
        let args = ListArgs {
            search,
            filter,
            order_by,
            pagination,
            first,
            after,
            last,
            before,
        };
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let (query, window) = list_query(&settings::LIST, args).map_err(gql)?;
        let (total, rows) = settings::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        Ok(ProjectSettingConnection::new(
            window,
            rows.iter().map(Into::into).collect(),
            total,
        ))
    }

    /// Members of the caller's current project.
    async fn members(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        order_by: Option<Json<Value>>,
        pagination: Option<PaginationInput>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<MemberConnection> {
        let args = ListArgs {
            search,
            filter,
            order_by,
            pagination,
            first,
            after,
            last,
            before,
        };
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let (query, window) = list_query(&members::LIST, args).map_err(gql)?;
        let (total, rows) = members::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        Ok(MemberConnection::new(
            window,
            rows.iter().map(Into::into).collect(),
            total,
        ))
    }

    /// Invitations of the caller's current project.
    async fn invitations(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        order_by: Option<Json<Value>>,
        pagination: Option<PaginationInput>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<InvitationConnection> {
        let args = ListArgs {
            search,
            filter,
            order_by,
            pagination,
            first,
            after,
            last,
            before,
        };
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let (query, window) = list_query(&invitations::LIST, args).map_err(gql)?;
        let (total, rows) = invitations::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        Ok(InvitationConnection::new(
            window,
            rows.iter().map(Into::into).collect(),
            total,
        ))
    }
}

pub struct Mutation;

async fn current<'a>(c: &Context<'a>) -> GqlResult<(&'a Ctx, ProjectScope)> {
    Ok((ctx(c)?, project_scope(c).await?))
}

fn role_arg(role: Option<String>) -> Option<Value> {
    role.map(Value::String)
}

#[Object]
impl Mutation {
    async fn create_project(
        &self,
        c: &Context<'_>,
        title: String,
        username: Option<String>,
        description: Option<String>,
    ) -> GqlResult<Project> {
        let ctx = ctx(c)?;
        let input = projects::ProjectInput {
            title: Some(title),
            username,
            description,
            ..Default::default()
        };
        let row = projects::create(ctx, &principal(c)?, input)
            .await
            .map_err(gql)?;
        Ok(Project::from_row(&row, &urls(c, ctx)))
    }

    /// Updates the caller's current project.
    async fn update_project(
        &self,
        c: &Context<'_>,
        title: Option<String>,
        description: Option<String>,
    ) -> GqlResult<Project> {
        let (ctx, scope) = current(c).await?;
        let input = projects::ProjectInput {
            title,
            description,
            ..Default::default()
        };
        let row = projects::update(ctx, &scope, input).await.map_err(gql)?;
        Ok(Project::from_row(&row, &urls(c, ctx)))
    }

    async fn delete_project(&self, c: &Context<'_>) -> GqlResult<bool> {
        let (ctx, scope) = current(c).await?;
        projects::delete(ctx, &scope).await.map_err(gql)?;
        Ok(true)
    }

    async fn add_member(
        &self,
        c: &Context<'_>,
        user_id: i64,
        role: Option<String>,
    ) -> GqlResult<Member> {
        let (ctx, scope) = current(c).await?;
        let role = members::requested_role(&ctx.pool, &scope, role_arg(role).as_ref(), None)
            .await
            .map_err(gql)?;
        Ok((&members::add(ctx, &scope, user_id, role)
            .await
            .map_err(gql)?)
            .into())
    }

    async fn change_member_role(
        &self,
        c: &Context<'_>,
        id: i64,
        role: String,
    ) -> GqlResult<Member> {
        let (ctx, scope) = current(c).await?;
        let role = members::requested_role(&ctx.pool, &scope, role_arg(Some(role)).as_ref(), None)
            .await
            .map_err(gql)?
            .ok_or_else(|| gql(ApiError::field("role", "This field is required.")))?;
        Ok((&members::change_role(ctx, &scope, id, role)
            .await
            .map_err(gql)?)
            .into())
    }

    async fn remove_member(&self, c: &Context<'_>, id: i64) -> GqlResult<bool> {
        let (ctx, scope) = current(c).await?;
        members::remove(ctx, &scope, id).await.map_err(gql)?;
        Ok(true)
    }

    async fn invite(
        &self,
        c: &Context<'_>,
        email: String,
        role: Option<String>,
        message: Option<String>,
    ) -> GqlResult<Invitation> {
        let (ctx, scope) = current(c).await?;
        let role = members::requested_role(&ctx.pool, &scope, role_arg(role).as_ref(), None)
            .await
            .map_err(gql)?;
        let project = projects::get(&ctx.pool, &scope).await.map_err(gql)?;
        let (row, _) = invitations::create(
            ctx,
            &scope,
            &project.title,
            invitations::NewInvitation {
                email,
                role,
                message: message.unwrap_or_default(),
            },
        )
        .await
        .map_err(gql)?;
        Ok((&row).into())
    }

    async fn accept_invitation(&self, c: &Context<'_>, token: String) -> GqlResult<Member> {
        let ctx = ctx(c)?;
        Ok((&invitations::accept(ctx, &principal(c)?, &token)
            .await
            .map_err(gql)?)
            .into())
    }

    /// Creates or updates a setting of the caller's current project.
    async fn set_project_setting(
        &self,
        c: &Context<'_>,
        key: String,
        value: Json<Value>,
    ) -> GqlResult<ProjectSetting> {
        let (ctx, scope) = current(c).await?;
        let row = match settings::get(&ctx.pool, &scope, &key).await {
            Ok(_) => settings::update(ctx, &scope, &key, Some(value.0), None).await,
            Err(e) if e.status().as_u16() == 404 => {
                settings::create(ctx, &scope, &key, value.0, "").await
            }
            Err(e) => Err(e),
        }
        .map_err(gql)?;
        Ok((&row).into())
    }

    async fn delete_attachment(&self, c: &Context<'_>, id: i64) -> GqlResult<bool> {
        let (ctx, scope) = current(c).await?;
        attachments::delete(ctx, &scope, id).await.map_err(gql)?;
        Ok(true)
    }
}

pub fn routes(ctx: Ctx) -> Router {
    let schema = Schema::build(Query, Mutation, EmptySubscription)
        .data(ctx)
        .limit_depth(10)
        .limit_complexity(500)
        .finish();
    kernel::graphql::routes(schema, "/graphql/project")
}
