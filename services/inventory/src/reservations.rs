//! Reservations (contract inventory.md §6): units promised to an order, held on stock rows
//! until confirmed (booked out), released, or expired.
//!
//! Every write is one transaction that locks the reservation first, then every stock row it may
//! touch in one statement in ascending id order. Fixed order ⇒ no deadlock between reservations,
//! whatever order their lines come in; a deadlock or serialization failure that still happens
//! (a lazily expired reservation's rows) retries the whole operation, at most three times, then
//! 503. Lock waits are bounded (5 s → 503). The row updates go through `ledger::change`, whose
//! conditional statement cannot take more than is available.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use integration::inventory::{
    Held, ReservationConfirmed, ReservationCreated, ReservationEvent, ReservationExpired,
    ReservationLine, ReservationReleased,
};
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Hooks, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};

use crate::catalog;
use crate::ledger::{self, Actor, Entry, Outcome};
use crate::reference::STOCK_GRANTS;
use crate::stock::{int, items, text, MAX_QUANTITY};

/// The columns of a [`Candidate`] row (`s` stock, `w` warehouse, `b` batch).
macro_rules! candidate_columns {
    () => {
        "s.id, s.product_id, s.variant_id, s.warehouse, s.quantity, s.reserved_quantity, \
         s.available_quantity, s.low_stock_threshold, s.version, \
         w.is_default, w.priority, b.expiry_date"
    };
}

/// A candidate row's warehouse and batch can be allocated from.
macro_rules! allocatable {
    () => {
        "w.deleted_at IS NULL AND w.is_active \
         AND (b.id IS NULL OR b.expiry_date IS NULL OR b.expiry_date >= current_date)"
    };
}

mod at_once;
pub(crate) mod order_holds;

const ITEMS: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', i.id, \
    'product_id', i.product_id, 'variant_id', i.variant_id, 'product_name', i.product_name, \
    'quantity', i.quantity, 'quantity_reserved', i.quantity, \
    'confirmed_quantity', i.confirmed_quantity, 'warehouse_id', i.warehouse_id, \
    'inventory_id', i.inventory_id, 'tracked', i.tracked, \
    'allocations', COALESCE((SELECT jsonb_agg(jsonb_build_object('inventory_id', a.inventory_id, \
        'warehouse_id', a.warehouse_id, 'quantity', a.quantity) ORDER BY a.id) \
      FROM reservation_allocations a WHERE a.item_id = i.id), '[]'::jsonb)) ORDER BY i.id) \
    FROM reservation_items i WHERE i.reservation_id = t.id), '[]'::jsonb)";

/// Reservations through the resource machinery: list, retrieve, and PATCH of `expires_at`.
/// They are created, confirmed and released by the actions below, never deleted.
pub static RESERVATION: Resource = Resource {
    service: "inventory",
    model: "stockreservation",
    label: "Reservation",
    table: "reservations",
    fields: &[
        Field::text("reservation_number", 30).read_only(),
        Field::text("order_id", 100).read_only(),
        Field::text("reference", 100).read_only(),
        Field::text("status", 20).read_only(),
        Field::new("expires_at", FieldKind::DateTime),
        Field::new("confirmed_at", FieldKind::DateTime).read_only(),
        Field::new("released_at", FieldKind::DateTime).read_only(),
        Field::text("release_reason", 30).read_only(),
        Field::text("performed_by", 150).read_only(),
    ],
    slug_from: None,
    computed: &[("items", ITEMS)],
    list: ListSpec {
        filters: &[
            Col::new("order_id", "t.order_id", Kind::Text),
            Col::new("reference", "t.reference", Kind::Text),
            Col::new("expires_at", "t.expires_at", Kind::DateTime),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("expires_at", "t.expires_at", Kind::DateTime),
        ],
        search: &["t.reservation_number", "t.order_id", "t.reference"],
        default_ordering: "-created_at",
        extra_params: &["product_id", "status"],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: STOCK_GRANTS,
    unique: &[],
    hooks: Some(&ReservationRules),
    params: Some(params),
    hidden: None,
    related: &[],
};

fn params(
    name: &str,
    value: &str,
    qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
) -> Result<(), ApiError> {
    if name == "status" {
        // `pending` is the contract's filter alias of `active`.
        let status = match value.trim().to_ascii_lowercase().as_str() {
            "pending" => "active".to_owned(),
            other => other.to_owned(),
        };
        qb.push(" AND t.status = ").push_bind(status);
    }
    if name == "product_id" {
        let id: i64 = value
            .trim()
            .parse()
            .map_err(|_| ApiError::field(name, "A valid integer is required."))?;
        qb.push(
            " AND EXISTS (SELECT 1 FROM reservation_items i WHERE i.reservation_id = t.id \
             AND i.product_id = ",
        );
        qb.push_bind(id).push(")");
    }
    Ok(())
}

/// PATCH changes `expires_at` of an active reservation only; nothing is deleted.
pub struct ReservationRules;

#[async_trait]
impl Hooks for ReservationRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(id) = id else {
            return Err(ApiError::method_not_allowed());
        };
        let status: String =
            sqlx::query_scalar("SELECT status FROM reservations WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if status != "active" {
            return Err(not_active());
        }
        if let Some(Bind::DateTime(at)) = values.get("expires_at") {
            check_expiry(*at)?;
        }
        Ok(())
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: i64,
    ) -> Result<(), ApiError> {
        Err(ApiError::rule(
            "reservation_not_deletable",
            "Reservations are not deleted: release it instead.",
        ))
    }
}

fn not_active() -> ApiError {
    ApiError::rule(
        "reservation_not_active",
        "This reservation is no longer active.",
    )
}

/// Longest hold a reservation may have.
const MAX_HOLD_DAYS: i64 = 30;
/// The hold when the caller gives none.
const DEFAULT_HOLD_HOURS: i64 = 24;

fn check_expiry(at: DateTime<Utc>) -> Result<(), ApiError> {
    let now = Utc::now();
    if at <= now {
        return Err(ApiError::field("expires_at", "Must be in the future."));
    }
    if at > now + chrono::Duration::days(MAX_HOLD_DAYS) {
        return Err(ApiError::field(
            "expires_at",
            format!("A reservation is held at most {MAX_HOLD_DAYS} days."),
        ));
    }
    Ok(())
}

