//! Coupon uses taken for orders, paged across projects for the order service's reconciler: a
//! placement that died after using a coupon never writes its order, and the reconciler gives
//! the use back.

use integration::billing::{OrderCouponUse, OrderCouponUses};
use kernel::service::ServiceContext;
use kernel::ApiError;

/// Where a reconciler that knows nothing yet starts: just before the oldest live use, else
/// after the last one.
const START: &str = "SELECT COALESCE( \
       (SELECT min(id) FROM coupon_redemptions WHERE released_at IS NULL), \
       (SELECT max(id) + 1 FROM coupon_redemptions), 1) - 1";

/// The coupon uses after `$1` in id order, `$2` of them, each with whether it is a live use
/// for an order and whether it is older than `$3` seconds.
const PAGE: &str = "SELECT id, project_id, source_id, \
       released_at IS NULL AND source_type = 'order' AS live, \
       created_at < now() - make_interval(secs => $3) AS old \
     FROM coupon_redemptions WHERE id > $1 ORDER BY id LIMIT $2";

/// One page: it stops at the first use younger than `older_than`, so one written late under
/// an earlier id is not passed over.
pub async fn page(
    ctx: &ServiceContext,
    after_id: i64,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<OrderCouponUses, ApiError> {
    let after_id = match after_id {
        0 => sqlx::query_scalar(START).fetch_one(&ctx.pool).await?,
        after => after,
    };
    let rows: Vec<(i64, i64, i64, bool, bool)> = sqlx::query_as(PAGE)
        .bind(after_id)
        .bind(limit)
        .bind(older_than.as_secs_f64())
        .fetch_all(&ctx.pool)
        .await?;
    let mut page = OrderCouponUses {
        last_id: after_id,
        uses: Vec::new(),
    };
    for (id, project_id, order_id, live, old) in rows {
        if !old {
            break;
        }
        page.last_id = id;
        if live {
            page.uses.push(OrderCouponUse {
                project_id,
                redemption_id: id,
                order_id,
            });
        }
    }
    Ok(page)
}
