//! Multi-row stock operations (contract inventory.md §5, §5.1): transfers between warehouses or
//! locations, restocks (goods received), bulk movements (pos, repair), and reversing a movement.
//!
//! Each is one transaction: the rows it touches are locked in one statement in ascending id,
//! every line goes through `ledger::change`, and it is all or nothing (bulk movements in
//! `shortfall` mode take what there is instead). Deadlocks or serialization failures retry the
//! whole operation (≤ 3), lock waits are bounded (5 s → 503).

use integration::inventory::{ReservationLine, ShortLine, Shortfall, TransferCompleted};
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Field, FieldKind, Resource};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::catalog;
use crate::ledger::{self, Actor, Entry, Outcome};
use crate::reference::STOCK_GRANTS;
use crate::stock::{
    default_warehouse, int, items, money, row_for, text, Refuse, Target, MAX_QUANTITY, MOVEMENT,
    TYPES,
};

/// Transfers, read through the resource machinery (they are written by [`transfer`] only).
pub static TRANSFER: Resource = Resource {
    service: "inventory",
    model: "transfer",
    label: "Transfer",
    table: "transfers",
    fields: &[
        Field::text("transfer_number", 30).read_only(),
        Field::text("reference", 100).read_only(),
        Field::text("reason", 1000).read_only(),
        Field::new("from_warehouse_id", FieldKind::int_from(0)).read_only(),
        Field::new("to_warehouse_id", FieldKind::int_from(0)).read_only(),
        Field::new("from_location_id", FieldKind::int_from(0)).read_only(),
        Field::new("to_location_id", FieldKind::int_from(0)).read_only(),
        Field::text("status", 20).read_only(),
        Field::new("items", FieldKind::Json { max_bytes: 0 }).read_only(),
        Field::text("performed_by", 150).read_only(),
    ],
    slug_from: None,
    computed: &[("from_location", PLACE_FROM), ("to_location", PLACE_TO)],
    list: ListSpec {
        filters: &[
            Col::new("reference", "t.reference", Kind::Text),
            Col::new("from_warehouse", "t.from_warehouse_id", Kind::Int),
            Col::new("to_warehouse", "t.to_warehouse_id", Kind::Int),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        ordering: &[Col::new("created_at", "t.created_at", Kind::DateTime)],
        search: &["t.transfer_number", "t.reference"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: STOCK_GRANTS,
    unique: &[],
    hooks: Some(&RECORDED),
    params: None,
    hidden: None,
    related: &[],
};

/// `"<warehouse> - <location>"`, or the warehouse alone.
const PLACE_FROM: &str = "(SELECT concat_ws(' - ', NULLIF(w.name_en, ''), NULLIF(l.name_en, '')) \
    FROM warehouses w LEFT JOIN locations l ON l.id = t.from_location_id WHERE w.id = t.from_warehouse_id)";
const PLACE_TO: &str = "(SELECT concat_ws(' - ', NULLIF(w.name_en, ''), NULLIF(l.name_en, '')) \
    FROM warehouses w LEFT JOIN locations l ON l.id = t.to_location_id WHERE w.id = t.to_warehouse_id)";

/// Restocks (goods received), read through the resource machinery.
pub static RESTOCK: Resource = Resource {
    service: "inventory",
    model: "restock",
    label: "Restock",
    table: "restocks",
    fields: &[
        Field::text("restock_number", 30).read_only(),
        Field::text("supplier", 255).read_only(),
        Field::new("vendor_id", FieldKind::int_from(0)).read_only(),
        Field::text("supplier_reference", 100).read_only(),
        Field::new("received_date", FieldKind::Date).read_only(),
        Field::text("notes", 5000).read_only(),
        Field::new("warehouse_id", FieldKind::int_from(0)).read_only(),
        Field::new("items", FieldKind::Json { max_bytes: 0 }).read_only(),
        Field::new(
            "total_cost",
            FieldKind::Decimal {
                min: Some(0),
                max: None,
                scale: 2,
            },
        )
        .read_only(),
        Field::text("performed_by", 150).read_only(),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("supplier", "t.supplier", Kind::Text),
            Col::new("vendor", "t.vendor_id", Kind::Int),
            Col::new("warehouse", "t.warehouse_id", Kind::Int),
            Col::new("received_date", "t.received_date", Kind::Date),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        ordering: &[Col::new("created_at", "t.created_at", Kind::DateTime)],
        search: &["t.restock_number", "t.supplier", "t.supplier_reference"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: STOCK_GRANTS,
    unique: &[],
    hooks: Some(&RECORDED),
    params: None,
    hidden: None,
    related: &[],
};

/// Transfers and restocks record stock that moved: they are never changed or deleted.
static RECORDED: Refuse = Refuse {
    code: "record_immutable",
    detail: "Transfers and restocks record stock that moved; they are not changed or deleted.",
};

/// One line of a transfer, restock or bulk movement.
#[derive(Clone, Debug)]
struct Line {
    product_id: i64,
    variant_id: Option<i64>,
    batch_id: Option<i64>,
    quantity: i64,
    unit_cost: Option<String>,
    name: String,
    tracked: bool,
}

/// Reads `items` (DRF's nested errors per line) and checks each product.
async fn lines(
    ctx: &ServiceContext,
    project_id: i64,
    body: &Value,
    with_cost: bool,
) -> Result<Vec<Line>, ApiError> {
    let items = items(body)?;
    let mut errors = Vec::with_capacity(items.len());
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let mut e = FieldErrors::new();
        let product_id = int(item, &["product_id", "product"], &mut e);
        if product_id.is_none() && e.get("product_id").is_none() {
            e.required("product_id");
        }
        let variant_id = int(item, &["variant_id", "variant"], &mut e);
        let batch_id = int(item, &["batch_id", "batch"], &mut e);
        let quantity = item
            .get("quantity")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
            .filter(|q| (1..=MAX_QUANTITY).contains(q));
        if quantity.is_none() {
            e.add(
                "quantity",
                format!("Give a whole number of units from 1 to {MAX_QUANTITY}."),
            );
        }
        let unit_cost = if with_cost {
            money(item, "unit_cost", &mut e)
        } else {
            None
        };
        errors.push(e);
        if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
            parsed.push((product_id, variant_id, batch_id, quantity, unit_cost));
        }
    }
    ApiError::per_item("items", &errors)?;
    let mut out = Vec::with_capacity(parsed.len());
    for (product_id, variant_id, batch_id, quantity, unit_cost) in parsed {
        let stocked = catalog::check(ctx, project_id, product_id, variant_id).await?;
        out.push(Line {
            product_id,
            variant_id,
            batch_id,
            quantity,
            unit_cost,
            name: stocked.name,
            tracked: stocked.tracked,
        });
    }
    Ok(out)
}

/// Checks that `id` is a live row of `table` in the project (400 on `field` otherwise).
async fn live(
    tx: &mut PgConnection,
    project_id: i64,
    table: &str,
    field: &str,
    id: i64,
) -> Result<(), ApiError> {
    let found: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL)"
    ))
    .bind(id)
    .bind(project_id)
    .fetch_one(&mut *tx)
    .await?;
    if found {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("Invalid pk \"{id}\" - object does not exist."),
        ))
    }
}