/// One requested line (lines of the same product, variant and pin are summed).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    product_id: i64,
    variant_id: Option<i64>,
    warehouse_id: Option<i64>,
    inventory_id: Option<i64>,
    quantity: i64,
}

/// Reads `items` (per-line errors in DRF's nested shape) and merges repeated lines.
fn parse_lines(body: &Value, header_warehouse: Option<i64>) -> Result<Vec<Line>, ApiError> {
    let items = items(body)?;
    let mut errors = Vec::with_capacity(items.len());
    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let mut e = FieldErrors::new();
        if !item.is_object() {
            e.add("non_field_errors", "Each line is an object.");
        }
        let product_id = int(item, &["product_id", "product"], &mut e);
        if product_id.is_none() && e.get("product_id").is_none() {
            e.required("product_id");
        }
        let variant_id = int(item, &["variant_id", "variant"], &mut e);
        let warehouse_id = int(item, &["warehouse_id", "warehouse"], &mut e).or(header_warehouse);
        let inventory_id = int(item, &["inventory_id", "inventory", "item_id"], &mut e);
        let quantity = item
            .get("quantity")
            .or_else(|| item.get("quantity_reserved"))
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()));
        match quantity {
            Some(q) if (1..=MAX_QUANTITY).contains(&q) => {}
            _ => e.add(
                "quantity",
                format!("Give a whole number of units from 1 to {MAX_QUANTITY}."),
            ),
        }
        errors.push(e);
        if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
            lines.push(Line {
                product_id,
                variant_id,
                warehouse_id,
                inventory_id,
                quantity,
            });
        }
    }
    ApiError::per_item("items", &errors)?;
    merge(lines)
}

/// (product, variant, warehouse pin, row pin).
type LineKey = (i64, Option<i64>, Option<i64>, Option<i64>);

/// Sums lines of the same product, variant and pin.
fn merge(lines: Vec<Line>) -> Result<Vec<Line>, ApiError> {
    let mut merged: BTreeMap<LineKey, i64> = BTreeMap::new();
    for l in lines {
        *merged
            .entry((l.product_id, l.variant_id, l.warehouse_id, l.inventory_id))
            .or_default() += l.quantity;
    }
    merged
        .into_iter()
        .map(
            |((product_id, variant_id, warehouse_id, inventory_id), quantity)| {
                if quantity > MAX_QUANTITY {
                    return Err(ApiError::field(
                        "items",
                        format!("At most {MAX_QUANTITY} units of one product per reservation."),
                    ));
                }
                Ok(Line {
                    product_id,
                    variant_id,
                    warehouse_id,
                    inventory_id,
                    quantity,
                })
            },
        )
        .collect()
}

/// The normalised lines: a repeated create for the same order must ask for the same ones.
fn lines_key(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "{}:{}:{}:{}:{}",
                l.product_id,
                l.variant_id.unwrap_or(0),
                l.warehouse_id.unwrap_or(0),
                l.inventory_id.unwrap_or(0),
                l.quantity
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A line with what the catalogue says of its product.
struct Checked {
    line: Line,
    name: String,
    tracked: bool,
}

/// The lines checked against the catalogue replica: the rows given (read with the lines' stock
/// rows), else read now.
async fn check_lines(
    ctx: &ServiceContext,
    project_id: i64,
    lines: Vec<Line>,
    replica: Option<&catalog::Replica>,
) -> Result<Vec<Checked>, ApiError> {
    let wanted: Vec<(i64, Option<i64>)> =
        lines.iter().map(|l| (l.product_id, l.variant_id)).collect();
    let stocked = match replica {
        Some(replica) => catalog::check_read(ctx, project_id, &wanted, replica).await?,
        None => catalog::check_all(ctx, project_id, &wanted).await?,
    };
    Ok(lines
        .into_iter()
        .zip(stocked)
        .map(|(line, stocked)| Checked {
            line,
            name: stocked.name,
            tracked: stocked.tracked,
        })
        .collect())
}

/// A stock row a line may take from, locked.
#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    #[sqlx(flatten)]
    levels: ledger::Levels,
    is_default: bool,
    priority: i32,
    expiry_date: Option<chrono::NaiveDate>,
}

/// Every allocatable row of the wanted products/variants ($2, $3 pairwise) in project $1, and
/// every row in $4 (rows the operation releases from); callers add the order and any lock.
const ROWS: &str = concat!(
    "SELECT ",
    candidate_columns!(),
    " FROM stock_items s JOIN warehouses w ON w.id = s.warehouse \
       LEFT JOIN batches b ON b.id = s.batch \
     WHERE s.project_id = $1 AND s.deleted_at IS NULL AND ( \
       s.id = ANY($4) OR (s.product_id = ANY($2) AND ",
    allocatable!(),
    " AND EXISTS (SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS want(p, v) \
         WHERE s.product_id = want.p AND s.variant_id IS NOT DISTINCT FROM want.v)))"
);

/// The (products, variants) columns of `wanted`, as [`ROWS`] takes them.
fn wanted_columns(wanted: &[(i64, Option<i64>)]) -> (Vec<i64>, Vec<Option<i64>>) {
    wanted.iter().copied().unzip()
}

/// Locks, in one statement and ascending id, every allocatable row of the wanted
/// products/variants and every row in `also` (rows the operation releases from).
async fn lock_rows(
    tx: &mut PgConnection,
    project_id: i64,
    wanted: &[(i64, Option<i64>)],
    also: &[i64],
) -> Result<Vec<Candidate>, ApiError> {
    let (products, variants) = wanted_columns(wanted);
    Ok(
        sqlx::query_as(&format!("{ROWS} ORDER BY s.id FOR UPDATE OF s"))
            .bind(project_id)
            .bind(&products)
            .bind(&variants)
            .bind(also)
            .fetch_all(&mut *tx)
            .await?,
    )
}

/// (row, warehouse, units) of one line.
type Allocation = (i64, i64, i64);

