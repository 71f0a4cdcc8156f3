//! The one writer of stock levels (contract inventory.md §2): every change of a row's
//! `quantity` or `reserved_quantity` goes through [`change`], which
//! - updates the row with one conditional statement that changes nothing when the result would
//!   break an invariant (`quantity ≥ 0`, `0 ≤ reserved ≤ quantity`), so no interleaving of
//!   requests can oversell or go negative (the table's CHECKs back this up);
//! - records the movement of a `quantity` change in the same transaction, so the ledger always
//!   sums to the level;
//! - writes `inventory.stock_changed` and the threshold crossings to the outbox, also in the same
//!   transaction.

use integration::inventory::{LowStock, OutOfStock, Restocked, StockAlert, StockChanged};
use kernel::auth::ProjectScope;
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};

/// Who changes stock: a member's request, or the platform (`created_by` null, `"system"`).
#[derive(Clone, Debug)]
pub struct Actor {
    pub project_id: i64,
    pub user_id: Option<i64>,
    pub username: String,
}

impl Actor {
    pub fn member(scope: &ProjectScope, username: &str) -> Self {
        Self {
            project_id: scope.project_id(),
            user_id: Some(scope.user_id()),
            username: username.to_owned(),
        }
    }

    pub fn system(project_id: i64) -> Self {
        Self {
            project_id,
            user_id: None,
            username: "system".into(),
        }
    }
}

/// The ledger entry of a `quantity` change.
#[derive(Clone, Debug, Default)]
pub struct Entry<'a> {
    pub movement_type: &'static str,
    pub reason_code: &'a str,
    pub reason: &'a str,
    pub reference: &'a str,
    pub notes: &'a str,
    /// Decimal string.
    pub unit_cost: Option<&'a str>,
    pub transfer_id: Option<i64>,
    pub reservation_id: Option<i64>,
    pub reversal_of: Option<i64>,
}

/// A row's levels after a change.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Levels {
    pub id: i64,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub warehouse: i64,
    pub quantity: i32,
    pub reserved_quantity: i32,
    pub available_quantity: i32,
    pub low_stock_threshold: i32,
    pub version: i64,
}

/// What [`change`] did.
pub enum Outcome {
    Done {
        levels: Levels,
        /// The movement row (raw), when `quantity` changed.
        movement: Option<Value>,
    },
    /// The change would break an invariant; nothing changed. The row's available units now.
    Short { available: i64 },
}

/// Reasons whose IN sets `last_restocked_at`.
const RESTOCKING: &[&str] = &["restock", "purchase", "initial", "production"];

/// Changes row `row` by `quantity` and `reserved` units (signed), with `entry` in the ledger
/// when `quantity` changes, and the events of the change in the outbox.
pub async fn change(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: &Actor,
    row: i64,
    quantity: i64,
    reserved: i64,
    entry: &Entry<'_>,
) -> Result<Outcome, ApiError> {
    let restock = quantity > 0 && RESTOCKING.contains(&entry.reason_code);
    let levels: Option<Levels> = sqlx::query_as(
        "UPDATE stock_items SET quantity = quantity + $2, reserved_quantity = reserved_quantity + $3, \
           version = version + 1, updated_at = now(), updated_by = $4, \
           last_restocked_at = CASE WHEN $5 THEN now() ELSE last_restocked_at END \
         WHERE id = $1 AND quantity + $2 >= 0 AND reserved_quantity + $3 >= 0 \
           AND reserved_quantity + $3 <= quantity + $2 \
         RETURNING id, product_id, variant_id, warehouse, quantity, reserved_quantity, \
           available_quantity, low_stock_threshold, version",
    )
    .bind(row)
    .bind(quantity)
    .bind(reserved)
    .bind(actor.user_id)
    .bind(restock)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(levels) = levels else {
        let available: Option<i32> =
            sqlx::query_scalar("SELECT available_quantity FROM stock_items WHERE id = $1")
                .bind(row)
                .fetch_optional(&mut *tx)
                .await?;
        return Ok(Outcome::Short {
            available: available.unwrap_or(0).into(),
        });
    };
    let movement = if quantity != 0 {
        Some(
            sqlx::query_scalar::<_, Value>(
                "INSERT INTO movements (project_id, inventory_id, product_id, variant_id, warehouse, \
                   movement_type, reason_code, quantity, previous_quantity, new_quantity, reason, \
                   reference, notes, unit_cost, transfer_id, reservation_id, reversal_of, \
                   created_by, performed_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9 - $8, $9, $10, $11, $12, $13::numeric, \
                   $14, $15, $16, $17, $18) \
                 RETURNING to_jsonb(movements.*)",
            )
            .bind(actor.project_id)
            .bind(row)
            .bind(levels.product_id)
            .bind(levels.variant_id)
            .bind(levels.warehouse)
            .bind(entry.movement_type)
            .bind(entry.reason_code)
            .bind(quantity as i32)
            .bind(levels.quantity)
            .bind(entry.reason)
            .bind(entry.reference)
            .bind(entry.notes)
            .bind(entry.unit_cost)
            .bind(entry.transfer_id)
            .bind(entry.reservation_id)
            .bind(entry.reversal_of)
            .bind(actor.user_id)
            .bind(&actor.username)
            .fetch_one(&mut *tx)
            .await?,
        )
    } else {
        None
    };
    let events = events(ctx, actor, &levels, quantity, reserved, entry, &movement)?;
    ctx.outbox.record_all(tx, &events).await?;
    Ok(Outcome::Done { levels, movement })
}

