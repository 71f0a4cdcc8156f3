//! The transaction ledger (contract billing.md §4): payments, refunds, adjustments and
//! chargebacks, and the one place where invoice balances move ([`settle`]).
//!
//! Every balance change locks the invoice row, checks the amount against what is due or
//! refundable, writes or completes the transaction, recomputes the balances and the status, and
//! writes its events, in the caller's transaction. The table's CHECKs (`0 ≤ paid − refunded ≤
//! total`) back the checks up.

use chrono::{DateTime, Utc};
use integration::billing::{
    InvoiceEvent, InvoicePaid, PaymentEvent, PaymentFailed, PaymentRefunded, PaymentSucceeded,
};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::gateways::{self, Outcome};

/// Decimal string with the currency's two minor digits.
pub fn money(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

/// `TXN-{ULID}`: a transaction id when the caller gives none (time-ordered, 26 characters).
pub fn new_transaction_id() -> String {
    format!("TXN-{}", ulid())
}

/// A ULID from a UUIDv7 (both are a 48-bit millisecond time followed by randomness).
pub fn ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut n = uuid::Uuid::now_v7().as_u128();
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A money input: a decimal string or a JSON number read from its text (never a float), at
/// most two decimals and twelve digits; positive unless `signed` (then non-zero).
pub fn parse_amount(v: &Value, signed: bool) -> Result<Decimal, String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err("A valid number is required.".into()),
    };
    let d: Decimal = text
        .parse()
        .map_err(|_| "A valid number is required.".to_owned())?;
    let d = d.normalize();
    if d.scale() > 2 || d.abs() >= Decimal::from(1_000_000_000_000i64) {
        return Err(
            "Ensure that there are no more than 12 digits before and 2 after the decimal point."
                .into(),
        );
    }
    if signed && d.is_zero() {
        return Err("An adjustment may not be zero.".into());
    }
    if !signed && d <= Decimal::ZERO {
        return Err("Ensure this value is greater than 0.".into());
    }
    Ok(d)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Payment,
    Refund,
    Adjustment,
    Chargeback,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Payment => "payment",
            Kind::Refund => "refund",
            Kind::Adjustment => "adjustment",
            Kind::Chargeback => "chargeback",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "payment" => Kind::Payment,
            "refund" => Kind::Refund,
            "adjustment" => Kind::Adjustment,
            "chargeback" => Kind::Chargeback,
            _ => return None,
        })
    }

    /// Gives money back (refunded side of the ledger).
    fn is_refund(self) -> bool {
        matches!(self, Kind::Refund | Kind::Chargeback)
    }
}

pub const METHODS: &[&str] = &[
    "cash",
    "credit_card",
    "debit_card",
    "bank_transfer",
    "wallet",
    "check",
    "other",
];

/// An invoice as the ledger reads it.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct InvoiceRow {
    pub id: i64,
    pub invoice_number: String,
    pub source_type: String,
    pub source_id: Option<i64>,
    pub status: String,
    pub customer_id: Option<i64>,
    pub total_amount: Decimal,
    pub amount_paid: Decimal,
    pub amount_refunded: Decimal,
    pub currency: String,
}

impl InvoiceRow {
    pub fn net(&self) -> Decimal {
        self.amount_paid - self.amount_refunded
    }

    pub fn due(&self) -> Decimal {
        (self.total_amount - self.net()).max(Decimal::ZERO)
    }

    pub fn event(&self) -> InvoiceEvent {
        InvoiceEvent {
            invoice_id: self.id,
            invoice_number: self.invoice_number.clone(),
            source_type: self.source_type.clone(),
            source_id: self.source_id,
            total: money(self.total_amount),
            currency: self.currency.clone(),
        }
    }
}

macro_rules! invoice_columns {
    () => {
        "id, invoice_number, source_type, source_id, status, customer_id, total_amount, \
         amount_paid, amount_refunded, currency"
    };
}

/// The columns of an [`InvoiceRow`] (for `RETURNING`).
pub const INVOICE_COLUMNS: &str = invoice_columns!();
pub const INVOICE_ROW: &str = concat!("SELECT ", invoice_columns!(), " FROM invoices");

