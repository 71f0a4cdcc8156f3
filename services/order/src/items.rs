//! Lines of a pending order (contract order.md §5): added, changed and removed while the order
//! is `pending` (422 `order_not_editable` after). Each edit moves the order's reservation to the
//! new quantities first (inventory `reservations/{id}/adjust/`, all or nothing: short → 422 and
//! nothing changes), then rewrites the totals and publishes `order.updated`, from which billing
//! follows on an unpaid invoice. The order row stays locked through the edit, so two edits of one
//! order never interleave.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use integration::inventory::SharedStock;
use integration::order::OrderUpdated;
use kernel::auth::ProjectScope;
use kernel::extract::Json;
use kernel::lang::Lang;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Field, FieldKind, Resource};
use kernel::routing::{patch, post, Routes};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::orders::{
    canonical_number, decimal, history, int, lines, money, price, reference, unreachable,
    write_totals, Wanted, GRANTS, STOCK_TIMEOUT,
};

const MONEY: FieldKind = FieldKind::Decimal {
    min: Some(0),
    max: None,
    scale: 2,
};

/// Order lines (GraphQL `OrderProduct`), read through the resource machinery; writes go through
/// the routes below.
pub static ORDER_ITEM: Resource = Resource {
    service: "order",
    model: "orderproduct",
    label: "Order product",
    table: "order_items",
    fields: &[
        Field::new("order_id", FieldKind::int_from(1)).read_only(),
        Field::new("product_id", FieldKind::int_from(1)).read_only(),
        Field::new("variant_id", FieldKind::int_from(1)).read_only(),
        Field::text("product_name", 255).read_only(),
        Field::text("variant_name", 255).read_only(),
        Field::text("sku", 100).read_only(),
        Field::new("quantity", FieldKind::int_from(1)).read_only(),
        Field::new("unit_price", MONEY).read_only(),
        Field::new("discount", MONEY).read_only(),
        Field::new("tax_amount", MONEY).read_only(),
        Field::new("total_price", MONEY).read_only(),
        Field::new("fulfilled_quantity", FieldKind::int_from(0)).read_only(),
        Field::new("returned_quantity", FieldKind::int_from(0)).read_only(),
    ],
    slug_from: None,
    computed: &[
        ("total", "to_char(t.total_price, 'FM999999999999990.00')"),
        ("order", "t.order_id"),
        ("product", "t.product_id"),
    ],
    list: ListSpec {
        filters: &[
            Col::new("order", "t.order_id", Kind::Int),
            Col::new("order_id", "t.order_id", Kind::Int),
            Col::new("product", "t.product_id", Kind::Int),
        ],
        ordering: &[
            Col::new("quantity", "t.quantity", Kind::Int),
            Col::new("total_price", "t.total_price", Kind::Decimal),
            Col::new("id", "t.id", Kind::Int),
        ],
        search: &["t.product_name", "t.sku"],
        default_ordering: "id",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&ThroughTheOrder),
    params: None,
    hidden: None,
    related: &[],
};

/// Lines change only through `orders/{id}/items/`, which moves the stock and the totals with
/// them.
pub struct ThroughTheOrder;

fn through_the_order() -> ApiError {
    ApiError::rule(
        "use_order_items",
        "Order lines change through orders/{id}/items/, with their stock and totals.",
    )
}

#[async_trait::async_trait]
impl kernel::resource::Hooks for ThroughTheOrder {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: Option<i64>,
        _body: &Value,
        _values: &mut kernel::resource::Values,
    ) -> Result<(), ApiError> {
        Err(through_the_order())
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: i64,
    ) -> Result<(), ApiError> {
        Err(through_the_order())
    }
}