/// Holds `units` more (or, negative, fewer) of each locked row, given as its levels now:
/// the held units, the rows' `inventory.stock_changed` events (and threshold crossings), and
/// `also`, in one statement. A row whose version moved since (or that cannot cover its units)
/// makes it a transient conflict, and the caller's transaction is rolled back with its events.
pub async fn reserve_many(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: &Actor,
    changes: &[(Levels, i64)],
    also: Vec<kernel::events::Envelope>,
) -> Result<(), ApiError> {
    let holds = Holds::of(ctx, actor, changes, also)?;
    let statement = format!(
        "WITH u AS ({}), o AS ({}) SELECT count(*) FROM u",
        Holds::update(1, 5, None),
        kernel::events::OutboxRows::insert(6, None)
    );
    let query = holds.bind(sqlx::query(&statement)).bind(actor.user_id);
    let changed: i64 = holds
        .outbox
        .bind(query)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if changed != holds.count() {
        // The rows were locked and planned: another writer broke the plan.
        return Err(ApiError::conflict("conflict", "Stock changed meanwhile.").transient());
    }
    Ok(())
}

/// More units held on rows as they were read (`(levels, units)` by row), with the events of
/// every row's change followed by `also`: what [`Holds::update`] writes.
pub struct Holds {
    rows: Vec<i64>,
    units: Vec<i64>,
    versions: Vec<i64>,
    /// The thresholds the events' crossings were computed with (a threshold's change does not
    /// move the version).
    thresholds: Vec<i32>,
    pub outbox: kernel::events::OutboxRows,
}

impl Holds {
    pub fn of(
        ctx: &ServiceContext,
        actor: &Actor,
        changes: &[(Levels, i64)],
        also: Vec<kernel::events::Envelope>,
    ) -> Result<Self, ApiError> {
        let mut all = Vec::with_capacity(changes.len() + also.len());
        for (now, units) in changes {
            let after = held(now, *units);
            all.extend(events(
                ctx,
                actor,
                &after,
                0,
                *units,
                &Entry::default(),
                &None,
            )?);
        }
        all.extend(also);
        Ok(Self {
            rows: changes.iter().map(|c| c.0.id).collect(),
            units: changes.iter().map(|c| c.1).collect(),
            versions: changes.iter().map(|c| c.0.version).collect(),
            thresholds: changes.iter().map(|c| c.0.low_stock_threshold).collect(),
            outbox: kernel::events::OutboxRows::of(&all)?,
        })
    }

    /// How many rows the update must change.
    pub fn count(&self) -> i64 {
        self.rows.len() as i64
    }

    /// The `UPDATE` (returning the ids it changed) that raises the held units of each row
    /// still at the version and threshold read and able to hold them, from parameters
    /// `$first` to `$first + 3` (bound by [`bind`](Self::bind)), by user `$user`; with
    /// `only_if`, only when that condition of the statement holds.
    pub fn update(first: usize, user: usize, only_if: Option<&str>) -> String {
        let [rows, units, versions, thresholds] = [first, first + 1, first + 2, first + 3];
        let only_if = only_if.map(|c| format!("AND {c} ")).unwrap_or_default();
        format!(
            "UPDATE stock_items s SET reserved_quantity = s.reserved_quantity + c.units, \
               version = s.version + 1, updated_at = now(), updated_by = ${user} \
             FROM unnest(${rows}::bigint[], ${units}::bigint[], ${versions}::bigint[], \
               ${thresholds}::int[]) AS c(id, units, version, threshold) \
             WHERE s.id = ANY(${rows}) AND s.id = c.id AND s.version = c.version \
               AND s.low_stock_threshold = c.threshold \
               AND s.reserved_quantity + c.units >= 0 \
               AND s.reserved_quantity + c.units <= s.quantity {only_if}RETURNING s.id"
        )
    }