/// Resolves HEAD's `from_location`/`to_location` strings: a warehouse name, or a location name
/// (then its warehouse). Unknown or ambiguous → 400.
async fn place_by_name(
    tx: &mut PgConnection,
    project_id: i64,
    field: &str,
    name: &str,
) -> Result<(i64, Option<i64>), ApiError> {
    let warehouses: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM warehouses WHERE project_id = $1 AND deleted_at IS NULL \
         AND $2 IN (name_en, name_ar, name_fr, code)",
    )
    .bind(project_id)
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    if let [one] = warehouses.as_slice() {
        return Ok((*one, None));
    }
    let locations: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT warehouse, id FROM locations WHERE project_id = $1 AND deleted_at IS NULL \
         AND $2 IN (name_en, name_ar, name_fr, code)",
    )
    .bind(project_id)
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    match (warehouses.len(), locations.as_slice()) {
        (0, [(warehouse, location)]) => Ok((*warehouse, Some(*location))),
        (0, []) => Err(ApiError::field(
            field,
            format!("No warehouse or location is named \"{name}\"."),
        )),
        _ => Err(ApiError::field(
            field,
            format!("\"{name}\" names several places; give ids."),
        )),
    }
}

/// One end of a transfer: `{side}_warehouse_id` (+ `{side}_location_id`), or HEAD's
/// `{side}_location` string.
async fn place(
    tx: &mut PgConnection,
    project_id: i64,
    body: &Value,
    side: &str,
) -> Result<(i64, Option<i64>), ApiError> {
    let mut errors = FieldErrors::new();
    let warehouse_field = format!("{side}_warehouse_id");
    let location_field = format!("{side}_location_id");
    let warehouse = int(
        body,
        &[&warehouse_field, &format!("{side}_warehouse")],
        &mut errors,
    );
    let location = int(body, &[&location_field], &mut errors);
    errors.into_result()?;
    let (warehouse, location) = match (warehouse, location, body.get(format!("{side}_location"))) {
        (Some(w), l, _) => (w, l),
        (None, None, Some(Value::String(name))) if !name.trim().is_empty() => {
            place_by_name(tx, project_id, &format!("{side}_location"), name.trim()).await?
        }
        (None, Some(l), _) => {
            let w: Option<i64> = sqlx::query_scalar(
                "SELECT warehouse FROM locations WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
            )
            .bind(l)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
            (
                w.ok_or_else(|| {
                    ApiError::field(
                        &location_field,
                        format!("Invalid pk \"{l}\" - object does not exist."),
                    )
                })?,
                Some(l),
            )
        }
        _ => return Err(ApiError::field(&warehouse_field, "This field is required.")),
    };
    live(tx, project_id, "warehouses", &warehouse_field, warehouse).await?;
    if let Some(l) = location {
        let inside: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM locations WHERE id = $1 AND project_id = $2 \
             AND warehouse = $3 AND deleted_at IS NULL)",
        )
        .bind(l)
        .bind(project_id)
        .bind(warehouse)
        .fetch_one(&mut *tx)
        .await?;
        if !inside {
            return Err(ApiError::field(
                &location_field,
                "The location must be a live location of that warehouse.",
            ));
        }
    }
    Ok((warehouse, location))
}

