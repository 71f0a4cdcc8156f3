//! Stock rows and the movement ledger (contract inventory.md §2, §4, §5).
//!
//! Only movements change `quantity`, and each one commits with the row it changes. An increase is
//! one `UPDATE … SET quantity = quantity + q`. A decrease is one conditional
//! `UPDATE … WHERE quantity − reserved_quantity ≥ q`: it changes nothing when the stock is not
//! there, so stock is never negative and reserved units are never taken, whatever the
//! concurrency. The table's CHECKs back this up.

use async_trait::async_trait;
use kernel::auth::ProjectScope;
use kernel::db::ConstraintField;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{lock_project_table, Field, FieldKind, Hooks, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::reference::GRANTS;

const STOCK_STATUS: &str = "CASE WHEN t.available_quantity = 0 THEN 'out_of_stock' \
    WHEN t.available_quantity <= t.low_stock_threshold THEN 'low_stock' ELSE 'in_stock' END";
const IS_LOW: &str = "(t.available_quantity <= t.low_stock_threshold)";
const IS_OUT: &str = "(t.available_quantity = 0)";
const NEEDS_REORDER: &str =
    "(t.available_quantity <= COALESCE(t.reorder_point, t.low_stock_threshold))";

/// A stock row. Quantities are read-only here: movements change them.
pub static STOCK: Resource = Resource {
    service: "inventory",
    model: "inventory",
    label: "Stock item",
    table: "stock_items",
    fields: &[
        Field::new("product_id", FieldKind::int_from(0)).read_only(),
        Field::new("variant_id", FieldKind::int_from(0)).read_only(),
        Field::new("warehouse", FieldKind::int_from(0)).read_only(),
        Field::new("location", FieldKind::int_from(0)).read_only(),
        Field::new("batch", FieldKind::int_from(0)).read_only(),
        Field::text("serial_number", 100).read_only(),
        Field::new("quantity", FieldKind::int_from(0)).read_only(),
        Field::new("reserved_quantity", FieldKind::int_from(0)).read_only(),
        Field::new("available_quantity", FieldKind::int_from(0)).read_only(),
        Field::new("low_stock_threshold", FieldKind::int_from(0))
            .aliases(&["minimum_stock_level", "reorder_level"]),
        Field::new("maximum_stock_level", FieldKind::int_from(0)),
        Field::new("reorder_point", FieldKind::int_from(0)),
        Field::new("reorder_quantity", FieldKind::int_from(0)),
        Field::new("last_restocked_at", FieldKind::DateTime).read_only(),
    ],
    slug_from: None,
    computed: &[
        ("stock_status", STOCK_STATUS),
        ("is_low_stock", IS_LOW),
        ("is_out_of_stock", IS_OUT),
        ("needs_reorder", NEEDS_REORDER),
    ],
    list: ListSpec {
        filters: &[
            Col::new("product_id", "t.product_id", Kind::Int),
            Col::new("variant_id", "t.variant_id", Kind::Int),
            Col::new("warehouse", "t.warehouse", Kind::Int),
            Col::new("location", "t.location", Kind::Int),
            Col::new("batch", "t.batch", Kind::Int),
            Col::new("low_stock", IS_LOW, Kind::Bool),
            Col::new("out_of_stock", IS_OUT, Kind::Bool),
            Col::new("reorder_alert", NEEDS_REORDER, Kind::Bool),
            Col::new("available_quantity", "t.available_quantity", Kind::Int),
        ],
        ordering: &[
            Col::new("quantity", "t.quantity", Kind::Int),
            Col::new("available_quantity", "t.available_quantity", Kind::Int),
            Col::new("updated_at", "t.updated_at", Kind::DateTime),
        ],
        search: &["t.serial_number"],
        default_ordering: "-updated_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&StockRules),
    params: None,
};

/// A row is deleted only when it holds nothing.
pub struct StockRules;

#[async_trait]
impl Hooks for StockRules {
    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let empty: bool = sqlx::query_scalar(
            "SELECT quantity = 0 AND reserved_quantity = 0 FROM stock_items WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if !empty {
            return Err(ApiError::rule(
                "stock_not_empty",
                "This stock row still holds or reserves units.",
            ));
        }
        Ok(())
    }
}

/// The ledger, read through the resource machinery; writes are refused (corrections are
/// reversing movements).
pub static MOVEMENT: Resource = Resource {
    service: "inventory",
    model: "movement",
    label: "Movement",
    table: "movements",
    fields: &[
        Field::new("inventory_id", FieldKind::int_from(0)).read_only(),
        Field::new("product_id", FieldKind::int_from(0)).read_only(),
        Field::new("variant_id", FieldKind::int_from(0)).read_only(),
        Field::new("warehouse", FieldKind::int_from(0)).read_only(),
        Field::text("movement_type", 20).read_only(),
        Field::text("reason_code", 30).read_only(),
        Field::new("quantity", FieldKind::int_from(0)).read_only(),
        Field::new("previous_quantity", FieldKind::int_from(0)).read_only(),
        Field::new("new_quantity", FieldKind::int_from(0)).read_only(),
        Field::text("reason", 1000).read_only(),
        Field::text("reference", 100).read_only(),
        Field::text("notes", 5000).read_only(),
        Field::text("performed_by", 150).read_only(),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("product_id", "t.product_id", Kind::Int),
            Col::new("variant_id", "t.variant_id", Kind::Int),
            Col::new("inventory_id", "t.inventory_id", Kind::Int),
            Col::new("warehouse", "t.warehouse", Kind::Int),
            Col::new("movement_type", "t.movement_type", Kind::Text),
            Col::new("reason_code", "t.reason_code", Kind::Text),
            Col::new("reference", "t.reference", Kind::Text),
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("created_by", "t.created_by", Kind::Int),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("quantity", "t.quantity", Kind::Int),
        ],
        search: &["t.reference", "t.reason"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "movements_pkey",
        field: "id",
        message: "Duplicate movement.",
    }],
    hooks: Some(&Immutable),
    params: None,
};

