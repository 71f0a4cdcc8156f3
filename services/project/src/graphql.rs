//! `/graphql/project`: thin adapters over the same service functions as REST (contract §8:
//! `projects`, `project`, `attachments`, `attachment`, `projectSettings`, plus the member and
//! invitation mutations).

use async_graphql::{Context, EmptySubscription, Json, Object, Schema};
use axum::Router;
use kernel::auth::ProjectScope;
use kernel::graphql::{principal, project_scope, to_graphql_error};
use kernel::list::{parse_graphql_filter, ListQuery, Page};
use kernel::ApiError;
use serde_json::Value;

use crate::api::projects::project_json;
use crate::attachments::Urls;
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

#[derive(async_graphql::InputObject, Default)]
pub struct Pagination {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A list query from GraphQL arguments over the same allow-lists as REST.
fn list_query(
    spec: &'static kernel::list::ListSpec,
    search: Option<String>,
    filter: Option<Json<Value>>,
    pagination: Option<Pagination>,
) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::from_query(spec, None)?;
    if let Some(Json(filter)) = filter {
        query.filter = parse_graphql_filter(spec, &filter)?;
    }
    query.search = search
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let p = pagination.unwrap_or_default();
    if p.limit.is_some_and(|l| l < 0) || p.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::field(
            "pagination",
            "Pagination values must not be negative.",
        ));
    }
    query.page = Page::Offset {
        limit: p.limit.unwrap_or(20).clamp(1, 100),
        offset: p.offset.unwrap_or(0),
    };
    Ok(query)
}

/// `name` = title (the quick-start's Apollo query), camelCase keys.
fn camel(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (kernel::list::camel_case(&k), camel(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel).collect()),
        other => other,
    }
}

fn connection(total: i64, results: Vec<Value>) -> Json<Value> {
    Json(serde_json::json!({"totalCount": total, "results": results}))
}

pub struct Query;

#[Object]
impl Query {
    /// The caller's projects.
    async fn projects(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        pagination: Option<Pagination>,
    ) -> GqlResult<Json<Value>> {
        let ctx = ctx(c)?;
        let principal = principal(c)?;
        let query = list_query(&projects::LIST, search, filter, pagination).map_err(gql)?;
        let (total, rows) = projects::list(&ctx.pool, &principal, &query)
            .await
            .map_err(gql)?;
        let urls = urls(c, ctx);
        Ok(connection(
            total,
            rows.iter().map(|r| camel(project_json(r, &urls))).collect(),
        ))
    }

    /// One project by id or unique identifier (members only).
    async fn project(&self, c: &Context<'_>, id: String) -> GqlResult<Option<Json<Value>>> {
        let ctx = ctx(c)?;
        let scope = crate::api::key_scope(ctx, &principal(c)?, &id)
            .await
            .map_err(gql)?;
        let row = projects::get(&ctx.pool, &scope).await.map_err(gql)?;
        Ok(Some(Json(camel(project_json(&row, &urls(c, ctx))))))
    }

    async fn attachments(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        pagination: Option<Pagination>,
    ) -> GqlResult<Json<Value>> {
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let query = list_query(&attachments::LIST, search, filter, pagination).map_err(gql)?;
        let (total, rows) = attachments::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        let urls = urls(c, ctx);
        let mut results = Vec::new();
        for row in &rows {
            results.push(camel(row.to_json(ctx, &urls).await.map_err(gql)?));
        }
        Ok(connection(total, results))
    }

    async fn attachment(&self, c: &Context<'_>, id: i64) -> GqlResult<Option<Json<Value>>> {
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let row = attachments::get(&ctx.pool, &scope, id).await.map_err(gql)?;
        let body = row.to_json(ctx, &urls(c, ctx)).await.map_err(gql)?;
        Ok(Some(Json(camel(body))))
    }

    /// Settings of the caller's current project.
    async fn project_settings(
        &self,
        c: &Context<'_>,
        pagination: Option<Pagination>,
    ) -> GqlResult<Json<Value>> {
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let query = list_query(&settings::LIST, None, None, pagination).map_err(gql)?;
        let (total, rows) = settings::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        Ok(connection(
            total,
            rows.iter().map(|r| camel(r.to_json())).collect(),
        ))
    }

