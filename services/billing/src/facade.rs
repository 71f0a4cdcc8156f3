//! Billing as other services call it in-process (`integration::billing::Billing`): coupons for
//! order and pos, and online payments started at checkout, before the order's invoice exists.

use kernel::auth::ProjectScope;
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::Value;

use crate::ledger::{self, Kind, NewTransaction};
use crate::{coupons, GRANTS};

pub struct BillingFacade(pub ServiceContext);

/// `{source_type, source_id, amount, currency, method, gateway? ("test"), token?,
/// idempotency_key, return_url?}` → the transaction (with `next_action` while the customer
/// acts). The same key answers the same transaction.
pub async fn start_payment(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("billing.record_payment", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let mut new = NewTransaction {
        kind: Some(Kind::Payment),
        gateway: Some("test".into()),
        ..NewTransaction::default()
    };
    ledger::read_body(body, &mut new, &mut errors);
    let source_type = body
        .get("source_type")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty() && s.len() <= 20);
    let source_id = body
        .get("source_id")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .filter(|n| *n > 0);
    match (source_type, source_id) {
        (Some(t), Some(i)) => new.source = Some((t, i)),
        _ => errors.add("source_id", "Name the source (source_type, source_id)."),
    }
    if new.amount.is_none() {
        errors.required("amount");
    }
    new.idempotency_key = body
        .get("idempotency_key")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned);
    if new.idempotency_key.is_none() {
        errors.required("idempotency_key");
    }
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    let (_, row) =
        ledger::record(ctx, &mut tx, scope.project_id(), Some(scope.user_id()), new).await?;
    tx.commit().await?;
    ctx.outbox.nudge();
    Ok(row)
}

#[async_trait::async_trait]
impl integration::billing::Billing for BillingFacade {
    async fn validate_coupon(&self, scope: &ProjectScope, body: &Value) -> Result<Value, ApiError> {
        coupons::validate(&self.0, &scope.as_service(), body).await
    }

    async fn redeem_coupon(&self, scope: &ProjectScope, body: &Value) -> Result<Value, ApiError> {
        coupons::redeem(&self.0, &scope.as_service(), body)
            .await
            .map(|(_, r)| r)
    }

    async fn release_redemption(
        &self,
        scope: &ProjectScope,
        redemption_id: i64,
    ) -> Result<(), ApiError> {
        coupons::release(&self.0, &scope.as_service(), redemption_id)
            .await
            .map(|_| ())
    }

    async fn order_coupon_uses(
        &self,
        after_id: i64,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<integration::billing::OrderCouponUses, ApiError> {
        crate::order_coupon_uses::page(&self.0, after_id, older_than, limit).await
    }

    async fn start_payment(&self, scope: &ProjectScope, body: &Value) -> Result<Value, ApiError> {
        start_payment(&self.0, &scope.as_service(), body).await
    }
}