/// A live invoice of the project, locked until the caller's transaction ends.
pub async fn lock_invoice(
    tx: &mut PgConnection,
    project_id: i64,
    id: i64,
) -> Result<InvoiceRow, ApiError> {
    sqlx::query_as(&format!(
        "{INVOICE_ROW} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(id)
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// The live invoice of a source (an order…), locked, if it exists yet.
pub async fn lock_invoice_of_source(
    tx: &mut PgConnection,
    project_id: i64,
    source_type: &str,
    source_id: i64,
) -> Result<Option<InvoiceRow>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "{INVOICE_ROW} WHERE project_id = $1 AND source_type = $2 AND source_id = $3 \
         AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(project_id)
    .bind(source_type)
    .bind(source_id)
    .fetch_optional(&mut *tx)
    .await?)
}

/// The stored status after a ledger change (billing.md §3.3).
pub fn status_after(total: Decimal, paid: Decimal, refunded: Decimal) -> &'static str {
    let net = paid - refunded;
    if net >= total && total > Decimal::ZERO {
        "paid"
    } else if net > Decimal::ZERO {
        "partially_paid"
    } else if refunded > Decimal::ZERO {
        "refunded"
    } else {
        "sent"
    }
}

/// What is left to refund of a completed payment: its amount minus its completed refunds
/// (other than `this`, the refund being settled).
async fn refundable_of(
    tx: &mut PgConnection,
    payment_id: i64,
    this: Option<&str>,
) -> Result<Decimal, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT p.amount - COALESCE((SELECT sum(r.amount) FROM transactions r \
           WHERE r.refund_of_id = p.id AND r.status = 'completed' AND r.deleted_at IS NULL \
           AND r.transaction_id IS DISTINCT FROM $2), 0) \
         FROM transactions p WHERE p.id = $1",
    )
    .bind(payment_id)
    .bind(this)
    .fetch_one(&mut *tx)
    .await?)
}

