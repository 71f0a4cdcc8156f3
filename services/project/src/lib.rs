//! The project service: tenants (projects), who belongs to them (members, roles, invitations),
//! per-project settings and features, and the files every suite uploads (contract project.md).

pub mod api;
pub mod attachments;
pub mod graphql;
pub mod invitations;
pub mod members;
pub mod projects;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use kernel::events::Outbox;
use kernel::routing::{delete, get, patch, post, Routes};
use kernel::service::{mount, MountedService, ServiceSpec};
use kernel::Platform;
use sqlx::migrate::Migrator;
use sqlx::PgPool;
use utoipa::OpenApi;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "project",
    health_name: "zv-project-service",
    public_paths: &[
        "/projects/by-username",
        "/project/projects/by-username",
        "/info",
        "/project/info",
        "/data/languages",
        "/project/data/languages",
        // Token-bearing links (GET is public; accept needs a bearer, checked by the handler).
        "/invitations",
        "/project/invitations",
        // Public objects and signed URLs (the signature is the credential).
        "/media",
        "/project/media",
    ],
    public_exact: &[],
};

/// What every handler and service function of this service works with.
#[derive(Clone)]
pub struct Ctx {
    pub platform: Platform,
    pub pool: PgPool,
    pub outbox: Outbox,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ZoneVast project service", version = "1"),
    paths(
        api::projects::list,
        api::projects::create,
        api::projects::retrieve,
        api::projects::update,
        api::projects::destroy,
        api::projects::by_username,
        api::projects::info,
        api::projects::languages,
        api::projects::features,
        api::members::list,
        api::members::add,
        api::members::update,
        api::members::remove,
        api::members::check_membership,
        api::members::users,
        api::members::groups,
        api::invitations::list,
        api::invitations::create,
        api::invitations::revoke,
        api::invitations::show,
        api::invitations::accept,
        api::invitations::decline,
        api::invitations::mine,
        api::settings::list,
        api::settings::create,
        api::settings::retrieve,
        api::settings::update,
        api::settings::destroy,
        api::attachments::list,
        api::attachments::retrieve,
        api::attachments::direct_upload,
        api::attachments::presign,
        api::attachments::confirm,
        api::attachments::update,
        api::attachments::destroy,
        api::attachments::destroy_alias,
        api::attachments::destroy_with_message,
        api::attachments::serve_media,
        api::attachments::local_upload,
        api::attachments::download_url,
    )
)]
pub struct ProjectApi;

fn routes() -> Routes<Ctx> {
    use api::{attachments as a, invitations as i, members as m, projects as p, settings as s};
    let r = Routes::new();
    let r = r.at("project", &["projects"], get(p::list).post(p::create));
    let r = r.at(
        "project",
        &["projects/{key}"],
        get(p::retrieve)
            .patch(p::update)
            .put(p::update)
            .delete(p::destroy),
    );
    let r = r.at(
        "project",
        &["projects/by-username/{username}"],
        get(p::by_username),
    );
    let r = r.at("project", &["info/{username}"], get(p::info));
    let r = r.at("project", &["data/languages"], get(p::languages));
    let r = r.at("project", &["{username}/features"], get(p::features));
    let r = r.at(
        "project",
        &["{username}/account/collaborators", "account/collaborators"],
        get(m::list).post(m::add),
    );
    let r = r.at(
        "project",
        &[
            "{username}/account/collaborators/check_membership",
            "account/collaborators/check_membership",
        ],
        get(m::check_membership),
    );
    let r = r.at(
        "project",
        &[
            "{username}/account/collaborators/{id}",
            "account/collaborators/{id}",
        ],
        patch(m::update).put(m::update).delete(m::remove),
    );
    let r = r.at("project", &["{username}/account/users"], get(m::users));
    let r = r.at("project", &["{username}/groups"], get(m::groups));
    let r = r.at(
        "project",
        &["{username}/account/invitations"],
        get(i::list).post(i::create),
    );
    let r = r.at(
        "project",
        &["{username}/account/invitations/{id}"],
        delete(i::revoke),
    );
    let r = r.at("project", &["invitations/mine"], get(i::mine));
    let r = r.at("project", &["invitations/{token}"], get(i::show));
    let r = r.at("project", &["invitations/{token}/accept"], post(i::accept));
    let r = r.at(
        "project",
        &["invitations/{token}/decline"],
        post(i::decline),
    );
    let r = r.at(
        "project",
        &["{username}/settings"],
        get(s::list).post(s::create),
    );
    let r = r.at(
        "project",
        &["{username}/settings/{id}"],
        get(s::retrieve)
            .patch(s::update)
            .put(s::update)
            .delete(s::destroy),
    );
    let r = r.at("project", &["attachment"], get(a::list));
    let r = r.at(
        "project",
        &["attachment/direct-upload"],
        post(a::direct_upload),
    );
    let r = r.at("project", &["attachment/presigned-url"], post(a::presign));
    let r = r.at("project", &["attachment/confirm-upload"], post(a::confirm));
    let r = r.at(
        "project",
        &["attachment/{id}"],
        get(a::retrieve)
            .patch(a::update)
            .put(a::update)
            .delete(a::destroy),
    );
    let r = r.at(
        "project",
        &["attachment/{id}/delete"],
        delete(a::destroy_alias).post(a::destroy_with_message),
    );
    let r = r.at(
        "project",
        &["attachment/{id}/download-url"],
        post(a::download_url),
    );
    let r = r.at("project", &["media/upload"], post(a::local_upload));
    r.at("project", &["media/{*key}"], get(a::serve_media))
}

