//! The inventory service (contract inventory.md): reference data (warehouses, location types,
//! locations, vendors, batches), stock rows, the movement ledger (`ledger` is its one writer),
//! reservations, transfers, restocks, bulk movements and reversals, the product replica,
//! alerts and availability, and `/graphql/inventory`.

pub mod catalog;
pub mod graphql;
pub mod ledger;
pub mod operations;
pub mod reference;
pub mod reservations;
pub mod stock;
pub mod views;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use integration::inventory::Held;
use kernel::auth::{Principal, ProjectScope};
use kernel::extract::{Json, Params};
use kernel::lang::Lang;
use kernel::routing::{get, post, Routes};
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
#[utoipa::path(post, path = "/api/v1/inventory/stock/", tag = "Stock", request_body = Value,
    responses((status = 201, description = "The stock row"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "The row exists")))]
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
#[utoipa::path(post, path = "/api/v1/inventory/movements/", tag = "Movement", request_body = Value,
    responses((status = 201, description = "The movement with the previous and new quantity"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not enough stock")))]
async fn create_movement(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let movement = stock::record(&ctx, &scope, &principal.claims().username, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(movement)).into_response())
}

/// `POST reservations/` → 201 a new reservation, 200 the order's existing one.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/", tag = "Reservation", request_body = Value,
    responses((status = 201, description = "A new reservation"), (status = 200, description = "The order's existing reservation"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not enough stock")))]
async fn create_reservation(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let (created, reservation) =
        reservations::create(&ctx, &scope, &principal.claims().username, &body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, JsonOut(reservation)).into_response())
}

/// `POST reservations/{id}/{confirm|release|adjust}/`.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/{id}/{action}/", tag = "Reservation",
    params(("id" = String, Path), ("action" = String, Path, description = "confirm, release or adjust")), request_body = Value,
    responses((status = 200, description = "The reservation"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "No such reservation or action"), (status = 409, description = "Not in a state for it")))]
async fn reservation_action(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Path((key, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let username = &principal.claims().username;
    let done = match action.as_str() {
        "confirm" => reservations::confirm(&ctx, &scope, username, &key, &body).await?,
        "release" => reservations::release(&ctx, &scope, username, &key, &body).await?,
        "adjust" => reservations::adjust(&ctx, &scope, username, &key, &body).await?,
        _ => return Err(ApiError::not_found()),
    };
    Ok(JsonOut(done))
}

/// `POST reservations/release-by-order/` `{order_id}`.
#[utoipa::path(post, path = "/api/v1/inventory/reservations/release-by-order/", tag = "Reservation", request_body = Value,
    responses((status = 200, description = "What was released"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission")))]
async fn release_by_order(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(
        reservations::release_by_order(&ctx, &scope, &principal.claims().username, &body).await?,
    ))
}

/// `POST transfers/`, `restock/`, `movements/bulk/` → 201.
#[utoipa::path(post, path = "/api/v1/inventory/transfers/", tag = "Transfer", request_body = Value,
    responses((status = 201, description = "The transfer"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not enough stock")))]
async fn transfer(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let done = operations::transfer(&ctx, &scope, &principal.claims().username, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(done)).into_response())
}

#[utoipa::path(post, path = "/api/v1/inventory/restock/", tag = "Restock", request_body = Value,
    responses((status = 201, description = "The restock"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission")))]
async fn restock(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let done = operations::restock(&ctx, &scope, &principal.claims().username, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(done)).into_response())
}

#[utoipa::path(post, path = "/api/v1/inventory/movements/bulk/", tag = "Movement", request_body = Value,
    responses((status = 201, description = "The movements"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not enough stock")))]
async fn bulk_movements(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let done = operations::bulk(&ctx, &scope, &principal.claims().username, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(done)).into_response())
}

/// `POST movements/{id}/reverse/` → 201 the reversing movement.
#[utoipa::path(post, path = "/api/v1/inventory/movements/{id}/reverse/", tag = "Movement",
    params(("id" = String, Path)), request_body = Value,
    responses((status = 201, description = "The reversing movement"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "No such movement"), (status = 409, description = "Already reversed")))]
async fn reverse_movement(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let done = operations::reverse(&ctx, &scope, &principal.claims().username, id, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(done)).into_response())
}

/// `GET alerts/low_stock/` (alias `alerts/low-stock/`).
#[utoipa::path(get, path = "/api/v1/inventory/alerts/low_stock/", tag = "Alert",
    params(("warehouse" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Rows at or under their reorder level"), (status = 400, description = "Invalid parameter"), (status = 403, description = "Not a member")))]
async fn low_stock(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Lang(lang): Lang,
    Params(params): Params,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(
        views::low_stock(&ctx, &scope, &params, lang).await?,
    ))
}

/// `GET availability/?product_id=…`.
#[utoipa::path(get, path = "/api/v1/inventory/availability/", tag = "Availability",
    params(("product_id" = Option<String>, Query, description = "Comma-separated ids"), ("variant_id" = Option<String>, Query), ("warehouse" = Option<String>, Query)),
    responses((status = 200, description = "Available quantities"), (status = 400, description = "Invalid parameter"), (status = 403, description = "Not a member")))]
async fn availability(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Params(params): Params,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(views::availability(&ctx, &scope, &params).await?))
}

/// `POST availability/check/`.
#[utoipa::path(post, path = "/api/v1/inventory/availability/check/", tag = "Availability", request_body = Value,
    responses((status = 200, description = "Whether each line can be served"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission")))]
async fn availability_check(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(views::check(&ctx, &scope, &body).await?))
}

/// The hand-written operations (the resources document themselves).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ZoneVast inventory service", version = "1"),
    paths(
        create_stock,
        create_movement,
        create_reservation,
        reservation_action,
        release_by_order,
        transfer,
        restock,
        bulk_movements,
        reverse_movement,
        low_stock,
        availability,
        availability_check
    )
)]
struct InventoryApi;