/// Movements are never changed or deleted.
pub struct Immutable;

fn immutable() -> ApiError {
    ApiError::rule(
        "movement_immutable",
        "Movements cannot be changed or deleted; record a reversing movement instead.",
    )
}

#[async_trait]
impl Hooks for Immutable {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: Option<i64>,
        _body: &Value,
        _values: &mut Values,
    ) -> Result<(), ApiError> {
        Err(immutable())
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: i64,
    ) -> Result<(), ApiError> {
        Err(immutable())
    }
}

/// (type, reason codes, the default one) of inventory.md §5.
const TYPES: &[(&str, &[&str], &str)] = &[
    (
        "IN",
        &[
            "restock",
            "purchase",
            "return",
            "production",
            "initial",
            "pos_return",
            "repair_return",
        ],
        "restock",
    ),
    (
        "OUT",
        &["sale", "damage", "disposal", "expiry", "pos_sale", "repair"],
        "sale",
    ),
    ("ADJUSTMENT", &["adjustment", "count"], "adjustment"),
];

const MAX_QUANTITY: i64 = 1_000_000;

/// Which stock row a movement or a new row is about.
struct Target {
    inventory_id: Option<i64>,
    product_id: Option<i64>,
    variant_id: Option<i64>,
    warehouse: Option<i64>,
    location: Option<i64>,
    batch: Option<i64>,
    serial_number: Option<String>,
}

fn int(body: &Value, names: &[&str], errors: &mut FieldErrors) -> Option<i64> {
    let (name, v) = names
        .iter()
        .find_map(|n| body.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))?;
    let parsed = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| *n > 0);
    if parsed.is_none() {
        errors.add(name, "A valid id is required.");
    }
    parsed
}

