//! The order service (contract order.md): placement as a saga over inventory reservations,
//! the status machine, cancellation and fulfilment. Carts, payments, returns, invoices (billing)
//! are not built yet; `/graphql/order` serves what is.

pub mod carts;
pub mod customers;
pub mod extras;
pub mod graphql;
pub mod invoice_links;
pub mod items;
pub mod orders;
pub mod payments;
pub mod placement_reconciler;
pub(crate) mod placing;
pub mod returns;
pub mod settings;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::ProjectScope;
use kernel::extract::Json;
use kernel::lang::Lang;
use kernel::routing::{get, post, Routes};
use kernel::service::{mount, MountedService, ServiceContext, ServiceSpec};
use kernel::ApiError;
use kernel::Platform;
use serde_json::Value;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "order",
    health_name: "zv-order-eco-service",
    // Carts are open to guests and to signed-in non-members (order.md §1 customer routes).
    // Shipping methods are read publicly (order.md §8).
    public_paths: &["/cart", "/shipping-methods", "/shipping_methods"],
    public_exact: &[],
};

/// `POST orders/` → 201 a placed order, 200 the order of an existing `reference`.
#[utoipa::path(post, path = "/api/v1/order/orders/", tag = "Order", request_body = Value, responses((status = 201, description = "The placed order"), (status = 200, description = "The order of an existing reference"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not in a state for it")))]
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
#[utoipa::path(method(post, patch), path = "/api/v1/order/orders/{id}/{action}/", tag = "Order", params(("id" = String, Path), ("action" = String, Path)), request_body = Value, responses((status = 200, description = "The order (status, cancel, fulfillments, payment)"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
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
        "payment" => {
            JsonOut(payments::set_payment(&ctx, &scope, &key, &body).await?).into_response()
        }
        _ => return Err(ApiError::not_found()),
    })
}

/// `POST order-returns/` → 201 the requested return.
#[utoipa::path(post, path = "/api/v1/order/order-returns/", tag = "Return", request_body = Value, responses((status = 201, description = "The requested return"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn request_return(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let made = returns::request(&ctx, &scope, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(made)).into_response())
}

/// `order-returns/{id}/approve|cancel|complete/`.
#[utoipa::path(post, path = "/api/v1/order/order-returns/{id}/{action}/", tag = "Return", params(("id" = String, Path), ("action" = String, Path)), responses((status = 200, description = "The return (approve, cancel, complete)"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn return_action(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((id, action)): Path<(String, String)>,
) -> Result<JsonOut<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    Ok(JsonOut(returns::act(&ctx, &scope, id, &action).await?))
}

async fn order_id(ctx: &ServiceContext, scope: &ProjectScope, key: &str) -> Result<i64, ApiError> {
    orders::find(&ctx.pool, scope.project_id(), key).await
}

/// `GET orders/{id}/payments/`: the order's payments.
#[utoipa::path(get, path = "/api/v1/order/orders/{id}/payments/", tag = "Payment", params(("id" = String, Path)), responses((status = 200, description = "The order's payments"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found")))]
async fn order_payments(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
    Lang(lang): Lang,
) -> Result<JsonOut<Value>, ApiError> {
    scope.require("order.view_payment", &orders::GRANTS)?;
    let id = order_id(&ctx, &scope, &key).await?;
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM payments WHERE order_id = $1 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(id)
    .fetch_all(&ctx.pool)
    .await?;
    let read = kernel::auth::ReadScope::Member(scope.clone());
    let mut out = Vec::with_capacity(rows.len());
    for p in rows {
        out.push(kernel::resource::retrieve(&ctx, &payments::PAYMENT, &read, p, lang).await?);
    }
    Ok(JsonOut(
        serde_json::json!({"count": out.len(), "results": out}),
    ))
}

/// `POST orders/{id}/payments/` → 201 a payment of that order.
#[utoipa::path(post, path = "/api/v1/order/orders/{id}/payments/", tag = "Payment", params(("id" = String, Path)), request_body = Value, responses((status = 201, description = "A payment of the order"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn add_order_payment(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
    Lang(lang): Lang,
    Json(mut body): Json<Value>,
) -> Result<Response, ApiError> {
    let id = order_id(&ctx, &scope, &key).await?;
    body["order_id"] = serde_json::json!(id);
    let made = kernel::resource::create(&ctx, &payments::PAYMENT, &scope, &body, lang).await?;
    Ok((StatusCode::CREATED, JsonOut(made)).into_response())
}

/// The hand-written operations of this file.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ZoneVast order service", version = "1"),
    paths(
        place,
        action,
        request_return,
        return_action,
        order_payments,
        add_order_payment
    )
)]
struct OrderApi;

/// The service's document: the resources describe themselves as they are mounted; these are
/// the hand-written operations.
fn declared() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = OrderApi::openapi();
    doc.merge(carts::Api::openapi());
    doc.merge(extras::Api::openapi());
    doc.merge(items::Api::openapi());
    doc
}

fn routes(pool: sqlx::PgPool) -> Routes<ServiceContext> {
    let r = Routes::new().at(
        "online_orders",
        &["orders/{id}/{action}"],
        post(action).patch(action),
    );
    let r = r.resource_with(
        "online_orders",
        &["orders"],
        &orders::ORDER,
        Some(post(place)),
    );
    let r = carts::routes(r);
    let r = extras::routes(r);
    let r = items::routes(r);
    let r = r.at(
        "",
        &["orders/{id}/payments"],
        get(order_payments).post(add_order_payment),
    );
    let r = r.resource_with("", &["payments"], &payments::PAYMENT, None);
    let r = r.at("", &["order-returns/{id}/{action}"], post(return_action));
    let r = r.resource_with(
        "",
        &["order-returns"],
        &returns::ORDER_RETURN,
        Some(post(request_return)),
    );
    let r = r.resource_with("", &["return-reasons"], &returns::RETURN_REASON, None);
    let r = r.resource_with(
        "",
        &["return-items", "return-order-ratings"],
        &returns::RETURN_ITEM,
        None,
    );
    // Placement and the actions honour `Idempotency-Key`.
    r.map(|r| {
        r.route_layer(axum::middleware::from_fn_with_state(
            pool,
            kernel::idempotency::guard,
        ))
    })
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let ctx = ServiceContext::open(platform, &SPEC, &MIGRATOR).await?;
    let pool = ctx.pool.clone();
    placement_reconciler::spawn(ctx.clone(), Duration::from_secs(60));
    platform.events().subscribe(
        "order",
        &["inventory.reservation_expired"],
        std::sync::Arc::new(orders::ExpiryFollower { ctx: ctx.clone() }),
    );
    platform.events().subscribe(
        "order",
        &[
            "invoice.created",
            "payment.success",
            "payment.refunded",
            "payment.failed",
        ],
        std::sync::Arc::new(orders::BillingFollower { ctx: ctx.clone() }),
    );
    platform.events().subscribe(
        "order",
        &["project.created"],
        std::sync::Arc::new(extras::ProjectSeeder { pool: pool.clone() }),
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
    let (router, api) = routes(pool.clone()).finish("/api/v1/order", declared());
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            customers::layer,
        ))
        .with_state(ctx)
        .merge(kernel::graphql::routes(schema, "/graphql/order"));
    Ok(mount(&SPEC, "/api/v1/order", router, pool, api))
}
