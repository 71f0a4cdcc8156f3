//! Carts and checkout (contract order.md §11).
//!
//! A cart belongs to an authenticated user (member of the project or not) or to the holder of a
//! guest token (stored hashed). Carts hold nothing: prices are read live from the product
//! service on every view and write, stock is checked against what the catalogue last heard from
//! inventory, and the coupon is re-validated by billing. Checkout places an order through the
//! same saga as `POST orders/` (the reservation is made there), under the reference
//! `cart:{id}`, so a retried or concurrent checkout finds the same order.
//!
//! Every write locks the cart row and bumps `version`; `If-Match: <version>` guards against
//! lost updates (409 `stale_version`).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use chrono::{DateTime, Datelike, Utc};
use integration::billing::SharedBilling;
use integration::product::{PriceQuote, SharedPricing};
use kernel::auth::Shopper;
use kernel::extract::{Json, Query};
use kernel::lang::Lang;
use kernel::routing::{delete, get, patch, post, put, Routes};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::orders::{
    check_address, decimal, int, money, text, unreachable, Placement, Wanted, GRANTS,
    PAYMENT_METHODS, PRICING_TIMEOUT,
};
use crate::settings;

/// Idle carts expire after this many days (410 `cart_expired`).
const IDLE_DAYS: i64 = 30;
const MAX_LINES: i64 = 100;
const MAX_QUANTITY: i64 = 9999;
const COUPON_TIMEOUT: Duration = Duration::from_secs(5);
/// A checkout claims its cart for this long (a crashed one is taken over after it).
const CHECKOUT_CLAIM: chrono::Duration = chrono::Duration::seconds(60);
/// Methods paid online at checkout (the order waits in `pending_payment`).
const ONLINE: &[&str] = &["credit_card", "debit_card", "paypal", "wallet"];
#[derive(sqlx::FromRow, Clone)]
struct CartRow {
    id: String,
    customer_id: Option<i64>,
    guest_token_hash: Option<String>,
    status: String,
    currency: String,
    coupon: Option<Value>,
    shipping_address: Option<Value>,
    billing_address: Option<Value>,
    shipping_method: String,
    order_id: Option<i64>,
    checkout: Option<Value>,
    checkout_started_at: Option<DateTime<Utc>>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const CART: &str = "SELECT id, customer_id, guest_token_hash, status, currency, coupon, \
    shipping_address, billing_address, shipping_method, order_id, checkout, checkout_started_at, \
    version, created_at, updated_at FROM carts";

#[derive(sqlx::FromRow, Clone)]
struct ItemRow {
    id: String,
    product_id: i64,
    variant_id: Option<i64>,
    quantity: i32,
    seen_price: Option<Decimal>,
    added_at: DateTime<Utc>,
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn expires_at(cart: &CartRow) -> DateTime<Utc> {
    cart.updated_at + chrono::Duration::days(IDLE_DAYS)
}

fn owns(shopper: &Shopper, cart: &CartRow) -> bool {
    match shopper {
        Shopper::Guest {
            token: Some(token), ..
        } => cart.guest_token_hash.as_deref() == Some(token_hash(token).as_str()),
        Shopper::Guest { token: None, .. } => false,
        _ => cart.customer_id.is_some() && cart.customer_id == shopper.user_id(),
    }
}

/// Staff with `order.view_cart` read every cart of the project.
fn may_view_any(shopper: &Shopper) -> bool {
    shopper
        .member()
        .is_some_and(|s| s.require("order.view_cart", &GRANTS).is_ok())
}

fn converted() -> ApiError {
    ApiError::conflict(
        "cart_converted",
        "This cart was checked out; start a new cart.",
    )
}

fn expired() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "cart_expired",
        "This cart expired after 30 idle days.",
    )
}

async fn users_cart(
    db: &mut PgConnection,
    project_id: i64,
    user_id: i64,
    lock: bool,
) -> Result<Option<CartRow>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "{CART} WHERE project_id = $1 AND customer_id = $2 AND status = 'active'{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(project_id)
    .bind(user_id)
    .fetch_optional(&mut *db)
    .await?)
}

/// Marks an idle active cart expired; true when it was.
async fn expire_if_idle(db: &mut PgConnection, cart: &CartRow) -> Result<bool, ApiError> {
    if cart.status != "active" || expires_at(cart) > Utc::now() {
        return Ok(false);
    }
    sqlx::query("UPDATE carts SET status = 'expired' WHERE id = $1 AND status = 'active'")
        .bind(&cart.id)
        .execute(&mut *db)
        .await?;
    Ok(true)
}

/// The project's currency (the product service prices in it).
async fn project_currency(ctx: &ServiceContext, project_id: i64) -> Result<String, ApiError> {
    let pricing = ctx
        .platform
        .lookup::<SharedPricing>()
        .ok_or_else(|| unreachable("product"))?;
    let (currency, _) = tokio::time::timeout(PRICING_TIMEOUT, pricing.quote(project_id, "en", &[]))
        .await
        .map_err(|_| unreachable("product"))??;
    Ok(currency)
}

/// A new active cart of a user; the unique index makes a concurrent twin find the same one.
async fn create_user_cart(
    ctx: &ServiceContext,
    project_id: i64,
    user_id: i64,
    currency: Option<String>,
) -> Result<(bool, CartRow), ApiError> {
    let currency = match currency {
        Some(c) => c,
        None => project_currency(ctx, project_id).await?,
    };
    let created: Option<CartRow> = sqlx::query_as(&format!(
        "INSERT INTO carts (id, project_id, customer_id, currency) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, customer_id) WHERE status = 'active' AND customer_id IS NOT NULL \
         DO NOTHING RETURNING {}",
        CART.trim_start_matches("SELECT ")
            .trim_end_matches(" FROM carts")
    ))
    .bind(new_id("cart"))
    .bind(project_id)
    .bind(user_id)
    .bind(&currency)
    .fetch_optional(&ctx.pool)
    .await?;
    match created {
        Some(cart) => Ok((true, cart)),
        None => {
            let mut conn = ctx.pool.acquire().await?;
            let cart = users_cart(&mut conn, project_id, user_id, false)
                .await?
                .ok_or_else(|| ApiError::conflict("conflict", "Retry the request.").transient())?;
            Ok((false, cart))
        }
    }
}