/// Splits each line over the locked rows: its pinned row or warehouse, else warehouses by
/// (default first, priority, id), and within a warehouse first-expiry-first-out, then id.
/// `Err` lists every short line.
fn plan(lines: &[&Checked], rows: &[Candidate]) -> Result<Vec<Vec<Allocation>>, Vec<Value>> {
    let mut left: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (r.levels.id, i64::from(r.levels.available_quantity.max(0))))
        .collect();
    let mut plans = Vec::with_capacity(lines.len());
    let mut short = Vec::new();
    for checked in lines {
        let line = &checked.line;
        let mut candidates: Vec<&Candidate> = rows
            .iter()
            .filter(|r| {
                r.levels.product_id == line.product_id
                    && r.levels.variant_id == line.variant_id
                    && line.inventory_id.is_none_or(|id| id == r.levels.id)
                    && line.warehouse_id.is_none_or(|w| w == r.levels.warehouse)
                    && r.expiry_date.is_none_or(|d| d >= Utc::now().date_naive())
            })
            .collect();
        candidates.sort_by_key(|r| {
            (
                !r.is_default,
                r.priority,
                r.levels.warehouse,
                r.expiry_date.is_none(),
                r.expiry_date,
                r.levels.id,
            )
        });
        let mut need = line.quantity;
        let mut taken = Vec::new();
        for r in candidates {
            if need == 0 {
                break;
            }
            let free = left.get(&r.levels.id).copied().unwrap_or(0);
            let take = free.min(need);
            if take > 0 {
                left.insert(r.levels.id, free - take);
                taken.push((r.levels.id, r.levels.warehouse, take));
                need -= take;
            }
        }
        if need > 0 {
            short.push(json!({
                "product_id": line.product_id, "variant_id": line.variant_id,
                "warehouse_id": line.warehouse_id, "requested": line.quantity,
                "available": line.quantity - need,
            }));
        }
        plans.push(taken);
    }
    if short.is_empty() {
        Ok(plans)
    } else {
        Err(short)
    }
}

/// The header of a reservation, as the actions need it.
#[derive(Debug, sqlx::FromRow)]
struct Header {
    id: i64,
    reservation_number: String,
    order_id: Option<String>,
    reference: Option<String>,
    status: String,
    overdue: bool,
}

const HEADER: &str = "SELECT id, reservation_number, order_id, reference, status, \
    COALESCE(expires_at < now(), false) AS overdue FROM reservations";

/// Locks a reservation of the project named by id or `RES-…` number.
async fn lock_header(
    tx: &mut PgConnection,
    project_id: i64,
    key: &str,
) -> Result<Header, ApiError> {
    let id: Option<i64> = key.trim().parse().ok();
    sqlx::query_as(&format!(
        "{HEADER} WHERE project_id = $1 AND (id = $2 OR reservation_number = $3) FOR UPDATE"
    ))
    .bind(project_id)
    .bind(id.unwrap_or(-1))
    .bind(key.trim())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// The lines of a reservation as events carry them.
async fn event_lines(
    tx: &mut PgConnection,
    reservation_id: i64,
) -> Result<Vec<ReservationLine>, ApiError> {
    let rows: Vec<(i64, Option<i64>, i32)> = sqlx::query_as(
        "SELECT product_id, variant_id, quantity FROM reservation_items \
         WHERE reservation_id = $1 ORDER BY id",
    )
    .bind(reservation_id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(product_id, variant_id, quantity)| ReservationLine {
            product_id,
            variant_id,
            quantity: quantity.into(),
        })
        .collect())
}

async fn event(
    tx: &mut PgConnection,
    header: &Header,
    reason: Option<&str>,
) -> Result<ReservationEvent, ApiError> {
    Ok(ReservationEvent {
        reservation_id: header.id,
        reservation_number: header.reservation_number.clone(),
        order_id: header.order_id.clone(),
        reference: header.reference.clone(),
        items: event_lines(tx, header.id).await?,
        reason: reason.map(str::to_owned),
    })
}

/// The allocations of a reservation: `(allocation id, item id, row, quantity)`, by row.
async fn allocations(
    tx: &mut PgConnection,
    reservation_id: i64,
) -> Result<Vec<(i64, i64, i64, i32)>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.item_id, a.inventory_id, a.quantity FROM reservation_allocations a \
         JOIN reservation_items i ON i.id = a.item_id WHERE i.reservation_id = $1 \
         ORDER BY a.inventory_id, a.id",
    )
    .bind(reservation_id)
    .fetch_all(&mut *tx)
    .await?)
}

/// Ends an active, locked reservation without booking out: `released` or `expired`.
/// Its held units return to available.
async fn end(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: &Actor,
    header: &Header,
    status: &'static str,
    reason: &str,
) -> Result<usize, ApiError> {
    let allocations = allocations(tx, header.id).await?;
    let rows: Vec<i64> = allocations.iter().map(|a| a.2).collect();
    ledger::lock(tx, &rows).await?;
    for (_, _, row, quantity) in &allocations {
        let entry = Entry::default();
        if let Outcome::Short { .. } =
            ledger::change(ctx, tx, actor, *row, 0, -i64::from(*quantity), &entry).await?
        {
            return Err(ApiError::internal(format!(
                "reservation {} holds more than row {row} reserves",
                header.id
            )));
        }
    }
    sqlx::query(
        "UPDATE reservations SET status = $2, released_at = now(), release_reason = $3, \
           updated_at = now(), updated_by = $4 WHERE id = $1",
    )
    .bind(header.id)
    .bind(status)
    .bind(reason)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?;
    let payload = event(tx, header, Some(reason)).await?;
    let project = Some(actor.project_id);
    if status == "expired" {
        ctx.outbox
            .record(tx, project, actor.user_id, &ReservationExpired(payload))
            .await?;
    } else {
        ctx.outbox
            .record(tx, project, actor.user_id, &ReservationReleased(payload))
            .await?;
    }
    let lines: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reservation_items WHERE reservation_id = $1")
            .bind(header.id)
            .fetch_one(&mut *tx)
            .await?;
    Ok(lines as usize)
}

