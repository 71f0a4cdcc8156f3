//! Events published by the order service (contract order.md §14). camelCase payloads; every
//! `order.*` carries the order's id, number, reference, status and payment status.

use kernel::events::IntegrationEvent;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderRef {
    pub order_id: i64,
    pub order_number: String,
    pub reference: Option<String>,
    pub status: String,
    pub payment_status: String,
}

impl OrderRef {
    /// The ordering key of every `order.*` event: one order's events stay in order, different
    /// orders' events are delivered side by side.
    pub fn ordering_key(&self) -> Option<String> {
        Some(format!("order:{}", self.order_id))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub order_item_id: i64,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub sku: Option<String>,
    pub quantity: i64,
    /// Decimal strings.
    pub unit_price: String,
    pub total_price: String,
}

/// A placed order (DESIGN.md's `order.placed`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    #[serde(flatten)]
    pub order: OrderRef,
    pub customer_id: Option<i64>,
    pub customer_email: String,
    pub currency: String,
    pub subtotal: String,
    pub discount_amount: String,
    pub shipping_cost: String,
    pub tax_amount: String,
    pub total: String,
    pub items: Vec<OrderLine>,
    pub source: String,
    pub reservation_id: Option<String>,
}

impl IntegrationEvent for OrderCreated {
    const TYPE: &'static str = "order.created";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatusChanged {
    #[serde(flatten)]
    pub order: OrderRef,
    pub from: String,
    pub to: String,
    pub by: Option<i64>,
}

impl IntegrationEvent for OrderStatusChanged {
    const TYPE: &'static str = "order.status_changed";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    #[serde(flatten)]
    pub order: OrderRef,
    pub reason: String,
    pub refund_amount: String,
}

impl IntegrationEvent for OrderCancelled {
    const TYPE: &'static str = "order.cancelled";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderFulfilled {
    #[serde(flatten)]
    pub order: OrderRef,
    pub fulfillment_id: i64,
    pub carrier: String,
    pub tracking_number: String,
    pub items: Vec<OrderLine>,
}

impl IntegrationEvent for OrderFulfilled {
    const TYPE: &'static str = "order.fulfilled";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

/// A payment the order service completed (order.md §6, §3.1 `completed`): billing books it on
/// the order's invoice under `transactionId` (`ORD-{orderId}-{paymentId}` or
/// `ORD-{orderId}-complete`), once; a redelivery finds the transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderPaymentRecorded {
    #[serde(flatten)]
    pub order: OrderRef,
    pub payment_id: Option<i64>,
    pub transaction_id: String,
    /// Decimal string.
    pub amount: String,
    pub currency: String,
    /// `cash`, `credit_card`, … (order.md §6).
    pub method: String,
}

impl IntegrationEvent for OrderPaymentRecorded {
    const TYPE: &'static str = "order.payment_recorded";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

/// Money the order service gives back (cancellation with refund, a completed return, `PATCH
/// orders/{id}/payment/` refunded): billing refunds it on the order's invoice under
/// `transactionId` (`order-cancel-refund-{projectId}-{orderId}`,
/// `order-return-refund-{projectId}-{returnId}`, …), once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderRefundRequested {
    #[serde(flatten)]
    pub order: OrderRef,
    pub transaction_id: String,
    /// Decimal string.
    pub amount: String,
    pub currency: String,
    pub reason: String,
    pub return_id: Option<i64>,
}

impl IntegrationEvent for OrderRefundRequested {
    const TYPE: &'static str = "order.refund_requested";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

/// A completed return (order.md §14 `order.return_completed`): what came back, whether it went
/// back into stock, and the refund asked of billing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderReturnCompleted {
    #[serde(flatten)]
    pub order: OrderRef,
    pub return_id: i64,
    pub return_number: String,
    /// `[{orderItemId, productId, variantId, quantity, restocked}]`.
    pub items: Vec<serde_json::Value>,
    pub refund_amount: String,
    pub restocked: bool,
}

impl IntegrationEvent for OrderReturnCompleted {
    const TYPE: &'static str = "order.return_completed";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}

/// The order as it entered a main status (`order.confirmed`, `order.shipped`,
/// `order.delivered`, `order.completed`, `order.paid`, `order.returned`): a snapshot for
/// consumers that follow one step only (customer totals, loyalty, notifications).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderSnapshot {
    #[serde(flatten)]
    pub order: OrderRef,
    pub customer_id: Option<i64>,
    pub customer_email: String,
    pub currency: String,
    /// Decimal strings.
    pub total: String,
    pub amount_paid: String,
    pub by: Option<i64>,
}

macro_rules! step {
    ($name:ident, $type:literal) => {
        #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
        pub struct $name(pub OrderSnapshot);

        impl IntegrationEvent for $name {
            const TYPE: &'static str = $type;

            fn ordering_key(&self) -> Option<String> {
                self.0.order.ordering_key()
            }
        }
    };
}

step!(OrderConfirmed, "order.confirmed");
step!(OrderShipped, "order.shipped");
step!(OrderDelivered, "order.delivered");
step!(OrderCompleted, "order.completed");
step!(OrderPaid, "order.paid");
step!(OrderReturned, "order.returned");
step!(OrderDeleted, "order.deleted");

/// An order changed (`order.updated`): `changed` names what (`items` when lines were added,
/// changed or removed while pending), with the totals and lines after the change, so billing can
/// follow on an unpaid invoice.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderUpdated {
    #[serde(flatten)]
    pub order: OrderRef,
    pub changed: Vec<String>,
    /// Decimal strings.
    pub subtotal: String,
    pub discount_amount: String,
    pub shipping_cost: String,
    pub tax_amount: String,
    pub total: String,
    pub items: Vec<OrderLine>,
}

impl IntegrationEvent for OrderUpdated {
    const TYPE: &'static str = "order.updated";

    fn ordering_key(&self) -> Option<String> {
        self.order.ordering_key()
    }
}
