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

use crate::catalog::{self, Stocked};
use crate::ledger::{self, Actor, Entry, Outcome};
use crate::reference::STOCK_GRANTS as GRANTS;

/// The product as the replica knows it (`{id, name, sku, price}`).
const PRODUCT: &str =
    "(SELECT jsonb_build_object('id', p.product_id, 'name', p.name, 'sku', p.sku, \
    'price', p.price) FROM catalog_products p WHERE p.product_id = t.product_id)";
const PRODUCT_NAME: &str =
    "(SELECT p.name FROM catalog_products p WHERE p.product_id = t.product_id)";
const PRODUCT_SKU: &str =
    "(SELECT p.sku FROM catalog_products p WHERE p.product_id = t.product_id)";

/// `sku=` and `category=` (from the product replica).
fn stock_params(
    name: &str,
    value: &str,
    qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
) -> Result<(), ApiError> {
    match name {
        "sku" => {
            qb.push(
                " AND EXISTS (SELECT 1 FROM catalog_products p WHERE p.product_id = t.product_id \
                 AND lower(p.sku) = lower(",
            );
            qb.push_bind(value.trim().to_owned()).push("))");
        }
        "category" => {
            let id: i64 = value
                .trim()
                .parse()
                .map_err(|_| ApiError::field(name, "A valid id is required."))?;
            qb.push(
                " AND EXISTS (SELECT 1 FROM catalog_products p WHERE p.product_id = t.product_id \
                 AND p.category_id = ",
            );
            qb.push_bind(id).push(")");
        }
        _ => {}
    }
    Ok(())
}

/// `movement_type=` (case-insensitive; HEAD's lowercase values name a reason) and the date
/// range `date_from`/`date_to` (aliases `start_date`/`end_date`, `YYYY-MM-DD` inclusive).
fn movement_params(
    name: &str,
    value: &str,
    qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
) -> Result<(), ApiError> {
    let value = value.trim();
    match name {
        "movement_type" => {
            let upper = value.to_ascii_uppercase();
            let upper = if upper == "ADJUST" {
                "ADJUSTMENT".to_owned()
            } else {
                upper
            };
            if ["IN", "OUT", "TRANSFER", "ADJUSTMENT"].contains(&upper.as_str()) {
                qb.push(" AND t.movement_type = ").push_bind(upper);
            } else {
                qb.push(" AND t.reason_code = ")
                    .push_bind(value.to_ascii_lowercase());
            }
        }
        "date_from" | "start_date" | "date_to" | "end_date" => {
            let day = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| ApiError::field(name, "Use the format YYYY-MM-DD."))?;
            if matches!(name, "date_from" | "start_date") {
                qb.push(" AND t.created_at >= ")
                    .push_bind(day)
                    .push("::date");
            } else {
                qb.push(" AND t.created_at < (")
                    .push_bind(day)
                    .push("::date + 1)");
            }
        }
        _ => {}
    }
    Ok(())
}

/// `{id, name}` in the request language.
const WAREHOUSE: &str = "(SELECT jsonb_build_object('id', w.id, 'name_en', w.name_en, \
    'name_ar', w.name_ar, 'name_fr', w.name_fr) FROM warehouses w WHERE w.id = t.warehouse)";
/// `"<warehouse> - <location>"` (inventory.md §4), null without a location.
const PLACE: &str = "(SELECT concat_ws(' - ', NULLIF(w.name_en, ''), NULLIF(l.name_en, '')) \
    FROM locations l JOIN warehouses w ON w.id = l.warehouse WHERE l.id = t.location)";
