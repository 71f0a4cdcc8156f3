//! Returns and refunds (contract order.md §9).
//!
//! A return is requested against fulfilled units (never more than were shipped, counting every
//! return not cancelled), approved, and completed: the undamaged units go back into stock
//! (inventory IN `return`, once per return number), the refund is asked of billing (once per
//! return), and the order becomes `returned` when every shipped unit is back. Completion holds
//! the return's row lock, so two completions of one return do the work once.

use integration::inventory::SharedStock;
use integration::order::{OrderReturnCompleted, OrderStatusChanged};
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Field, FieldKind, Resource};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::orders::{decimal, history, int, money, reference, text, unreachable, GRANTS};

/// Seeded for every project (order.md §9): code, name.
const REASONS: &[(&str, &str)] = &[
    ("DAMAGED", "Damaged"),
    ("DEFECTIVE", "Defective"),
    ("NOT_AS_DESCRIBED", "Not as described"),
    ("NO_LONGER_NEEDED", "No longer needed"),
    ("OTHER", "Other"),
];

pub static RETURN_REASON: Resource = Resource {
    service: "order",
    model: "returnreason",
    label: "Return reason",
    table: "return_reasons",
    fields: &[
        Field::text("reason", 50).required(),
        Field::text("name", 100),
        Field::text("description", 1000),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[Col::new("reason", "t.reason", Kind::Text)],
        ordering: &[
            Col::new("reason", "t.reason", Kind::Text),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        search: &["t.reason", "t.name"],
        default_ordering: "reason",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[kernel::db::ConstraintField {
        constraint: "return_reasons_code",
        field: "reason",
        message: "A return reason with this code already exists.",
    }],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

const RETURN_ITEMS: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', i.id, \
    'order_return_id', i.order_return_id, 'order_item_id', i.order_item_id, \
    'order_product', i.order_item_id, 'product_id', i.product_id, 'quantity', i.quantity, \
    'rating', i.rating, 'is_damaged', i.is_damaged, 'restock', i.restock) ORDER BY i.id) \
    FROM return_items i WHERE i.order_return_id = t.id), '[]'::jsonb)";
const REASON: &str = "(SELECT jsonb_build_object('id', r.id, 'reason', r.reason, \
    'name', COALESCE(NULLIF(r.name, ''), r.reason)) FROM return_reasons r WHERE r.id = t.reason_id)";

/// Returns through the resource machinery: lists, reads and the note; requests and the status
/// go through the actions.
pub static ORDER_RETURN: Resource = Resource {
    service: "order",
    model: "orderreturn",
    label: "Order return",
    table: "order_returns",
    fields: &[
        Field::new("order_id", FieldKind::int_from(1)).read_only(),
        Field::text("return_number", 30).read_only(),
        Field::text("return_type", 20).read_only(),
        Field::text("status", 20).read_only(),
        Field::new("reason_id", FieldKind::int_from(1)).read_only(),
        Field::text("note", 2000).aliases(&["notes"]),
        Field::new(
            "refund_amount",
            FieldKind::Decimal {
                min: Some(0),
                max: None,
                scale: 2,
            },
        )
        .read_only(),
        Field::text("refund_method", 20).read_only(),
        Field::new("resolved_date", FieldKind::DateTime).read_only(),
        Field::new("restocked", FieldKind::Bool).read_only(),
    ],
    slug_from: None,
    computed: &[
        ("items", RETURN_ITEMS),
        ("products", RETURN_ITEMS),
        ("reason", REASON),
        ("order", "t.order_id"),
        ("notes", "t.note"),
    ],
    list: ListSpec {
        filters: &[
            Col::new("order", "t.order_id", Kind::Int),
            Col::new("order_id", "t.order_id", Kind::Int),
            Col::new("return_type", "t.return_type", Kind::Text),
            Col::new("status", "t.status", Kind::Text),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("resolved_date", "t.resolved_date", Kind::DateTime),
        ],
        search: &["t.return_number", "t.note"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

/// Return lines (GraphQL `ReturnOrderRating`), read-only here.
pub static RETURN_ITEM: Resource = Resource {
    service: "order",
    model: "returnorderrating",
    label: "Return item",
    table: "return_items",
    fields: &[
        Field::new("order_return_id", FieldKind::int_from(1)).read_only(),
        Field::new("order_item_id", FieldKind::int_from(1)).read_only(),
        Field::new("product_id", FieldKind::int_from(1)).read_only(),
        Field::new("quantity", FieldKind::int_from(1)).read_only(),
        Field::new("rating", FieldKind::int_from(1)).read_only(),
        Field::new("is_damaged", FieldKind::Bool).read_only(),
        Field::new("restock", FieldKind::Bool).read_only(),
    ],
    slug_from: None,
    computed: &[("order_product", "t.order_item_id")],
    list: ListSpec {
        filters: &[
            Col::new("order_return", "t.order_return_id", Kind::Int),
            Col::new("product", "t.product_id", Kind::Int),
        ],
        ordering: &[Col::new("id", "t.id", Kind::Int)],
        search: &[],
        default_ordering: "id",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

/// Seeds the return reasons of a project, once.
pub(crate) async fn seed(tx: &mut PgConnection, project_id: i64) -> sqlx::Result<()> {
    let codes: Vec<&str> = REASONS.iter().map(|r| r.0).collect();
    let names: Vec<&str> = REASONS.iter().map(|r| r.1).collect();
    sqlx::query(
        "INSERT INTO return_reasons (project_id, reason, name) \
         SELECT $1, c, n FROM unnest($2::text[], $3::text[]) AS s(c, n) \
         WHERE NOT EXISTS (SELECT 1 FROM return_reasons WHERE project_id = $1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(project_id)
    .bind(&codes)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A wanted return line, validated against the order.
struct Line {
    order_item_id: i64,
    product_id: i64,
    quantity: i64,
    rating: Option<i64>,
    is_damaged: bool,
    restock: bool,
    /// What the customer was charged for these units (price − discount + tax shares).
    charged: Decimal,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: i64,
    product_id: i64,
    quantity: i32,
    unit_price: Decimal,
    discount: Decimal,
    tax_amount: Decimal,
    fulfilled_quantity: i32,
    /// Units in returns not cancelled.
    claimed: i64,
}

fn exceeded(item: i64, asked: i64, left: i64) -> ApiError {
    ApiError::rule(
        "return_quantity_exceeded",
        format!("Only {left} unit(s) of this line can still be returned."),
    )
    .with(
        "details",
        json!({"order_item_id": item, "requested": asked, "returnable": left}),
    )
}

fn flag(v: Option<&Value>, default: bool, name: &str, errors: &mut FieldErrors) -> bool {
    match v {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add(name, "Must be a boolean.");
            default
        }
    }
}

/// `POST order-returns/` `{order, return_type?, reason?, note?, refund_amount?, refund_method?,
/// items|products: [{order_item_id|order_product|product_id, quantity, rating?, is_damaged?,
/// restock?}]}` → 201 the return.
pub async fn request(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("order.add_orderreturn", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let order_key = body
        .get("order_id")
        .or_else(|| body.get("order"))
        .and_then(|v| {
            v.as_i64()
                .map(|i| i.to_string())
                .or_else(|| v.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    if order_key.trim().is_empty() {
        errors.required("order");
    }
    let return_type = text(body, &["return_type"], 20, &mut errors).to_ascii_lowercase();
    let return_type = if return_type.is_empty() {
        "full".to_owned()
    } else {
        return_type
    };
    if !matches!(return_type.as_str(), "full" | "partial") {
        errors.add(
            "return_type",
            "Use full or partial (store credit returns are not available yet).",
        );
    }
    let refund_method = text(body, &["refund_method"], 20, &mut errors).to_ascii_lowercase();
    let refund_method = if refund_method.is_empty() {
        "original".to_owned()
    } else {
        refund_method
    };
    if !matches!(refund_method.as_str(), "original" | "none") {
        errors.add("refund_method", "Use original or none.");
    }
    let note = text(body, &["note", "notes"], 2000, &mut errors);
    let reason = body
        .get("reason_id")
        .or_else(|| body.get("reason"))
        .cloned();
    let refund_amount = match body.get("refund_amount") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let d = decimal(v).filter(|d| *d >= Decimal::ZERO && d.scale() <= 4);
            if d.is_none() {
                errors.add("refund_amount", "A non-negative decimal is required.");
            }
            d
        }
    };
    let wanted = body
        .get("items")
        .or_else(|| body.get("products"))
        .filter(|v| !v.is_null());
    let wanted = match wanted {
        None => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 200 => items.clone(),
        Some(_) => {
            errors.add("items", "Give a list of at most 200 lines.");
            Vec::new()
        }
    };
    errors.into_result()?;
    if wanted.is_empty() && return_type == "partial" {
        return Err(ApiError::field(
            "items",
            "A partial return lists its lines.",
        ));
    }

    let mut tx = ctx.pool.begin().await?;
    let order: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, status FROM orders WHERE project_id = $1 AND (id::text = $2 OR order_number = $2) \
         AND deleted_at IS NULL AND status NOT IN ('placing', 'failed') FOR UPDATE",
    )
    .bind(scope.project_id())
    .bind(crate::orders::canonical_number(&order_key))
    .fetch_optional(&mut *tx)
    .await?;
    let (order_id, status) = order.ok_or_else(|| ApiError::field("order", "No such order."))?;
    if !matches!(status.as_str(), "shipped" | "delivered" | "completed") {
        return Err(ApiError::rule(
            "order_not_returnable",
            format!("An order that is {status} cannot be returned."),
        ));
    }
    let reason_id = match &reason {
        None | Some(Value::Null) => None,
        Some(v) => {
            seed(&mut tx, scope.project_id()).await?;
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM return_reasons WHERE project_id = $1 AND deleted_at IS NULL \
                 AND (id::text = $2 OR upper(reason) = upper($2))",
            )
            .bind(scope.project_id())
            .bind(
                v.as_i64()
                    .map(|i| i.to_string())
                    .or_else(|| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            )
            .fetch_optional(&mut *tx)
            .await?;
            Some(found.ok_or_else(|| ApiError::field("reason", "No such return reason."))?)
        }
    };
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT i.id, i.product_id, i.quantity, i.unit_price, i.discount, i.tax_amount, \
           i.fulfilled_quantity, COALESCE((SELECT sum(ri.quantity) FROM return_items ri \
             JOIN order_returns r ON r.id = ri.order_return_id \
             WHERE ri.order_item_id = i.id AND r.status <> 'canceled'), 0)::bigint AS claimed \
         FROM order_items i WHERE i.order_id = $1 ORDER BY i.id",
    )
    .bind(order_id)
    .fetch_all(&mut *tx)
    .await?;
    let charged = |item: &ItemRow, q: i64| {
        let share = Decimal::from(q) / Decimal::from(item.quantity.max(1));
        (item.unit_price * Decimal::from(q) - item.discount * share + item.tax_amount * share)
            .round_dp(2)
    };
    let mut lines = Vec::new();
    if wanted.is_empty() {
        for item in &items {
            let left = i64::from(item.fulfilled_quantity) - item.claimed;
            if left > 0 {
                lines.push(Line {
                    order_item_id: item.id,
                    product_id: item.product_id,
                    quantity: left,
                    rating: None,
                    is_damaged: false,
                    restock: true,
                    charged: charged(item, left),
                });
            }
        }
        if lines.is_empty() {
            return Err(ApiError::rule(
                "return_quantity_exceeded",
                "Every shipped unit of this order is already being returned.",
            ));
        }
    } else {
        let mut per_item = Vec::with_capacity(wanted.len());
        let mut parsed = Vec::new();
        for w in &wanted {
            let mut e = FieldErrors::new();
            let by_line = int(w.get("order_item_id").or_else(|| w.get("order_product")));
            let by_product = int(w.get("product_id").or_else(|| w.get("product")));
            let item = match (by_line, by_product) {
                (Some(l), _) => items.iter().find(|i| i.id == l),
                (None, Some(p)) => items.iter().find(|i| i.product_id == p),
                (None, None) => None,
            };
            if item.is_none() {
                e.add("order_item_id", "Not a line of this order.");
            }
            let quantity = match w.get("quantity") {
                None | Some(Value::Null) => Some(1),
                Some(v) => int(Some(v)).filter(|q| (1..=10_000).contains(q)),
            };
            if quantity.is_none() {
                e.add("quantity", "Give a whole number of units from 1.");
            }
            let rating = match w.get("rating") {
                None | Some(Value::Null) => None,
                Some(v) => {
                    let r = int(Some(v)).filter(|r| (1..=5).contains(r));
                    if r.is_none() {
                        e.add("rating", "Give a rating from 1 to 5.");
                    }
                    r
                }
            };
            let is_damaged = flag(w.get("is_damaged"), false, "is_damaged", &mut e);
            let restock = flag(w.get("restock"), !is_damaged, "restock", &mut e);
            if let (Some(item), Some(q), true) = (item, quantity, e.is_empty()) {
                parsed.push((item, q, rating, is_damaged, restock));
            }
            per_item.push(e);
        }
        ApiError::per_item("items", &per_item)?;
        for (item, q, rating, is_damaged, restock) in parsed {
            let asked: i64 = lines
                .iter()
                .filter(|l: &&Line| l.order_item_id == item.id)
                .map(|l| l.quantity)
                .sum::<i64>()
                + q;
            let left = i64::from(item.fulfilled_quantity) - item.claimed;
            if asked > left {
                return Err(exceeded(item.id, asked, left.max(0)));
            }
            lines.push(Line {
                order_item_id: item.id,
                product_id: item.product_id,
                quantity: q,
                rating,
                is_damaged,
                restock,
                charged: charged(item, q),
            });
        }
    }
    let refundable = crate::payments::refundable(&mut tx, order_id).await?;
    let refund = match refund_amount {
        Some(a) => crate::payments::within_refundable(a, refundable)?,
        None if refund_method == "none" => Decimal::ZERO,
        None => lines
            .iter()
            .map(|l| l.charged)
            .sum::<Decimal>()
            .min(refundable),
    };
    let id: i64 = sqlx::query_scalar(
        "WITH n AS (SELECT nextval(pg_get_serial_sequence('order_returns', 'id')) AS id) \
         INSERT INTO order_returns (id, project_id, order_id, return_number, return_type, \
           reason_id, note, refund_amount, refund_method, created_by, updated_by) \
         SELECT n.id, $1, $2, return_number(n.id), $3, $4, $5, $6, $7, $8, $8 FROM n RETURNING id",
    )
    .bind(scope.project_id())
    .bind(order_id)
    .bind(&return_type)
    .bind(reason_id)
    .bind(&note)
    .bind(refund)
    .bind(&refund_method)
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?;
    for l in &lines {
        sqlx::query(
            "INSERT INTO return_items (project_id, order_return_id, order_item_id, product_id, \
               quantity, rating, is_damaged, restock) VALUES ($8, $1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(l.order_item_id)
        .bind(l.product_id)
        .bind(l.quantity as i32)
        .bind(l.rating.map(|r| r as i32))
        .bind(l.is_damaged)
        .bind(l.restock)
        .bind(scope.project_id())
        .execute(&mut *tx)
        .await?;
    }
    history(
        &mut tx,
        order_id,
        "return_requested",
        &status,
        &note,
        Some(scope.user_id()),
    )
    .await?;
    tx.commit().await?;
    show(ctx, scope, id).await
}

pub async fn show(ctx: &ServiceContext, scope: &ProjectScope, id: i64) -> Result<Value, ApiError> {
    kernel::resource::retrieve(
        ctx,
        &ORDER_RETURN,
        &kernel::auth::ReadScope::Member(scope.clone()),
        id,
        "en",
    )
    .await
}

#[derive(sqlx::FromRow)]
struct ReturnRow {
    id: i64,
    order_id: i64,
    return_number: String,
    status: String,
    refund_amount: Decimal,
    refund_method: String,
}

/// `order-returns/{id}/approve|cancel|complete/`.
pub async fn act(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    action: &str,
) -> Result<Value, ApiError> {
    scope.require("order.change_orderreturn", &GRANTS)?;
    let mut tx = ctx.pool.begin().await?;
    let row: ReturnRow = sqlx::query_as(
        "SELECT id, order_id, return_number, status, refund_amount, refund_method \
         FROM order_returns WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)?;
    let to = match action {
        "approve" => "processing",
        "cancel" => "canceled",
        "complete" => "completed",
        _ => return Err(ApiError::not_found()),
    };
    if row.status == to {
        drop(tx);
        return show(ctx, scope, id).await;
    }
    let allowed = matches!(
        (row.status.as_str(), to),
        ("pending", "processing" | "canceled" | "completed")
            | ("processing", "canceled" | "completed")
    );
    if !allowed {
        return Err(ApiError::rule(
            "invalid_transition",
            format!("A return cannot go from {} to {to}.", row.status),
        )
        .with("details", json!({"from": row.status, "to": to})));
    }
    if to == "completed" {
        complete(ctx, &mut tx, scope, &row).await?;
    } else {
        sqlx::query(
            "UPDATE order_returns SET status = $2, updated_at = now(), updated_by = $3, \
               resolved_date = CASE WHEN $2 = 'canceled' THEN now() ELSE resolved_date END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(to)
        .bind(scope.user_id())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    ctx.outbox.nudge();
    show(ctx, scope, id).await
}

/// Restock, refund, and the order's returned units, under the return's row lock.
async fn complete(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    row: &ReturnRow,
) -> Result<(), ApiError> {
    let lines: Vec<(i64, i64, Option<i64>, i32, bool)> = sqlx::query_as(
        "SELECT ri.order_item_id, ri.product_id, i.variant_id, ri.quantity, ri.restock AND i.tracked \
         FROM return_items ri JOIN order_items i ON i.id = ri.order_item_id \
         WHERE ri.order_return_id = $1 ORDER BY ri.id",
    )
    .bind(row.id)
    .fetch_all(&mut *tx)
    .await?;
    // 1. The goods back on the shelf, once per return number.
    let back: Vec<Value> = lines
        .iter()
        .filter(|l| l.4)
        .map(|l| json!({"product_id": l.1, "variant_id": l.2, "quantity": l.3}))
        .collect();
    let restocked = !back.is_empty();
    if restocked {
        let stock = ctx
            .platform
            .lookup::<SharedStock>()
            .ok_or_else(|| unreachable("inventory"))?;
        let body = json!({"movement_type": "IN", "reason_code": "return",
            "reference": row.return_number, "items": back});
        tokio::time::timeout(
            crate::orders::STOCK_TIMEOUT,
            stock.book_once(&scope.as_service(), &body),
        )
        .await
        .map_err(|_| unreachable("inventory"))??;
    }
    // 2. The money back, once per return (at most what is still refundable).
    let mut refunded = Decimal::ZERO;
    if row.refund_method == "original" && row.refund_amount > Decimal::ZERO {
        let key = format!("order-return-refund-{}-{}", scope.project_id(), row.id);
        let reason = format!("return {}", row.return_number);
        refunded = match crate::payments::refund(
            ctx,
            tx,
            scope,
            row.order_id,
            Some(row.refund_amount),
            &key,
            &reason,
            Some(row.id),
        )
        .await
        {
            Err(e) if e.code() == "amount_exceeds_refundable" => {
                crate::payments::refund(
                    ctx,
                    tx,
                    scope,
                    row.order_id,
                    None,
                    &key,
                    &reason,
                    Some(row.id),
                )
                .await?
            }
            other => other?,
        };
    }
    // 3. The order's lines and status.
    for l in &lines {
        sqlx::query(
            "UPDATE order_items SET returned_quantity = LEAST(returned_quantity + $2, fulfilled_quantity) \
             WHERE id = $1",
        )
        .bind(l.0)
        .bind(l.3)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE order_returns SET status = 'completed', resolved_date = now(), restocked = $2, \
           refund_amount = CASE WHEN $3 > 0 THEN $3 ELSE refund_amount END, updated_at = now(), \
           updated_by = $4 WHERE id = $1",
    )
    .bind(row.id)
    .bind(restocked)
    .bind(refunded)
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    let (shipped, returned, status): (i64, i64, String) = sqlx::query_as(
        "SELECT COALESCE(sum(i.fulfilled_quantity), 0)::bigint, COALESCE(sum(i.returned_quantity), 0)::bigint, \
           o.status FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.id = $1 \
         GROUP BY o.status",
    )
    .bind(row.order_id)
    .fetch_one(&mut *tx)
    .await?;
    let all_back = returned >= shipped && shipped > 0;
    sqlx::query(
        "UPDATE orders SET fulfillment_status = $2, status = CASE WHEN $3 THEN 'returned' ELSE status END, \
           updated_at = now(), updated_by = $4 WHERE id = $1",
    )
    .bind(row.order_id)
    .bind(if all_back {
        "returned"
    } else {
        "partially_returned"
    })
    .bind(all_back)
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    let now = if all_back {
        "returned"
    } else {
        status.as_str()
    };
    history(
        tx,
        row.order_id,
        "return_completed",
        now,
        &row.return_number,
        Some(scope.user_id()),
    )
    .await?;
    let project = Some(scope.project_id());
    let actor = Some(scope.user_id());
    let order = reference(tx, row.order_id).await?;
    ctx.outbox
        .record(
            tx,
            project,
            actor,
            &OrderReturnCompleted {
                order: order.clone(),
                return_id: row.id,
                return_number: row.return_number.clone(),
                items: lines
                    .iter()
                    .map(|l| {
                        json!({"orderItemId": l.0, "productId": l.1, "variantId": l.2,
                        "quantity": l.3, "restocked": l.4})
                    })
                    .collect(),
                refund_amount: money(refunded),
                restocked,
            },
        )
        .await?;
    if all_back && status != "returned" {
        ctx.outbox
            .record(
                tx,
                project,
                actor,
                &OrderStatusChanged {
                    order,
                    from: status,
                    to: "returned".into(),
                    by: actor,
                },
            )
            .await?;
        crate::orders::record_step(ctx, tx, scope.project_id(), actor, row.order_id, "returned")
            .await?;
    }
    Ok(())
}