/// Whether `amount` of `kind` may complete on the (locked) invoice now.
/// `this`: the transaction id of a row already written (its own refund does not count).
pub async fn check(
    tx: &mut PgConnection,
    invoice: &InvoiceRow,
    kind: Kind,
    amount: Decimal,
    refund_of: Option<i64>,
    this: Option<&str>,
) -> Result<(), ApiError> {
    if invoice.status == "cancelled" {
        return Err(ApiError::rule(
            "invoice_cancelled",
            "This invoice is cancelled.",
        ));
    }
    let net = invoice.net();
    match kind {
        Kind::Payment => {
            let due = invoice.due();
            if amount > due {
                return Err(ApiError::rule(
                    "amount_exceeds_due",
                    format!("At most {} is due on this invoice.", money(due)),
                )
                .with("details", json!({"amount_due": money(due)})));
            }
        }
        Kind::Refund | Kind::Chargeback => {
            let refundable = match refund_of {
                Some(p) => refundable_of(tx, p, this).await?.min(net),
                None => net,
            };
            if amount > refundable {
                return Err(ApiError::rule(
                    "amount_exceeds_refundable",
                    format!("At most {} can be refunded.", money(refundable)),
                )
                .with("details", json!({"refundable": money(refundable)})));
            }
        }
        Kind::Adjustment => {
            let after = net + amount;
            if after < Decimal::ZERO || after > invoice.total_amount {
                return Err(ApiError::rule(
                    "invalid_adjustment",
                    format!(
                        "An adjustment must keep the net paid between 0.00 and {}.",
                        money(invoice.total_amount)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What a completed transaction is, for [`settle`] and its events.
pub struct Completed<'a> {
    pub transaction_id: &'a str,
    pub kind: Kind,
    pub amount: Decimal,
    pub refund_of: Option<i64>,
    pub gateway: &'a str,
    pub method: &'a str,
}

/// The one place balances move: checks the completed transaction against the locked invoice,
/// then writes the invoice's balances, status (a draft is issued) and the events.
pub async fn settle(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: Option<i64>,
    project_id: i64,
    invoice: &InvoiceRow,
    done: &Completed<'_>,
) -> Result<(), ApiError> {
    check(
        tx,
        invoice,
        done.kind,
        done.amount,
        done.refund_of,
        Some(done.transaction_id),
    )
    .await?;
    let (paid, refunded) = if done.kind.is_refund() {
        (invoice.amount_paid, invoice.amount_refunded + done.amount)
    } else {
        (invoice.amount_paid + done.amount, invoice.amount_refunded)
    };
    let status = status_after(invoice.total_amount, paid, refunded);
    sqlx::query(
        "UPDATE invoices SET amount_paid = $2, amount_refunded = $3, status = $4, \
           paid_date = CASE WHEN $4 = 'paid' THEN COALESCE(paid_date, current_date) ELSE paid_date END, \
           sent_at = COALESCE(sent_at, now()), updated_at = now(), updated_by = $5 WHERE id = $1",
    )
    .bind(invoice.id)
    .bind(paid)
    .bind(refunded)
    .bind(status)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let event = PaymentEvent {
        transaction_id: done.transaction_id.to_owned(),
        invoice_id: invoice.id,
        source_type: invoice.source_type.clone(),
        source_id: invoice.source_id,
        amount: money(done.amount),
        currency: invoice.currency.clone(),
        gateway_name: done.gateway.to_owned(),
        method: done.method.to_owned(),
        amount_paid: money(paid),
        amount_refunded: money(refunded),
        invoice_total: money(invoice.total_amount),
    };
    let project = Some(project_id);
    match done.kind {
        Kind::Payment => {
            ctx.outbox
                .record(tx, project, actor, &PaymentSucceeded(event))
                .await?;
        }
        Kind::Refund | Kind::Chargeback => {
            ctx.outbox
                .record(tx, project, actor, &PaymentRefunded(event))
                .await?;
        }
        Kind::Adjustment => {}
    }
    if status == "paid" && invoice.status != "paid" {
        ctx.outbox
            .record(tx, project, actor, &InvoicePaid(invoice.event()))
            .await?;
    }
    Ok(())
}

/// `payment.failed` for a transaction that did not complete.
async fn publish_failed(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: Option<i64>,
    project_id: i64,
    row: &TxRow,
    invoice: Option<&InvoiceRow>,
) -> Result<(), ApiError> {
    let event = PaymentEvent {
        transaction_id: row.transaction_id.clone(),
        // 0: the payment has no invoice yet.
        invoice_id: invoice.map_or(0, |i| i.id),
        source_type: invoice
            .map(|i| i.source_type.clone())
            .or_else(|| row.source_type.clone())
            .unwrap_or_else(|| "manual".into()),
        source_id: invoice.and_then(|i| i.source_id).or(row.source_id),
        amount: money(row.amount),
        currency: row.currency.clone(),
        gateway_name: row.gateway_name.clone(),
        method: row.method.clone(),
        amount_paid: invoice.map_or_else(|| money(Decimal::ZERO), |i| money(i.amount_paid)),
        amount_refunded: invoice.map_or_else(|| money(Decimal::ZERO), |i| money(i.amount_refunded)),
        invoice_total: invoice.map_or_else(|| money(Decimal::ZERO), |i| money(i.total_amount)),
    };
    ctx.outbox
        .record(tx, Some(project_id), actor, &PaymentFailed(event))
        .await?;
    Ok(())
}

/// A transaction row as the ledger reads it.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct TxRow {
    pub id: i64,
    pub project_id: i64,
    pub transaction_id: String,
    pub transaction_type: String,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub invoice_id: Option<i64>,
    pub method: String,
    pub gateway_name: String,
    pub gateway_transaction_id: Option<String>,
    pub refund_of_id: Option<i64>,
    pub source_type: Option<String>,
    pub source_id: Option<i64>,
    pub payment_method_id: Option<i64>,
    pub idempotency_key: Option<String>,
}

impl TxRow {
    pub fn kind(&self) -> Kind {
        Kind::parse(&self.transaction_type).unwrap_or(Kind::Payment)
    }
}

pub const TX_ROW: &str = "SELECT id, project_id, transaction_id, transaction_type, amount, \
    currency, status, invoice_id, method, gateway_name, gateway_transaction_id, refund_of_id, \
    source_type, source_id, payment_method_id, idempotency_key FROM transactions";

/// A transaction as clients read it (the resource's shape: decimal strings, RFC 3339 times).
pub async fn show(tx: &mut PgConnection, id: i64) -> Result<Value, ApiError> {
    let raw: Value = sqlx::query_scalar(
        "SELECT to_jsonb(t) || jsonb_build_object('amount', round(t.amount, 2)::text) \
         FROM transactions t WHERE t.id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(crate::transactions::TRANSACTION.shape(&raw, "en", true))
}

/// A transaction to write (see [`record`]).
#[derive(Clone, Debug, Default)]
pub struct NewTransaction {
    pub transaction_id: Option<String>,
    pub kind: Option<Kind>,
    /// `None`: a payment takes what is due, a refund what is refundable.
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    pub invoice_id: Option<i64>,
    pub refund_of_id: Option<i64>,
    pub method: Option<String>,
    /// `manual` when `None`; a refund goes through the refunded payment's gateway.
    pub gateway: Option<String>,
    pub token: Option<String>,
    pub reference: Option<String>,
    pub payment_method_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub description: String,
    pub metadata: Option<Value>,
    pub transaction_date: Option<DateTime<Utc>>,
    /// A manual row may be recorded `pending`; otherwise manual rows complete now.
    pub pending: bool,
    pub source: Option<(String, i64)>,
    pub idempotency_key: Option<String>,
    pub return_url: Option<String>,
    /// Record the transaction as failed with this (code, message): a payment the invoice
    /// refused that the caller must still keep a trace of (an order's payment over what is due).
    pub failure: Option<(String, String)>,
}

/// Whether an existing row with the same transaction id is the same transaction.
fn same(existing: &TxRow, new: &NewTransaction, kind: Kind) -> bool {
    existing.kind() == kind
        && new
            .invoice_id
            .is_none_or(|i| existing.invoice_id == Some(i))
        && new.amount.is_none_or(|a| a == existing.amount)
        && new
            .refund_of_id
            .is_none_or(|r| existing.refund_of_id == Some(r))
        && new
            .gateway
            .as_deref()
            .is_none_or(|g| g == existing.gateway_name)
}

/// Writes a transaction in the caller's transaction → (created, the row as clients read it).
/// A known `transaction_id` answers the existing row when it is the same transaction, else 409
/// `duplicate_transaction_id`. Completed rows on an invoice are settled at once; a failed
/// payment publishes `payment.failed`. Permission checks are the caller's.
pub async fn record(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    project_id: i64,
    actor: Option<i64>,
    mut new: NewTransaction,
) -> Result<(bool, Value), ApiError> {
    let kind = new.kind.unwrap_or(Kind::Payment);
    // Concurrent writers of one transaction id (or idempotency key) take turns, so the second
    // finds the first's row.
    for key in [&new.transaction_id, &new.idempotency_key]
        .into_iter()
        .flatten()
    {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('billing-tx:' || $1), $2::int)")
            .bind(key)
            .bind((project_id % i64::from(i32::MAX)) as i32)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(tid) = &new.transaction_id {
        let existing: Option<TxRow> = sqlx::query_as(&format!(
            "{TX_ROW} WHERE project_id = $1 AND transaction_id = $2"
        ))
        .bind(project_id)
        .bind(tid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            if same(&existing, &new, kind) {
                return Ok((false, show(tx, existing.id).await?));
            }
            return Err(ApiError::conflict(
                "duplicate_transaction_id",
                "This transaction id was used for another transaction.",
            ));
        }
    }
    if let Some(key) = &new.idempotency_key {
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM transactions WHERE project_id = $1 AND idempotency_key = $2",
        )
        .bind(project_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            return Ok((false, show(tx, id).await?));
        }
    }
    // The payment being refunded: a completed payment of the project.
    let refunded: Option<TxRow> = match new.refund_of_id {
        Some(id) => {
            let row: Option<TxRow> = sqlx::query_as(&format!(
                "{TX_ROW} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL"
            ))
            .bind(id)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(p) if p.kind() == Kind::Payment && p.status == "completed" => Some(p),
                _ => {
                    return Err(ApiError::field(
                        "refund_of_id",
                        "Name a completed payment of this project.",
                    ))
                }
            }
        }
        None => None,
    };
    if let (Some(p), Some(i)) = (&refunded, new.invoice_id) {
        if p.invoice_id != Some(i) {
            return Err(ApiError::field(
                "refund_of_id",
                "That payment belongs to another invoice.",
            ));
        }
    }
    if kind.is_refund() && new.refund_of_id.is_none() && new.invoice_id.is_none() {
        return Err(ApiError::field(
            "invoice_id",
            "A refund names its invoice or the payment it refunds.",
        ));
    }
    if kind == Kind::Adjustment && new.invoice_id.is_none() {
        return Err(ApiError::field(
            "invoice_id",
            "An adjustment names its invoice.",
        ));
    }
    let invoice_id = new
        .invoice_id
        .or_else(|| refunded.as_ref().and_then(|p| p.invoice_id));
    let invoice = match (invoice_id, &new.source) {
        (Some(id), _) => Some(lock_invoice(tx, project_id, id).await?),
        (None, Some((st, sid))) => lock_invoice_of_source(tx, project_id, st, *sid).await?,
        (None, None) => None,
    };
    let currency = match (&invoice, &new.currency) {
        (Some(i), Some(c)) if !c.eq_ignore_ascii_case(&i.currency) => {
            return Err(ApiError::rule(
                "currency_mismatch",
                format!("This invoice is in {}.", i.currency),
            ))
        }
        (Some(i), _) => i.currency.clone(),
        (None, Some(c)) => c.to_ascii_uppercase(),
        (None, None) => "USD".to_owned(),
    };
    let amount = match (new.amount, &invoice) {
        (Some(a), _) => a,
        (None, Some(i)) if kind == Kind::Payment => i.due(),
        (None, Some(i)) if kind.is_refund() => match &refunded {
            Some(p) => refundable_of(tx, p.id, None).await?.min(i.net()),
            None => i.net(),
        },
        _ => return Err(ApiError::field("amount", "This field is required.")),
    };
    if amount <= Decimal::ZERO && kind != Kind::Adjustment {
        return Err(match kind {
            Kind::Payment => {
                ApiError::rule("amount_exceeds_due", "Nothing is due on this invoice.")
            }
            _ => ApiError::rule("amount_exceeds_refundable", "Nothing is left to refund."),
        });
    }
    if let (Some(i), None) = (&invoice, &new.failure) {
        check(tx, i, kind, amount, new.refund_of_id, None).await?;
    }
    let gateway = match (&refunded, &new.gateway) {
        (Some(p), _) if kind.is_refund() => p.gateway_name.clone(),
        (_, Some(g)) => g.to_ascii_lowercase(),
        _ => "manual".to_owned(),
    };
    let provider = gateways::provider(&gateway)?;
    if new.pending && gateway != "manual" {
        return Err(ApiError::field(
            "status",
            "Only a manual transaction is recorded with a status; a gateway sets it.",
        ));
    }
    // The payment method: its kind is the method, when none was given.
    if let Some(pm) = new.payment_method_id {
        let found: Option<(String, i64)> = sqlx::query_as(
            "SELECT payment_type, customer_id FROM payment_methods \
             WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(pm)
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((payment_type, customer)) = found else {
            return Err(ApiError::field(
                "payment_method_id",
                format!("Invalid pk \"{pm}\" - object does not exist."),
            ));
        };
        if new.method.is_none() {
            new.method = Some(match payment_type.as_str() {
                "bank_account" => "bank_transfer".to_owned(),
                other => other.to_owned(),
            });
        }
        new.customer_id = new.customer_id.or(Some(customer));
    }
    let method = new.method.clone().unwrap_or_else(|| match kind {
        Kind::Payment if gateway == "manual" => "cash".to_owned(),
        Kind::Payment => "credit_card".to_owned(),
        _ => refunded
            .as_ref()
            .map_or_else(|| "other".to_owned(), |p| p.method.clone()),
    });
    let transaction_id = new
        .transaction_id
        .clone()
        .unwrap_or_else(new_transaction_id);
    let outcome = if let Some((code, message)) = &new.failure {
        Outcome::failed(code, message)
    } else if gateway == "manual" {
        if new.pending {
            Outcome::pending(new.reference.clone())
        } else {
            Outcome::completed(new.reference.clone())
        }
    } else if kind.is_refund() {
        let charge = refunded
            .as_ref()
            .and_then(|p| p.gateway_transaction_id.clone())
            .unwrap_or_default();
        provider.refund(&charge, amount, &transaction_id).await?
    } else if kind == Kind::Payment {
        provider
            .create_payment(&gateways::PaymentRequest {
                amount,
                currency: &currency,
                token: new.token.as_deref(),
                idempotency_key: &transaction_id,
                return_url: new.return_url.as_deref(),
            })
            .await?
    } else {
        return Err(ApiError::field(
            "gateway_name",
            "Adjustments are recorded manually.",
        ));
    };
    let source = new.source.clone().or_else(|| {
        invoice
            .as_ref()
            .and_then(|i| i.source_id.map(|s| (i.source_type.clone(), s)))
    });
    let customer = new
        .customer_id
        .or_else(|| invoice.as_ref().and_then(|i| i.customer_id));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO transactions (project_id, transaction_id, transaction_type, amount, currency, \
           status, invoice_id, method, gateway_name, gateway_transaction_id, gateway_response, \
           description, refund_of_id, transaction_date, processed_date, error_code, error_message, \
           payment_method_id, customer_id, metadata, source_type, source_id, next_action, \
           idempotency_key, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, COALESCE($14, now()), \
           CASE WHEN $6 IN ('completed', 'failed') THEN now() END, $15, $16, $17, $18, \
           COALESCE($19, '{}'::jsonb), $20, $21, $22, $23, $24, $24) RETURNING id",
    )
    .bind(project_id)
    .bind(&transaction_id)
    .bind(kind.as_str())
    .bind(amount)
    .bind(&currency)
    .bind(outcome.status.as_str())
    .bind(invoice.as_ref().map(|i| i.id))
    .bind(&method)
    .bind(&gateway)
    .bind(&outcome.gateway_transaction_id)
    .bind(&outcome.response)
    .bind(&new.description)
    .bind(new.refund_of_id)
    .bind(new.transaction_date)
    .bind(&outcome.error_code)
    .bind(&outcome.error_message)
    .bind(new.payment_method_id)
    .bind(customer)
    .bind(&new.metadata)
    .bind(source.as_ref().map(|s| s.0.clone()))
    .bind(source.as_ref().map(|s| s.1))
    .bind(&outcome.next_action)
    .bind(&new.idempotency_key)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| kernel::db::map_db_error(e, UNIQUE))?;
    match outcome.status {
        gateways::Status::Completed => {
            if let Some(i) = &invoice {
                settle(
                    ctx,
                    tx,
                    actor,
                    project_id,
                    i,
                    &Completed {
                        transaction_id: &transaction_id,
                        kind,
                        amount,
                        refund_of: new.refund_of_id,
                        gateway: &gateway,
                        method: &method,
                    },
                )
                .await?;
            }
        }
        gateways::Status::Failed => {
            let row = tx_row(tx, id).await?;
            publish_failed(ctx, tx, actor, project_id, &row, invoice.as_ref()).await?;
        }
        _ => {}
    }
    Ok((true, show(tx, id).await?))
}

const UNIQUE: &[kernel::db::ConstraintField] = &[
    kernel::db::ConstraintField {
        constraint: "transactions_project_id_transaction_id_key",
        field: "transaction_id",
        message: "Transaction with this transaction id already exists.",
    },
    kernel::db::ConstraintField {
        constraint: "transactions_gateway_id",
        field: "gateway_transaction_id",
        message: "Transaction with this gateway transaction id already exists.",
    },
];

async fn tx_row(tx: &mut PgConnection, id: i64) -> Result<TxRow, ApiError> {
    Ok(sqlx::query_as(&format!("{TX_ROW} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?)
}

/// A pending or processing row, locked (terminal rows are `None`: nothing left to do).
pub async fn lock_open(tx: &mut PgConnection, id: i64) -> Result<Option<TxRow>, ApiError> {
    let row: TxRow = sqlx::query_as(&format!("{TX_ROW} WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(matches!(row.status.as_str(), "pending" | "processing").then_some(row))
}

/// Why a pending row could not complete yet.
pub enum Finish {
    Done,
    /// Completed by the provider, but the source's invoice does not exist yet: retry later.
    InvoiceNotReady,
}

/// Moves an open row to its outcome: completed (settled on its invoice; a payment its invoice
/// refuses, e.g. more than is due, is failed instead), failed (`payment.failed`), cancelled or
/// processing. The row must be locked ([`lock_open`]).
pub async fn finish(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: Option<i64>,
    row: &TxRow,
    outcome: &Outcome,
) -> Result<Finish, ApiError> {
    let project_id = row.project_id;
    match outcome.status {
        gateways::Status::Completed => {
            let invoice = match (row.invoice_id, &row.source_type, row.source_id) {
                (Some(i), _, _) => Some(lock_invoice(tx, project_id, i).await?),
                (None, Some(st), Some(sid)) => {
                    lock_invoice_of_source(tx, project_id, st, sid).await?
                }
                _ => None,
            };
            if invoice.is_none() && row.source_type.is_some() {
                return Ok(Finish::InvoiceNotReady);
            }
            if let Some(i) = &invoice {
                if let Err(refused) = check(
                    tx,
                    i,
                    row.kind(),
                    row.amount,
                    row.refund_of_id,
                    Some(&row.transaction_id),
                )
                .await
                {
                    if refused.status() != axum::http::StatusCode::UNPROCESSABLE_ENTITY {
                        return Err(refused);
                    }
                    let failed = Outcome::failed(refused.code(), refused.detail());
                    mark(tx, actor, row, &failed, Some(i.id)).await?;
                    publish_failed(ctx, tx, actor, project_id, row, Some(i)).await?;
                    return Ok(Finish::Done);
                }
            }
            mark(tx, actor, row, outcome, invoice.as_ref().map(|i| i.id)).await?;
            if let Some(i) = &invoice {
                settle(
                    ctx,
                    tx,
                    actor,
                    project_id,
                    i,
                    &Completed {
                        transaction_id: &row.transaction_id,
                        kind: row.kind(),
                        amount: row.amount,
                        refund_of: row.refund_of_id,
                        gateway: &row.gateway_name,
                        method: &row.method,
                    },
                )
                .await?;
            }
        }
        gateways::Status::Failed => {
            mark(tx, actor, row, outcome, row.invoice_id).await?;
            let invoice = match row.invoice_id {
                Some(i) => Some(lock_invoice(tx, project_id, i).await?),
                None => None,
            };
            publish_failed(ctx, tx, actor, project_id, row, invoice.as_ref()).await?;
        }
        _ => mark(tx, actor, row, outcome, row.invoice_id).await?,
    }
    Ok(Finish::Done)
}

async fn mark(
    tx: &mut PgConnection,
    actor: Option<i64>,
    row: &TxRow,
    outcome: &Outcome,
    invoice_id: Option<i64>,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE transactions SET status = $2, invoice_id = $3, \
           processed_date = CASE WHEN $2 IN ('completed', 'failed') THEN now() ELSE processed_date END, \
           error_code = COALESCE($4, error_code), error_message = COALESCE($5, error_message), \
           gateway_response = gateway_response || $6, \
           next_action = CASE WHEN $2 IN ('pending', 'processing') THEN next_action END, \
           updated_at = now(), updated_by = COALESCE($7, updated_by) WHERE id = $1",
    )
    .bind(row.id)
    .bind(outcome.status.as_str())
    .bind(invoice_id)
    .bind(&outcome.error_code)
    .bind(&outcome.error_message)
    .bind(&outcome.response)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Reads the common inputs of a transaction body (REST snake_case, aliases) into `new`.
pub fn read_body(body: &Value, new: &mut NewTransaction, errors: &mut FieldErrors) {
    let text = |keys: &[&str]| -> Option<String> {
        keys.iter()
            .find_map(|k| body.get(*k).filter(|v| !v.is_null()))
            .and_then(|v| match v {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    };
    let id = |keys: &[&str], errors: &mut FieldErrors| -> Option<i64> {
        let (key, v) = keys
            .iter()
            .find_map(|k| body.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))?;
        match v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) if n > 0 => Some(n),
            _ => {
                errors.add(key, "A valid integer is required.");
                None
            }
        }
    };
    if let Some(v) = body.get("amount").filter(|v| !v.is_null()) {
        let signed = new.kind == Some(Kind::Adjustment);
        match parse_amount(v, signed) {
            Ok(a) => new.amount = Some(a),
            Err(m) => errors.add("amount", m),
        }
    }
    if let Some(m) = text(&["method", "payment_method"]) {
        let m = m.to_ascii_lowercase();
        if METHODS.contains(&m.as_str()) {
            new.method = Some(m);
        } else {
            errors.add("method", format!("Use one of: {}.", METHODS.join(", ")));
        }
    }
    if let Some(g) = text(&["gateway_name", "gateway"]) {
        let g = g.to_ascii_lowercase();
        if gateways::NAMES.contains(&g.as_str()) {
            new.gateway = Some(g);
        } else {
            errors.add(
                "gateway_name",
                format!("Use one of: {}.", gateways::NAMES.join(", ")),
            );
        }
    }
    new.token = text(&["token", "payment_token"]).or(new.token.take());
    new.reference = text(&["reference", "gateway_transaction_id"]);
    if new
        .reference
        .as_ref()
        .is_some_and(|r| r.chars().count() > 255)
    {
        errors.add(
            "reference",
            "Ensure this field has no more than 255 characters.",
        );
    }
    if let Some(c) = text(&["currency"]) {
        if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) {
            new.currency = Some(c.to_ascii_uppercase());
        } else {
            errors.add("currency", "Use an ISO 4217 code.");
        }
    }
    if let Some(t) = text(&["transaction_id"]) {
        if t.chars().count() > 100 {
            errors.add("transaction_id", "At most 100 characters.");
        } else {
            new.transaction_id = Some(t);
        }
    }
    new.payment_method_id = id(&["payment_method_id"], errors);
    if let Some(c) = id(&["customer_id", "customer"], errors) {
        new.customer_id = Some(c);
    }
    let description = text(&["description", "reason", "notes"]).unwrap_or_default();
    if description.chars().count() > 1000 {
        errors.add("description", "At most 1000 characters.");
    }
    new.description = description;
    if let Some(m) = body.get("metadata").filter(|v| !v.is_null()) {
        if !m.is_object() || m.to_string().len() > 16_384 {
            errors.add("metadata", "Give an object of at most 16 KiB.");
        } else {
            new.metadata = Some(m.clone());
        }
    }
    if let Some(d) = text(&["transaction_date"]) {
        match DateTime::parse_from_rfc3339(&d) {
            Ok(t) => new.transaction_date = Some(t.with_timezone(&Utc)),
            Err(_) => match chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
                Ok(day) => new.transaction_date = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
                Err(_) => errors.add(
                    "transaction_date",
                    "Datetime has wrong format. Use RFC 3339.",
                ),
            },
        }
    }
    // GraphQL's `idempotencyKey` (REST clients send the header): one transaction per key.
    if let Some(k) = text(&["idempotency_key"]) {
        if k.len() > 255 {
            errors.add("idempotency_key", "At most 255 characters.");
        } else {
            new.idempotency_key = Some(k);
        }
    }
    if let Some(u) = text(&["return_url"]) {
        if u.len() > 2000 || !(u.starts_with("https://") || u.starts_with("http://")) {
            errors.add("return_url", "Enter a valid URL.");
        } else {
            new.return_url = Some(u);
        }
    }
}

/// The newest completed payment of the invoice with at least `amount` left to refund (what a
/// refund without a named payment gives back through).
pub async fn default_refund_of(
    tx: &mut PgConnection,
    project_id: i64,
    invoice_id: i64,
    amount: Decimal,
) -> Result<Option<i64>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT p.id FROM transactions p WHERE p.invoice_id = $1 AND p.project_id = $2 \
         AND p.transaction_type = 'payment' AND p.status = 'completed' AND p.deleted_at IS NULL \
         AND p.amount - COALESCE((SELECT sum(r.amount) FROM transactions r WHERE r.refund_of_id = p.id \
           AND r.status = 'completed' AND r.deleted_at IS NULL), 0) >= $3 \
         ORDER BY p.transaction_date DESC, p.id DESC LIMIT 1",
    )
    .bind(invoice_id)
    .bind(project_id)
    .bind(amount)
    .fetch_optional(&mut *tx)
    .await?)
}

/// A new invoice of a source takes the payments that completed for that source before it
/// existed (an online checkout): each is attached and settled; one the invoice cannot take
/// stays unattached and is logged.
pub async fn attach_source_payments(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    actor: Option<i64>,
    project_id: i64,
    invoice_id: i64,
) -> Result<(), ApiError> {
    let rows: Vec<TxRow> = sqlx::query_as(&format!(
        "{TX_ROW} WHERE project_id = $1 AND invoice_id IS NULL AND status = 'completed' \
         AND transaction_type = 'payment' AND deleted_at IS NULL \
         AND (source_type, source_id) = (SELECT source_type, source_id FROM invoices WHERE id = $2) \
         ORDER BY id FOR UPDATE"
    ))
    .bind(project_id)
    .bind(invoice_id)
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let invoice = lock_invoice(tx, project_id, invoice_id).await?;
        if let Err(e) = check(tx, &invoice, Kind::Payment, row.amount, None, None).await {
            tracing::warn!(transaction = %row.transaction_id, error = %e, "payment left unattached");
            continue;
        }
        sqlx::query("UPDATE transactions SET invoice_id = $2, updated_at = now() WHERE id = $1")
            .bind(row.id)
            .bind(invoice_id)
            .execute(&mut *tx)
            .await?;
        settle(
            ctx,
            tx,
            actor,
            project_id,
            &invoice,
            &Completed {
                transaction_id: &row.transaction_id,
                kind: Kind::Payment,
                amount: row.amount,
                refund_of: None,
                gateway: &row.gateway_name,
                method: &row.method,
            },
        )
        .await?;
    }
    Ok(())
}