fn target(line: &Line, warehouse: i64, location: Option<i64>) -> Target {
    Target {
        product_id: Some(line.product_id),
        variant_id: line.variant_id,
        warehouse: Some(warehouse),
        location,
        batch: line.batch_id,
        ..Target::default()
    }
}

/// `POST transfers/`: every line moves from one place to the other, or nothing moves.
pub async fn transfer(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.add_transfer", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let reason = text(body, "reason", 1000, &mut errors);
    let reference = text(body, "reference", 100, &mut errors);
    errors.into_result()?;
    let project_id = scope.project_id();
    let lines = lines(ctx, project_id, body, false).await?;
    let actor = Actor::member(scope, username);
    let id = kernel::db::retry_transient(|| async {
        let mut tx = ctx.pool.begin().await?;
        ledger::lock_timeout(&mut tx).await?;
        let from = place(&mut tx, project_id, body, "from").await?;
        let to = place(&mut tx, project_id, body, "to").await?;
        if from == to {
            return Err(ApiError::field(
                "to_warehouse_id",
                "The source and the target are the same place.",
            ));
        }
        let tracked: Vec<&Line> = lines.iter().filter(|l| l.tracked).collect();
        // Sources must exist; targets are created when missing. Then all are locked in order.
        let mut pairs = Vec::with_capacity(tracked.len());
        let mut short = Vec::new();
        for line in &tracked {
            let source = row_for(&mut tx, &actor, &target(line, from.0, from.1), false).await?;
            let sink = row_for(&mut tx, &actor, &target(line, to.0, to.1), true).await?;
            match (source, sink) {
                (Some(s), Some(t)) => pairs.push((*line, s.0, t.0)),
                _ => short.push(
                    json!({"product_id": line.product_id, "variant_id": line.variant_id,
                    "warehouse_id": from.0, "requested": line.quantity, "available": 0}),
                ),
            }
        }
        if !short.is_empty() {
            return Err(ledger::insufficient_lines(short));
        }
        let mut rows: Vec<i64> = pairs.iter().flat_map(|p| [p.1, p.2]).collect();
        rows.sort_unstable();
        rows.dedup();
        ledger::lock(&mut tx, &rows).await?;
        let (id, number): (i64, String) = sqlx::query_as(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('transfers', 'id')) AS id) \
             INSERT INTO transfers (id, project_id, transfer_number, reference, reason, \
               from_warehouse_id, to_warehouse_id, from_location_id, to_location_id, items, \
               created_by, updated_by, performed_by) \
             SELECT n.id, $1, document_number('TRANSFER', n.id), \
               COALESCE(NULLIF($2, ''), document_number('TRANSFER', n.id)), \
               $3, $4, $5, $6, $7, '[]'::jsonb, $8, $8, $9 FROM n RETURNING id, transfer_number",
        )
        .bind(project_id)
        .bind(&reference)
        .bind(&reason)
        .bind(from.0)
        .bind(to.0)
        .bind(from.1)
        .bind(to.1)
        .bind(actor.user_id)
        .bind(&actor.username)
        .fetch_one(&mut *tx)
        .await?;
        let reference: String = sqlx::query_scalar("SELECT reference FROM transfers WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let mut items = Vec::with_capacity(pairs.len());
        let mut short = Vec::new();
        for (line, source, sink) in &pairs {
            let entry = Entry {
                movement_type: "TRANSFER",
                reason_code: "transfer",
                reason: &reason,
                reference: &reference,
                transfer_id: Some(id),
                ..Entry::default()
            };
            let q = line.quantity;
            let out = ledger::change(ctx, &mut tx, &actor, *source, -q, 0, &entry).await?;
            let Outcome::Done { levels: left, .. } = out else {
                if let Outcome::Short { available } = out {
                    short.push(
                        json!({"product_id": line.product_id, "variant_id": line.variant_id,
                        "warehouse_id": from.0, "requested": q, "available": available}),
                    );
                }
                continue;
            };
            let Outcome::Done {
                levels: arrived, ..
            } = ledger::change(ctx, &mut tx, &actor, *sink, q, 0, &entry).await?
            else {
                return Err(ApiError::internal("a transfer target refused an increase"));
            };
            items.push(json!({
                "product_id": line.product_id, "variant_id": line.variant_id,
                "product_name": line.name, "quantity": q,
                "from_location_previous": i64::from(left.quantity) + q,
                "from_location_new": left.quantity,
                "to_location_previous": i64::from(arrived.quantity) - q,
                "to_location_new": arrived.quantity,
            }));
        }
        if !short.is_empty() {
            return Err(ledger::insufficient_lines(short));
        }
        sqlx::query("UPDATE transfers SET items = $2 WHERE id = $1")
            .bind(id)
            .bind(Value::Array(items))
            .execute(&mut *tx)
            .await?;
        ctx.outbox
            .record(
                &mut tx,
                Some(project_id),
                actor.user_id,
                &TransferCompleted {
                    transfer_id: id,
                    transfer_number: number,
                    from_warehouse_id: from.0,
                    to_warehouse_id: to.0,
                    items: pairs
                        .iter()
                        .map(|(l, _, _)| ReservationLine {
                            product_id: l.product_id,
                            variant_id: l.variant_id,
                            quantity: l.quantity,
                        })
                        .collect(),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(id)
    })
    .await?;
    ctx.outbox.nudge();
    read(ctx, scope, &TRANSFER, id).await
}

async fn read(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    r: &Resource,
    id: i64,
) -> Result<Value, ApiError> {
    kernel::resource::retrieve(
        ctx,
        r,
        &kernel::auth::ReadScope::Member(scope.clone()),
        id,
        "en",
    )
    .await
}

/// `POST restock/`: goods received, one IN `restock` per line, atomic.
pub async fn restock(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.add_restock", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let supplier = text(body, "supplier", 255, &mut errors);
    let supplier_reference = text(body, "supplier_reference", 100, &mut errors);
    let notes = text(body, "notes", 5000, &mut errors);
    let vendor = int(body, &["vendor_id", "vendor"], &mut errors);
    let warehouse = int(body, &["warehouse_id", "warehouse"], &mut errors);
    let batch = int(body, &["batch_id", "batch"], &mut errors);
    let received = match body.get("received_date") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(s.trim()).map(|d| d.date_naive()))
        {
            Ok(d) => Some(d),
            Err(_) => {
                errors.add("received_date", "Use the format YYYY-MM-DD.");
                None
            }
        },
        Some(_) => {
            errors.add("received_date", "Use the format YYYY-MM-DD.");
            None
        }
    };
    errors.into_result()?;
    let project_id = scope.project_id();
    let mut lines = lines(ctx, project_id, body, true).await?;
    for line in &mut lines {
        line.batch_id = line.batch_id.or(batch);
    }
    let actor = Actor::member(scope, username);
    let id = kernel::db::retry_transient(|| async {
        let mut tx = ctx.pool.begin().await?;
        ledger::lock_timeout(&mut tx).await?;
        let warehouse = match warehouse {
            Some(w) => {
                live(&mut tx, project_id, "warehouses", "warehouse_id", w).await?;
                w
            }
            None => default_warehouse(&mut tx, &actor).await?,
        };
        if let Some(v) = vendor {
            live(&mut tx, project_id, "vendors", "vendor_id", v).await?;
        }
        let supplier = if supplier.is_empty() {
            match vendor {
                Some(v) => {
                    sqlx::query_scalar::<_, String>("SELECT name FROM vendors WHERE id = $1")
                        .bind(v)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap_or_default()
                }
                None => String::new(),
            }
        } else {
            supplier.clone()
        };
        let mut rows = Vec::new();
        for line in lines.iter().filter(|l| l.tracked) {
            let Some((row, ..)) =
                row_for(&mut tx, &actor, &target(line, warehouse, None), true).await?
            else {
                return Err(ApiError::internal("a restock row could not be created"));
            };
            rows.push((line, row));
        }
        let mut ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
        ids.sort_unstable();
        ids.dedup();
        ledger::lock(&mut tx, &ids).await?;
        let (id, number): (i64, String) = sqlx::query_as(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('restocks', 'id')) AS id) \
             INSERT INTO restocks (id, project_id, restock_number, supplier, vendor_id, \
               supplier_reference, received_date, notes, warehouse_id, items, created_by, \
               updated_by, performed_by) \
             SELECT n.id, $1, document_number('RESTOCK', n.id), \
               $2, $3, $4, $5, $6, $7, '[]'::jsonb, $8, $8, $9 FROM n RETURNING id, restock_number",
        )
        .bind(project_id)
        .bind(&supplier)
        .bind(vendor)
        .bind(&supplier_reference)
        .bind(received)
        .bind(&notes)
        .bind(warehouse)
        .bind(actor.user_id)
        .bind(&actor.username)
        .fetch_one(&mut *tx)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for (line, row) in &rows {
            let entry = Entry {
                movement_type: "IN",
                reason_code: "restock",
                reference: &number,
                notes: &supplier_reference,
                unit_cost: line.unit_cost.as_deref(),
                ..Entry::default()
            };
            let Outcome::Done { levels, .. } =
                ledger::change(ctx, &mut tx, &actor, *row, line.quantity, 0, &entry).await?
            else {
                return Err(ApiError::internal("a restock was refused"));
            };
            items.push(json!({
                "product_id": line.product_id, "variant_id": line.variant_id,
                "product_name": line.name, "quantity_added": line.quantity,
                "unit_cost": line.unit_cost,
                "previous_quantity": i64::from(levels.quantity) - line.quantity,
                "new_quantity": levels.quantity,
            }));
        }
        sqlx::query(
            "UPDATE restocks SET items = $2, total_cost = (SELECT sum((i->>'unit_cost')::numeric \
               * (i->>'quantity_added')::numeric) FROM jsonb_array_elements($2) i \
               WHERE i->>'unit_cost' IS NOT NULL) WHERE id = $1",
        )
        .bind(id)
        .bind(Value::Array(items))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    })
    .await?;
    ctx.outbox.nudge();
    read(ctx, scope, &RESTOCK, id).await
}