/// The row's last 10 movements, newest first.
const RECENT: &str = "COALESCE((SELECT jsonb_agg(m ORDER BY m.id DESC) FROM (SELECT m.id, \
    m.movement_type, m.reason_code, m.quantity, m.previous_quantity, m.new_quantity, m.reference, \
    m.performed_by, m.created_at FROM movements m WHERE m.inventory_id = t.id \
    ORDER BY m.id DESC LIMIT 10) m), '[]'::jsonb)";
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
        Field::new(
            "warehouse",
            FieldKind::Ref {
                table: "warehouses",
            },
        )
        .aliases(&["warehouse_id"]),
        Field::new("location", FieldKind::Ref { table: "locations" }).aliases(&["location_id"]),
        Field::new("batch", FieldKind::Ref { table: "batches" }).aliases(&["batch_id"]),
        Field::text("serial_number", 100).read_only(),
        // Changed by movements only; a PATCH of `quantity` books an ADJUSTMENT `count`.
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
        ("product", PRODUCT),
        ("warehouse", WAREHOUSE),
        ("warehouse_id", "t.warehouse"),
        ("location", PLACE),
        ("location_id", "t.location"),
        (
            "bin_location",
            "(SELECT l.code FROM locations l WHERE l.id = t.location)",
        ),
        (
            "batch",
            "(SELECT b.batch_number FROM batches b WHERE b.id = t.batch)",
        ),
        ("batch_id", "t.batch"),
        ("quantity_on_hand", "t.quantity"),
        ("quantity_allocated", "t.reserved_quantity"),
        ("quantity_available", "t.available_quantity"),
        ("last_stock_update", "t.updated_at"),
        ("recent_movements", RECENT),
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
            Col::new("product__name", PRODUCT_NAME, Kind::Text),
        ],
        search: &["t.serial_number", PRODUCT_NAME, PRODUCT_SKU],
        default_ordering: "-updated_at",
        extra_params: &["sku", "category"],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&StockRules),
    params: Some(stock_params),
    hidden: None,
    related: &[],
};

/// A row moves (warehouse, location, batch) only while empty, is counted (`quantity`) by an
/// ADJUSTMENT, and is deleted only when it holds nothing.
pub struct StockRules;

/// The username of a user id, for the ledger (`performed_by`).
async fn username(ctx: &ServiceContext, user_id: i64) -> String {
    let directory = ctx
        .platform
        .lookup::<integration::users::SharedUserDirectory>();
    match directory {
        Some(d) => match d.by_id(user_id).await {
            Ok(Some(user)) => user.username,
            _ => format!("user:{user_id}"),
        },
        None => format!("user:{user_id}"),
    }
}

#[async_trait]
impl Hooks for StockRules {
    async fn before_write(
        &self,
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(id) = id else {
            return Ok(());
        };
        let (quantity, reserved): (i32, i32) = sqlx::query_as(
            "SELECT quantity, reserved_quantity FROM stock_items WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let moves = ["warehouse", "location", "batch"]
            .iter()
            .any(|c| values.contains_key(*c));
        if moves && (quantity > 0 || reserved > 0) {
            return Err(ApiError::rule(
                "stock_not_empty",
                "This row holds units: move them with transfers/ instead.",
            ));
        }
        if values.get("warehouse") == Some(&kernel::resource::Bind::Null) {
            return Err(ApiError::field("warehouse", "This field may not be null."));
        }
        let Some(counted) = body
            .get("quantity")
            .or_else(|| body.get("quantity_on_hand"))
        else {
            return Ok(());
        };
        let counted = counted
            .as_i64()
            .filter(|q| (0..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                ApiError::field("quantity", format!("Give 0 to {MAX_QUANTITY} units."))
            })?;
        if counted < i64::from(reserved) {
            let (product, variant, warehouse): (i64, Option<i64>, i64) = sqlx::query_as(
                "SELECT product_id, variant_id, warehouse FROM stock_items WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            return Err(ledger::insufficient(
                product,
                variant,
                Some(warehouse),
                i64::from(quantity) - counted,
                i64::from(quantity - reserved),
            ));
        }
        let delta = counted - i64::from(quantity);
        if delta != 0 {
            let actor = Actor::member(scope, &username(ctx, scope.user_id()).await);
            let entry = Entry {
                movement_type: "ADJUSTMENT",
                reason_code: "count",
                reason: "Counted quantity",
                ..Entry::default()
            };
            ledger::change(ctx, tx, &actor, id, delta, 0, &entry).await?;
            ctx.outbox.nudge();
        }
        Ok(())
    }

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
        Field::new(
            "unit_cost",
            FieldKind::Decimal {
                min: Some(0),
                max: None,
                scale: 4,
            },
        )
        .read_only(),
        Field::new("transfer_id", FieldKind::int_from(0)).read_only(),
        Field::new("reservation_id", FieldKind::int_from(0)).read_only(),
        Field::new("reversal_of", FieldKind::int_from(0)).read_only(),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("product_id", "t.product_id", Kind::Int),
            Col::new("variant_id", "t.variant_id", Kind::Int),
            Col::new("inventory_id", "t.inventory_id", Kind::Int),
            Col::new("warehouse", "t.warehouse", Kind::Int),
            Col::new("reason_code", "t.reason_code", Kind::Text),
            Col::new("reference", "t.reference", Kind::Text),
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("created_by", "t.created_by", Kind::Int),
            Col::new("reservation_id", "t.reservation_id", Kind::Int),
            Col::new("transfer_id", "t.transfer_id", Kind::Int),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("quantity", "t.quantity", Kind::Int),
        ],
        search: &["t.reference", "t.reason"],
        default_ordering: "-created_at",
        extra_params: &[
            "movement_type",
            "date_from",
            "date_to",
            "start_date",
            "end_date",
        ],
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
    hooks: Some(&IMMUTABLE),
    params: Some(movement_params),
    hidden: None,
    related: &[],
};