/// The stock-moving POSTs: they honour `Idempotency-Key`.
fn stock_moving(pool: sqlx::PgPool) -> Routes<ServiceContext> {
    Routes::new()
        .at(
            "",
            &["reservations/release-by-order"],
            post(release_by_order),
        )
        .at(
            "",
            &["reservations/{id}/{action}"],
            post(reservation_action),
        )
        .at("", &["movements/bulk"], post(bulk_movements))
        .at("", &["movements/{id}/reverse"], post(reverse_movement))
        .resource_with(
            "",
            &["transfers"],
            &operations::TRANSFER,
            Some(post(transfer)),
        )
        .resource_with("", &["restock"], &operations::RESTOCK, Some(post(restock)))
        .resource_with(
            "",
            &["movements"],
            &stock::MOVEMENT,
            Some(post(create_movement)),
        )
        .resource_with(
            "",
            &["reservations"],
            &reservations::RESERVATION,
            Some(post(create_reservation)),
        )
        .map(|r| {
            r.route_layer(axum::middleware::from_fn_with_state(
                pool,
                kernel::idempotency::guard,
            ))
        })
}

fn routes(pool: sqlx::PgPool) -> Routes<ServiceContext> {
    stock_moving(pool)
        .at("", &["alerts/low_stock"], get(low_stock))
        .at("", &["availability"], get(availability))
        .at("", &["availability/check"], post(availability_check))
        // Stock rows: canonical `stock/`, aliases `items/` (SDK) and `inventory/` (0a47ee5).
        .resource_with(
            "",
            &["stock", "items", "inventory"],
            &stock::STOCK,
            Some(post(create_stock)),
        )
        .resource("", &["warehouses"], &reference::WAREHOUSE)
        .resource("", &["location-types"], &reference::LOCATION_TYPE)
        .resource("", &["locations"], &reference::LOCATION)
        .resource("", &["vendors"], &reference::VENDOR)
        .resource("", &["batches"], &reference::BATCH)
}

/// Reservations as other services call them in-process (`integration::inventory::Stock`):
/// the caller's scope acting as a service, recorded as performed by `order`.
struct Reservations(ServiceContext);

const CALLER: &str = "order";

#[async_trait::async_trait]
impl integration::inventory::Stock for Reservations {
    async fn reserve(&self, scope: &ProjectScope, body: &Value) -> Result<Held, ApiError> {
        reservations::create_held(&self.0, &scope.as_service(), CALLER, body).await
    }

    async fn release_by_order(&self, scope: &ProjectScope, order_id: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({ "order_id": order_id });
        reservations::release_by_order(&self.0, &scope.as_service(), CALLER, &body).await?;
        Ok(())
    }

    async fn order_holds(
        &self,
        after_id: i64,
        older_than: Duration,
        limit: i64,
    ) -> Result<integration::inventory::OrderHolds, ApiError> {
        reservations::order_holds::page(&self.0, CALLER, after_id, older_than, limit).await
    }

    async fn confirm(
        &self,
        scope: &ProjectScope,
        reservation: &str,
        reference: &str,
    ) -> Result<Value, ApiError> {
        let body = serde_json::json!({ "reference": reference });
        reservations::confirm(&self.0, &scope.as_service(), CALLER, reservation, &body).await
    }

    async fn hold(&self, scope: &ProjectScope, reservation: &str) -> Result<(), ApiError> {
        reservations::hold_open(&self.0, &scope.as_service(), reservation).await
    }

    async fn adjust(
        &self,
        scope: &ProjectScope,
        reservation: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        reservations::adjust(&self.0, &scope.as_service(), CALLER, reservation, body).await
    }

    async fn book_once(&self, scope: &ProjectScope, body: &Value) -> Result<Value, ApiError> {
        let reference = body["reference"].as_str().unwrap_or_default();
        if reference.is_empty() {
            return Err(ApiError::field("reference", "A reference is required."));
        }
        // The caller serializes its own calls per reference (its row lock); this check makes a
        // retry after a crash book nothing twice.
        let booked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM movements WHERE project_id = $1 AND reference = $2)",
        )
        .bind(scope.project_id())
        .bind(reference)
        .fetch_one(&self.0.pool)
        .await?;
        if booked {
            return Ok(serde_json::json!({ "replayed": true }));
        }
        operations::bulk(&self.0, &scope.as_service(), CALLER, body).await
    }
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let ctx = ServiceContext::open(platform, &SPEC, &MIGRATOR).await?;
    let pool = ctx.pool.clone();
    platform.events().subscribe(
        "inventory",
        &["product.*", "variant.*"],
        std::sync::Arc::new(catalog::CatalogFollower { ctx: ctx.clone() }),
    );
    reservations::spawn_sweeper(ctx.clone(), Duration::from_secs(30));
    platform.provide::<integration::inventory::SharedStock>(std::sync::Arc::new(Reservations(
        ctx.clone(),
    )));
    let schema = kernel::resource_graphql::ResourceSchema::with_extensions(
        graphql::RESOURCES,
        ctx.clone(),
        graphql::extend,
        &["createInventory", "createInventoryMovement"],
    )?;
    let (router, api) = routes(pool.clone()).finish("/api/v1/inventory", {
        use utoipa::OpenApi;
        InventoryApi::openapi()
    });
    let router = router
        .with_state(ctx)
        .merge(kernel::graphql::routes(schema, "/graphql/inventory"));
    Ok(mount(&SPEC, "/api/v1/inventory", router, pool, api))
}
