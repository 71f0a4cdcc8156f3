//! The auth service: users, credentials, token pairs, sessions, one-time codes, and the
//! membership projection the kernel's project-scope check reads.

pub mod api;
pub mod data;
pub mod otp;
pub mod password;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use axum::routing::get as axum_get;
use kernel::routing::{delete, get, post, Routes};
use kernel::service::{mount, MountedService, ServiceContext, ServiceSpec};
use kernel::{ApiError, FieldErrors, Platform};
use sqlx::migrate::Migrator;
use sqlx::PgPool;
use utoipa::OpenApi;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "auth",
    health_name: "zv-auth-service",
    public_paths: &[
        "/auth/token/refresh",
        "/auth/token/verify",
        "/token/refresh",
        "/token/verify",
        "/auth/register",
        "/register",
        "/auth/send-otp",
        "/send-otp",
        "/auth/send_otp",
        "/send_otp",
        "/auth/verify-otp",
        "/verify-otp",
        "/auth/verify_otp",
        "/verify_otp",
        "/auth/password/reset",
        "/password/reset",
        "/auth/password/change",
        "/password/change",
        "/auth/health",
        "/.well-known/jwks.json",
        "/auth/.well-known/jwks.json",
        "/country",
        "/region",
        "/auth/country",
        "/auth/region",
        "/media",
        "/auth/media",
    ],
    // Obtain routes must not make `token/change_project` public, so they are exact.
    public_exact: &["/auth/token", "/token", "/login", "/auth/login"],
};

#[derive(OpenApi)]
#[openapi(
    info(title = "ZoneVast auth service", version = "1"),
    paths(
        api::tokens::obtain_pair,
        api::tokens::login,
        api::tokens::refresh,
        api::tokens::verify,
        api::tokens::change_project,
        api::tokens::logout,
        api::tokens::jwks,
        api::account::register,
        api::account::send_otp,
        api::account::verify_otp,
        api::account::password_reset,
        api::account::password_change,
        api::user::get_user,
        api::user::patch_user,
        api::user::list_users,
        api::geo::list_countries,
        api::geo::get_country,
        api::geo::list_regions,
        api::media::upload_image,
        api::media::upload_picture,
        api::media::download,
        api::profile::list_profile,
        api::profile::create_profile,
        api::profile::upsert_profile,
        api::profile::get_profile,
        api::profile::patch_profile,
        api::profile::remove_picture,
        api::profile::list_addresses,
        api::profile::create_address,
        api::profile::get_address,
        api::profile::patch_address,
        api::profile::delete_address,
    )
)]
pub struct AuthApi;

fn routes() -> Routes<ServiceContext> {
    use api::{account, geo, media, profile, tokens as t, user};
    let r = Routes::new();
    let r = r.at("auth", &["token"], post(t::obtain_pair));
    let r = r.at("auth", &["login"], post(t::login));
    let r = r.at("auth", &["token/refresh"], post(t::refresh));
    let r = r.at("auth", &["token/verify"], post(t::verify));
    let r = r.at(
        "auth",
        &["token/change_project", "change_project"],
        post(t::change_project),
    );
    let r = r.at("auth", &["logout"], post(t::logout));
    let r = r.at("auth", &[".well-known/jwks.json"], get(t::jwks));
    let r = r.at("auth", &["register"], post(account::register));
    let r = r.at("auth", &["send-otp"], post(account::send_otp));
    let r = r.at("auth", &["verify-otp"], post(account::verify_otp));
    let r = r.at("auth", &["password/reset"], post(account::password_reset));
    let r = r.at("auth", &["password/change"], post(account::password_change));
    let r = r.at(
        "auth",
        &["user", "users/me", "me"],
        get(user::get_user)
            .patch(user::patch_user)
            .put(user::patch_user),
    );
    let r = r.at("auth", &["users"], get(user::list_users));
    let r = r.at("auth", &["user/upload-image"], post(media::upload_image));
    let r = r.at(
        "auth",
        &["profile/upload_picture"],
        post(media::upload_picture),
    );
    let r = r.at("auth", &["media/{*key}"], get(media::download));
    let r = r.at(
        "auth",
        &["profile"],
        get(profile::list_profile)
            .post(profile::create_profile)
            .patch(profile::upsert_profile)
            .put(profile::upsert_profile),
    );
    let r = r.at(
        "auth",
        &["profile/{id}"],
        get(profile::get_profile)
            .patch(profile::patch_profile)
            .put(profile::patch_profile),
    );
    let r = r.at(
        "auth",
        &["profile/remove_picture"],
        delete(profile::remove_picture).post(profile::remove_picture),
    );
    let r = r.at("auth", &["country"], get(geo::list_countries));
    let r = r.at("auth", &["country/{slug}"], get(geo::get_country));
    let r = r.at("auth", &["region/{country_slug}"], get(geo::list_regions));
    let r = r.at(
        "auth",
        &["address"],
        get(profile::list_addresses).post(profile::create_address),
    );
    r.at(
        "auth",
        &["address/{id}"],
        get(profile::get_address)
            .patch(profile::patch_address)
            .put(profile::patch_address)
            .delete(profile::delete_address),
    )
}

/// Opens the database, installs the membership directory, and returns the mounted service.
pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let pool = kernel::db::open_service_pool(platform.config(), SPEC.name, &MIGRATOR).await?;
    data::geo::seed(&pool).await?;
    kernel::events::install(&pool).await?;
    platform.set_memberships(Arc::new(data::memberships::Directory {
        pool: pool.clone(),
        cache: platform.cache().clone(),
    }));
    platform.provide::<integration::users::SharedUserDirectory>(Arc::new(data::users::Directory(
        pool.clone(),
    )));
    platform.events().subscribe(
        data::memberships::CONSUMER,
        data::memberships::SUBSCRIBES,
        Arc::new(data::memberships::Consumer {
            pool: pool.clone(),
            platform: platform.clone(),
        }),
    );
    let outbox = kernel::events::Outbox::new(pool.clone(), SPEC.name, platform.events().clone());
    outbox.spawn_relay();
    let ctx = ServiceContext {
        platform: platform.clone(),
        pool: pool.clone(),
        outbox,
    };
    let (router, api) = routes().finish("/api/v1/auth", AuthApi::openapi());
    let router = router
        .route(
            "/auth/health",
            axum_get(|| async {
                axum::Json(serde_json::json!({"status": "healthy", "service": SPEC.health_name}))
            }),
        )
        // Multipart uploads; JSON bodies keep their own, smaller limit (kernel::extract).
        .layer(axum::extract::DefaultBodyLimit::max(
            platform.config().limits.multipart_body_bytes,
        ))
        .with_state(ctx);
    Ok(mount(&SPEC, "/api/v1/auth", router, pool, api))
}

/// `zv user create`: an active, verified user.
pub async fn create_user(
    pool: &PgPool,
    username: &str,
    email: &str,
    password: &str,
    superuser: bool,
) -> Result<data::users::UserRow, ApiError> {
    let mut errors = FieldErrors::new();
    api::account::check_username(&mut errors, username);
    api::account::check_email(&mut errors, email);
    errors.into_result()?;
    password::check_rules(password, username, email, "password")?;
    let hash = password::hash(password.to_owned()).await?;
    data::users::insert(
        pool,
        &data::users::NewUser {
            username,
            email,
            password_hash: &hash,
            first_name: "",
            last_name: "",
            active: true,
            superuser,
        },
    )
    .await
}