/// Expires the overdue active reservations that hold units on `rows` (lazy expiry before an
/// `insufficient_stock` answer). Reservations another transaction holds are skipped.
async fn expire_overdue_on(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    project_id: i64,
    rows: &[i64],
) -> Result<usize, ApiError> {
    let due: Vec<Header> = sqlx::query_as(&format!(
        "{HEADER} r WHERE r.project_id = $1 AND r.status = 'active' AND r.expires_at < now() \
         AND EXISTS (SELECT 1 FROM reservation_items i JOIN reservation_allocations a \
                     ON a.item_id = i.id WHERE i.reservation_id = r.id AND a.inventory_id = ANY($2)) \
         ORDER BY r.id FOR UPDATE OF r SKIP LOCKED"
    ))
    .bind(project_id)
    .bind(rows)
    .fetch_all(&mut *tx)
    .await?;
    let system = Actor::system(project_id);
    for header in &due {
        end(ctx, tx, &system, header, "expired", "expired").await?;
    }
    Ok(due.len())
}

/// What a create asked for, validated, its lines checked against the catalogue.
struct Request {
    head: Head,
    lines: Vec<Checked>,
    key: String,
}

impl Request {
    /// Binds, in this order, what a new reservation's header takes from the request and its
    /// author: order id, reference, expiry, lines key, user id, username.
    fn bind_header<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        actor: &'q Actor,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.head.order_id)
            .bind(&self.head.reference)
            .bind(self.head.expires_at)
            .bind(&self.key)
            .bind(actor.user_id)
            .bind(&actor.username)
    }
}

fn parse_request(body: &Value) -> Result<(Head, Vec<Line>), ApiError> {
    let mut errors = FieldErrors::new();
    let order_id = Some(text(body, "order_id", 100, &mut errors)).filter(|s| !s.is_empty());
    let reference = Some(text(body, "reference", 100, &mut errors)).filter(|s| !s.is_empty());
    let header_warehouse = int(body, &["warehouse_id", "warehouse"], &mut errors);
    let expires_at = match body.get("expires_at") {
        None => Some(Utc::now() + chrono::Duration::hours(DEFAULT_HOLD_HOURS)),
        Some(Value::Null) => None,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                errors.add("expires_at", "A valid ISO 8601 date and time is required.");
                None
            }
        },
        Some(_) => {
            errors.add("expires_at", "A valid ISO 8601 date and time is required.");
            None
        }
    };
    errors.into_result()?;
    if let Some(at) = expires_at {
        check_expiry(at)?;
    }
    let lines = parse_lines(body, header_warehouse)?;
    Ok((
        Head {
            order_id,
            reference,
            expires_at,
        },
        lines,
    ))
}