/// `POST movements/{id}/reverse/` (owners and admins): the opposite movement, as an
/// ADJUSTMENT referenced `reverse:{id}`, once per movement.
pub async fn reverse(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.reverse_movement", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let reason = text(body, "reason", 1000, &mut errors);
    errors.into_result()?;
    let actor = Actor::member(scope, username);
    let movement = kernel::db::retry_transient(|| async {
        let mut tx = ctx.pool.begin().await?;
        ledger::lock_timeout(&mut tx).await?;
        let original: Option<(i64, i32, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT inventory_id, quantity, reversal_of, \
               (SELECT id FROM movements r WHERE r.reversal_of = m.id) \
             FROM movements m WHERE id = $1 AND project_id = $2",
        )
        .bind(id)
        .bind(actor.project_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((row, quantity, reversal_of, reversed_by)) = original else {
            return Err(ApiError::not_found());
        };
        if reversal_of.is_some() {
            return Err(ApiError::rule(
                "movement_is_reversal",
                "This movement is itself a reversal.",
            ));
        }
        if reversed_by.is_some() {
            return Err(already_reversed());
        }
        let reference = format!("reverse:{id}");
        let why = if reason.is_empty() {
            format!("Reversal of movement {id}")
        } else {
            reason.clone()
        };
        let entry = Entry {
            movement_type: "ADJUSTMENT",
            reason_code: "adjustment",
            reason: &why,
            reference: &reference,
            reversal_of: Some(id),
            ..Entry::default()
        };
        let delta = -i64::from(quantity);
        let done = ledger::change(ctx, &mut tx, &actor, row, delta, 0, &entry).await;
        let movement = match done {
            Ok(Outcome::Done { movement, .. }) => movement.unwrap_or_default(),
            Ok(Outcome::Short { available }) => {
                let (product, variant, warehouse): (i64, Option<i64>, i64) = sqlx::query_as(
                    "SELECT product_id, variant_id, warehouse FROM stock_items WHERE id = $1",
                )
                .bind(row)
                .fetch_one(&mut *tx)
                .await?;
                return Err(ledger::insufficient(
                    product,
                    variant,
                    Some(warehouse),
                    -delta,
                    available,
                ));
            }
            // Two reversals at once: the unique index lets one through.
            Err(e) if e.code() == "invalid" || e.field_errors().is_some() => {
                return Err(already_reversed())
            }
            Err(e) => return Err(e),
        };
        tx.commit().await?;
        Ok(movement)
    })
    .await?;
    ctx.outbox.nudge();
    Ok(MOVEMENT.shape(&movement, "en", true))
}

fn already_reversed() -> ApiError {
    ApiError::rule(
        "movement_already_reversed",
        "This movement has already been reversed.",
    )
}

/// `POST movements/bulk/`: IN or OUT of many lines at once (pos, repair). `reject` (default):
/// all or nothing; `shortfall`: each OUT takes what is available, never below zero, and the
/// missing units are reported (and published as `inventory.shortfall`).
pub async fn bulk(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.add_movement", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let kind = body
        .get("movement_type")
        .and_then(Value::as_str)
        .map(|t| t.trim().to_ascii_uppercase());
    let Some(&(movement_type, reasons, default_reason)) = TYPES
        .iter()
        .find(|(t, _, _)| matches!(*t, "IN" | "OUT") && Some(*t) == kind.as_deref())
    else {
        return Err(ApiError::field("movement_type", "Use IN or OUT."));
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
    let shortfall_mode = match body.get("on_insufficient").and_then(Value::as_str) {
        None | Some("reject") => false,
        Some("shortfall") => true,
        Some(_) => {
            errors.add("on_insufficient", "Use \"reject\" or \"shortfall\".");
            false
        }
    };
    let reference = text(body, "reference", 100, &mut errors);
    let warehouse = int(body, &["warehouse_id", "warehouse"], &mut errors);
    errors.into_result()?;
    let project_id = scope.project_id();
    let lines = lines(ctx, project_id, body, false).await?;
    let actor = Actor::member(scope, username);
    let sign = if movement_type == "OUT" { -1 } else { 1 };
    let (movements, shortfall) = kernel::db::retry_transient(|| async {
        let mut tx = ctx.pool.begin().await?;
        ledger::lock_timeout(&mut tx).await?;
        let warehouse = match warehouse {
            Some(w) => {
                live(&mut tx, project_id, "warehouses", "warehouse_id", w).await?;
                w
            }
            None => default_warehouse(&mut tx, &actor).await?,
        };
        let mut rows = Vec::new();
        for line in lines.iter().filter(|l| l.tracked) {
            let row = row_for(&mut tx, &actor, &target(line, warehouse, None), sign > 0).await?;
            rows.push((line, row.map(|r| r.0)));
        }
        let mut ids: Vec<i64> = rows.iter().filter_map(|r| r.1).collect();
        ids.sort_unstable();
        ids.dedup();
        ledger::lock(&mut tx, &ids).await?;
        let mut movements = Vec::new();
        let mut shortfall = Vec::new();
        let mut short = Vec::new();
        for (line, row) in &rows {
            let available = match row {
                Some(r) if sign < 0 => {
                    let a: i32 = sqlx::query_scalar(
                        "SELECT available_quantity FROM stock_items WHERE id = $1",
                    )
                    .bind(r)
                    .fetch_one(&mut *tx)
                    .await?;
                    i64::from(a)
                }
                Some(_) => i64::MAX,
                None => 0,
            };
            let applied = if sign < 0 && available < line.quantity {
                if !shortfall_mode {
                    short.push(json!({"product_id": line.product_id, "variant_id": line.variant_id,
                        "warehouse_id": warehouse, "requested": line.quantity, "available": available}));
                    continue;
                }
                shortfall.push(ShortLine {
                    product_id: line.product_id,
                    variant_id: line.variant_id,
                    requested: line.quantity,
                    applied: available,
                });
                available
            } else {
                line.quantity
            };
            let (Some(row), true) = (row, applied > 0) else {
                continue;
            };
            let entry = Entry {
                movement_type,
                reason_code,
                reference: &reference,
                ..Entry::default()
            };
            match ledger::change(ctx, &mut tx, &actor, *row, sign * applied, 0, &entry).await? {
                Outcome::Done { movement, .. } => {
                    movements.push(MOVEMENT.shape(&movement.unwrap_or_default(), "en", true));
                }
                Outcome::Short { available } => short.push(json!({"product_id": line.product_id,
                    "variant_id": line.variant_id, "warehouse_id": warehouse,
                    "requested": line.quantity, "available": available})),
            }
        }
        if !short.is_empty() {
            return Err(ledger::insufficient_lines(short));
        }
        if !shortfall.is_empty() {
            ctx.outbox
                .record(
                    &mut tx,
                    Some(project_id),
                    actor.user_id,
                    &Shortfall {
                        reference: reference.clone(),
                        lines: shortfall.clone(),
                    },
                )
                .await?;
        }
        tx.commit().await?;
        Ok((movements, shortfall))
    })
    .await?;
    ctx.outbox.nudge();
    Ok(json!({
        "movements": movements,
        "shortfall": shortfall.iter().map(|s| json!({"product_id": s.product_id,
            "variant_id": s.variant_id, "requested": s.requested, "applied": s.applied}))
            .collect::<Vec<_>>(),
    }))
}
