//! The order service's holds, paged across projects for its reconciler: a placement that
//! died after reserving never writes its order, and the reconciler gives its hold back.

use integration::inventory::{OrderHold, OrderHolds};
use kernel::service::ServiceContext;
use kernel::ApiError;

/// Where a reconciler that knows nothing yet starts: just before the oldest active
/// reservation, else after the last one.
const START: &str = "SELECT COALESCE((SELECT min(id) FROM reservations WHERE status = 'active'), \
       (SELECT max(id) + 1 FROM reservations), 1) - 1";

/// The reservations after `$1` in id order, `$2` of them, each with whether it is an active
/// hold made by `$4` for an order and whether it is older than `$3` seconds.
const PAGE: &str = "SELECT id, project_id, order_id, \
       status = 'active' AND performed_by = $4 AND order_id IS NOT NULL AS held, \
       created_at < now() - make_interval(secs => $3) AS old \
     FROM reservations WHERE id > $1 ORDER BY id LIMIT $2";

/// One page: it stops at the first reservation younger than `older_than`, so one written late
/// under an earlier id is not passed over (a reservation is written seconds after its id is
/// taken).
pub(crate) async fn page(
    ctx: &ServiceContext,
    caller: &str,
    after_id: i64,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<OrderHolds, ApiError> {
    let after_id = match after_id {
        0 => sqlx::query_scalar(START).fetch_one(&ctx.pool).await?,
        after => after,
    };
    let rows: Vec<(i64, i64, Option<String>, bool, bool)> = sqlx::query_as(PAGE)
        .bind(after_id)
        .bind(limit)
        .bind(older_than.as_secs_f64())
        .bind(caller)
        .fetch_all(&ctx.pool)
        .await?;
    let mut page = OrderHolds {
        last_id: after_id,
        holds: Vec::new(),
    };
    for (id, project_id, order_id, held, old) in rows {
        if !old {
            break;
        }
        page.last_id = id;
        if let (true, Some(order_number)) = (held, order_id) {
            page.holds.push(OrderHold {
                id,
                project_id,
                order_number,
            });
        }
    }
    Ok(page)
}