/// Records that are never changed or deleted (the ledger, transfers, restocks): every write
/// and delete through the resource machinery answers 422 with `code`.
pub struct Refuse {
    pub code: &'static str,
    pub detail: &'static str,
}

pub static IMMUTABLE: Refuse = Refuse {
    code: "movement_immutable",
    detail: "Movements cannot be changed or deleted; record a reversing movement instead.",
};

#[async_trait]
impl Hooks for Refuse {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: Option<i64>,
        _body: &Value,
        _values: &mut Values,
    ) -> Result<(), ApiError> {
        Err(ApiError::rule(self.code, self.detail))
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: i64,
    ) -> Result<(), ApiError> {
        Err(ApiError::rule(self.code, self.detail))
    }
}

/// Lines one request may carry.
pub(crate) const MAX_LINES: usize = 200;

/// The `items` list of a multi-line request: 1 to [`MAX_LINES`] lines.
pub(crate) fn items(body: &Value) -> Result<&Vec<Value>, ApiError> {
    body.get("items")
        .and_then(Value::as_array)
        .filter(|items| !items.is_empty() && items.len() <= MAX_LINES)
        .ok_or_else(|| ApiError::field("items", format!("Give a list of 1 to {MAX_LINES} lines.")))
}

/// (type, reason codes, the default one) of inventory.md §5.
pub(crate) const TYPES: &[(&str, &[&str], &str)] = &[
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

pub(crate) const MAX_QUANTITY: i64 = 1_000_000;

/// Which stock row a movement or a new row is about.
#[derive(Clone, Debug, Default)]
pub(crate) struct Target {
    pub inventory_id: Option<i64>,
    pub product_id: Option<i64>,
    pub variant_id: Option<i64>,
    pub warehouse: Option<i64>,
    pub location: Option<i64>,
    pub batch: Option<i64>,
    pub serial_number: Option<String>,
    /// HEAD's `location` as a name (or bin code) and 0a47ee5's `batch` as a batch number,
    /// resolved to ids in the warehouse when the row is looked up.
    pub location_name: Option<String>,
    pub batch_number: Option<String>,
}

pub(crate) fn int(body: &Value, names: &[&str], errors: &mut FieldErrors) -> Option<i64> {
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

/// An id given as a number or a numeric string (`None` for a name, see [`name`]).
fn numeric(v: Option<&Value>, field: &str, errors: &mut FieldErrors) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => match n.as_i64().filter(|n| *n > 0) {
            Some(id) => Some(id),
            None => {
                errors.add(field, "A valid id is required.");
                None
            }
        },
        Some(Value::String(s)) => s.trim().parse().ok().filter(|n: &i64| *n > 0),
        _ => None,
    }
}

