//! The billing service (contract billing.md), as far as built: invoices (one per placed order
//! from `order.created`, or manual), gapless per-project numbers, manual payments and refunds on
//! the transaction ledger, and the status derived from it. Coupons, payment methods, gateways,
//! subscriptions and `/graphql/billing` are not built yet.

pub mod invoices;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as JsonOut, Router};
use kernel::auth::ProjectScope;
use kernel::extract::Json;
use kernel::service::{at, mount, MountedService, ServiceContext, ServiceSpec};
use kernel::ApiError;
use kernel::Platform;
use serde_json::Value;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "billing",
    health_name: "zv-billing-eco-service",
    public_paths: &[],
    public_exact: &[],
};

async fn create(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let invoice = invoices::create(&ctx, &scope, &body).await?;
    Ok((StatusCode::CREATED, JsonOut(invoice)).into_response())
}

/// `m/invoices/{id}/payments/` and `m/invoices/{id}/refund/` → 201 the transaction.
async fn action(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((id, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let done = match action.as_str() {
        "payments" => invoices::pay(&ctx, &scope, id, &body).await?,
        "refund" => invoices::refund(&ctx, &scope, id, &body).await?,
        _ => return Err(ApiError::not_found()),
    };
    Ok((StatusCode::CREATED, JsonOut(done)).into_response())
}

fn routes(pool: sqlx::PgPool) -> Router<ServiceContext> {
    use kernel::resource::rest::routes_with;
    let mut r = Router::new();
    // 0a47ee5 paths under `m/`, and the same without it.
    for prefix in ["m/invoices", "invoices"] {
        r = at(
            r,
            "",
            &[&format!("{prefix}/{{id}}/{{action}}")],
            post(action),
        );
        r = routes_with(r, "", prefix, &invoices::INVOICE, Some(post(create)));
    }
    // Money-effect POSTs honour `Idempotency-Key`.
    r.route_layer(axum::middleware::from_fn_with_state(
        pool,
        kernel::idempotency::guard,
    ))
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let ctx = ServiceContext::open(platform, &SPEC, &MIGRATOR).await?;
    let pool = ctx.pool.clone();
    platform.events().subscribe(
        "billing",
        &["order.created"],
        std::sync::Arc::new(invoices::OrderInvoicer { ctx: ctx.clone() }),
    );
    Ok(mount(
        &SPEC,
        "/api/v1/billing",
        routes(pool.clone()).with_state(ctx),
        pool,
        None,
    ))
}