/// The header fields of a create.
struct Head {
    order_id: Option<String>,
    reference: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

/// `POST reservations/` → (201 new | 200 the same order's active reservation, body).
pub async fn create(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    let held = create_held(ctx, scope, username, body).await?;
    let mut shaped = show(ctx, scope, held.id).await?;
    if held.created {
        with_available(ctx, scope.project_id(), &mut shaped).await?;
    }
    Ok((held.created, shaped))
}

/// [`create`] for a caller that needs only the reservation's number (an order's placement).
pub async fn create_held(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<Held, ApiError> {
    scope.require("inventory.reserve_stock", &STOCK_GRANTS)?;
    let (head, lines) = parse_request(body)?;
    let key = lines_key(&lines);
    // The lines' rows and their catalogue replica in one read; the lines are checked with it.
    let wanted: Vec<(i64, Option<i64>)> =
        lines.iter().map(|l| (l.product_id, l.variant_id)).collect();
    let read = at_once::read(ctx, scope.project_id(), &wanted).await?;
    let replica = read.as_ref().map(|r| &r.replica);
    let lines = check_lines(ctx, scope.project_id(), lines, replica).await?;
    let request = Request { head, lines, key };
    let actor = Actor::member(scope, username);
    // Written at once when the rows read can cover the lines and stay unchanged until the
    // write; else under row locks.
    let at_once = match read {
        Some(read) => at_once::create(ctx, &actor, &request, read).await?,
        None => None,
    };
    let held = match at_once {
        Some(held) => held,
        None => kernel::db::retry_transient(|| attempt_create(ctx, &actor, &request)).await?,
    };
    ctx.outbox.nudge();
    Ok(held)
}

/// The same order's active reservation: the same lines → it (200), else 409.
async fn existing_for_order(
    tx: &mut PgConnection,
    project_id: i64,
    order_id: &str,
    key: &str,
) -> Result<Option<Held>, ApiError> {
    let found: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT id, reservation_number, lines_key FROM reservations \
         WHERE project_id = $1 AND order_id = $2 AND status = 'active'",
    )
    .bind(project_id)
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    match found {
        Some((id, reservation_number, k)) if k == key => Ok(Some(Held {
            id,
            reservation_number,
            created: false,
        })),
        Some(_) => Err(ApiError::conflict(
            "reservation_exists",
            "This order already has an active reservation with other lines: adjust or release it.",
        )),
        None => Ok(None),
    }
}

async fn attempt_create(
    ctx: &ServiceContext,
    actor: &Actor,
    request: &Request,
) -> Result<Held, ApiError> {
    let project_id = actor.project_id;
    let mut tx = ctx.pool.begin().await?;
    // The header first, with the transaction's settings: an order's active reservation (made
    // before, or concurrently: this waits for it) keeps it from being written, and is then the
    // answer. The statements after it run on their generic plans: PostgreSQL would plan those
    // with array parameters again at every execution (a custom plan, knowing the arrays'
    // lengths, always looks cheaper), and each of them is index-driven whatever the lengths.
    let query = sqlx::query(
        "WITH n AS (SELECT nextval(pg_get_serial_sequence('reservations', 'id')) AS id, \
           set_config('lock_timeout', $8, true) AS lock_timeout, \
           set_config('plan_cache_mode', 'force_generic_plan', true) AS plans) \
         INSERT INTO reservations (id, project_id, reservation_number, order_id, reference, \
           expires_at, lines_key, created_by, updated_by, performed_by) \
         SELECT n.id, $1, document_number('RES', n.id), \
           $2, $3, $4, $5, $6, $6, $7 FROM n \
         ON CONFLICT (project_id, order_id) WHERE status = 'active' AND order_id IS NOT NULL \
         DO NOTHING RETURNING id, reservation_number",
    )
    .bind(project_id);
    let inserted: Option<(i64, String)> = request
        .bind_header(query, actor)
        .bind(ledger::LOCK_TIMEOUT)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    let Some((id, number)) = inserted else {
        drop(tx);
        let mut tx = ctx.pool.begin().await?;
        let order_id = request.head.order_id.as_deref().unwrap_or_default();
        return match existing_for_order(&mut tx, project_id, order_id, &request.key).await? {
            Some(held) => Ok(held),
            // The other create rolled back: this one runs again.
            None => Err(ApiError::conflict("conflict", "Concurrent create.").transient()),
        };
    };
    let tracked: Vec<&Checked> = request.lines.iter().filter(|l| l.tracked).collect();
    let wanted: Vec<(i64, Option<i64>)> = tracked
        .iter()
        .map(|l| (l.line.product_id, l.line.variant_id))
        .collect();
    let mut rows = lock_rows(&mut tx, project_id, &wanted, &[]).await?;
    let mut planned = plan(&tracked, &rows);
    if planned.is_err() {
        let ids: Vec<i64> = rows.iter().map(|r| r.levels.id).collect();
        if expire_overdue_on(ctx, &mut tx, project_id, &ids).await? > 0 {
            rows = lock_rows(&mut tx, project_id, &wanted, &[]).await?;
            planned = plan(&tracked, &rows);
        }
    }
    let plans = planned.map_err(ledger::insufficient_lines)?;
    write_lines(&mut tx, id, &request.lines, &plans).await?;
    let created = created_event(ctx, actor, request, id, &number)?;
    let held = units_by_row(&rows, &plans);
    ledger::reserve_many(ctx, &mut tx, actor, &held, vec![created]).await?;
    tx.commit().await?;
    Ok(Held {
        id,
        reservation_number: number,
        created: true,
    })
}

/// The `inventory.reservation_created` event of reservation `id`, `number`.
fn created_event(
    ctx: &ServiceContext,
    actor: &Actor,
    request: &Request,
    id: i64,
    number: &str,
) -> Result<kernel::events::Envelope, ApiError> {
    let created = ReservationCreated(ReservationEvent {
        reservation_id: id,
        reservation_number: number.to_owned(),
        order_id: request.head.order_id.clone(),
        reference: request.head.reference.clone(),
        items: request
            .lines
            .iter()
            .map(|c| ReservationLine {
                product_id: c.line.product_id,
                variant_id: c.line.variant_id,
                quantity: c.line.quantity,
            })
            .collect(),
        reason: None,
    });
    Ok(ctx
        .outbox
        .envelope(Some(actor.project_id), actor.user_id, &created)?)
}

/// The units each locked row holds for `plans`: `(its levels now, units)`, by row.
fn units_by_row(rows: &[Candidate], plans: &[Vec<Allocation>]) -> Vec<(ledger::Levels, i64)> {
    let mut held: BTreeMap<i64, i64> = BTreeMap::new();
    for (row, _, units) in plans.iter().flatten() {
        *held.entry(*row).or_default() += units;
    }
    rows.iter()
        .filter_map(|r| {
            held.get(&r.levels.id)
                .map(|units| (r.levels.clone(), *units))
        })
        .collect()
}

/// Locked rows with their levels read again (after this transaction changed them).
async fn refreshed(
    tx: &mut PgConnection,
    rows: Vec<Candidate>,
) -> Result<Vec<Candidate>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.levels.id).collect();
    let now: Vec<ledger::Levels> = sqlx::query_as(
        "SELECT id, product_id, variant_id, warehouse, quantity, reserved_quantity, \
           available_quantity, low_stock_threshold, version FROM stock_items WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut now: BTreeMap<i64, ledger::Levels> = now.into_iter().map(|l| (l.id, l)).collect();
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let levels = now.remove(&r.levels.id)?;
            Some(Candidate { levels, ..r })
        })
        .collect())
}

/// The lines of a new reservation and the allocations of its tracked ones, as the columns
/// [`LineColumns::sql`] inserts.
struct LineColumns<'a> {
    products: Vec<Option<i64>>,
    variants: Vec<Option<i64>>,
    names: Vec<&'a str>,
    quantities: Vec<i32>,
    warehouses: Vec<Option<i64>>,
    rows: Vec<Option<i64>>,
    tracked: Vec<bool>,
    /// Per allocation: its line's position (from 1), row, warehouse and units.
    at: Vec<i64>,
    from_rows: Vec<i64>,
    from_warehouses: Vec<i64>,
    units: Vec<i32>,
}

impl<'a> LineColumns<'a> {
    /// `plans` are in the order of the tracked lines.
    fn of(lines: &'a [Checked], plans: &[Vec<Allocation>]) -> Self {
        let mut plans = plans.iter();
        let (mut at, mut from_rows, mut from_warehouses, mut units) =
            (vec![], vec![], vec![], vec![]);
        for (n, checked) in lines.iter().enumerate() {
            if !checked.tracked {
                continue;
            }
            for (row, warehouse, quantity) in plans.next().into_iter().flatten() {
                at.push(n as i64 + 1);
                from_rows.push(*row);
                from_warehouses.push(*warehouse);
                units.push(*quantity as i32);
            }
        }
        let column = |f: fn(&Checked) -> Option<i64>| lines.iter().map(f).collect::<Vec<_>>();
        Self {
            products: column(|c| Some(c.line.product_id)),
            variants: column(|c| c.line.variant_id),
            names: lines.iter().map(|c| c.name.as_str()).collect(),
            quantities: lines.iter().map(|c| c.line.quantity as i32).collect(),
            warehouses: column(|c| c.line.warehouse_id),
            rows: column(|c| c.line.inventory_id),
            tracked: lines.iter().map(|c| c.tracked).collect(),
            at,
            from_rows,
            from_warehouses,
            units,
        }
    }