/// A non-numeric, non-empty string: a name to resolve.
fn name(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.parse::<i64>().is_err())
        .map(str::to_owned)
}

impl Target {
    pub(crate) fn parse(body: &Value, errors: &mut FieldErrors) -> Self {
        Self {
            inventory_id: int(body, &["inventory_id", "inventory"], errors),
            product_id: int(body, &["product_id", "product"], errors),
            variant_id: int(body, &["variant_id", "variant"], errors),
            warehouse: int(body, &["warehouse_id", "warehouse"], errors),
            location: int(body, &["location_id"], errors)
                .or_else(|| numeric(body.get("location"), "location", errors)),
            batch: int(body, &["batch_id"], errors)
                .or_else(|| numeric(body.get("batch"), "batch", errors)),
            location_name: name(body.get("location")),
            batch_number: name(body.get("batch")),
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
pub(crate) async fn default_warehouse(
    tx: &mut PgConnection,
    actor: &Actor,
) -> Result<i64, ApiError> {
    lock_project_table(tx, "warehouses", actor.project_id).await?;
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM warehouses WHERE project_id = $1 AND deleted_at IS NULL AND is_active \
         ORDER BY is_default DESC, priority, id LIMIT 1",
    )
    .bind(actor.project_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO warehouses (project_id, name_en, is_default, created_by, updated_by) \
         VALUES ($1, 'Main Warehouse', true, $2, $2) RETURNING id",
    )
    .bind(actor.project_id)
    .bind(actor.user_id)
    .fetch_one(&mut *tx)
    .await?)
}

/// The row a target names: `(id, product_id, variant_id, warehouse)`. A missing row is created
/// when `create` (increases), else `None`.
pub(crate) async fn row_for(
    tx: &mut PgConnection,
    actor: &Actor,
    target: &Target,
    create: bool,
) -> Result<Option<(i64, i64, Option<i64>, i64)>, ApiError> {
    if let Some(id) = target.inventory_id {
        let row: Option<(i64, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT id, product_id, variant_id, warehouse FROM stock_items \
             WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(actor.project_id)
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
        None => default_warehouse(tx, actor).await?,
    };
    let mut resolved = target.clone();
    if let Some(number) = &target.batch_number {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM batches WHERE project_id = $1 AND batch_number = $2 AND deleted_at IS NULL",
        )
        .bind(actor.project_id)
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        resolved.batch = Some(id.ok_or_else(|| {
            ApiError::field("batch", format!("No batch is numbered \"{number}\"."))
        })?);
    }
    if let Some(place) = &target.location_name {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM locations WHERE project_id = $1 AND warehouse = $2 \
             AND deleted_at IS NULL AND $3 IN (name_en, name_ar, name_fr, code)",
        )
        .bind(actor.project_id)
        .bind(warehouse)
        .bind(place)
        .fetch_all(&mut *tx)
        .await?;
        match ids.as_slice() {
            [one] => resolved.location = Some(*one),
            [] => {
                return Err(ApiError::field(
                    "location",
                    format!("No location of this warehouse is named \"{place}\"."),
                ))
            }
            _ => {
                return Err(ApiError::field(
                    "location",
                    format!("\"{place}\" names several locations; give location_id."),
                ))
            }
        }
    }
    let target = &resolved;
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
        .bind(actor.project_id)
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
    if let Some(row) = find_row(tx, actor, product, warehouse, target).await? {
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
    .bind(actor.project_id)
    .bind(product)
    .bind(target.variant_id)
    .bind(warehouse)
    .bind(target.location)
    .bind(target.batch)
    .bind(target.serial_number.clone())
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?;
    find_row(tx, actor, product, warehouse, target).await
}

/// The live row of exactly this key (nulls equal), as `(id, product, variant, warehouse)`.
async fn find_row(
    tx: &mut PgConnection,
    actor: &Actor,
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
    .bind(actor.project_id)
    .bind(product)
    .bind(target.variant_id)
    .bind(warehouse)
    .bind(target.location)
    .bind(target.batch)
    .bind(target.serial_number.clone())
    .fetch_optional(tx)
    .await?)
}

