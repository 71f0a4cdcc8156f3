//! The billing service (contract billing.md): invoices with computed totals and gapless
//! numbers (one per placed order from `order.created`, or manual), the transaction ledger
//! (payments, refunds, adjustments, chargebacks) with the status derived from it, payment
//! gateways (`manual`, the `test` sandbox) and their signed webhooks, coupons and their
//! redemptions, payment methods, user subscriptions, the consumption of the order service's
//! money events, the in-process `Billing` other services call, and `/graphql/billing`.

pub mod coupons;
pub mod facade;
pub mod gateways;
pub mod graphql;
pub mod invoices;
pub mod ledger;
pub mod order_coupon_uses;
pub mod order_invoices;
pub mod order_money;
pub mod order_updates;
pub mod payment_methods;
pub mod subscriptions;
pub mod transactions;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::ProjectScope;
use kernel::extract::{path_id, Json};
use kernel::rbac::Grants;
use kernel::routing::{get, post, Routes};
use kernel::service::{mount, MountedService, ServiceContext, ServiceSpec};
use kernel::ApiError;
use kernel::Platform;
use serde_json::Value;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "billing",
    health_name: "zv-billing-eco-service",
    // Provider notifications carry a signature, not a token.
    public_paths: &["/webhooks"],
    public_exact: &[],
};

/// billing.md §9: members read; owners and admins write invoices, coupons and subscriptions,
/// refund, void and adjust; editors also create and update transactions and payment methods,
/// record payments and redeem coupons. Deletes are owner/admin.
pub const GRANTS: Grants = Grants {
    editor_extra: &[],
    editor_writes: Some(&[
        "billing.record_payment",
        "billing.redeem_coupon",
        "billing.add_transaction",
        "billing.change_transaction",
        "billing.add_paymentmethod",
        "billing.change_paymentmethod",
    ]),
};

fn answer(created: bool, body: Value) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, JsonOut(body)).into_response()
}

#[utoipa::path(post, path = "/api/v1/billing/invoices/", tag = "Invoice", request_body = Value, responses((status = 201, description = "The invoice"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not in a state for it")))]
async fn create_invoice(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let (created, invoice) = invoices::create(&ctx, &scope, &body).await?;
    Ok(answer(created, invoice))
}

/// `m/invoices/{id}/{payments|refund|send|cancel}/`.
#[utoipa::path(post, path = "/api/v1/billing/invoices/{id}/{action}/", tag = "Invoice", params(("id" = String, Path), ("action" = String, Path)), request_body = Value, responses((status = 200, description = "The invoice (send, pay, void…)"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn invoice_action(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((id, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let id = path_id(&id)?;
    Ok(match action.as_str() {
        "payments" => answer(true, invoices::pay(&ctx, &scope, id, &body).await?),
        "refund" => answer(true, invoices::refund(&ctx, &scope, id, &body).await?),
        "send" => answer(false, invoices::send(&ctx, &scope, id, &body).await?),
        "cancel" => answer(false, invoices::cancel(&ctx, &scope, id, &body).await?),
        _ => return Err(ApiError::not_found()),
    })
}

#[utoipa::path(post, path = "/api/v1/billing/transactions/", tag = "Transaction", request_body = Value, responses((status = 201, description = "The transaction"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn create_transaction(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let (created, row) = transactions::create(&ctx, &scope, &body).await?;
    Ok(answer(created, row))
}

#[utoipa::path(post, path = "/api/v1/billing/transactions/{id}/refund/", tag = "Transaction", params(("id" = String, Path)), request_body = Value, responses((status = 201, description = "The refund"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn refund_transaction(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let row = transactions::refund(&ctx, &scope, path_id(&id)?, &body).await?;
    Ok(answer(true, row))
}

/// `m/coupons/validate/` → 200.
#[utoipa::path(post, path = "/api/v1/billing/coupons/validate/", tag = "Coupon", request_body = Value, responses((status = 200, description = "Whether the coupon applies, and the discount"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission")))]
async fn validate_coupon(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    Ok(answer(false, coupons::validate(&ctx, &scope, &body).await?))
}

/// `m/coupons/redeem/` → 201, or 200 with the source's existing redemption.
#[utoipa::path(post, path = "/api/v1/billing/coupons/redeem/", tag = "Coupon", request_body = Value, responses((status = 201, description = "The redemption"), (status = 200, description = "The redemption of an earlier request"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 409, description = "Not in a state for it")))]
async fn redeem_coupon(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let (created, row) = coupons::redeem(&ctx, &scope, &body).await?;
    Ok(answer(created, row))
}

#[utoipa::path(post, path = "/api/v1/billing/coupons/redemptions/{id}/release/", tag = "Coupon", params(("id" = String, Path)), responses((status = 200, description = "The released redemption"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn release_redemption(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = coupons::release(&ctx, &scope, path_id(&id)?).await?;
    Ok(answer(false, row))
}

