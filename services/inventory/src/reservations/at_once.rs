//! A new reservation in two statements and no transaction: the rows read without locks, the
//! allocation planned from them, then the header, lines, allocations, held units and events
//! written by one statement that holds a row only at the version read. When a row changed in
//! between, or the read rows cannot cover the lines, nothing is written and the caller takes
//! the locked path ([`super::attempt_create`]), which waits for the rows and expires overdue
//! holds before it answers.

use kernel::events::OutboxRows;
use kernel::service::ServiceContext;
use kernel::ApiError;
use sqlx::Row;

use super::{
    created_event, existing_for_order, plan, units_by_row, wanted_columns, Candidate, Checked,
    Held, LineColumns, Request,
};
use crate::catalog::Replica;
use crate::ledger::{Actor, Holds};

/// Every allocatable row of the wanted products/variants ($2, $3 pairwise) in project $1, as
/// [`super::ROWS`] reads them, each with the id and number the new reservation will have and
/// the catalogue replica's rows of every line (the same on each row). The pairs come from
/// `wanted_lines` (migration 0005), so the statement keeps one plan.
const READ: &str = concat!(
    "WITH n AS MATERIALIZED \
       (SELECT nextval(pg_get_serial_sequence('reservations', 'id')) AS id, ",
    crate::catalog::replica_sql!(),
    " AS replica) \
     SELECT n.id AS next_id, document_number('RES', n.id) AS next_number, n.replica, ",
    candidate_columns!(),
    " FROM n, (SELECT DISTINCT * FROM wanted_lines($2, $3)) want \
       JOIN stock_items s ON s.project_id = $1 AND s.product_id = want.product_id \
         AND s.variant_id IS NOT DISTINCT FROM want.variant_id AND s.deleted_at IS NULL \
       JOIN warehouses w ON w.id = s.warehouse LEFT JOIN batches b ON b.id = s.batch \
     WHERE ",
    allocatable!(),
    " ORDER BY s.id"
);

/// A row a line may take from, with the id and number the new reservation will have and the
/// replica's rows.
#[derive(sqlx::FromRow)]
struct ReadRow {
    next_id: i64,
    next_number: String,
    replica: sqlx::types::Json<Replica>,
    #[sqlx(flatten)]
    row: Candidate,
}

/// What a reservation written at once starts from: the rows every line may take from (read
/// without locks), the new reservation's id and number, and the catalogue replica's rows of
/// the lines (their check needs no statement of its own).
pub(super) struct Read {
    id: i64,
    number: String,
    rows: Vec<Candidate>,
    pub(super) replica: Replica,
}

/// Reads every line's rows, or `None` when none has any (the lines are then checked and held
/// on the locked path).
pub(super) async fn read(
    ctx: &ServiceContext,
    project_id: i64,
    wanted: &[(i64, Option<i64>)],
) -> Result<Option<Read>, ApiError> {
    let (products, variants) = wanted_columns(wanted);
    let mut read: Vec<ReadRow> = sqlx::query_as(READ)
        .bind(project_id)
        .bind(&products)
        .bind(&variants)
        .fetch_all(&ctx.pool)
        .await?;
    let Some(first) = read.first_mut() else {
        return Ok(None);
    };
    let (id, number) = (first.next_id, first.next_number.clone());
    let replica = std::mem::take(&mut first.replica.0);
    Ok(Some(Read {
        id,
        number,
        rows: read.into_iter().map(|r| r.row).collect(),
        replica,
    }))
}

/// The reservation written at once from what [`read`] found, or `None` when the locked path
/// must decide.
pub(super) async fn create(
    ctx: &ServiceContext,
    actor: &Actor,
    request: &Request,
    read: Read,
) -> Result<Option<Held>, ApiError> {
    let tracked: Vec<&Checked> = request.lines.iter().filter(|l| l.tracked).collect();
    if tracked.is_empty() {
        return Ok(None);
    }
    let Read {
        id, number, rows, ..
    } = read;
    let Ok(plans) = plan(&tracked, &rows) else {
        return Ok(None);
    };
    let event = created_event(ctx, actor, request, id, &number)?;
    let holds = Holds::of(ctx, actor, &units_by_row(&rows, &plans), vec![event])?;
    let columns = LineColumns::of(&request.lines, &plans);
    match write(ctx, actor, request, (id, &number), &columns, &holds).await {
        Ok(true) => Ok(Some(Held {
            id,
            reservation_number: number,
            created: true,
        })),
        // The order has an active reservation (or is getting one): that one is the answer.
        Ok(false) => {
            let mut conn = ctx.pool.acquire().await?;
            let order_id = request.head.order_id.as_deref().unwrap_or_default();
            existing_for_order(&mut conn, actor.project_id, order_id, &request.key).await
        }
        Err(e) if e.is_transient() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The one statement: `false` when the order already had an active reservation (nothing is
/// written), a transient error when a row changed since it was read (nothing is written). Its
/// header's insert sets the lock timeout first (for the rest of the statement), so a wait for
/// the order's other reservation or for a row ends as the locked path's would (503).
async fn write(
    ctx: &ServiceContext,
    actor: &Actor,
    request: &Request,
    (id, number): (i64, &str),
    columns: &LineColumns<'_>,
    holds: &Holds,
) -> Result<bool, ApiError> {
    const WRITTEN: &str = "EXISTS (SELECT 1 FROM h)";
    let statement = format!(
        "WITH h AS (INSERT INTO reservations (id, project_id, reservation_number, order_id, \
             reference, expires_at, lines_key, created_by, updated_by, performed_by) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $9 \
           FROM (SELECT set_config('lock_timeout', $30, true)) AS settings \
           ON CONFLICT (project_id, order_id) WHERE status = 'active' AND order_id IS NOT NULL \
           DO NOTHING RETURNING id), \
         {lines}, \
         u AS ({update}), \
         o AS ({events}) \
         SELECT {WRITTEN} AS written, \
           zv_require(NOT {WRITTEN} OR (SELECT count(*) FROM u) = $25) AS checked",
        lines = LineColumns::sql("$1", 10, Some(WRITTEN)),
        update = Holds::update(21, 8, Some(WRITTEN)),
        events = OutboxRows::insert(26, Some(WRITTEN)),
    );
    let query = sqlx::query(&statement)
        .bind(id)
        .bind(actor.project_id)
        .bind(number);
    let query = request.bind_header(query, actor);
    let query = holds.bind(columns.bind(query)).bind(holds.count());
    let query = holds.outbox.bind(query).bind(crate::ledger::LOCK_TIMEOUT);
    let row = query.fetch_one(&ctx.pool).await?;
    Ok(row.try_get("written")?)
}