/// The pending order named by `key`, locked for the edit: (id, number, reservation).
async fn lock_pending(
    tx: &mut PgConnection,
    project_id: i64,
    key: &str,
) -> Result<(i64, String, Option<String>), ApiError> {
    let row: Option<(i64, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, order_number, status, reservation_id FROM orders WHERE project_id = $1 \
         AND (id::text = $2 OR order_number = $2) AND deleted_at IS NULL \
         AND status NOT IN ('placing', 'failed') FOR UPDATE",
    )
    .bind(project_id)
    .bind(canonical_number(key))
    .fetch_optional(&mut *tx)
    .await?;
    let (id, number, status, reservation) = row.ok_or_else(ApiError::not_found)?;
    if status != "pending" {
        return Err(ApiError::rule(
            "order_not_editable",
            format!("The lines of an order cannot change once it is {status}."),
        ));
    }
    Ok((id, number, reservation))
}

/// Units of a product (and variant) the order's tracked lines hold now.
async fn held(
    tx: &mut PgConnection,
    order_id: i64,
    product_id: i64,
    variant_id: Option<i64>,
) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM order_items WHERE order_id = $1 \
         AND product_id = $2 AND variant_id IS NOT DISTINCT FROM $3 AND tracked",
    )
    .bind(order_id)
    .bind(product_id)
    .bind(variant_id)
    .fetch_one(&mut *tx)
    .await?)
}

/// Moves the reservation of the order to `quantity` units of the product (creating one when
/// the order holds nothing yet).
async fn hold(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    number: &str,
    reservation: &Option<String>,
    product_id: i64,
    variant_id: Option<i64>,
    quantity: i64,
) -> Result<Option<String>, ApiError> {
    let stock = ctx
        .platform
        .lookup::<SharedStock>()
        .ok_or_else(|| unreachable("inventory"))?;
    let line = json!({"product_id": product_id, "variant_id": variant_id, "quantity": quantity});
    let call = async {
        match reservation {
            Some(r) => stock
                .adjust(scope, r, &json!({ "items": [line] }))
                .await
                .map(|_| Some(r.clone())),
            None if quantity > 0 => stock
                .reserve(scope, &json!({"order_id": number, "items": [line]}))
                .await
                .map(|held| Some(held.reservation_number)),
            None => Ok(None),
        }
    };
    tokio::time::timeout(STOCK_TIMEOUT, call)
        .await
        .map_err(|_| unreachable("inventory"))?
}

