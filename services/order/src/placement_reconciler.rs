//! Gives back what a placement that died midway holds (order.md §4). A placement takes its
//! order's id and number first, reserves the stock under that number, may use a coupon for
//! that id, and only then writes the order. A process that dies between the two leaves a hold
//! (and maybe a coupon use) without an order; every step of a live placement has a limit of
//! seconds and the order is written within [`crate::placing::WRITE_WITHIN`] or not at all, so
//! a hold or use older than [`ORPHANED_AFTER`] whose order does not exist never gets one.
//!
//! The reconciler pages through the inventory's reservations and billing's coupon uses in id
//! order, after where it stopped last (it starts, with the process, from the oldest active
//! one), asks which of their orders exist (one statement per page) and releases the others;
//! one it cannot release now is where the next round starts. A page stops at the first
//! record younger than [`ORPHANED_AFTER`]: a record is written seconds after its id is taken
//! (every statement that writes one has a lock timeout or waits for no lock), so none is
//! passed over before it is visible. Orders an earlier version left `placing` are undone as
//! that version did.

use std::time::Duration;

use kernel::auth::ProjectScope;
use kernel::service::ServiceContext;
use kernel::ApiError;
use rust_decimal::Decimal;
use serde_json::json;

use crate::orders::{billing, money, release};

/// A hold or coupon use this old without its order is given back.
pub const ORPHANED_AFTER: Duration = Duration::from_secs(120);
// An order is never written after its hold could have been given back.
const _: () = assert!(crate::placing::WRITE_WITHIN.as_secs() < ORPHANED_AFTER.as_secs());

/// Reservations or coupon uses read per page, and pages per round at most.
const PAGE: i64 = 500;
const PAGES_PER_ROUND: usize = 100;

/// Where the reconciler stopped in each service's records.
#[derive(Debug, Default)]
pub struct Reconciler {
    holds_after: i64,
    uses_after: i64,
}

impl Reconciler {
    /// One round → how many placements were undone (holds and coupon uses given back, orders
    /// left `placing` failed). Each of the three parts runs even when another fails (it is
    /// logged, and tried again next round).
    pub async fn run(&mut self, ctx: &ServiceContext) -> usize {
        let parts = [
            ("orders left placing", stuck_placing(ctx).await),
            ("holds", self.holds(ctx).await),
            ("coupon uses", self.coupon_uses(ctx).await),
        ];
        let mut undone = 0;
        for (part, done) in parts {
            match done {
                Ok(n) => undone += n,
                Err(e) => tracing::warn!(part, error = %e, "placement reconciler deferred"),
            }
        }
        undone
    }

    /// Pages through the inventory's reservations. A hold it cannot give back now stops the
    /// round there: the next round starts with it.
    async fn holds(&mut self, ctx: &ServiceContext) -> Result<usize, ApiError> {
        let Some(stock) = ctx.platform.lookup::<integration::inventory::SharedStock>() else {
            return Ok(0);
        };
        let mut undone = 0;
        for _ in 0..PAGES_PER_ROUND {
            let page = stock
                .order_holds(self.holds_after, ORPHANED_AFTER, PAGE)
                .await?;
            let projects: Vec<i64> = page.holds.iter().map(|h| h.project_id).collect();
            let numbers: Vec<&str> = page.holds.iter().map(|h| h.order_number.as_str()).collect();
            let orphans: Vec<i64> = sqlx::query_scalar(
                "SELECT h.n FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY \
                   AS h(project, number, n) \
                 WHERE NOT EXISTS (SELECT 1 FROM orders o \
                   WHERE o.project_id = h.project AND o.order_number = h.number)",
            )
            .bind(&projects)
            .bind(&numbers)
            .fetch_all(&ctx.pool)
            .await?;
            for (n, hold) in page.holds.iter().enumerate() {
                if !orphans.contains(&(n as i64 + 1)) {
                    continue;
                }
                let scope = ProjectScope::for_job(hold.project_id);
                if !release(ctx, &scope, &hold.order_number).await {
                    tracing::warn!(order = hold.order_number, "orphaned hold not released yet");
                    self.holds_after = hold.id - 1;
                    return Ok(undone);
                }
                tracing::warn!(
                    order = hold.order_number,
                    "placement interrupted; its hold released"
                );
                undone += 1;
            }
            let done = page.last_id == self.holds_after;
            self.holds_after = page.last_id;
            if done {
                break;
            }
        }
        Ok(undone)
    }