    /// The CTEs `l`, `items` and `allocations` that write the lines of reservation
    /// `reservation` (an expression) from parameters `$first` to `$first + 10`, bound by
    /// [`bind`](Self::bind); with `only_if`, only when that condition holds.
    fn sql(reservation: &str, first: usize, only_if: Option<&str>) -> String {
        let p: Vec<String> = (first..first + 11).map(|n| format!("${n}")).collect();
        let only_if = only_if.map(|c| format!("WHERE {c}")).unwrap_or_default();
        format!(
            "l AS (SELECT nextval(pg_get_serial_sequence('reservation_items', 'id')) AS id, l.* \
               FROM unnest({}::bigint[], {}::bigint[], {}::text[], {}::int[], {}::bigint[], \
                 {}::bigint[], {}::bool[]) WITH ORDINALITY \
                 AS l(product_id, variant_id, name, quantity, warehouse_id, inventory_id, \
                   tracked, n) {only_if}), \
             items AS (INSERT INTO reservation_items (id, reservation_id, product_id, \
                 variant_id, product_name, quantity, warehouse_id, inventory_id, tracked) \
               SELECT id, {reservation}, product_id, variant_id, name, quantity, warehouse_id, \
                 inventory_id, tracked FROM l ORDER BY n), \
             allocations AS (INSERT INTO reservation_allocations (item_id, inventory_id, \
                 warehouse_id, quantity) \
               SELECT l.id, a.row, a.warehouse, a.units \
               FROM unnest({}::bigint[], {}::bigint[], {}::bigint[], {}::int[]) WITH ORDINALITY \
                 AS a(n, row, warehouse, units, k) \
               JOIN l ON l.n = a.n ORDER BY a.k)",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]
        )
    }

    /// Binds the eleven columns, in the order of [`sql`](Self::sql)'s parameters.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.products)
            .bind(&self.variants)
            .bind(&self.names)
            .bind(&self.quantities)
            .bind(&self.warehouses)
            .bind(&self.rows)
            .bind(&self.tracked)
            .bind(&self.at)
            .bind(&self.from_rows)
            .bind(&self.from_warehouses)
            .bind(&self.units)
    }
}

/// Writes the lines of a new reservation and the allocations of its tracked ones (`plans`,
/// in the order of the tracked lines) in one statement.
async fn write_lines(
    tx: &mut PgConnection,
    reservation_id: i64,
    lines: &[Checked],
    plans: &[Vec<Allocation>],
) -> Result<(), ApiError> {
    let columns = LineColumns::of(lines, plans);
    let statement = format!("WITH {} SELECT 1", LineColumns::sql("$1", 2, None));
    columns
        .bind(sqlx::query(&statement).bind(reservation_id))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The reservation as clients read it.
async fn show(ctx: &ServiceContext, scope: &ProjectScope, id: i64) -> Result<Value, ApiError> {
    kernel::resource::retrieve(
        ctx,
        &RESERVATION,
        &kernel::auth::ReadScope::Member(scope.clone()),
        id,
        "en",
    )
    .await
}

/// Adds each line's product-level `available_quantity` after the write (create response).
async fn with_available(
    ctx: &ServiceContext,
    project_id: i64,
    shaped: &mut Value,
) -> Result<(), ApiError> {
    let Some(items) = shaped.get_mut("items").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for item in items {
        let available: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(available_quantity), 0)::bigint FROM stock_items \
             WHERE project_id = $1 AND product_id = $2 AND variant_id IS NOT DISTINCT FROM $3 \
             AND deleted_at IS NULL",
        )
        .bind(project_id)
        .bind(item["product_id"].as_i64())
        .bind(item["variant_id"].as_i64())
        .fetch_one(&ctx.pool)
        .await?;
        item["available_quantity"] = json!(available);
    }
    Ok(())
}

/// `POST reservations/{id}/confirm/`: books out every held unit (one OUT `sale` per
/// allocation, reference = the order) → `{…reservation, movement_id, movement_ids}`.
pub async fn confirm(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.confirm_reservation", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let reference = text(body, "reference", 100, &mut errors);
    errors.into_result()?;
    let actor = Actor::member(scope, username);
    let id = kernel::db::retry_transient(|| attempt_confirm(ctx, &actor, key, &reference)).await?;
    ctx.outbox.nudge();
    let mut shaped = show(ctx, scope, id).await?;
    let movements: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM movements WHERE reservation_id = $1 AND project_id = $2 ORDER BY id",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_all(&ctx.pool)
    .await?;
    shaped["movement_id"] = json!(movements.first());
    shaped["movement_ids"] = json!(movements);
    Ok(shaped)
}

async fn attempt_confirm(
    ctx: &ServiceContext,
    actor: &Actor,
    key: &str,
    reference: &str,
) -> Result<i64, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    ledger::lock_timeout(&mut tx).await?;
    let header = lock_header(&mut tx, actor.project_id, key).await?;
    match header.status.as_str() {
        "confirmed" => return Ok(header.id),
        "expired" => return Err(expired()),
        "released" => return Err(not_active()),
        _ => {}
    }
    if header.overdue {
        // Its time is up: it expires now, and stays expired.
        end(
            ctx,
            &mut tx,
            &Actor::system(actor.project_id),
            &header,
            "expired",
            "expired",
        )
        .await?;
        tx.commit().await?;
        ctx.outbox.nudge();
        return Err(expired());
    }
    let allocations = allocations(&mut tx, header.id).await?;
    let rows: Vec<i64> = allocations.iter().map(|a| a.2).collect();
    ledger::lock(&mut tx, &rows).await?;
    let reference = if !reference.is_empty() {
        reference.to_owned()
    } else {
        header
            .order_id
            .clone()
            .unwrap_or_else(|| header.reservation_number.clone())
    };
    for (_, _, row, quantity) in &allocations {
        let q = i64::from(*quantity);
        let entry = Entry {
            movement_type: "OUT",
            reason_code: "sale",
            reference: &reference,
            reservation_id: Some(header.id),
            ..Entry::default()
        };
        if let Outcome::Short { .. } =
            ledger::change(ctx, &mut tx, actor, *row, -q, -q, &entry).await?
        {
            return Err(ApiError::internal(format!(
                "reservation {} holds more than row {row} has",
                header.id
            )));
        }
    }
    sqlx::query(
        "UPDATE reservation_items SET confirmed_quantity = quantity WHERE reservation_id = $1",
    )
    .bind(header.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE reservations SET status = 'confirmed', confirmed_at = now(), updated_at = now(), \
         updated_by = $2 WHERE id = $1",
    )
    .bind(header.id)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?;
    let payload = event(&mut tx, &header, None).await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(actor.project_id),
            actor.user_id,
            &ReservationConfirmed(payload),
        )
        .await?;
    tx.commit().await?;
    Ok(header.id)
}