    /// Binds the rows, units, versions and thresholds, in the order of
    /// [`update`](Self::update)'s parameters.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.rows)
            .bind(&self.units)
            .bind(&self.versions)
            .bind(&self.thresholds)
    }
}

/// A row's levels once `units` more are held.
fn held(now: &Levels, units: i64) -> Levels {
    let reserved = now.reserved_quantity + units as i32;
    Levels {
        reserved_quantity: reserved,
        available_quantity: now.quantity - reserved,
        version: now.version + 1,
        ..now.clone()
    }
}

/// The events of one row's change: `inventory.stock_changed` and the threshold crossings.
fn events(
    ctx: &ServiceContext,
    actor: &Actor,
    levels: &Levels,
    quantity: i64,
    reserved: i64,
    entry: &Entry<'_>,
    movement: &Option<Value>,
) -> Result<Vec<kernel::events::Envelope>, ApiError> {
    let outbox = &ctx.outbox;
    let project = Some(actor.project_id);
    let after = i64::from(levels.available_quantity);
    let before = after - (quantity - reserved);
    let threshold = i64::from(levels.low_stock_threshold);
    let mut out = vec![outbox.envelope(
        project,
        actor.user_id,
        &StockChanged {
            inventory_id: levels.id,
            product_id: levels.product_id,
            variant_id: levels.variant_id,
            warehouse_id: levels.warehouse,
            quantity: levels.quantity.into(),
            reserved_quantity: levels.reserved_quantity.into(),
            available_quantity: after,
            delta: quantity,
            movement_id: movement.as_ref().and_then(|m| m["id"].as_i64()),
            reason_code: if entry.reason_code.is_empty() {
                "reservation".into()
            } else {
                entry.reason_code.to_owned()
            },
            version: levels.version,
        },
    )?];
    let alert = || StockAlert {
        inventory_id: levels.id,
        product_id: levels.product_id,
        variant_id: levels.variant_id,
        warehouse_id: levels.warehouse,
        available_quantity: after,
        threshold,
    };
    if before > threshold && after <= threshold {
        out.push(outbox.envelope(project, actor.user_id, &LowStock(alert()))?);
    }
    if before > 0 && after == 0 {
        out.push(outbox.envelope(project, actor.user_id, &OutOfStock(alert()))?);
    }
    if before <= threshold && after > threshold {
        out.push(outbox.envelope(project, actor.user_id, &Restocked(alert()))?);
    }
    Ok(out)
}

/// The 422 of a decrease or reservation the stock cannot cover.
pub fn insufficient(
    product: i64,
    variant: Option<i64>,
    warehouse: Option<i64>,
    requested: i64,
    available: i64,
) -> ApiError {
    ApiError::rule("insufficient_stock", "Insufficient stock.").with(
        "details",
        json!({"product_id": product, "variant_id": variant, "warehouse_id": warehouse,
               "requested": requested, "available": available}),
    )
}

/// The 422 of several short lines: `details` of the first, every one in `lines`.
pub fn insufficient_lines(lines: Vec<Value>) -> ApiError {
    let first = lines.first().cloned().unwrap_or(Value::Null);
    ApiError::rule("insufficient_stock", "Insufficient stock.").with(
        "details",
        json!({"lines": lines.clone(), "product_id": first["product_id"],
            "variant_id": first["variant_id"], "warehouse_id": first["warehouse_id"],
            "requested": first["requested"], "available": first["available"]}),
    )
}

/// Limits the wait for row locks of one transaction (contract: ≤ 5 s, then 503).
pub async fn lock_timeout(tx: &mut PgConnection) -> Result<(), ApiError> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(LOCK_TIMEOUT)
        .execute(tx)
        .await?;
    Ok(())
}

/// The limit [`lock_timeout`] sets, for a statement that sets it itself (one round trip less).
pub const LOCK_TIMEOUT: &str = "5s";

/// Locks the given stock rows in ascending id, in one statement: every multi-row operation takes
/// its row locks in this order, so two of them never wait on each other in a cycle.
pub async fn lock(tx: &mut PgConnection, rows: &[i64]) -> Result<(), ApiError> {
    sqlx::query("SELECT id FROM stock_items WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(rows)
        .execute(tx)
        .await?;
    Ok(())
}