impl Target {
    fn parse(body: &Value, errors: &mut FieldErrors) -> Self {
        Self {
            inventory_id: int(body, &["inventory_id", "inventory"], errors),
            product_id: int(body, &["product_id", "product"], errors),
            variant_id: int(body, &["variant_id", "variant"], errors),
            warehouse: int(body, &["warehouse_id", "warehouse"], errors),
            location: int(body, &["location_id", "location"], errors),
            batch: int(body, &["batch_id", "batch"], errors),
            serial_number: body
                .get("serial_number")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }
    }
}

/// The project's default warehouse, created ("Main Warehouse") when stock is first booked
/// without one (inventory.md §3).
async fn default_warehouse(tx: &mut PgConnection, scope: &ProjectScope) -> Result<i64, ApiError> {
    lock_project_table(tx, "warehouses", scope.project_id()).await?;
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM warehouses WHERE project_id = $1 AND deleted_at IS NULL AND is_active \
         ORDER BY is_default DESC, priority, id LIMIT 1",
    )
    .bind(scope.project_id())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO warehouses (project_id, name_en, is_default, created_by, updated_by) \
         VALUES ($1, 'Main Warehouse', true, $2, $2) RETURNING id",
    )
    .bind(scope.project_id())
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?)
}

/// The row a target names: `(id, product_id, variant_id, warehouse)`. A missing row is created
/// when `create` (increases), else `None`.
async fn row_for(
    tx: &mut PgConnection,
    scope: &ProjectScope,
    target: &Target,
    create: bool,
) -> Result<Option<(i64, i64, Option<i64>, i64)>, ApiError> {
    if let Some(id) = target.inventory_id {
        let row: Option<(i64, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT id, product_id, variant_id, warehouse FROM stock_items \
             WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(scope.project_id())
        .fetch_optional(&mut *tx)
        .await?;
        return row.map(Some).ok_or_else(|| {
            ApiError::field(
                "inventory_id",
                format!("Invalid pk \"{id}\" - object does not exist."),
            )
        });
    }
    let Some(product) = target.product_id else {
        return Err(ApiError::field("product_id", "This field is required."));
    };
    let warehouse = match target.warehouse {
        Some(w) => w,
        None => default_warehouse(tx, scope).await?,
    };
    let mut errors = FieldErrors::new();
    for (field, table, id) in [
        ("warehouse_id", "warehouses", Some(warehouse)),
        ("location_id", "locations", target.location),
        ("batch_id", "batches", target.batch),
    ] {
        let Some(id) = id else { continue };
        let live: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL)"
        ))
        .bind(id)
        .bind(scope.project_id())
        .fetch_one(&mut *tx)
        .await?;
        if !live {
            errors.add(
                field,
                format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
    }
    errors.into_result()?;
    if let Some(row) = find_row(tx, scope, product, warehouse, target).await? {
        return Ok(Some(row));
    }
    if !create {
        return Ok(None);
    }
    // Two first bookings at once: one insert wins, the other finds its row.
    sqlx::query(
        "INSERT INTO stock_items (project_id, product_id, variant_id, warehouse, location, batch, \
         serial_number, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT DO NOTHING",
    )
    .bind(scope.project_id())
    .bind(product)
    .bind(target.variant_id)
    .bind(warehouse)
    .bind(target.location)
    .bind(target.batch)
    .bind(target.serial_number.clone())
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    find_row(tx, scope, product, warehouse, target).await
}

/// The live row of exactly this key (nulls equal), as `(id, product, variant, warehouse)`.
async fn find_row(
    tx: &mut PgConnection,
    scope: &ProjectScope,
    product: i64,
    warehouse: i64,
    target: &Target,
) -> Result<Option<(i64, i64, Option<i64>, i64)>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, product_id, variant_id, warehouse FROM stock_items WHERE project_id = $1 \
         AND product_id = $2 AND variant_id IS NOT DISTINCT FROM $3 AND warehouse = $4 \
         AND location IS NOT DISTINCT FROM $5 AND batch IS NOT DISTINCT FROM $6 \
         AND serial_number IS NOT DISTINCT FROM $7 AND deleted_at IS NULL",
    )
    .bind(scope.project_id())
    .bind(product)
    .bind(target.variant_id)
    .bind(warehouse)
    .bind(target.location)
    .bind(target.batch)
    .bind(target.serial_number.clone())
    .fetch_optional(tx)
    .await?)
}