/// A movement as clients send it: the type, reason and signed delta, validated.
struct Parsed {
    movement_type: &'static str,
    reason_code: &'static str,
    delta: i64,
}

/// Reads `movement_type` (IN, OUT, ADJUSTMENT/ADJUST, TRANSFER, or a HEAD lowercase reason),
/// `reason_code` and `quantity` into a signed delta (contract inventory.md §5).
fn parse_movement(body: &Value, errors: &mut FieldErrors) -> Option<Parsed> {
    let raw = body
        .get("movement_type")
        .or_else(|| body.get("type"))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let upper = match raw.to_ascii_uppercase().as_str() {
        "ADJUST" => "ADJUSTMENT".to_owned(),
        other => other.to_owned(),
    };
    // HEAD's lowercase values name a reason: its type follows, the sign gives the direction.
    let (spec, head_reason) = match TYPES.iter().find(|(t, _, _)| *t == upper) {
        Some(spec) => (Some(spec), None),
        None if upper == "TRANSFER" => (None, None),
        None => match TYPES
            .iter()
            .find_map(|spec| spec.1.iter().find(|r| **r == raw).map(|r| (spec, *r)))
        {
            Some((spec, reason)) => (Some(spec), Some(reason)),
            None => {
                errors.add("movement_type", "Use IN, OUT, ADJUSTMENT or TRANSFER.");
                return None;
            }
        },
    };
    let quantity = body.get("quantity").and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    });
    let Some(q) = quantity else {
        errors.add("quantity", "A valid integer is required.");
        return None;
    };
    let Some(&(movement_type, reasons, default_reason)) = spec else {
        // One half of the two-call transfer form: signed, non-zero.
        if q == 0 || q.abs() > MAX_QUANTITY {
            errors.add(
                "quantity",
                format!("Give a non-zero change of at most {MAX_QUANTITY} units."),
            );
            return None;
        }
        return Some(Parsed {
            movement_type: "TRANSFER",
            reason_code: "transfer",
            delta: q,
        });
    };
    let reason_code = match (head_reason, body.get("reason_code").and_then(Value::as_str)) {
        (Some(reason), _) => reason,
        (None, None) => default_reason,
        (None, Some(code)) => match reasons.iter().find(|r| r.eq_ignore_ascii_case(code.trim())) {
            Some(r) => r,
            None => {
                errors.add(
                    "reason_code",
                    format!("\"{code}\" is not a valid reason for {movement_type}."),
                );
                return None;
            }
        },
    };
    let delta = match movement_type {
        "ADJUSTMENT" if q != 0 && q.abs() <= MAX_QUANTITY => q,
        "ADJUSTMENT" => {
            errors.add(
                "quantity",
                format!("Give a non-zero change of at most {MAX_QUANTITY} units."),
            );
            return None;
        }
        // HEAD lowercase decreases: either sign means a decrease.
        "OUT" if head_reason.is_some() && q != 0 && q.abs() <= MAX_QUANTITY => -q.abs(),
        t if (1..=MAX_QUANTITY).contains(&q) => {
            if t == "OUT" {
                -q
            } else {
                q
            }
        }
        t => {
            errors.add(
                "quantity",
                format!("Quantity must be positive (1 to {MAX_QUANTITY}) for {t} movements."),
            );
            return None;
        }
    };
    Some(Parsed {
        movement_type,
        reason_code,
        delta,
    })
}

