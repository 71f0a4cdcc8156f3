//! The order service (contract order.md): placement as a saga over inventory reservations,
//! the status machine, cancellation and fulfilment. Carts, payments, returns, invoices (billing)
//! are not built yet; `/graphql/order` serves what is.

pub mod carts;
pub mod graphql;
pub mod orders;
pub mod settings;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as JsonOut, Router};
use kernel::auth::ProjectScope;
use kernel::extract::Json;
use kernel::lang::Lang;
use kernel::service::{at, mount, MountedService, ServiceContext, ServiceSpec};
use kernel::ApiError;
use kernel::Platform;
use serde_json::Value;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "order",
    health_name: "zv-order-eco-service",
    // Carts are open to guests and to signed-in non-members (order.md §1 customer routes).
    public_paths: &["/cart"],
    public_exact: &[],
};

/// `POST orders/` → 201 a placed order, 200 the order of an existing `reference`.
async fn place(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Lang(lang): Lang,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let (created, order) = orders::place(&ctx, &scope, lang, &body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, JsonOut(order)).into_response())
}

/// `orders/{id}/status/` (PATCH or POST), `cancel/`, `fulfillments/`.
async fn action(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((key, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    Ok(match action.as_str() {
        "status" => JsonOut(orders::set_status(&ctx, &scope, &key, &body).await?).into_response(),
        "cancel" => JsonOut(orders::cancel(&ctx, &scope, &key, &body).await?).into_response(),
        "fulfillments" => (
            StatusCode::CREATED,
            JsonOut(orders::ship(&ctx, &scope, &key, &body).await?),
        )
            .into_response(),
        _ => return Err(ApiError::not_found()),
    })
}

fn routes(pool: sqlx::PgPool) -> Router<ServiceContext> {
    use kernel::resource::rest::routes_with;
    let r = at(
        Router::new(),
        "",
        &["orders/{id}/{action}"],
        post(action).patch(action),
    );
    let r = routes_with(r, "", "orders", &orders::ORDER, Some(post(place)));
    let r = carts::routes(r);
    // Placement and the actions honour `Idempotency-Key`.
    r.route_layer(axum::middleware::from_fn_with_state(
        pool,
        kernel::idempotency::guard,
    ))
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let ctx = ServiceContext::open(platform, &SPEC, &MIGRATOR).await?;
    let pool = ctx.pool.clone();
    orders::spawn_reconciler(ctx.clone(), Duration::from_secs(60));
    platform.events().subscribe(
        "order",
        &["inventory.reservation_expired"],
        std::sync::Arc::new(orders::ExpiryFollower { ctx: ctx.clone() }),
    );
    platform.events().subscribe(
        "order",
        &["invoice.created", "payment.success", "payment.refunded"],
        std::sync::Arc::new(orders::BillingFollower { ctx: ctx.clone() }),
    );
    platform.events().subscribe(
        "order",
        &["project.settings_changed"],
        std::sync::Arc::new(settings::SettingsFollower { pool: pool.clone() }),
    );
    let schema = kernel::resource_graphql::ResourceSchema::with_extensions(
        graphql::RESOURCES,
        ctx.clone(),
        graphql::extend,
        &["createOrder"],
    )?;
    let router = routes(pool.clone())
        .with_state(ctx)
        .merge(kernel::graphql::routes(schema, "/graphql/order"));
    Ok(mount(&SPEC, "/api/v1/order", router, pool, None))
}