/// The 422 of a decrease the stock cannot cover.
fn insufficient(
    product: i64,
    variant: Option<i64>,
    warehouse: i64,
    requested: i64,
    available: i64,
) -> ApiError {
    ApiError::rule("insufficient_stock", "Insufficient stock.").with(
        "details",
        json!({"product_id": product, "variant_id": variant, "warehouse_id": warehouse,
               "requested": requested, "available": available}),
    )
}

/// `POST movements/`: one movement, its row changed in the same transaction → the movement.
pub async fn record(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.add_movement", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let kind = body
        .get("movement_type")
        .and_then(Value::as_str)
        .map(|t| t.trim().to_ascii_uppercase())
        .map(|t| {
            if t == "ADJUST" {
                "ADJUSTMENT".to_owned()
            } else {
                t
            }
        });
    let spec = kind
        .as_deref()
        .and_then(|k| TYPES.iter().find(|(t, _, _)| *t == k));
    let Some(&(movement_type, reasons, default_reason)) = spec else {
        return Err(ApiError::field(
            "movement_type",
            "Use IN, OUT or ADJUSTMENT.",
        ));
    };
    let reason_code = match body.get("reason_code").and_then(Value::as_str) {
        None => default_reason,
        Some(code) => match reasons.iter().find(|r| r.eq_ignore_ascii_case(code.trim())) {
            Some(r) => r,
            None => {
                errors.add(
                    "reason_code",
                    format!("\"{code}\" is not a valid reason for {movement_type}."),
                );
                default_reason
            }
        },
    };
    let quantity = body.get("quantity").and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    });
    let delta = match (movement_type, quantity) {
        (_, None) => {
            errors.add("quantity", "A valid integer is required.");
            0
        }
        ("ADJUSTMENT", Some(q)) if q != 0 && q.abs() <= MAX_QUANTITY => q,
        ("ADJUSTMENT", Some(_)) => {
            errors.add(
                "quantity",
                format!("Give a non-zero change of at most {MAX_QUANTITY} units."),
            );
            0
        }
        (t, Some(q)) if (1..=MAX_QUANTITY).contains(&q) => {
            if t == "OUT" {
                -q
            } else {
                q
            }
        }
        (t, Some(_)) => {
            errors.add(
                "quantity",
                format!("Quantity must be positive (1 to {MAX_QUANTITY}) for {t} movements."),
            );
            0
        }
    };
    let text = |name: &str, max: usize, errors: &mut FieldErrors| -> String {
        match body.get(name) {
            Some(Value::String(s)) if s.chars().count() <= max => s.trim().to_owned(),
            Some(Value::String(_)) => {
                errors.add(
                    name,
                    format!("Ensure this field has no more than {max} characters."),
                );
                String::new()
            }
            Some(Value::Null) | None => String::new(),
            Some(_) => {
                errors.add(name, "Not a valid string.");
                String::new()
            }
        }
    };
    let reason = text("reason", 1000, &mut errors);
    let reference = text("reference", 100, &mut errors);
    let notes = text("notes", 5000, &mut errors);
    let target = Target::parse(body, &mut errors);
    errors.into_result()?;

    let mut tx = ctx.pool.begin().await?;
    let Some((row, product, variant, warehouse)) =
        row_for(&mut tx, scope, &target, delta > 0).await?
    else {
        let requested = -delta;
        return Err(insufficient(
            target.product_id.unwrap_or_default(),
            target.variant_id,
            target.warehouse.unwrap_or_default(),
            requested,
            0,
        ));
    };
    let restock = matches!(
        reason_code,
        "restock" | "purchase" | "initial" | "production"
    );
    let changed: Option<i32> = sqlx::query_scalar(
        "UPDATE stock_items SET quantity = quantity + $2, updated_at = now(), updated_by = $3, \
           last_restocked_at = CASE WHEN $4 THEN now() ELSE last_restocked_at END \
         WHERE id = $1 AND ($2 > 0 OR quantity - reserved_quantity >= -$2) RETURNING quantity",
    )
    .bind(row)
    .bind(delta as i32)
    .bind(scope.user_id())
    .bind(restock && delta > 0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(new_quantity) = changed else {
        let available: i32 =
            sqlx::query_scalar("SELECT available_quantity FROM stock_items WHERE id = $1")
                .bind(row)
                .fetch_one(&mut *tx)
                .await?;
        return Err(insufficient(
            product,
            variant,
            warehouse,
            -delta,
            available.into(),
        ));
    };
    let movement: Value = sqlx::query_scalar(
        "INSERT INTO movements (project_id, inventory_id, product_id, variant_id, warehouse, \
           movement_type, reason_code, quantity, previous_quantity, new_quantity, reason, reference, \
           notes, created_by, performed_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9 - $8, $9, $10, $11, $12, $13, $14) \
         RETURNING to_jsonb(movements.*)",
    )
    .bind(scope.project_id())
    .bind(row)
    .bind(product)
    .bind(variant)
    .bind(warehouse)
    .bind(movement_type)
    .bind(reason_code)
    .bind(delta as i32)
    .bind(new_quantity)
    .bind(&reason)
    .bind(&reference)
    .bind(&notes)
    .bind(scope.user_id())
    .bind(username)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(MOVEMENT.shape(&movement, "en", true))
}