/// An optional text field of at most `max` characters (absent → empty).
pub(crate) fn text(body: &Value, name: &str, max: usize, errors: &mut FieldErrors) -> String {
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
}

/// An optional non-negative decimal (`unit_cost`), as a string PostgreSQL reads as NUMERIC.
pub(crate) fn money(body: &Value, name: &str, errors: &mut FieldErrors) -> Option<String> {
    let v = body.get(name).filter(|v| !v.is_null())?;
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => String::new(),
    };
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && (0.0..1e12).contains(&n) => Some(text),
        _ => {
            errors.add(name, "A valid non-negative number is required.");
            None
        }
    }
}

/// 422 `batch_expired`: a decrease from an expired batch other than its write-off.
async fn refuse_expired_batch(
    tx: &mut PgConnection,
    row: i64,
    reason_code: &str,
) -> Result<(), ApiError> {
    if matches!(reason_code, "expiry" | "damage") {
        return Ok(());
    }
    let expired: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM stock_items s JOIN batches b ON b.id = s.batch \
         WHERE s.id = $1 AND b.expiry_date < current_date)",
    )
    .bind(row)
    .fetch_one(&mut *tx)
    .await?;
    if expired {
        return Err(ApiError::rule(
            "batch_expired",
            "This batch has expired: book it out with reason expiry or damage.",
        ));
    }
    Ok(())
}

/// The product a target names, checked against the replica (a row's own product when the
/// target is `inventory_id`).
async fn checked_product(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    target: &Target,
) -> Result<Stocked, ApiError> {
    let (product, variant) = match target.inventory_id {
        Some(id) => {
            let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                "SELECT product_id, variant_id FROM stock_items \
                 WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(scope.project_id())
            .fetch_optional(&ctx.pool)
            .await?;
            row.ok_or_else(|| {
                ApiError::field(
                    "inventory_id",
                    format!("Invalid pk \"{id}\" - object does not exist."),
                )
            })?
        }
        None => match target.product_id {
            Some(p) => (p, target.variant_id),
            None => return Err(ApiError::field("product_id", "This field is required.")),
        },
    };
    catalog::check(ctx, scope.project_id(), product, variant).await
}

