//! Customer routes (contract order.md §1, §13): a signed-in user who is not a member of the
//! project (naming it with `X-Project-ID`) reads their own orders, cancels their own pending
//! ones and asks to return shipped ones, on the same paths staff use. Their view leaves out what is internal to the shop: the
//! reservation, price overrides, notes for staff, the history's actors.
//!
//! This runs as a layer in front of the order routes: members pass through untouched; for a
//! customer it answers `GET orders/`, `GET orders/{id}/`, `POST orders/{id}/cancel/` and
//! `POST order-returns/` (a return request of their own order) itself, and lets everything else
//! reach the member-only handlers (which refuse them).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::Shopper;
use kernel::list::{page_body, ListQuery, PageBody};
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::{json, Value};

use crate::orders::{self, ORDER};

/// Fields a customer does not see.
const INTERNAL: &[&str] = &[
    "reservation_id",
    "created_by",
    "updated_by",
    "deleted_at",
    "deleted_by",
    "status_id",
    "tags",
    "notes",
    "note",
];

fn customer_view(mut order: Value) -> Value {
    if let Some(map) = order.as_object_mut() {
        for k in INTERNAL {
            map.remove(*k);
        }
        if let Some(items) = map.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                if let Some(i) = item.as_object_mut() {
                    i.remove("price_overridden");
                    i.remove("inventory_id");
                }
            }
        }
        if let Some(history) = map.get_mut("status_history").and_then(Value::as_array_mut) {
            for entry in history {
                if let Some(e) = entry.as_object_mut() {
                    e.remove("performed_by");
                    e.remove("notes");
                }
            }
        }
    }
    order
}

/// The path inside the service without the `online_orders` prefix, split in segments.
fn segments(path: &str) -> Vec<&str> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.split_first() {
        Some((&"online_orders", rest)) => rest.to_vec(),
        _ => segs,
    }
}

pub async fn layer(State(ctx): State<ServiceContext>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let segs = segments(&path);
    let method = request.method().clone();
    let ours = matches!(
        (&method, segs.as_slice()),
        (&Method::GET, ["orders"])
            | (&Method::GET, ["orders", _])
            | (&Method::POST, ["orders", _, "cancel"])
            | (&Method::POST, ["order-returns" | "order_returns"])
    ) && segs.get(1) != Some(&"statistics")
        && segs.get(1) != Some(&"trash");
    if !ours {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let shopper = match Shopper::from_request_parts(&mut parts, &()).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Shopper::Customer { user_id, .. } = shopper else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let answer = match segs.as_slice() {
        ["orders"] => list(&ctx, &shopper, user_id, &parts)
            .await
            .map(IntoResponse::into_response),
        ["orders", key] => one(&ctx, &shopper, user_id, key)
            .await
            .map(|o| JsonOut(o).into_response()),
        ["orders", key, "cancel"] => match json_body(body).await {
            Ok(body) => cancel(&ctx, &shopper, user_id, key, &body)
                .await
                .map(|o| JsonOut(o).into_response()),
            Err(e) => Err(e),
        },
        [_] => match json_body(body).await {
            Ok(body) => request_return(&ctx, &shopper, user_id, &body)
                .await
                .map(|made| (axum::http::StatusCode::CREATED, JsonOut(made)).into_response()),
            Err(e) => Err(e),
        },
        _ => Err(ApiError::not_found()),
    };
    match answer {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn json_body(body: axum::body::Body) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::payload_too_large(64 * 1024))?;
    kernel::extract::parse_json(&bytes)
}

/// A customer asks to return (part of) their own shipped order; staff approve and complete it.
/// The refund is what the lines were charged (a customer cannot set another amount).
async fn request_return(
    ctx: &ServiceContext,
    shopper: &Shopper,
    user: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    let key = body
        .get("order_id")
        .or_else(|| body.get("order"))
        .and_then(|v| {
            v.as_i64()
                .map(|i| i.to_string())
                .or_else(|| v.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    let id = own(ctx, shopper, user, &key)
        .await
        .map_err(|_| ApiError::field("order", "No such order."))?;
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("refund_amount");
        map.remove("refund_method");
        map.insert("order".into(), json!(id));
    }
    crate::returns::request(ctx, &shopper.as_service(), &body).await
}

/// The customer's own order named by id or number, else 404.
async fn own(
    ctx: &ServiceContext,
    shopper: &Shopper,
    user: i64,
    key: &str,
) -> Result<i64, ApiError> {
    let id = orders::find(&ctx.pool, shopper.project_id(), key).await?;
    let owner: Option<i64> = sqlx::query_scalar("SELECT customer_id FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(&ctx.pool)
        .await?;
    if owner == Some(user) {
        Ok(id)
    } else {
        Err(ApiError::not_found())
    }
}

async fn one(
    ctx: &ServiceContext,
    shopper: &Shopper,
    user: i64,
    key: &str,
) -> Result<Value, ApiError> {
    let id = own(ctx, shopper, user, key).await?;
    Ok(customer_view(
        orders::show(ctx, &shopper.as_service(), id).await?,
    ))
}

async fn list(
    ctx: &ServiceContext,
    shopper: &Shopper,
    user: i64,
    parts: &axum::http::request::Parts,
) -> Result<JsonOut<PageBody<Value>>, ApiError> {
    // The caller's own orders, whatever `customer` they ask for.
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k != "customer")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    pairs.push(("customer".into(), user.to_string()));
    let query_string = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let query = ListQuery::from_query(&ORDER.list, Some(&query_string))?;
    let scope = kernel::auth::ReadScope::Member(shopper.as_service());
    let (total, rows) = kernel::resource::list(ctx, &ORDER, &scope, &query, "en", false).await?;
    let rows = rows
        .into_iter()
        .map(|r| customer_view(r.into_value()))
        .collect();
    let origin = kernel::service::public_origin(ctx.platform.config(), &parts.headers);
    let base = format!("{origin}{}", parts.uri.path());
    Ok(JsonOut(page_body(
        &base,
        parts.uri.query(),
        total,
        &query,
        rows,
    )))
}

/// A customer cancels their own order while it waits (pending or pending_payment).
async fn cancel(
    ctx: &ServiceContext,
    shopper: &Shopper,
    user: i64,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let id = own(ctx, shopper, user, key).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(&ctx.pool)
        .await?;
    if !matches!(status.as_str(), "pending" | "pending_payment" | "cancelled") {
        return Err(ApiError::rule(
            "order_not_cancellable",
            format!("Order cannot be cancelled in current status: {status}"),
        ));
    }
    // No refund from here: the shop decides on the money.
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("Cancelled by the customer");
    orders::cancel(
        ctx,
        &shopper.as_service(),
        &id.to_string(),
        &json!({"reason": reason}),
    )
    .await
}