    /// Pages through billing's coupon uses, as [`Self::holds`] does.
    async fn coupon_uses(&mut self, ctx: &ServiceContext) -> Result<usize, ApiError> {
        let Ok(billing) = billing(ctx) else {
            return Ok(0);
        };
        let mut undone = 0;
        for _ in 0..PAGES_PER_ROUND {
            let page = billing
                .order_coupon_uses(self.uses_after, ORPHANED_AFTER, PAGE)
                .await?;
            let projects: Vec<i64> = page.uses.iter().map(|u| u.project_id).collect();
            let orders: Vec<i64> = page.uses.iter().map(|u| u.order_id).collect();
            let orphans: Vec<i64> = sqlx::query_scalar(
                "SELECT u.n FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY \
                   AS u(project, id, n) \
                 WHERE NOT EXISTS (SELECT 1 FROM orders o \
                   WHERE o.id = u.id AND o.project_id = u.project)",
            )
            .bind(&projects)
            .bind(&orders)
            .fetch_all(&ctx.pool)
            .await?;
            for (n, used) in page.uses.iter().enumerate() {
                if !orphans.contains(&(n as i64 + 1)) {
                    continue;
                }
                let scope = ProjectScope::for_job(used.project_id);
                if let Err(e) = billing.release_redemption(&scope, used.redemption_id).await {
                    tracing::warn!(redemption = used.redemption_id, error = %e,
                        "orphaned coupon use not released yet");
                    self.uses_after = used.redemption_id - 1;
                    return Ok(undone);
                }
                undone += 1;
            }
            let done = page.last_id == self.uses_after;
            self.uses_after = page.last_id;
            if done {
                break;
            }
        }
        Ok(undone)
    }
}

/// Orders an earlier version left `placing` for 2 minutes: the reservation held under the
/// order number is released, a coupon use taken for the order is given back, and the order is
/// marked failed. One whose stock cannot be released now stays for the next round.
async fn stuck_placing(ctx: &ServiceContext) -> Result<usize, ApiError> {
    let stuck: Vec<(i64, i64, String, String, Decimal, Option<i64>)> = sqlx::query_as(
        "SELECT id, project_id, order_number, coupon_code, subtotal, customer_id FROM orders \
         WHERE status = 'placing' AND created_at < now() - interval '2 minutes' \
         ORDER BY id LIMIT 100",
    )
    .fetch_all(&ctx.pool)
    .await?;
    let mut undone = 0;
    for (id, project_id, number, coupon, subtotal, customer) in stuck {
        let scope = ProjectScope::for_job(project_id);
        if !release(ctx, &scope, &number).await {
            tracing::warn!(
                order = number,
                "interrupted placement: stock not released yet"
            );
            continue;
        }
        if !coupon.is_empty() {
            // Redeeming under this order answers the use it already took (if any), which is
            // then given back; a refusal means it never took one.
            let body = json!({"code": coupon, "order_amount": money(subtotal),
                "customer_id": customer, "source_type": "order", "source_id": id});
            if let Ok(b) = billing(ctx) {
                if let Ok(r) = b.redeem_coupon(&scope, &body).await {
                    if let Some(r) = r["id"].as_i64() {
                        let _ = b.release_redemption(&scope, r).await;
                    }
                }
            }
        }
        tracing::warn!(
            order = number,
            "placement interrupted; released and marked failed"
        );
        fail(ctx, id, "placement interrupted").await;
        undone += 1;
    }
    Ok(undone)
}

/// Marks an order left `placing` failed (hidden) once its reservation was released.
async fn fail(ctx: &ServiceContext, id: i64, why: &str) {
    let done = sqlx::query(
        "UPDATE orders SET status = 'failed', cancellation_reason = $2, updated_at = now() \
         WHERE id = $1 AND status = 'placing'",
    )
    .bind(id)
    .bind(why)
    .execute(&ctx.pool)
    .await;
    if let Err(e) = done {
        tracing::error!(order_id = id, error = %e, "failed placement not marked; the reconciler will");
    }
}

/// Runs a round every `every`.
pub fn spawn(ctx: ServiceContext, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reconciler = Reconciler::default();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            reconciler.run(&ctx).await;
        }
    })
}