/// Totals, history and `order.updated` after an edit, in the edit's transaction → the total.
async fn settle(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    id: i64,
    reservation: &Option<String>,
    what: &str,
) -> Result<Decimal, ApiError> {
    let (discount, shipping): (Decimal, Decimal) =
        sqlx::query_as("SELECT discount_amount, shipping_cost FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let settings = crate::settings::load(&mut *tx, scope.project_id()).await?;
    let total = write_totals(tx, id, discount, shipping, settings.tax_rate).await?;
    sqlx::query("UPDATE orders SET reservation_id = $2, updated_by = $3 WHERE id = $1")
        .bind(id)
        .bind(reservation)
        .bind(scope.user_id())
        .execute(&mut *tx)
        .await?;
    history(tx, id, "items", "pending", what, Some(scope.user_id())).await?;
    let (subtotal, discount, shipping, tax): (Decimal, Decimal, Decimal, Decimal) = sqlx::query_as(
        "SELECT subtotal, discount_amount, shipping_cost, tax_amount FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let event = OrderUpdated {
        order: reference(tx, id).await?,
        changed: vec!["items".into()],
        subtotal: money(subtotal),
        discount_amount: money(discount),
        shipping_cost: money(shipping),
        tax_amount: money(tax),
        total: money(total),
        items: lines(tx, id).await?,
    };
    ctx.outbox
        .record(tx, Some(scope.project_id()), Some(scope.user_id()), &event)
        .await?;
    Ok(total)
}

/// Runs an edit whose stock step already happened; if its transaction cannot commit, the
/// reservation goes back to what the order holds (`undo`).
async fn commit_or_undo(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    tx: Transaction<'static, Postgres>,
    number: &str,
    reservation: &Option<String>,
    undo: (i64, Option<i64>, i64),
) -> Result<(), ApiError> {
    if let Err(e) = tx.commit().await {
        let (product, variant, quantity) = undo;
        if let Err(back) = hold(ctx, scope, number, reservation, product, variant, quantity).await {
            tracing::error!(order = number, error = %back, "reservation not restored after a failed edit");
        }
        return Err(e.into());
    }
    ctx.outbox.nudge();
    Ok(())
}

fn quantity_of(body: &Value, min: i64, errors: &mut FieldErrors) -> Option<i64> {
    let q = match body.get("quantity") {
        None | Some(Value::Null) if min > 0 => Some(1),
        v => int(v).filter(|q| (min..=10_000).contains(q)),
    };
    if q.is_none() {
        errors.add(
            "quantity",
            format!("Give a whole number of units from {min} to 10000."),
        );
    }
    q
}

/// `POST orders/{id}/items/` `{product_id, variant_id?, quantity (1), unit_price?}` → 201; the
/// same product, variant and price adds to its line.
#[utoipa::path(post, path = "/api/v1/order/orders/{id}/items/", tag = "Order", params(("id" = String, Path)), request_body = Value, responses((status = 201, description = "The order with the line"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn add(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Lang(lang): Lang,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    scope.require("order.add_orderproduct", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let product_id = int(body.get("product_id").or_else(|| body.get("product"))).filter(|p| *p > 0);
    if product_id.is_none() {
        errors.add("product_id", "A valid product id is required.");
    }
    let variant_id = match body.get("variant_id").or_else(|| body.get("variant")) {
        None | Some(Value::Null) => None,
        v => {
            let id = int(v).filter(|i| *i > 0);
            if id.is_none() {
                errors.add("variant_id", "A valid id is required.");
            }
            id
        }
    };
    let quantity = quantity_of(&body, 1, &mut errors);
    let unit_price = match body.get("unit_price") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let d = decimal(v).filter(|d| *d >= Decimal::ZERO && d.scale() <= 4);
            if d.is_none() {
                errors.add("unit_price", "A valid non-negative decimal is required.");
            }
            d
        }
    };
    errors.into_result()?;
    let (Some(product_id), Some(quantity)) = (product_id, quantity) else {
        return Err(ApiError::field(
            "product_id",
            "A valid product id is required.",
        ));
    };
    let wanted = Wanted {
        product_id,
        variant_id,
        inventory_id: None,
        quantity,
        unit_price,
    };
    let (_, mut priced) = price(&ctx, &scope, lang, std::slice::from_ref(&wanted)).await?;
    let line = priced
        .pop()
        .ok_or_else(|| ApiError::rule("product_unavailable", "This product is not on sale."))?;
    let tracked = line.quote.track_inventory.unwrap_or(true);

    let mut tx = ctx.pool.begin().await?;
    let (id, number, reservation) = lock_pending(&mut tx, scope.project_id(), &key).await?;
    let before = held(&mut tx, id, product_id, variant_id).await?;
    let reservation = if tracked {
        hold(
            &ctx,
            &scope,
            &number,
            &reservation,
            product_id,
            variant_id,
            before + quantity,
        )
        .await?
    } else {
        reservation
    };
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM order_items WHERE order_id = $1 AND product_id = $2 \
         AND variant_id IS NOT DISTINCT FROM $3 AND unit_price = $4",
    )
    .bind(id)
    .bind(product_id)
    .bind(variant_id)
    .bind(line.unit_price)
    .fetch_optional(&mut *tx)
    .await?;
    let item = match existing {
        Some(item) => {
            sqlx::query(
                "UPDATE order_items SET quantity = quantity + $2, \
                   total_price = (quantity + $2) * unit_price, updated_at = now() WHERE id = $1",
            )
            .bind(item)
            .bind(quantity as i32)
            .execute(&mut *tx)
            .await?;
            item
        }
        None => {
            crate::orders::insert_line(&mut tx, scope.project_id(), id, &line, scope.user_id())
                .await?
        }
    };
    let total = settle(&ctx, &mut tx, &scope, id, &reservation, "line added").await?;
    let (quantity, unit_price, line_total, name, sku): (i32, Decimal, Decimal, String, Option<String>) =
        sqlx::query_as(
            "SELECT quantity, unit_price, total_price, product_name, sku FROM order_items WHERE id = $1",
        )
        .bind(item)
        .fetch_one(&mut *tx)
        .await?;
    commit_or_undo(
        &ctx,
        &scope,
        tx,
        &number,
        &reservation,
        (product_id, variant_id, before),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(json!({"id": item, "product_id": product_id, "variant_id": variant_id,
            "product_name": name, "sku": sku, "quantity": quantity, "unit_price": money(unit_price),
            "total": money(line_total), "total_price": money(line_total), "order_total": money(total)})),
    )
        .into_response())
}