/// Finds `{cart}` (`current` or an id) for reading: the shopper's own, or any for staff with
/// `order.view_cart`. `current` of a user is created when missing (and anew after expiry).
async fn find(
    ctx: &ServiceContext,
    shopper: &Shopper,
    key: &str,
) -> Result<(bool, CartRow), ApiError> {
    let project_id = shopper.project_id();
    let mut conn = ctx.pool.acquire().await?;
    if key == "current" {
        return match shopper {
            Shopper::Guest { token: None, .. } => Err(ApiError::not_authenticated()),
            Shopper::Guest { token: Some(t), .. } => {
                let cart: CartRow = sqlx::query_as(&format!(
                    "{CART} WHERE project_id = $1 AND guest_token_hash = $2"
                ))
                .bind(project_id)
                .bind(token_hash(t))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(ApiError::not_found)?;
                if expire_if_idle(&mut conn, &cart).await? {
                    return Err(expired());
                }
                Ok((false, cart))
            }
            _ => {
                let user = shopper.user_id().unwrap_or_default();
                if let Some(cart) = users_cart(&mut conn, project_id, user, false).await? {
                    if !expire_if_idle(&mut conn, &cart).await? {
                        return Ok((false, cart));
                    }
                }
                drop(conn);
                create_user_cart(ctx, project_id, user, None).await
            }
        };
    }
    let cart: CartRow = sqlx::query_as(&format!("{CART} WHERE project_id = $1 AND id = $2"))
        .bind(project_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .filter(|c| owns(shopper, c) || may_view_any(shopper))
        .ok_or_else(ApiError::not_found)?;
    if expire_if_idle(&mut conn, &cart).await? {
        return Err(expired());
    }
    Ok((false, cart))
}

/// Locks the shopper's own active cart for a write, checking `If-Match`: → the open
/// transaction holding the lock, and the cart. The cart is found before the transaction
/// begins, so a request never holds two connections of the pool.
async fn lock(
    ctx: &ServiceContext,
    shopper: &Shopper,
    key: &str,
    headers: &HeaderMap,
) -> Result<(Transaction<'static, Postgres>, CartRow), ApiError> {
    let id = if key == "current" {
        find(ctx, shopper, key).await?.1.id
    } else {
        key.to_owned()
    };
    let mut tx = ctx.pool.begin().await?;
    let cart: CartRow = sqlx::query_as(&format!(
        "{CART} WHERE project_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(shopper.project_id())
    .bind(&id)
    .fetch_optional(&mut *tx)
    .await?
    .filter(|c| owns(shopper, c))
    .ok_or_else(ApiError::not_found)?;
    match cart.status.as_str() {
        "active" => {}
        "converted" | "merged" => return Err(converted()),
        _ => return Err(expired()),
    }
    if expires_at(&cart) <= Utc::now() {
        return Err(expired());
    }
    if cart
        .checkout_started_at
        .is_some_and(|at| at > Utc::now() - CHECKOUT_CLAIM)
    {
        return Err(in_progress());
    }
    if let Some(wanted) = headers.get("if-match").and_then(|v| v.to_str().ok()) {
        let wanted = wanted.trim().trim_matches('"');
        if wanted != cart.version.to_string() && wanted != cart.updated_at.to_rfc3339() {
            return Err(ApiError::conflict(
                "stale_version",
                format!(
                    "The cart changed (version {}); reload it and retry.",
                    cart.version
                ),
            )
            .with("version", cart.version));
        }
    }
    Ok((tx, cart))
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "checkout_in_progress",
        "This cart is being checked out; retry in a moment.",
    )
    .transient()
}

async fn touch(tx: &mut PgConnection, id: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE carts SET version = version + 1, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn items(db: &mut PgConnection, cart_id: &str) -> Result<Vec<ItemRow>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, product_id, variant_id, quantity, seen_price, added_at FROM cart_items \
         WHERE cart_id = $1 ORDER BY added_at, id",
    )
    .bind(cart_id)
    .fetch_all(&mut *db)
    .await?)
}

async fn quotes(
    ctx: &ServiceContext,
    project_id: i64,
    lang: &str,
    asked: &[(i64, Option<i64>)],
) -> Result<Vec<PriceQuote>, ApiError> {
    let pricing = ctx
        .platform
        .lookup::<SharedPricing>()
        .ok_or_else(|| unreachable("product"))?;
    let (_, quotes) = tokio::time::timeout(PRICING_TIMEOUT, pricing.quote(project_id, lang, asked))
        .await
        .map_err(|_| unreachable("product"))??;
    Ok(quotes)
}

fn price_of(q: &PriceQuote) -> Option<Decimal> {
    q.unit_price
        .as_deref()
        .and_then(|p| p.parse::<Decimal>().ok())
        .filter(|_| q.is_available)
}

/// A cart with live prices, the coupon re-validated and the totals (order.md §2.1).
struct Priced {
    lines: Vec<Value>,
    quotes: Vec<PriceQuote>,
    rows: Vec<ItemRow>,
    subtotal: Decimal,
    discount: Decimal,
    tax: Decimal,
    shipping: Decimal,
    item_count: i64,
    /// The applied coupon, or why it no longer applies.
    coupon: Result<Option<Value>, ApiError>,
}

impl Priced {
    fn total(&self) -> Decimal {
        self.subtotal - self.discount + self.shipping + self.tax
    }

    fn totals(&self) -> Value {
        json!({
            "subtotal": money(self.subtotal),
            "discount_amount": money(self.discount),
            "tax_amount": money(self.tax),
            "shipping_cost": money(self.shipping),
            "total": money(self.total()),
            "item_count": self.item_count,
        })
    }
}

async fn validate_coupon(
    ctx: &ServiceContext,
    shopper: &Shopper,
    code: &str,
    amount: Decimal,
) -> Result<Value, ApiError> {
    let billing = ctx
        .platform
        .lookup::<SharedBilling>()
        .ok_or_else(|| unreachable("billing"))?;
    let body = json!({"code": code, "order_amount": money(amount),
        "customer_id": shopper.user_id()});
    tokio::time::timeout(
        COUPON_TIMEOUT,
        billing.validate_coupon(&shopper.as_service(), &body),
    )
    .await
    .map_err(|_| unreachable("billing"))?
}

async fn price(
    ctx: &ServiceContext,
    db: &mut PgConnection,
    shopper: &Shopper,
    cart: &CartRow,
    lang: &str,
) -> Result<Priced, ApiError> {
    let rows = items(db, &cart.id).await?;
    let asked: Vec<(i64, Option<i64>)> =
        rows.iter().map(|r| (r.product_id, r.variant_id)).collect();
    let quotes = if asked.is_empty() {
        Vec::new()
    } else {
        quotes(ctx, shopper.project_id(), lang, &asked).await?
    };
    let mut lines = Vec::with_capacity(rows.len());
    let mut subtotal = Decimal::ZERO;
    let mut item_count = 0i64;
    for (row, q) in rows.iter().zip(&quotes) {
        let unit = price_of(q);
        let line_total = unit.map(|u| u * Decimal::from(row.quantity));
        subtotal += line_total.unwrap_or(Decimal::ZERO);
        item_count += i64::from(row.quantity);
        lines.push(line(row, q, unit));
    }
    let coupon = match &cart.coupon {
        Some(applied) if subtotal > Decimal::ZERO => {
            let code = applied["code"].as_str().unwrap_or_default();
            validate_coupon(ctx, shopper, code, subtotal)
                .await
                .map(|v| Some(json!({"applied": applied, "quote": v})))
        }
        _ => Ok(None),
    };
    let discount = match &coupon {
        Ok(Some(c)) => decimal(&c["quote"]["discount_amount"])
            .unwrap_or(Decimal::ZERO)
            .min(subtotal),
        _ => Decimal::ZERO,
    };
    let settings = settings::load(&mut *db, shopper.project_id()).await?;
    let shipping = match cart.shipping_method.as_str() {
        "" => Decimal::ZERO,
        code => crate::extras::shipping_cost(db, shopper.project_id(), code, subtotal)
            .await?
            .unwrap_or(Decimal::ZERO),
    };
    Ok(Priced {
        tax: settings::tax(subtotal, discount, settings.tax_rate),
        shipping,
        lines,
        quotes,
        rows,
        subtotal,
        discount,
        item_count,
        coupon,
    })
}