fn expired() -> ApiError {
    ApiError::rule(
        "reservation_expired",
        "This reservation has expired; its units were released.",
    )
}

const RELEASE_REASONS: &[&str] = &["manual", "order_cancelled", "expired", "adjusted"];

/// `POST reservations/{id}/release/` → `{…reservation, items_released}`.
pub async fn release(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.release_reservation", &STOCK_GRANTS)?;
    let reason = match body.get("reason").and_then(Value::as_str).map(str::trim) {
        None | Some("") => "manual",
        Some(r) => RELEASE_REASONS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(r))
            .copied()
            .ok_or_else(|| {
                ApiError::field(
                    "reason",
                    format!("Use one of: {}.", RELEASE_REASONS.join(", ")),
                )
            })?,
    };
    let actor = Actor::member(scope, username);
    let (id, lines) = kernel::db::retry_transient(|| async {
        let mut tx = ctx.pool.begin().await?;
        ledger::lock_timeout(&mut tx).await?;
        let header = lock_header(&mut tx, actor.project_id, key).await?;
        match header.status.as_str() {
            "released" | "expired" => return Ok((header.id, 0)),
            "confirmed" => return Err(not_active()),
            _ => {}
        }
        let lines = end(ctx, &mut tx, &actor, &header, "released", reason).await?;
        tx.commit().await?;
        Ok((header.id, lines))
    })
    .await?;
    ctx.outbox.nudge();
    let mut shaped = show(ctx, scope, id).await?;
    shaped["items_released"] = json!(lines);
    Ok(shaped)
}

/// `POST reservations/release-by-order/` `{order_id}` → `{released: n}`.
pub async fn release_by_order(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.release_reservation", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let order_id = text(body, "order_id", 100, &mut errors);
    if order_id.is_empty() && errors.is_empty() {
        errors.required("order_id");
    }
    errors.into_result()?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM reservations WHERE project_id = $1 AND order_id = $2 AND status = 'active' \
         ORDER BY id",
    )
    .bind(scope.project_id())
    .bind(&order_id)
    .fetch_all(&ctx.pool)
    .await?;
    let mut released = 0;
    for id in ids {
        let done = release(
            ctx,
            scope,
            username,
            &id.to_string(),
            &json!({"reason": "order_cancelled"}),
        )
        .await?;
        if done["items_released"].as_u64().unwrap_or(0) > 0 || done["status"] == "released" {
            released += 1;
        }
    }
    Ok(json!({ "released": released }))
}

