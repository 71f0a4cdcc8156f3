//! Coupon uses taken for orders, paged across projects for the order service's reconciler: a
//! placement that died after using a coupon never writes its order, and the reconciler gives
//! the use back.

use integration::billing::{OrderCouponUse, OrderCouponUses};
use kernel::service::ServiceContext;
use kernel::ApiError;

/// The coupon uses after `$1` (0: from the oldest live one) in id order, `$2` of them, each
/// with whether it is a live use for an order and whether it is older than `$3` seconds.
const PAGE: &str = "WITH start AS (SELECT CASE WHEN $1 > 0 THEN $1 ELSE \
       COALESCE((SELECT min(id) - 1 FROM coupon_redemptions WHERE released_at IS NULL), 0) \
       END AS after) \
     SELECT r.id, r.project_id, r.source_id, \
       r.released_at IS NULL AND r.source_type = 'order' AS live, \
       r.created_at < now() - make_interval(secs => $3) AS old \
     FROM start, coupon_redemptions r WHERE r.id > start.after ORDER BY r.id LIMIT $2";

/// One page: it stops at the first use younger than `older_than`, so one written late under
/// an earlier id is not passed over.
pub async fn page(
    ctx: &ServiceContext,
    after_id: i64,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<OrderCouponUses, ApiError> {
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