/// The project service's own answer to "which role does U hold in P" (its tables are the
/// source of truth; auth keeps an event-fed projection of them).
pub struct Directory(pub PgPool);

#[async_trait::async_trait]
impl kernel::auth::MembershipDirectory for Directory {
    async fn role_of(
        &self,
        user_id: i64,
        project_id: i64,
    ) -> anyhow::Result<Option<kernel::rbac::Role>> {
        members::role_of(&self.0, user_id, project_id).await
    }

    async fn project_exists(&self, project_id: i64) -> anyhow::Result<bool> {
        Ok(projects::live_exists(&self.0, project_id).await?)
    }
}

/// Opens the database, starts the event relay and the sweeper, and returns the service.
pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let pool = kernel::db::open_service_pool(platform.config(), SPEC.name, &MIGRATOR).await?;
    kernel::events::install(&pool).await?;
    // Alone (`zv serve project`), this service answers the kernel's membership check itself;
    // beside auth, auth's projection (installed first) does.
    platform.set_memberships(Arc::new(Directory(pool.clone())));
    let outbox = Outbox::new(pool.clone(), SPEC.name, platform.events().clone());
    outbox.spawn_relay();
    // Removes deleted attachments' objects (retried by the relay until storage answers).
    platform.events().subscribe(
        "project",
        &["attachment.deleted"],
        Arc::new(attachments::ObjectCleaner {
            storage: platform.storage().clone(),
        }),
    );
    platform.events().subscribe(
        "project",
        &["user.updated"],
        Arc::new(members::SnapshotUpdater { pool: pool.clone() }),
    );
    let ctx = Ctx {
        platform: platform.clone(),
        pool: pool.clone(),
        outbox,
    };
    platform.provide::<integration::files::SharedProjectFiles>(Arc::new(attachments::Files(
        ctx.clone(),
    )));
    tokio::spawn(sweeper(ctx.clone()));
    let graphql = graphql::routes(ctx.clone());
    let (router, api) = routes().finish("/api/v1/project", ProjectApi::openapi());
    let router = router
        .layer(kernel::service::upload_body_limit(platform.config()))
        .with_state(ctx)
        .merge(graphql);
    Ok(mount(&SPEC, "/api/v1/project", router, pool, api))
}

/// Expires invitations and stale pending uploads.
async fn sweeper(ctx: Ctx) {
    loop {
        if let Err(e) = invitations::expire_due(&ctx.pool).await {
            tracing::warn!(error = %e, "invitation sweep failed");
        }
        if let Err(e) = attachments::fail_stale_uploads(&ctx).await {
            tracing::warn!(error = %e, "upload sweep failed");
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}
