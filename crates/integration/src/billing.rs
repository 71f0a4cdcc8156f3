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
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvoicePaid(pub InvoiceEvent);

impl IntegrationEvent for InvoicePaid {
    const TYPE: &'static str = "invoice.paid";
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
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PaymentRefunded(pub PaymentEvent);

impl IntegrationEvent for PaymentRefunded {
    const TYPE: &'static str = "payment.refunded";
}