/// `m/subscriptions/{id}/{cancel|pause|resume}/`.
#[utoipa::path(post, path = "/api/v1/billing/subscriptions/{id}/{action}/", tag = "Subscription", params(("id" = String, Path), ("action" = String, Path)), request_body = Value, responses((status = 200, description = "The subscription (cancel, renew…)"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn subscription_action(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((id, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let id = path_id(&id)?;
    let done = match action.as_str() {
        "cancel" => subscriptions::cancel(&ctx, &scope, id, &body).await?,
        "pause" => subscriptions::pause_or_resume(&ctx, &scope, id, true).await?,
        "resume" => subscriptions::pause_or_resume(&ctx, &scope, id, false).await?,
        _ => return Err(ApiError::not_found()),
    };
    Ok(answer(false, done))
}

/// `GET m/subscriptions/mine/`: the caller's own, in the token's project or `X-Project-ID`.
#[utoipa::path(get, path = "/api/v1/billing/subscriptions/mine/", tag = "Subscription", responses((status = 200, description = "The caller's subscriptions"), (status = 403, description = "Not a member or no permission")))]
async fn my_subscriptions(
    State(ctx): State<ServiceContext>,
    principal: kernel::auth::Principal,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let project = match kernel::auth::project_header(&headers) {
        Some(Ok(p)) => p,
        Some(Err(())) => {
            return Err(ApiError::field(
                "X-Project-ID",
                "A valid integer is required.",
            ))
        }
        None => principal.claims().project_id.ok_or_else(|| {
            ApiError::bad_request(
                "project_required",
                "Project ID is required. Provide the X-Project-ID header or a project-scoped token.",
            )
        })?,
    };
    let body = subscriptions::mine(&ctx, principal.user_id(), project).await?;
    Ok(answer(false, body))
}

/// The hand-written operations (the resources document themselves).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ZoneVast billing service", version = "1"),
    paths(
        create_invoice,
        invoice_action,
        create_transaction,
        refund_transaction,
        validate_coupon,
        redeem_coupon,
        release_redemption,
        subscription_action,
        my_subscriptions,
        gateways::webhook
    )
)]
struct BillingApi;

/// Every path at the root and under `m/` (0a47ee5).
fn both(path: &str) -> [String; 2] {
    [path.to_owned(), format!("m/{path}")]
}

fn routes(pool: sqlx::PgPool) -> Routes<ServiceContext> {
    Routes::new()
        .at("", &both("invoices/{id}/{action}"), post(invoice_action))
        .resource_with(
            "",
            &both("invoices"),
            &invoices::INVOICE,
            Some(post(create_invoice)),
        )
        .at(
            "",
            &both("transactions/{id}/refund"),
            post(refund_transaction),
        )
        .resource_with(
            "",
            &both("transactions"),
            &transactions::TRANSACTION,
            Some(post(create_transaction)),
        )
        .at("", &both("coupons/validate"), post(validate_coupon))
        .at("", &both("coupons/redeem"), post(redeem_coupon))
        .at(
            "",
            &both("coupons/redemptions/{id}/release"),
            post(release_redemption),
        )
        .resource("", &both("coupons"), &coupons::COUPON)
        .resource(
            "",
            &both("payment-methods"),
            &payment_methods::PAYMENT_METHOD,
        )
        .at("", &both("subscriptions/mine"), get(my_subscriptions))
        .at(
            "",
            &both("subscriptions/{id}/{action}"),
            post(subscription_action),
        )
        .resource(
            "",
            &both("subscriptions"),
            &subscriptions::USER_SUBSCRIPTION,
        )
        // Money-effect POSTs honour `Idempotency-Key`.
        .map(|r| {
            r.route_layer(axum::middleware::from_fn_with_state(
                pool,
                kernel::idempotency::guard,
            ))
        })
        .at("", &["webhooks/{gateway}"], post(gateways::webhook))
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let ctx = ServiceContext::open(platform, &SPEC, &MIGRATOR).await?;
    let pool = ctx.pool.clone();
    platform.events().subscribe(
        "billing",
        &["order.created"],
        std::sync::Arc::new(order_invoices::OrderInvoicer { ctx: ctx.clone() }),
    );
    platform.events().subscribe(
        "billing",
        &["order.payment_recorded", "order.refund_requested"],
        std::sync::Arc::new(order_money::OrderMoneyFollower { ctx: ctx.clone() }),
    );
    platform.events().subscribe(
        "billing",
        &["order.updated"],
        std::sync::Arc::new(order_updates::OrderUpdateFollower { ctx: ctx.clone() }),
    );
    gateways::spawn_reconciler(ctx.clone(), std::time::Duration::from_secs(60));
    platform.provide::<integration::billing::SharedBilling>(std::sync::Arc::new(
        facade::BillingFacade(ctx.clone()),
    ));
    let schema = kernel::resource_graphql::ResourceSchema::with_extensions(
        graphql::RESOURCES,
        ctx.clone(),
        graphql::extend,
        &["createInvoice", "createTransaction"],
    )?;
    let (router, api) = routes(pool.clone()).finish("/api/v1/billing", {
        use utoipa::OpenApi;
        BillingApi::openapi()
    });
    let router = router
        .with_state(ctx)
        .merge(kernel::graphql::routes(schema, "/graphql/billing"));
    Ok(mount(&SPEC, "/api/v1/billing", router, pool, api))
}