fn line(row: &ItemRow, q: &PriceQuote, unit: Option<Decimal>) -> Value {
    let total = unit.map(|u| money(u * Decimal::from(row.quantity)));
    json!({
        "id": row.id,
        "product": {"id": row.product_id, "name": q.name, "sku": q.sku, "slug": q.slug},
        "variant": row.variant_id.map(|v| json!({"id": v, "name": q.variant_name, "sku": q.sku,
            "attributes": {}})),
        "quantity": row.quantity,
        "unit_price": unit.map(money),
        "total_price": total,
        "is_available": unit.is_some(),
        "stock_available": q.stock_available,
        "image": q.image_url.as_ref().map(|u| json!({"url": u, "alt_text": q.name})),
        "added_at": row.added_at,
    })
}

async fn customer(ctx: &ServiceContext, cart: &CartRow) -> Value {
    let Some(id) = cart.customer_id else {
        return Value::Null;
    };
    let found = match ctx
        .platform
        .lookup::<integration::users::SharedUserDirectory>()
    {
        Some(users) => users.by_id(id).await.ok().flatten(),
        None => None,
    };
    match found {
        Some(u) => json!({"id": id, "email": u.email, "first_name": u.first_name,
            "last_name": u.last_name}),
        None => json!({"id": id, "email": null, "first_name": null, "last_name": null}),
    }
}

fn promotions(priced: &Priced) -> Value {
    match &priced.coupon {
        Ok(Some(c)) => json!([{
            "id": c["applied"]["id"], "code": c["applied"]["code"],
            "discount_type": c["applied"]["discount_type"],
            "discount_value": c["applied"]["discount_value"],
            "discount_amount": money(priced.discount),
        }]),
        _ => json!([]),
    }
}

/// The whole cart as clients read it.
async fn view(
    ctx: &ServiceContext,
    shopper: &Shopper,
    cart: &CartRow,
    lang: &str,
) -> Result<Value, ApiError> {
    let mut conn = ctx.pool.acquire().await?;
    let priced = price(ctx, &mut conn, shopper, cart, lang).await?;
    let mut out = priced.totals();
    let extra = json!({
        "id": cart.id,
        "customer": customer(ctx, cart).await,
        "is_guest": cart.customer_id.is_none(),
        "status": cart.status,
        "currency": cart.currency,
        "items": priced.lines,
        "applied_promotions": promotions(&priced),
        "shipping_address": cart.shipping_address,
        "billing_address": cart.billing_address,
        "shipping_method": Some(&cart.shipping_method).filter(|m| !m.is_empty()),
        "expires_at": expires_at(cart),
        "created_at": cart.created_at,
        "updated_at": cart.updated_at,
        "version": cart.version,
        "order_id": cart.order_id,
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    Ok(out)
}

async fn reread(ctx: &ServiceContext, id: &str) -> Result<CartRow, ApiError> {
    Ok(sqlx::query_as(&format!("{CART} WHERE id = $1"))
        .bind(id)
        .fetch_one(&ctx.pool)
        .await?)
}

/// The totals after a committed write.
async fn totals_now(
    ctx: &ServiceContext,
    shopper: &Shopper,
    id: &str,
    lang: &str,
) -> Result<Value, ApiError> {
    let cart = reread(ctx, id).await?;
    let mut conn = ctx.pool.acquire().await?;
    Ok(price(ctx, &mut conn, shopper, &cart, lang).await?.totals())
}

// ---- handlers ------------------------------------------------------------------------------

fn currency_of(body: &Value) -> Result<Option<String>, ApiError> {
    match body.get("currency").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Value::String(c))
            if c.trim().len() == 3 && c.trim().chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            Ok(Some(c.trim().to_ascii_uppercase()))
        }
        Some(_) => Err(ApiError::field("currency", "Use an ISO 4217 code.")),
    }
}

/// A guest cart with a fresh token (shown once).
async fn create_guest(
    ctx: &ServiceContext,
    project_id: i64,
    currency: Option<String>,
) -> Result<Response, ApiError> {
    let currency = match currency {
        Some(c) => c,
        None => project_currency(ctx, project_id).await?,
    };
    let token = format!(
        "gt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let cart: CartRow = sqlx::query_as(&format!(
        "INSERT INTO carts (id, project_id, guest_token_hash, currency) VALUES ($1, $2, $3, $4) \
         RETURNING {}",
        CART.trim_start_matches("SELECT ")
            .trim_end_matches(" FROM carts")
    ))
    .bind(new_id("cart"))
    .bind(project_id)
    .bind(token_hash(&token))
    .bind(&currency)
    .fetch_one(&ctx.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(
            json!({"id": cart.id, "guest_token": token, "currency": cart.currency,
            "items": [], "is_guest": true, "expires_at": expires_at(&cart),
            "version": cart.version}),
        ),
    )
        .into_response())
}

/// `POST cart/guest/` (public, `X-Project-ID`).
#[utoipa::path(post, path = "/api/v1/order/cart/guest/", tag = "Cart", request_body = Value, responses((status = 201, description = "A guest cart and its token"), (status = 400, description = "Invalid input")))]
async fn guest(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    create_guest(&ctx, shopper.project_id(), currency_of(&body)?).await
}

/// `POST cart/carts/` → 201 a new cart, 200 the active one.
#[utoipa::path(post, path = "/api/v1/order/cart/carts/", tag = "Cart", request_body = Value, responses((status = 200, description = "The user's open cart"), (status = 201, description = "A new cart"), (status = 400, description = "Invalid input")))]
async fn open(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let currency = currency_of(&body)?;
    let Some(user) = shopper.user_id() else {
        return create_guest(&ctx, shopper.project_id(), currency).await;
    };
    let (created, cart) = find(&ctx, &shopper, "current")
        .await
        .map(|(c, cart)| (c, Some(cart)))
        .or_else(|e| {
            if e.status() == StatusCode::NOT_FOUND {
                Ok((false, None))
            } else {
                Err(e)
            }
        })?;
    let (created, cart) = match cart {
        Some(cart) => (created, cart),
        None => create_user_cart(&ctx, shopper.project_id(), user, currency).await?,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, JsonOut(view(&ctx, &shopper, &cart, lang).await?)).into_response())
}