/// The answer to a stock call about a product whose stock is not tracked: success, no change.
fn untracked(target: &Target, delta: i64) -> Value {
    json!({"product_id": target.product_id, "variant_id": target.variant_id,
           "quantity": delta, "tracked": false,
           "detail": "Stock is not tracked for this product; nothing was booked."})
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
    let parsed = parse_movement(body, &mut errors);
    let reason = text(body, "reason", 1000, &mut errors);
    let reference = text(body, "reference", 100, &mut errors);
    let notes = text(body, "notes", 5000, &mut errors);
    let unit_cost = money(body, "unit_cost", &mut errors);
    let target = Target::parse(body, &mut errors);
    errors.into_result()?;
    let Some(parsed) = parsed else {
        return Err(ApiError::field(
            "movement_type",
            "A valid movement is required.",
        ));
    };
    let stocked = checked_product(ctx, scope, &target).await?;
    if !stocked.tracked {
        return Ok(untracked(&target, parsed.delta));
    }
    let entry = Entry {
        movement_type: parsed.movement_type,
        reason_code: parsed.reason_code,
        reason: &reason,
        reference: &reference,
        notes: &notes,
        unit_cost: unit_cost.as_deref(),
        ..Entry::default()
    };
    let actor = Actor::member(scope, username);
    let mut tx = ctx.pool.begin().await?;
    let Some((row, product, variant, warehouse)) =
        row_for(&mut tx, &actor, &target, parsed.delta > 0).await?
    else {
        return Err(ledger::insufficient(
            target.product_id.unwrap_or_default(),
            target.variant_id,
            target.warehouse,
            -parsed.delta,
            0,
        ));
    };
    if parsed.delta < 0 {
        refuse_expired_batch(&mut tx, row, parsed.reason_code).await?;
    }
    let movement = match ledger::change(ctx, &mut tx, &actor, row, parsed.delta, 0, &entry).await? {
        Outcome::Done { movement, .. } => movement.unwrap_or_default(),
        Outcome::Short { available } => {
            return Err(ledger::insufficient(
                product,
                variant,
                Some(warehouse),
                -parsed.delta,
                available,
            ))
        }
    };
    tx.commit().await?;
    ctx.outbox.nudge();
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
    let reference = text(body, "reference", 100, &mut errors);
    let levels = STOCK.values(body, true, lang)?;
    errors.into_result()?;
    let stocked = checked_product(ctx, scope, &target).await?;
    let actor = Actor::member(scope, username);
    let mut tx = ctx.pool.begin().await?;
    if row_for(&mut tx, &actor, &target, false).await?.is_some() {
        return Err(ApiError::field(
            "non_field_errors",
            "A stock row for this product, variant, warehouse, location, batch and serial number already exists.",
        ));
    }
    let Some((row, ..)) = row_for(&mut tx, &actor, &target, true).await? else {
        return Err(ApiError::conflict(
            "conflict",
            "The stock row could not be created.",
        ));
    };
    let explicit_threshold = levels.iter().any(|(c, _)| c == "low_stock_threshold");
    if let (false, Some(t)) = (explicit_threshold, stocked.low_stock_threshold) {
        sqlx::query("UPDATE stock_items SET low_stock_threshold = $2 WHERE id = $1")
            .bind(row)
            .bind(t.clamp(0, i32::MAX.into()) as i32)
            .execute(&mut *tx)
            .await?;
    }
    const LEVELS: [&str; 4] = [
        "low_stock_threshold",
        "maximum_stock_level",
        "reorder_point",
        "reorder_quantity",
    ];
    for (column, value) in levels {
        if let (true, kernel::resource::Bind::Int(n)) = (LEVELS.contains(&column.as_str()), value) {
            sqlx::query(&format!(
                "UPDATE stock_items SET \"{column}\" = $2 WHERE id = $1"
            ))
            .bind(row)
            .bind(n as i32)
            .execute(&mut *tx)
            .await?;
        }
    }
    if quantity > 0 && stocked.tracked {
        let entry = Entry {
            movement_type: "IN",
            reason_code: "initial",
            reference: &reference,
            ..Entry::default()
        };
        ledger::change(ctx, &mut tx, &actor, row, quantity, 0, &entry).await?;
    }
    tx.commit().await?;
    ctx.outbox.nudge();
    kernel::resource::retrieve(
        ctx,
        &STOCK,
        &kernel::auth::ReadScope::Member(scope.clone()),
        row,
        lang,
    )
    .await
}

/// The stock a product is created with (`product.created` with `initialStock`): an IN
/// `initial` movement into its default-warehouse row, in the consumer's transaction.
pub async fn book_initial(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    project_id: i64,
    actor_id: Option<i64>,
    product: &integration::product::ProductSnapshot,
    quantity: i64,
) -> Result<(), ApiError> {
    let actor = Actor {
        user_id: actor_id,
        ..Actor::system(project_id)
    };
    let target = Target {
        product_id: Some(product.product_id),
        ..Target::default()
    };
    let Some((row, ..)) = row_for(tx, &actor, &target, true).await? else {
        return Err(ApiError::internal("no default stock row"));
    };
    if let Some(t) = product.low_stock_threshold {
        sqlx::query("UPDATE stock_items SET low_stock_threshold = $2 WHERE id = $1")
            .bind(row)
            .bind(t.clamp(0, i32::MAX.into()) as i32)
            .execute(&mut *tx)
            .await?;
    }
    let entry = Entry {
        movement_type: "IN",
        reason_code: "initial",
        reference: "product:created",
        ..Entry::default()
    };
    ledger::change(ctx, tx, &actor, row, quantity.min(MAX_QUANTITY), 0, &entry).await?;
    Ok(())
}