/// Holds an active reservation until it is confirmed or released (`expires_at = null`; the
/// order service on confirmation). Not active → 422 (`reservation_expired` when it expired).
pub async fn hold_open(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
) -> Result<(), ApiError> {
    scope.require("inventory.change_stockreservation", &STOCK_GRANTS)?;
    let mut tx = ctx.pool.begin().await?;
    ledger::lock_timeout(&mut tx).await?;
    let header = lock_header(&mut tx, scope.project_id(), key).await?;
    match header.status.as_str() {
        "active" if header.overdue => {
            end(
                ctx,
                &mut tx,
                &Actor::system(scope.project_id()),
                &header,
                "expired",
                "expired",
            )
            .await?;
            tx.commit().await?;
            ctx.outbox.nudge();
            return Err(expired());
        }
        "active" => {}
        "expired" => return Err(expired()),
        _ => return Err(not_active()),
    }
    sqlx::query("UPDATE reservations SET expires_at = NULL, updated_at = now() WHERE id = $1")
        .bind(header.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST reservations/{id}/adjust/` `{items:[{product_id, variant_id?, quantity}]}`: new totals
/// per product/variant (0 removes the line). Increases are allocated like a create, decreases
/// give back the last allocations first; all or nothing.
pub async fn adjust(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.reserve_stock", &STOCK_GRANTS)?;
    let items = items(body)?;
    let mut targets: BTreeMap<(i64, Option<i64>), i64> = BTreeMap::new();
    let mut errors = FieldErrors::new();
    for item in items {
        let product = int(item, &["product_id", "product"], &mut errors);
        let variant = int(item, &["variant_id", "variant"], &mut errors);
        let quantity = item.get("quantity").and_then(Value::as_i64);
        match (product, quantity) {
            (Some(p), Some(q)) if (0..=MAX_QUANTITY).contains(&q) => {
                targets.insert((p, variant), q);
            }
            (None, _) => errors.required("product_id"),
            _ => errors.add("quantity", format!("Give 0 to {MAX_QUANTITY} units.")),
        }
    }
    errors.into_result()?;
    // Another project's reservation is not found, whatever the lines say.
    lock_header(&mut *ctx.pool.acquire().await?, scope.project_id(), key).await?;
    let mut names = BTreeMap::new();
    for ((product, variant), quantity) in &targets {
        if *quantity > 0 {
            let stocked = catalog::check(ctx, scope.project_id(), *product, *variant).await?;
            names.insert((*product, *variant), stocked);
        }
    }
    let actor = Actor::member(scope, username);
    let id =
        kernel::db::retry_transient(|| attempt_adjust(ctx, &actor, key, &targets, &names)).await?;
    ctx.outbox.nudge();
    show(ctx, scope, id).await
}

async fn attempt_adjust(
    ctx: &ServiceContext,
    actor: &Actor,
    key: &str,
    targets: &BTreeMap<(i64, Option<i64>), i64>,
    names: &BTreeMap<(i64, Option<i64>), catalog::Stocked>,
) -> Result<i64, ApiError> {
    let project_id = actor.project_id;
    let mut tx = ctx.pool.begin().await?;
    ledger::lock_timeout(&mut tx).await?;
    let header = lock_header(&mut tx, project_id, key).await?;
    if header.status != "active" {
        return Err(not_active());
    }
    // Current totals per product/variant, and their allocations (latest first).
    let current: Vec<(i64, i64, Option<i64>, i32, bool)> = sqlx::query_as(
        "SELECT id, product_id, variant_id, quantity, tracked FROM reservation_items \
         WHERE reservation_id = $1 ORDER BY id",
    )
    .bind(header.id)
    .fetch_all(&mut *tx)
    .await?;
    let held = allocations(&mut tx, header.id).await?;
    let also: Vec<i64> = held.iter().map(|a| a.2).collect();
    let increases: Vec<(i64, Option<i64>)> = targets
        .iter()
        .filter(|((p, v), q)| {
            let now: i64 = current
                .iter()
                .filter(|c| c.1 == *p && c.2 == *v)
                .map(|c| i64::from(c.3))
                .sum();
            **q > now
        })
        .map(|(k, _)| *k)
        .collect();
    let rows = lock_rows(&mut tx, project_id, &increases, &also).await?;
    // Decreases first, so that units given back by one line may serve another.
    let mut extra: Vec<Checked> = Vec::new();
    for ((product, variant), wanted) in targets {
        let mine: Vec<&(i64, i64, Option<i64>, i32, bool)> = current
            .iter()
            .filter(|c| c.1 == *product && c.2 == *variant)
            .collect();
        let now: i64 = mine.iter().map(|c| i64::from(c.3)).sum();
        if *wanted < now {
            let mut give_back = now - wanted;
            for item in mine.iter().rev() {
                if give_back == 0 {
                    break;
                }
                let mut item_left = i64::from(item.3);
                let mut item_allocs: Vec<&(i64, i64, i64, i32)> =
                    held.iter().filter(|a| a.1 == item.0).collect();
                item_allocs.sort_by_key(|a| std::cmp::Reverse(a.0));
                if item.4 {
                    for (alloc, _, row, q) in item_allocs {
                        if give_back == 0 {
                            break;
                        }
                        let take = i64::from(*q).min(give_back);
                        ledger::change(ctx, &mut tx, actor, *row, 0, -take, &Entry::default())
                            .await?;
                        if take == i64::from(*q) {
                            sqlx::query("DELETE FROM reservation_allocations WHERE id = $1")
                                .bind(alloc)
                                .execute(&mut *tx)
                                .await?;
                        } else {
                            sqlx::query(
                                "UPDATE reservation_allocations SET quantity = quantity - $2 WHERE id = $1",
                            )
                            .bind(alloc)
                            .bind(take as i32)
                            .execute(&mut *tx)
                            .await?;
                        }
                        give_back -= take;
                        item_left -= take;
                    }
                } else {
                    let take = item_left.min(give_back);
                    give_back -= take;
                    item_left -= take;
                }
                if item_left == 0 {
                    sqlx::query("DELETE FROM reservation_items WHERE id = $1")
                        .bind(item.0)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query("UPDATE reservation_items SET quantity = $2 WHERE id = $1")
                        .bind(item.0)
                        .bind(item_left as i32)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        } else if *wanted > now {
            let stocked = names.get(&(*product, *variant));
            extra.push(Checked {
                line: Line {
                    product_id: *product,
                    variant_id: *variant,
                    warehouse_id: None,
                    inventory_id: None,
                    quantity: wanted - now,
                },
                name: stocked.map(|s| s.name.clone()).unwrap_or_default(),
                tracked: stocked.is_none_or(|s| s.tracked),
            });
        }
    }
    // Levels after the decreases (the rows are locked).
    let rows = refreshed(&mut tx, rows).await?;
    let tracked: Vec<&Checked> = extra.iter().filter(|c| c.tracked).collect();
    let plans = plan(&tracked, &rows).map_err(ledger::insufficient_lines)?;
    write_lines(&mut tx, header.id, &extra, &plans).await?;
    let held = units_by_row(&rows, &plans);
    ledger::reserve_many(ctx, &mut tx, actor, &held, Vec::new()).await?;
    // A repeated create for the order compares against the lines it holds now.
    let now: Vec<(i64, Option<i64>, i64)> = sqlx::query_as(
        "SELECT product_id, variant_id, sum(quantity)::bigint FROM reservation_items \
         WHERE reservation_id = $1 GROUP BY product_id, variant_id ORDER BY product_id, variant_id",
    )
    .bind(header.id)
    .fetch_all(&mut *tx)
    .await?;
    let key = lines_key(
        &now.into_iter()
            .map(|(product_id, variant_id, quantity)| Line {
                product_id,
                variant_id,
                warehouse_id: None,
                inventory_id: None,
                quantity,
            })
            .collect::<Vec<_>>(),
    );
    sqlx::query(
        "UPDATE reservations SET lines_key = $2, updated_at = now(), updated_by = $3 WHERE id = $1",
    )
    .bind(header.id)
    .bind(key)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(header.id)
}

/// Expires overdue reservations in the background, oldest first, each in its own
/// transaction (at most a minute late: the sweep runs every `every`).
pub fn spawn_sweeper(ctx: ServiceContext, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match sweep(&ctx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "reservations expired"),
                Err(e) => tracing::warn!(error = %e, "reservation sweep failed"),
            }
        }
    })
}

/// Expires every overdue active reservation now → how many.
pub async fn sweep(ctx: &ServiceContext) -> Result<usize, ApiError> {
    let mut total = 0;
    loop {
        let done = kernel::db::retry_transient(|| async {
            let mut tx = ctx.pool.begin().await?;
            ledger::lock_timeout(&mut tx).await?;
            let due: Option<(i64, i64)> = sqlx::query_as(
                "SELECT id, project_id FROM reservations WHERE status = 'active' \
                 AND expires_at < now() ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, project)) = due else {
                return Ok(false);
            };
            let header: Header = sqlx::query_as(&format!("{HEADER} WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            end(
                ctx,
                &mut tx,
                &Actor::system(project),
                &header,
                "expired",
                "expired",
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await?;
        if !done {
            break;
        }
        total += 1;
    }
    if total > 0 {
        ctx.outbox.nudge();
    }
    Ok(total)
}