/// `GET cart/carts/{cart}/`.
#[utoipa::path(get, path = "/api/v1/order/cart/carts/{cart}/", tag = "Cart", params(("cart" = String, Path)), responses((status = 200, description = "The cart with its lines and totals"), (status = 404, description = "Not found")))]
async fn show(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let (_, cart) = find(&ctx, &shopper, &key).await?;
    Ok(JsonOut(view(&ctx, &shopper, &cart, lang).await?))
}

fn insufficient(requested: i64, available: i64) -> ApiError {
    ApiError::rule(
        "insufficient_stock",
        format!("Only {available} available; {requested} requested."),
    )
    .with("error", "Insufficient stock")
    .with("message", format!("Only {available} available."))
    .with(
        "details",
        json!({"requested": requested, "available": available}),
    )
}

fn unavailable() -> ApiError {
    ApiError::rule(
        "product_unavailable",
        "This product is unknown, deleted or not on sale.",
    )
}

/// Checks a wanted quantity of one product against its live quote.
fn check_line(q: &PriceQuote, wanted: i64) -> Result<Decimal, ApiError> {
    let unit = price_of(q).ok_or_else(unavailable)?;
    if let Some(available) = q.stock_available {
        if wanted > available {
            return Err(insufficient(wanted, available.max(0)));
        }
    }
    Ok(unit)
}

