//! Events published by the billing service (contract billing.md §10). camelCase payloads.

use kernel::events::IntegrationEvent;
use serde::{Deserialize, Serialize};

/// An invoice's state (`invoice.created`, `invoice.paid`, `invoice.cancelled`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceEvent {
    pub invoice_id: i64,
    pub invoice_number: String,
    pub source_type: String,
    pub source_id: Option<i64>,
    /// Decimal strings.
    pub total: String,
    pub currency: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvoiceCreated(pub InvoiceEvent);

impl IntegrationEvent for InvoiceCreated {
    const TYPE: &'static str = "invoice.created";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvoicePaid(pub InvoiceEvent);

impl IntegrationEvent for InvoicePaid {
    const TYPE: &'static str = "invoice.paid";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

/// A completed payment or refund on an invoice (`payment.success`, `payment.refunded`), with
/// the invoice's totals after it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PaymentEvent {
    pub transaction_id: String,
    pub invoice_id: i64,
    pub source_type: String,
    pub source_id: Option<i64>,
    pub amount: String,
    pub currency: String,
    pub gateway_name: String,
    pub method: String,
    pub amount_paid: String,
    pub amount_refunded: String,
    pub invoice_total: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PaymentSucceeded(pub PaymentEvent);

impl IntegrationEvent for PaymentSucceeded {
    const TYPE: &'static str = "payment.success";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PaymentRefunded(pub PaymentEvent);

impl IntegrationEvent for PaymentRefunded {
    const TYPE: &'static str = "payment.refunded";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PaymentFailed(pub PaymentEvent);

impl IntegrationEvent for PaymentFailed {
    const TYPE: &'static str = "payment.failed";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

/// A coupon use taken for an order (`source_type` order) and not released.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderCouponUse {
    pub project_id: i64,
    pub redemption_id: i64,
    pub order_id: i64,
}

/// A page of coupon uses in id order, every one older than asked, with the live uses for
/// orders among them; the next page starts after `last_id`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderCouponUses {
    pub last_id: i64,
    pub uses: Vec<OrderCouponUse>,
}

/// Billing as the order and pos services call it synchronously (billing.md §6, §4.3). Bodies
/// and answers are the REST ones; the scope is the caller's, acting as a service
/// (`ProjectScope::as_service`). Refusals are the REST errors (422 with the coupon `code`).
#[async_trait::async_trait]
pub trait Billing: Send + Sync {
    /// `POST m/coupons/validate/` `{code, order_amount, customer_id?}` → the 200 body
    /// `{valid, coupon{id,code,discount_type,discount_value}, discount_amount, final_amount,
    /// message}`. No side effect.
    async fn validate_coupon(
        &self,
        scope: &kernel::auth::ProjectScope,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, kernel::ApiError>;

    /// `POST m/coupons/redeem/` `{code, order_amount, customer_id?, source_type, source_id}` →
    /// the redemption `{id, coupon_id, discount_amount, …}`. The same (coupon, source) answers
    /// the existing redemption.
    async fn redeem_coupon(
        &self,
        scope: &kernel::auth::ProjectScope,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, kernel::ApiError>;

    /// `POST m/coupons/redemptions/{id}/release/`; releasing twice is fine.
    async fn release_redemption(
        &self,
        scope: &kernel::auth::ProjectScope,
        redemption_id: i64,
    ) -> Result<(), kernel::ApiError>;

    /// Across projects, for the order service's reconciler: the coupon uses after `after_id`
    /// (0: from just before the oldest live one, or after the last one when none is live), in
    /// id order, up to `limit`, stopping at the first one younger than `older_than`, with the
    /// live uses for orders among them.
    async fn order_coupon_uses(
        &self,
        after_id: i64,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<OrderCouponUses, kernel::ApiError>;

    /// Starts an online payment for a source that may not have its invoice yet (checkout):
    /// `{source_type, source_id, amount, currency, method, gateway? (default "test"),
    /// token?, idempotency_key}` → the transaction `{id, transaction_id, status, next_action?
    /// {type, url|secret}}`. The same `idempotency_key` answers the same transaction.
    async fn start_payment(
        &self,
        scope: &kernel::auth::ProjectScope,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, kernel::ApiError>;
}

/// How billing is shared through `Platform::provide` / `Platform::lookup`.
pub type SharedBilling = std::sync::Arc<dyn Billing>;

/// An invoice issued or sent again (`send/`, `status: sent`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvoiceSent(pub InvoiceEvent);

impl IntegrationEvent for InvoiceSent {
    const TYPE: &'static str = "invoice.sent";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

/// An invoice voided (`cancel/`, `status: cancelled`, `payment: CANCELLED`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvoiceCancelled(pub InvoiceEvent);

impl IntegrationEvent for InvoiceCancelled {
    const TYPE: &'static str = "invoice.cancelled";

    fn ordering_key(&self) -> Option<String> {
        Some(format!("invoice:{}", self.0.invoice_id))
    }
}

/// A coupon use (`coupon.redeemed`) or its release (`coupon.released`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CouponEvent {
    pub redemption_id: i64,
    pub coupon_id: i64,
    pub code: String,
    pub customer_id: Option<i64>,
    pub source_type: String,
    pub source_id: i64,
    /// Decimal string.
    pub discount_amount: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CouponRedeemed(pub CouponEvent);

impl IntegrationEvent for CouponRedeemed {
    const TYPE: &'static str = "coupon.redeemed";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CouponReleased(pub CouponEvent);

impl IntegrationEvent for CouponReleased {
    const TYPE: &'static str = "coupon.released";
}