    /// Members of the caller's current project.
    async fn members(
        &self,
        c: &Context<'_>,
        search: Option<String>,
        filter: Option<Json<Value>>,
        pagination: Option<Pagination>,
    ) -> GqlResult<Json<Value>> {
        let ctx = ctx(c)?;
        let scope = project_scope(c).await?;
        let query = list_query(&members::LIST, search, filter, pagination).map_err(gql)?;
        let (total, rows) = members::list(&ctx.pool, &scope, &query)
            .await
            .map_err(gql)?;
        Ok(connection(
            total,
            rows.iter().map(|m| camel(m.to_json())).collect(),
        ))
    }
}

pub struct Mutation;

async fn current<'a>(c: &Context<'a>) -> GqlResult<(&'a Ctx, ProjectScope)> {
    Ok((ctx(c)?, project_scope(c).await?))
}

#[Object]
impl Mutation {
    async fn create_project(
        &self,
        c: &Context<'_>,
        title: String,
        username: Option<String>,
        description: Option<String>,
    ) -> GqlResult<Json<Value>> {
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
        Ok(Json(camel(project_json(&row, &urls(c, ctx)))))
    }

    async fn update_project(
        &self,
        c: &Context<'_>,
        title: Option<String>,
        description: Option<String>,
    ) -> GqlResult<Json<Value>> {
        let (ctx, scope) = current(c).await?;
        let input = projects::ProjectInput {
            title,
            description,
            ..Default::default()
        };
        let row = projects::update(ctx, &scope, input).await.map_err(gql)?;
        Ok(Json(camel(project_json(&row, &urls(c, ctx)))))
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
    ) -> GqlResult<Json<Value>> {
        let (ctx, scope) = current(c).await?;
        let role =
            members::requested_role(&ctx.pool, &scope, role.map(Value::String).as_ref(), None)
                .await
                .map_err(gql)?;
        Ok(Json(camel(
            members::add(ctx, &scope, user_id, role)
                .await
                .map_err(gql)?
                .to_json(),
        )))
    }

    async fn change_member_role(
        &self,
        c: &Context<'_>,
        id: i64,
        role: String,
    ) -> GqlResult<Json<Value>> {
        let (ctx, scope) = current(c).await?;
        let role = members::requested_role(&ctx.pool, &scope, Some(&Value::String(role)), None)
            .await
            .map_err(gql)?
            .ok_or_else(|| gql(ApiError::field("role", "This field is required.")))?;
        Ok(Json(camel(
            members::change_role(ctx, &scope, id, role)
                .await
                .map_err(gql)?
                .to_json(),
        )))
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
    ) -> GqlResult<Json<Value>> {
        let (ctx, scope) = current(c).await?;
        let role =
            members::requested_role(&ctx.pool, &scope, role.map(Value::String).as_ref(), None)
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
        Ok(Json(camel(row.to_json())))
    }

    async fn accept_invitation(&self, c: &Context<'_>, token: String) -> GqlResult<Json<Value>> {
        let ctx = ctx(c)?;
        let member = invitations::accept(ctx, &principal(c)?, &token)
            .await
            .map_err(gql)?;
        Ok(Json(camel(member.to_json())))
    }

    async fn set_project_setting(
        &self,
        c: &Context<'_>,
        key: String,
        value: Json<Value>,
    ) -> GqlResult<Json<Value>> {
        let (ctx, scope) = current(c).await?;
        let row = match settings::get(&ctx.pool, &scope, &key).await {
            Ok(_) => settings::update(ctx, &scope, &key, Some(value.0), None).await,
            Err(e) if e.status().as_u16() == 404 => {
                settings::create(ctx, &scope, &key, value.0, "").await
            }
            Err(e) => Err(e),
        }
        .map_err(gql)?;
        Ok(Json(camel(row.to_json())))
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
