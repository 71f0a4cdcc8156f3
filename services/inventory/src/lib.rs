//! The inventory service (contract inventory.md). Built so far: the reference data (warehouses,
//! location types, locations, vendors, batches), stock rows and the movement ledger.
//! Reservations, transfers, restocks, alerts and GraphQL are not built yet.

pub mod reference;
pub mod stock;

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as JsonOut, Router};
use kernel::auth::{Principal, ProjectScope};
use kernel::events::Outbox;
use kernel::extract::Json;
use kernel::lang::Lang;
use kernel::service::{mount, MountedService, ServiceContext, ServiceSpec};
use kernel::ApiError;
use kernel::Platform;
use serde_json::Value;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "inventory",
    health_name: "zv-inventory-eco-service",
    public_paths: &[],
    public_exact: &[],
};

/// `POST stock/`: a row, with its initial quantity booked as a movement.
async fn create_stock(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Lang(lang): Lang,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let row = stock::create(&ctx, &scope, &principal.claims().username, &body, lang).await?;
    Ok((StatusCode::CREATED, JsonOut(row)).into_response())
}

/// `POST movements/`: one movement → 201 with previous and new quantity.
async fn create_movement(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let movement = stock::record(&ctx, &scope, &principal.claims().username, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(movement)).into_response())
}

fn routes() -> Router<ServiceContext> {
    use kernel::resource::rest::{routes as resource, routes_with};
    let r = Router::new();
    // Stock rows: canonical `stock/`, aliases `items/` (SDK) and `inventory/` (0a47ee5).
    let r = ["stock", "items", "inventory"]
        .into_iter()
        .fold(r, |r, path| {
            routes_with(r, "", path, &stock::STOCK, Some(post(create_stock)))
        });
    let r = routes_with(
        r,
        "",
        "movements",
        &stock::MOVEMENT,
        Some(post(create_movement)),
    );
    let r = resource(r, "", "warehouses", &reference::WAREHOUSE);
    let r = resource(r, "", "location-types", &reference::LOCATION_TYPE);
    let r = resource(r, "", "locations", &reference::LOCATION);
    let r = resource(r, "", "vendors", &reference::VENDOR);
    resource(r, "", "batches", &reference::BATCH)
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let pool = kernel::db::open_service_pool(platform.config(), SPEC.name, &MIGRATOR).await?;
    kernel::events::install(&pool).await?;
    let outbox = Outbox::new(pool.clone(), SPEC.name, platform.events().clone());
    outbox.spawn_relay(Duration::from_secs(2));
    let ctx = ServiceContext {
        platform: platform.clone(),
        pool: pool.clone(),
        outbox,
    };
    Ok(mount(
        &SPEC,
        "/api/v1/inventory",
        routes().with_state(ctx),
        pool,
        None,
    ))
}