/// `POST stock/`: a new stock row; a positive `quantity` is booked as an IN `initial` movement
/// in the same transaction. The same row twice → 400 `non_field_errors`.
pub async fn create(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
    lang: &str,
) -> Result<Value, ApiError> {
    scope.require("inventory.add_inventory", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let target = Target::parse(body, &mut errors);
    if target.inventory_id.is_some() {
        errors.add("inventory_id", "A new stock row has no id yet.");
    }
    let quantity = match body
        .get("quantity")
        .or_else(|| body.get("quantity_on_hand"))
    {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64() {
            Some(q) if (0..=MAX_QUANTITY).contains(&q) => q,
            _ => {
                errors.add("quantity", format!("Give 0 to {MAX_QUANTITY} units."));
                0
            }
        },
    };
    let levels = STOCK.values(body, true, lang)?;
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    if row_for(&mut tx, scope, &target, false).await?.is_some() {
        return Err(ApiError::field(
            "non_field_errors",
            "A stock row for this product, variant, warehouse, location, batch and serial number already exists.",
        ));
    }
    let Some((row, ..)) = row_for(&mut tx, scope, &target, true).await? else {
        return Err(ApiError::conflict(
            "conflict",
            "The stock row could not be created.",
        ));
    };
    for (column, value) in levels {
        if let kernel::resource::Bind::Int(n) = value {
            sqlx::query(&format!(
                "UPDATE stock_items SET \"{column}\" = $2 WHERE id = $1"
            ))
            .bind(row)
            .bind(n as i32)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if quantity > 0 {
        let mut initial = json!({"movement_type": "IN", "reason_code": "initial", "quantity": quantity,
                                 "inventory_id": row});
        if let Some(reference) = body.get("reference") {
            initial["reference"] = reference.clone();
        }
        record(ctx, scope, username, &initial).await?;
    }
    kernel::resource::retrieve(
        ctx,
        &STOCK,
        &kernel::auth::ReadScope::Member(scope.clone()),
        row,
        lang,
    )
    .await
}