/// `POST C items/` `{product_id, quantity (1), variant_id?}` → 201 the line + `cart_totals`.
#[utoipa::path(post, path = "/api/v1/order/cart/carts/{cart}/items/", tag = "Cart", params(("cart" = String, Path)), request_body = Value, responses((status = 201, description = "The cart"), (status = 200, description = "The cart"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn add_item(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::new();
    let product_id = int(body.get("product_id").or_else(|| body.get("product"))).filter(|p| *p > 0);
    if product_id.is_none() {
        errors.add("product_id", "A valid product id is required.");
    }
    let variant_id = match body.get("variant_id").or_else(|| body.get("variant")) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = int(Some(v)).filter(|p| *p > 0);
            if id.is_none() {
                errors.add("variant_id", "A valid id is required.");
            }
            id
        }
    };
    let quantity = match body.get("quantity") {
        None | Some(Value::Null) => Some(1),
        Some(v) => int(Some(v)).filter(|q| (1..=MAX_QUANTITY).contains(q)),
    };
    if quantity.is_none() {
        errors.add("quantity", "Give a whole number from 1 to 9999.");
    }
    errors.into_result()?;
    let (Some(product_id), Some(quantity)) = (product_id, quantity) else {
        return Err(ApiError::field(
            "product_id",
            "A valid product id is required.",
        ));
    };
    let quote = quotes(
        &ctx,
        shopper.project_id(),
        lang,
        &[(product_id, variant_id)],
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(unavailable)?;
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    let existing: Option<(String, i32)> = sqlx::query_as(
        "SELECT id, quantity FROM cart_items WHERE cart_id = $1 AND product_id = $2 \
         AND COALESCE(variant_id, 0) = COALESCE($3, 0)",
    )
    .bind(&cart.id)
    .bind(product_id)
    .bind(variant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let wanted = quantity + existing.as_ref().map_or(0, |e| i64::from(e.1));
    if wanted > MAX_QUANTITY {
        return Err(ApiError::field(
            "quantity",
            "A line holds at most 9999 units.",
        ));
    }
    let unit = check_line(&quote, wanted)?;
    let id = match existing {
        Some((id, _)) => {
            sqlx::query("UPDATE cart_items SET quantity = $2, seen_price = $3 WHERE id = $1")
                .bind(&id)
                .bind(wanted as i32)
                .bind(unit)
                .execute(&mut *tx)
                .await?;
            id
        }
        None => {
            let lines: i64 =
                sqlx::query_scalar("SELECT count(*) FROM cart_items WHERE cart_id = $1")
                    .bind(&cart.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if lines >= MAX_LINES {
                return Err(ApiError::rule(
                    "cart_full",
                    "A cart holds at most 100 lines.",
                ));
            }
            let id = new_id("item");
            sqlx::query(
                "INSERT INTO cart_items (id, cart_id, product_id, variant_id, quantity, seen_price) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(&cart.id)
            .bind(product_id)
            .bind(variant_id)
            .bind(wanted as i32)
            .bind(unit)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    let row: ItemRow = sqlx::query_as(
        "SELECT id, product_id, variant_id, quantity, seen_price, added_at FROM cart_items WHERE id = $1",
    )
    .bind(&id)
    .fetch_one(&ctx.pool)
    .await?;
    let mut out = line(&row, &quote, Some(unit));
    out["cart_totals"] = totals_now(&ctx, &shopper, &cart.id, lang).await?;
    Ok((StatusCode::CREATED, JsonOut(out)).into_response())
}

/// `PATCH C items/{item}/` `{quantity}` (0 removes) and `DELETE` → 204.
#[utoipa::path(method(patch, put), path = "/api/v1/order/cart/carts/{cart}/items/{item}/", tag = "Cart", params(("cart" = String, Path), ("item" = String, Path)), request_body = Value, responses((status = 200, description = "The cart"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn change_item(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path((key, item)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let quantity = int(body.get("quantity"))
        .filter(|q| (0..=MAX_QUANTITY).contains(q))
        .ok_or_else(|| ApiError::field("quantity", "Give a whole number from 0 to 9999."))?;
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    let row: ItemRow = sqlx::query_as(
        "SELECT id, product_id, variant_id, quantity, seen_price, added_at FROM cart_items \
         WHERE id = $1 AND cart_id = $2",
    )
    .bind(&item)
    .bind(&cart.id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    let mut unit = None;
    if quantity == 0 {
        sqlx::query("DELETE FROM cart_items WHERE id = $1")
            .bind(&item)
            .execute(&mut *tx)
            .await?;
    } else {
        let quote = quotes(
            &ctx,
            shopper.project_id(),
            lang,
            &[(row.product_id, row.variant_id)],
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(unavailable)?;
        let price = check_line(&quote, quantity)?;
        unit = Some(price);
        sqlx::query("UPDATE cart_items SET quantity = $2, seen_price = $3 WHERE id = $1")
            .bind(&item)
            .bind(quantity as i32)
            .bind(price)
            .execute(&mut *tx)
            .await?;
    }
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    Ok(JsonOut(json!({
        "id": item,
        "quantity": quantity,
        "previous_quantity": row.quantity,
        "unit_price": unit.map(money),
        "total_price": unit.map(|u| money(u * Decimal::from(quantity))),
        "cart_totals": totals_now(&ctx, &shopper, &cart.id, lang).await?,
    }))
    .into_response())
}

#[utoipa::path(delete, path = "/api/v1/order/cart/carts/{cart}/items/{item}/", tag = "Cart", params(("cart" = String, Path), ("item" = String, Path)), responses((status = 200, description = "The cart"), (status = 404, description = "Not found")))]
async fn remove_item(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Path((key, item)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    let gone = sqlx::query("DELETE FROM cart_items WHERE id = $1 AND cart_id = $2")
        .bind(&item)
        .bind(&cart.id)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::not_found());
    }
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST C clear/` → the empty cart + `cleared_at`.
#[utoipa::path(post, path = "/api/v1/order/cart/carts/{cart}/clear/", tag = "Cart", params(("cart" = String, Path)), responses((status = 200, description = "The empty cart"), (status = 404, description = "Not found")))]
async fn clear(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    sqlx::query("DELETE FROM cart_items WHERE cart_id = $1")
        .bind(&cart.id)
        .execute(&mut *tx)
        .await?;
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    let cart = reread(&ctx, &cart.id).await?;
    let mut out = view(&ctx, &shopper, &cart, lang).await?;
    out["cleared_at"] = json!(Utc::now());
    Ok(JsonOut(out))
}

/// `POST C coupons/` `{code}` → 201 the applied coupon; a second one → 409.
#[utoipa::path(post, path = "/api/v1/order/cart/carts/{cart}/coupons/", tag = "Cart", params(("cart" = String, Path)), request_body = Value, responses((status = 200, description = "The cart with the coupon"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found")))]
async fn add_coupon(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::new();
    let code = text(&body, &["code", "coupon_code"], 50, &mut errors);
    if code.is_empty() && errors.is_empty() {
        errors.required("code");
    }
    errors.into_result()?;
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    if cart.coupon.is_some() {
        return Err(ApiError::conflict(
            "coupon_already_applied",
            "A coupon is already applied; remove it first.",
        ));
    }
    let priced = price(&ctx, &mut tx, &shopper, &cart, lang).await?;
    let quote = validate_coupon(&ctx, &shopper, &code, priced.subtotal)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::UNPROCESSABLE_ENTITY {
                e.with("error", "Invalid coupon")
            } else {
                e
            }
        })?;
    let applied = json!({
        "id": new_id("coupon"),
        "code": quote["coupon"]["code"].as_str().unwrap_or(&code),
        "coupon_id": quote["coupon"]["id"],
        "description": quote["coupon"]["description"].as_str().unwrap_or_default(),
        "discount_type": quote["coupon"]["discount_type"],
        "discount_value": quote["coupon"]["discount_value"],
        "applied_at": Utc::now(),
    });
    sqlx::query("UPDATE carts SET coupon = $2 WHERE id = $1")
        .bind(&cart.id)
        .bind(&applied)
        .execute(&mut *tx)
        .await?;
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    let mut out = applied;
    out["discount_amount"] = quote["discount_amount"].clone();
    out["free_shipping"] = json!(false);
    out["cart_totals"] = totals_now(&ctx, &shopper, &cart.id, lang).await?;
    Ok((StatusCode::CREATED, JsonOut(out)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/order/cart/carts/{cart}/coupons/{coupon}/", tag = "Cart", params(("cart" = String, Path), ("coupon" = String, Path)), responses((status = 200, description = "The cart"), (status = 404, description = "Not found")))]
async fn remove_coupon(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Path((key, coupon)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    let matches = cart
        .coupon
        .as_ref()
        .is_some_and(|c| c["id"] == coupon || c["code"] == coupon);
    if !matches {
        return Err(ApiError::not_found());
    }
    sqlx::query("UPDATE carts SET coupon = NULL WHERE id = $1")
        .bind(&cart.id)
        .execute(&mut *tx)
        .await?;
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT C shipping_address/` Address → the address and the methods that deliver there.
#[utoipa::path(put, path = "/api/v1/order/cart/carts/{cart}/shipping_address/", tag = "Cart", params(("cart" = String, Path)), request_body = Value, responses((status = 200, description = "The cart"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found")))]
async fn set_address(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let address = body
        .get("shipping_address")
        .filter(|a| a.is_object())
        .unwrap_or(&body)
        .clone();
    check_address("shipping_address", &address)?;
    if address.to_string().len() > 4096 {
        return Err(ApiError::field(
            "shipping_address",
            "The address is too long.",
        ));
    }
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    sqlx::query(
        "UPDATE carts SET shipping_address = $2, \
           billing_address = COALESCE(billing_address, $2) WHERE id = $1",
    )
    .bind(&cart.id)
    .bind(&address)
    .execute(&mut *tx)
    .await?;
    touch(&mut tx, &cart.id).await?;
    let methods = crate::extras::methods(&mut tx, shopper.project_id()).await?;
    tx.commit().await?;
    Ok(JsonOut(
        json!({"shipping_address": address, "available_shipping_methods": methods}),
    ))
}

/// `n` business days after `from` (Saturday and Sunday skipped).
fn business_days(from: chrono::NaiveDate, n: i64) -> chrono::NaiveDate {
    let mut day = from;
    let mut left = n;
    while left > 0 {
        day = day.succ_opt().unwrap_or(day);
        if !matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
            left -= 1;
        }
    }
    day
}

/// `PUT C shipping_method/` `{method}`.
#[utoipa::path(put, path = "/api/v1/order/cart/carts/{cart}/shipping_method/", tag = "Cart", params(("cart" = String, Path)), request_body = Value, responses((status = 200, description = "The cart"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found")))]
async fn set_method(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let method = text(&body, &["method", "shipping_method"], 30, &mut errors).to_ascii_lowercase();
    errors.into_result()?;
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    let offered = crate::extras::methods(&mut tx, shopper.project_id()).await?;
    let Some(chosen) = offered.iter().find(|m| m["id"] == method.as_str()) else {
        return Err(ApiError::field("method", "Unknown shipping method."));
    };
    let days = chosen["estimated_days"].as_i64().unwrap_or(0);
    sqlx::query("UPDATE carts SET shipping_method = $2 WHERE id = $1")
        .bind(&cart.id)
        .bind(&method)
        .execute(&mut *tx)
        .await?;
    touch(&mut tx, &cart.id).await?;
    tx.commit().await?;
    let totals = totals_now(&ctx, &shopper, &cart.id, lang).await?;
    Ok(JsonOut(json!({
        "shipping_method": method,
        "shipping_cost": totals["shipping_cost"],
        "estimated_delivery": business_days(Utc::now().date_naive(), days),
        "cart_totals": totals,
    })))
}

/// `POST cart/carts/merge/` `{guest_cart_id}`: the guest cart's lines join the caller's cart.
#[utoipa::path(post, path = "/api/v1/order/cart/carts/merge/", tag = "Cart", request_body = Value, responses((status = 200, description = "The merged cart"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found")))]
async fn merge(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let Some(user) = shopper.user_id() else {
        return Err(ApiError::not_authenticated());
    };
    let mut errors = FieldErrors::new();
    let guest_id = text(&body, &["guest_cart_id", "cart_id"], 60, &mut errors);
    if guest_id.is_empty() && errors.is_empty() {
        errors.required("guest_cart_id");
    }
    errors.into_result()?;
    let (_, mine) = find(&ctx, &shopper, "current").await?;
    let mut tx = ctx.pool.begin().await?;
    // Both rows locked in id order, so two merges never wait on each other in a cycle.
    let locked: Vec<CartRow> = sqlx::query_as(&format!(
        "{CART} WHERE project_id = $1 AND id IN ($2, $3) ORDER BY id FOR UPDATE"
    ))
    .bind(shopper.project_id())
    .bind(&mine.id)
    .bind(&guest_id)
    .fetch_all(&mut *tx)
    .await?;
    let guest = locked
        .iter()
        .find(|c| {
            c.id == guest_id
                && c.customer_id.is_none()
                && c.guest_token_hash.is_some()
                && c.status == "active"
        })
        .ok_or_else(ApiError::not_found)?;
    let mine = locked
        .iter()
        .find(|c| c.id == mine.id && c.customer_id == Some(user) && c.status == "active")
        .ok_or_else(|| ApiError::conflict("conflict", "Your cart changed; retry.").transient())?;
    let guest_items = items(&mut tx, &guest.id).await?;
    for item in &guest_items {
        sqlx::query(
            "INSERT INTO cart_items (id, cart_id, product_id, variant_id, quantity, seen_price, added_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (cart_id, product_id, COALESCE(variant_id, 0)) DO UPDATE \
               SET quantity = LEAST(cart_items.quantity + EXCLUDED.quantity, $8)",
        )
        .bind(new_id("item"))
        .bind(&mine.id)
        .bind(item.product_id)
        .bind(item.variant_id)
        .bind(item.quantity)
        .bind(item.seen_price)
        .bind(item.added_at)
        .bind(MAX_QUANTITY as i32)
        .execute(&mut *tx)
        .await?;
    }
    if mine.coupon.is_none() && guest.coupon.is_some() {
        sqlx::query("UPDATE carts SET coupon = $2 WHERE id = $1")
            .bind(&mine.id)
            .bind(&guest.coupon)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE carts SET shipping_address = COALESCE(shipping_address, $2), \
           billing_address = COALESCE(billing_address, $3) WHERE id = $1",
    )
    .bind(&mine.id)
    .bind(&guest.shipping_address)
    .bind(&guest.billing_address)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE carts SET status = 'merged', updated_at = now() WHERE id = $1")
        .bind(&guest.id)
        .execute(&mut *tx)
        .await?;
    touch(&mut tx, &mine.id).await?;
    tx.commit().await?;
    let cart = reread(&ctx, &mine.id).await?;
    let mut conn = ctx.pool.acquire().await?;
    let priced = price(&ctx, &mut conn, &shopper, &cart, lang).await?;
    let lines: Vec<Value> = priced
        .rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "product_id": r.product_id, "variant_id": r.variant_id,
            "quantity": r.quantity})
        })
        .collect();
    Ok(JsonOut(json!({
        "id": cart.id,
        "items_merged": guest_items.len(),
        "items": lines,
        "subtotal": money(priced.subtotal),
        "total": money(priced.total()),
        "merged_at": Utc::now(),
    })))
}

/// The checks of `validate/` and checkout: errors block checkout, warnings inform.
struct Checked {
    priced: Priced,
    errors: Vec<Value>,
    warnings: Vec<Value>,
}

async fn check(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    shopper: &Shopper,
    cart: &CartRow,
    lang: &str,
) -> Result<Checked, ApiError> {
    let priced = price(ctx, tx, shopper, cart, lang).await?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if priced.rows.is_empty() {
        errors.push(json!({"code": "cart_empty", "message": "The cart is empty."}));
    }
    for (row, q) in priced.rows.iter().zip(&priced.quotes) {
        let name = q
            .name
            .clone()
            .unwrap_or_else(|| format!("Product {}", row.product_id));
        let Some(unit) = price_of(q) else {
            errors.push(json!({"code": "product_unavailable", "item_id": row.id,
                "product_id": row.product_id, "message": format!("{name} is no longer available.")}));
            continue;
        };
        let wanted = i64::from(row.quantity);
        match q.stock_available {
            Some(available) if available <= 0 => errors.push(json!({"code": "out_of_stock",
                "item_id": row.id, "product_id": row.product_id, "available_quantity": 0,
                "message": format!("{name} is out of stock.")})),
            Some(available) if available < wanted => errors.push(json!({
                "code": "insufficient_stock", "item_id": row.id, "product_id": row.product_id,
                "requested": wanted, "available_quantity": available,
                "message": format!("Only {available} of {name} available.")})),
            Some(available) if available < 10 => warnings.push(json!({"code": "low_stock",
                "item_id": row.id, "product_id": row.product_id, "available_quantity": available,
                "message": format!("{name} has low stock ({available} remaining)")})),
            _ => {}
        }
        if let Some(seen) = row.seen_price.filter(|s| *s != unit) {
            warnings.push(json!({"code": "price_changed", "item_id": row.id,
                "product_id": row.product_id, "old_price": money(seen), "new_price": money(unit),
                "message": format!("The price of {name} changed from {} to {}.", money(seen), money(unit))}));
        }
    }
    let mut priced = priced;
    if matches!(&priced.coupon, Err(e) if !e.status().is_client_error()) {
        // Billing could not answer: no checkout on a guessed discount.
        std::mem::replace(&mut priced.coupon, Ok(None))?;
    }
    if let Err(e) = &priced.coupon {
        warnings.push(json!({"code": "coupon_removed", "coupon_code": e.code(),
            "message": format!("The coupon no longer applies: {}", e.detail())}));
    }
    if cart.shipping_address.is_none() && cart.shipping_method != "pickup" {
        warnings.push(json!({"code": "shipping_address_missing",
            "message": "Add a shipping address before checkout."}));
    }
    Ok(Checked {
        priced,
        errors,
        warnings,
    })
}

/// After a check: the seen prices follow the current ones, and a coupon that no longer applies
/// is removed (each warning is given once).
async fn settle(tx: &mut PgConnection, cart: &CartRow, checked: &Checked) -> Result<(), ApiError> {
    for (row, q) in checked.priced.rows.iter().zip(&checked.priced.quotes) {
        if let Some(unit) = price_of(q) {
            sqlx::query("UPDATE cart_items SET seen_price = $2 WHERE id = $1")
                .bind(&row.id)
                .bind(unit)
                .execute(&mut *tx)
                .await?;
        }
    }
    if checked.priced.coupon.is_err() {
        sqlx::query("UPDATE carts SET coupon = NULL WHERE id = $1")
            .bind(&cart.id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// `POST C validate/` → 200 `{is_valid, warnings, errors, cart_totals, validated_at}`; invalid
/// → 422 with the same body and `code: cart_invalid`.
#[utoipa::path(post, path = "/api/v1/order/cart/carts/{cart}/validate/", tag = "Cart", params(("cart" = String, Path)), responses((status = 200, description = "What would stop a checkout"), (status = 404, description = "Not found")))]
async fn validate(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (mut tx, cart) = lock(&ctx, &shopper, &key, &headers).await?;
    let checked = check(&ctx, &mut tx, &shopper, &cart, lang).await?;
    settle(&mut tx, &cart, &checked).await?;
    tx.commit().await?;
    let valid = checked.errors.is_empty();
    let mut body = json!({
        "is_valid": valid,
        "warnings": checked.warnings,
        "errors": checked.errors,
        "cart_totals": checked.priced.totals(),
        "validated_at": Utc::now(),
    });
    if valid {
        return Ok(JsonOut(body).into_response());
    }
    body["code"] = json!("cart_invalid");
    body["detail"] = json!("The cart cannot be checked out as it is.");
    Ok((StatusCode::UNPROCESSABLE_ENTITY, JsonOut(body)).into_response())
}

/// `POST C checkout/` `{payment_method, shipping_address?, billing_address?, customer_email?,
/// customer_phone?, notes?}` → 201 the placed order's summary (200 the same on a replay).
#[utoipa::path(post, path = "/api/v1/order/cart/carts/{cart}/checkout/", tag = "Cart", params(("cart" = String, Path)), request_body = Value, responses((status = 201, description = "The placed order"), (status = 200, description = "The order of an earlier checkout"), (status = 400, description = "Invalid input"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn checkout(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Lang(lang): Lang,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::new();
    let method = text(&body, &["payment_method"], 30, &mut errors).to_ascii_lowercase();
    if method.is_empty() && errors.is_empty() {
        errors.required("payment_method");
    } else if !method.is_empty() && !PAYMENT_METHODS.contains(&method.as_str()) {
        errors.add(
            "payment_method",
            format!("Use one of: {}.", PAYMENT_METHODS.join(", ")),
        );
    }
    let mut email = text(&body, &["customer_email", "email"], 254, &mut errors);
    if !email.is_empty() && !email.contains('@') {
        errors.add("customer_email", "Enter a valid email address.");
    }
    let phone = text(&body, &["customer_phone"], 30, &mut errors);
    let name = text(&body, &["customer_name"], 255, &mut errors);
    let notes = text(&body, &["notes", "note"], 2000, &mut errors);
    // A gateway token when the client tokenised the card already; else the gateway's page.
    let token = Some(text(&body, &["payment_token"], 255, &mut errors)).filter(|t| !t.is_empty());
    errors.into_result()?;
    let given = |k: &str| body.get(k).filter(|v| !v.is_null()).cloned();
    if let Some(a) = given("shipping_address") {
        check_address("shipping_address", &a)?;
    }
    if let Some(a) = given("billing_address") {
        check_address("billing_address", &a)?;
    }
    if email.is_empty() {
        if let (Some(user), Some(users)) = (
            shopper.user_id(),
            ctx.platform
                .lookup::<integration::users::SharedUserDirectory>(),
        ) {
            if let Ok(Some(u)) = users.by_id(user).await {
                email = u.email;
            }
        }
    }
    if email.is_empty() && shopper.user_id().is_none() {
        return Err(ApiError::field(
            "customer_email",
            "Guests must give an email address.",
        ));
    }

    // 1. Claim the cart (a retry, or a checkout racing this one, waits for the first and gets
    // its answer), and check it, under the row lock.
    let mut waited = 0;
    let (cart, checked) = loop {
        match lock(&ctx, &shopper, &key, &headers).await {
            Ok((mut tx, cart)) => {
                let checked = check(&ctx, &mut tx, &shopper, &cart, lang).await?;
                if !checked.errors.is_empty() {
                    return Err(ApiError::rule(
                        "cart_invalid",
                        "The cart cannot be checked out as it is.",
                    )
                    .with("is_valid", false)
                    .with("errors", Value::Array(checked.errors))
                    .with("warnings", Value::Array(checked.warnings))
                    .with("cart_totals", checked.priced.totals()));
                }
                settle(&mut tx, &cart, &checked).await?;
                sqlx::query("UPDATE carts SET checkout_started_at = now() WHERE id = $1")
                    .bind(&cart.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                break (cart, checked);
            }
            Err(e) if e.code() == "cart_converted" || e.code() == "checkout_in_progress" => {
                if let Ok((_, cart)) = find(&ctx, &shopper, &key).await {
                    if let ("converted", Some(done)) = (cart.status.as_str(), &cart.checkout) {
                        return Ok(JsonOut(done.clone()).into_response());
                    }
                }
                if e.code() == "cart_converted" || waited >= 150 {
                    return Err(e);
                }
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let release_claim = || async {
        let freed = sqlx::query("UPDATE carts SET checkout_started_at = NULL WHERE id = $1")
            .bind(&cart.id)
            .execute(&ctx.pool)
            .await;
        if let Err(e) = freed {
            tracing::warn!(cart = cart.id, error = %e, "checkout claim not released; it lapses");
        }
    };

    // 2. The placement saga, with no lock held (the reference `cart:{id}` keeps it to one order).
    let shipping_address = given("shipping_address").or_else(|| cart.shipping_address.clone());
    let billing_address = given("billing_address")
        .or_else(|| cart.billing_address.clone())
        .or_else(|| shipping_address.clone());
    if shipping_address.is_none() && cart.shipping_method != "pickup" {
        release_claim().await;
        return Err(ApiError::rule(
            "shipping_address_required",
            "A shipping address is required unless the order is picked up.",
        ));
    }
    let coupon_code = match &checked.priced.coupon {
        Ok(Some(c)) => c["applied"]["code"].as_str().map(str::to_owned),
        _ => None,
    };
    let online = ONLINE.contains(&method.as_str());
    let placement = Placement {
        lines: checked
            .priced
            .rows
            .iter()
            .map(|r| Wanted {
                product_id: r.product_id,
                variant_id: r.variant_id,
                inventory_id: None,
                quantity: i64::from(r.quantity),
                unit_price: None,
            })
            .collect(),
        customer_email: email,
        customer_phone: phone,
        customer_name: name,
        shipping_address,
        billing_address,
        shipping_method: cart.shipping_method.clone(),
        payment_method: method.clone(),
        notes,
        reference: Some(format!("cart:{}", cart.id)),
        source: "checkout".into(),
        coupon_code,
        customer_id: shopper.user_id(),
        discount: None,
        shipping: None,
        cart_id: Some(cart.id.clone()),
        awaiting_payment: online,
    };
    let scope = shopper.as_service();
    let order_id = match crate::orders::place_parsed(&ctx, &scope, lang, placement).await {
        Ok((_, id, _)) => id,
        Err(e) => {
            release_claim().await;
            return Err(e);
        }
    };
    let (number, status, total, currency, created_at): (
        String,
        String,
        Decimal,
        String,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "SELECT order_number, status, total, currency, created_at FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .fetch_one(&ctx.pool)
    .await?;

    // 3. Online methods: billing starts the payment and gives the page to pay on.
    let settings = settings::load(&ctx.pool, shopper.project_id()).await?;
    let mut payment_methods = Vec::new();
    let mut expires = None;
    if online && status == "pending_payment" {
        expires = Some(created_at + settings.payment_window);
        let started = match ctx.platform.lookup::<SharedBilling>() {
            Some(billing) => {
                let request = json!({"source_type": "order", "source_id": order_id,
                    "amount": money(total), "currency": currency, "method": method,
                    "token": token,
                    "idempotency_key": format!("order-pay-{}-{order_id}", shopper.project_id())});
                tokio::time::timeout(COUPON_TIMEOUT, billing.start_payment(&scope, &request))
                    .await
                    .unwrap_or_else(|_| Err(unreachable("billing")))
            }
            None => Err(unreachable("billing")),
        };
        let url = match started {
            Ok(tx) => tx["next_action"]["url"].as_str().map(str::to_owned),
            Err(e) => {
                tracing::warn!(order_id, error = %e, "online payment not started; the order waits");
                None
            }
        };
        payment_methods.push(json!({"id": method, "name": method.replace('_', " "),
            "payment_url": url}));
    }
    let answer = json!({
        "order_id": number,
        "id": order_id,
        "status": status,
        "cart_id": cart.id,
        "payment_required": online,
        "payment_methods": payment_methods,
        "expires_at": expires,
        "created_at": created_at,
    });

    // 4. The cart is converted and keeps the answer for retries.
    sqlx::query(
        "UPDATE carts SET status = 'converted', order_id = $2, checkout = $3, \
           checkout_started_at = NULL, version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(&cart.id)
    .bind(order_id)
    .bind(&answer)
    .execute(&ctx.pool)
    .await?;
    Ok((StatusCode::CREATED, JsonOut(answer)).into_response())
}

#[derive(serde::Deserialize)]
struct AbandonedQuery {
    hours: Option<String>,
    has_items: Option<String>,
    min_value: Option<String>,
}

/// `GET cart/carts/abandoned/` (staff with `order.view_cart`): active carts idle for `hours`,
/// valued at the prices their shoppers last saw.
#[utoipa::path(get, path = "/api/v1/order/cart/carts/abandoned/", tag = "Cart", responses((status = 200, description = "Carts left with items"), (status = 403, description = "Not a member or no permission")))]
async fn abandoned(
    State(ctx): State<ServiceContext>,
    shopper: Shopper,
    Query(q): Query<AbandonedQuery>,
) -> Result<JsonOut<Value>, ApiError> {
    let scope = shopper.member().ok_or_else(ApiError::permission_denied)?;
    scope.require("order.view_cart", &GRANTS)?;
    let hours = match q.hours.as_deref() {
        None => 24,
        Some(h) => h
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|h| (1..=24 * 365).contains(h))
            .ok_or_else(|| ApiError::field("hours", "Give a whole number of hours."))?,
    };
    let has_items = !matches!(q.has_items.as_deref(), Some("false" | "0"));
    let min_value = match q.min_value.as_deref() {
        None => Decimal::ZERO,
        Some(v) => v
            .trim()
            .parse::<Decimal>()
            .map_err(|_| ApiError::field("min_value", "A valid decimal is required."))?,
    };
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('id', c.id, 'customer_id', c.customer_id, \
           'is_guest', c.customer_id IS NULL, 'item_count', COALESCE(s.units, 0), \
           'total', to_char(COALESCE(s.value, 0), 'FM999999999999990.00'), \
           'last_updated', c.updated_at, \
           'hours_since_update', floor(extract(epoch FROM now() - c.updated_at) / 3600)::int, \
           'recoverable', c.customer_id IS NOT NULL) \
         FROM carts c LEFT JOIN LATERAL (SELECT sum(i.quantity) AS units, \
           sum(i.quantity * COALESCE(i.seen_price, 0)) AS value FROM cart_items i \
           WHERE i.cart_id = c.id) s ON true \
         WHERE c.project_id = $1 AND c.status = 'active' \
           AND c.updated_at < now() - make_interval(hours => $2) \
           AND (NOT $3 OR COALESCE(s.units, 0) > 0) AND COALESCE(s.value, 0) >= $4 \
         ORDER BY c.updated_at LIMIT 500",
    )
    .bind(scope.project_id())
    .bind(hours as i32)
    .bind(has_items)
    .bind(min_value)
    .fetch_all(&ctx.pool)
    .await?;
    let mut results = Vec::with_capacity(rows.len());
    let users = ctx
        .platform
        .lookup::<integration::users::SharedUserDirectory>();
    for mut row in rows {
        let email = match (&users, row["customer_id"].as_i64()) {
            (Some(users), Some(id)) => users.by_id(id).await.ok().flatten().map(|u| u.email),
            _ => None,
        };
        row["customer_email"] = json!(email);
        results.push(row);
    }
    Ok(JsonOut(json!({"count": results.len(), "results": results})))
}

/// The cart routes, relative to the service root (`cart/…`, also `/api/v1/cart/…`).
/// The hand-written operations of this file.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    guest,
    open,
    merge,
    abandoned,
    show,
    add_item,
    change_item,
    remove_item,
    clear,
    add_coupon,
    remove_coupon,
    set_address,
    set_method,
    validate,
    checkout
))]
pub struct Api;

pub fn routes(r: Routes<ServiceContext>) -> Routes<ServiceContext> {
    let r = r.at("", &["cart/guest"], post(guest));
    let r = r.at("", &["cart/carts"], post(open));
    let r = r.at("", &["cart/carts/merge"], post(merge));
    let r = r.at("", &["cart/carts/abandoned"], get(abandoned));
    let r = r.at("", &["cart/carts/{cart}"], get(show));
    let r = r.at("", &["cart/carts/{cart}/items"], post(add_item));
    let r = r.at(
        "",
        &["cart/carts/{cart}/items/{item}"],
        patch(change_item).put(change_item).delete(remove_item),
    );
    let r = r.at("", &["cart/carts/{cart}/clear"], post(clear));
    let r = r.at("", &["cart/carts/{cart}/coupons"], post(add_coupon));
    let r = r.at(
        "",
        &["cart/carts/{cart}/coupons/{coupon}"],
        delete(remove_coupon),
    );
    let r = r.at(
        "",
        &["cart/carts/{cart}/shipping_address"],
        put(set_address),
    );
    let r = r.at("", &["cart/carts/{cart}/shipping_method"], put(set_method));
    let r = r.at("", &["cart/carts/{cart}/validate"], post(validate));
    r.at("", &["cart/carts/{cart}/checkout"], post(checkout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_days_skip_weekends() {
        let friday = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap_or_default();
        assert_eq!(business_days(friday, 1).weekday(), chrono::Weekday::Mon);
        assert_eq!(business_days(friday, 5).day(), 4);
        assert_eq!(business_days(friday, 0), friday);
    }
}
