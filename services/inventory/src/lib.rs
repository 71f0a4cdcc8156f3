//! The inventory service (contract inventory.md). Built so far: the reference data (warehouses,
//! location types, locations, vendors, batches). Stock rows, the movement ledger, reservations
//! and transfers are not built yet.

pub mod reference;

use std::time::Duration;

use axum::Router;
use kernel::events::Outbox;
use kernel::service::{mount, MountedService, ServiceContext, ServiceSpec};
use kernel::Platform;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "inventory",
    health_name: "zv-inventory-eco-service",
    public_paths: &[],
    public_exact: &[],
};

fn routes() -> Router<ServiceContext> {
    use kernel::resource::rest::routes as resource;
    let r = Router::new();
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