/// `PATCH orders/{id}/items/{item}/` `{quantity}` → 200; `DELETE` → 204.
async fn change(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
    item: &str,
    quantity: i64,
) -> Result<Value, ApiError> {
    let item: i64 = item.parse().map_err(|_| ApiError::not_found())?;
    let mut tx = ctx.pool.begin().await?;
    let (id, number, reservation) = lock_pending(&mut tx, scope.project_id(), key).await?;
    let row: Option<(i64, Option<i64>, i32, bool)> = sqlx::query_as(
        "SELECT product_id, variant_id, quantity, tracked FROM order_items WHERE id = $1 AND order_id = $2",
    )
    .bind(item)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (product_id, variant_id, was, tracked) = row.ok_or_else(ApiError::not_found)?;
    let before = held(&mut tx, id, product_id, variant_id).await?;
    let after = before - i64::from(was) + quantity;
    let reservation = if tracked {
        hold(
            ctx,
            scope,
            &number,
            &reservation,
            product_id,
            variant_id,
            after,
        )
        .await?
    } else {
        reservation
    };
    if quantity == 0 {
        sqlx::query("DELETE FROM order_items WHERE id = $1")
            .bind(item)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "UPDATE order_items SET quantity = $2, total_price = $2 * unit_price, updated_at = now() \
             WHERE id = $1",
        )
        .bind(item)
        .bind(quantity as i32)
        .execute(&mut *tx)
        .await?;
    }
    let what = if quantity == 0 {
        "line removed"
    } else {
        "line changed"
    };
    let total = settle(ctx, &mut tx, scope, id, &reservation, what).await?;
    let line: Option<(Decimal, Decimal)> =
        sqlx::query_as("SELECT unit_price, total_price FROM order_items WHERE id = $1")
            .bind(item)
            .fetch_optional(&mut *tx)
            .await?;
    commit_or_undo(
        ctx,
        scope,
        tx,
        &number,
        &reservation,
        (product_id, variant_id, before),
    )
    .await?;
    Ok(json!({"id": item, "quantity": quantity,
        "unit_price": line.map(|l| money(l.0)), "total": line.map(|l| money(l.1)),
        "order_total": money(total)}))
}

#[utoipa::path(method(patch, put), path = "/api/v1/order/orders/{id}/items/{item}/", tag = "Order", params(("id" = String, Path), ("item" = String, Path)), request_body = Value, responses((status = 200, description = "The order"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn update(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((key, item)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    scope.require("order.change_orderproduct", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let quantity = quantity_of(&body, 1, &mut errors);
    errors.into_result()?;
    let quantity = quantity.unwrap_or(1);
    Ok(JsonOut(change(&ctx, &scope, &key, &item, quantity).await?))
}

#[utoipa::path(delete, path = "/api/v1/order/orders/{id}/items/{item}/", tag = "Order", params(("id" = String, Path), ("item" = String, Path)), responses((status = 200, description = "The order"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found"), (status = 409, description = "Not in a state for it")))]
async fn remove(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((key, item)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    scope.require("order.delete_orderproduct", &GRANTS)?;
    change(&ctx, &scope, &key, &item, 0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The hand-written operations of this file.
#[derive(utoipa::OpenApi)]
#[openapi(paths(add, update, remove))]
pub struct Api;

pub fn routes(r: Routes<ServiceContext>) -> Routes<ServiceContext> {
    let r = r.at("online_orders", &["orders/{id}/items"], post(add));
    let r = r.at(
        "online_orders",
        &["orders/{id}/items/{item}"],
        patch(update).put(update).delete(remove),
    );
    r.resource_with("", &["order-products"], &ORDER_ITEM, None)
}
