//! Invoices and their ledger (contract billing.md §3, §4): invoices created from placed orders
//! (`order.created`, one per order), manual payments and refunds, and the status derived from
//! completed transactions only.
//!
//! Every ledger change locks the invoice row, checks the amount against what is due or
//! refundable, writes the transaction, recomputes the balances and status, and writes its events,
//! in one transaction. The table's CHECKs (`0 ≤ paid − refunded ≤ total`) back the checks up.

use async_trait::async_trait;
use integration::billing::{
    InvoiceCreated, InvoiceEvent, InvoicePaid, PaymentEvent, PaymentRefunded, PaymentSucceeded,
};
use integration::order::OrderCreated;
use kernel::auth::ProjectScope;
use kernel::events::{begin_once, Envelope, EventHandler};
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::rbac::Grants;
use kernel::resource::{Field, FieldKind, Resource};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

/// Members read; editors record payments; owners and admins refund (billing.md §9).
pub const GRANTS: Grants = Grants {
    editor_extra: &["billing.record_payment"],
    editor_writes: Some(&["billing.record_payment"]),
};

const MONEY: FieldKind = FieldKind::Decimal {
    min: Some(0),
    max: None,
    scale: 2,
};

const ITEMS: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', i.id, \
    'description', i.description, 'product_id', i.product_id, 'variant_id', i.variant_id, \
    'quantity', i.quantity::text, 'unit_price', to_char(i.unit_price, 'FM999999999999990.00'), \
    'discount', to_char(i.discount, 'FM999999999999990.00'), 'tax_rate', i.tax_rate::text, \
    'tax_amount', to_char(i.tax_amount, 'FM999999999999990.00'), \
    'total', to_char(i.total, 'FM999999999999990.00'), 'position', i.position) \
    ORDER BY i.position, i.id) FROM invoice_items i WHERE i.invoice_id = t.id), '[]'::jsonb)";
const DUE: &str =
    "to_char(GREATEST(t.total_amount - t.amount_paid + t.amount_refunded, 0), 'FM999999999999990.00')";
const PAYMENT: &str = "CASE WHEN t.status = 'cancelled' THEN 'CANCELLED' \
    WHEN t.status = 'refunded' THEN 'REFUNDED' \
    WHEN t.amount_refunded > 0 AND t.amount_paid > t.amount_refunded THEN 'PARTIALLY_REFUNDED' \
    WHEN t.amount_paid - t.amount_refunded >= t.total_amount AND t.total_amount > 0 THEN 'PAID' \
    WHEN t.amount_paid - t.amount_refunded > 0 THEN 'PARTIALLY_PAID' ELSE 'PENDING' END";

/// Invoices through the resource machinery (reads; notes are editable). Balances and status
/// move only through transactions.
pub static INVOICE: Resource = Resource {
    service: "billing",
    model: "invoice",
    label: "Invoice",
    table: "invoices",
    fields: &[
        Field::text("invoice_number", 50).read_only(),
        Field::new("customer_id", FieldKind::int_from(1)).read_only(),
        Field::text("customer_type", 20).read_only(),
        Field::new("customer", FieldKind::Json { max_bytes: 0 }).read_only(),
        Field::new("order_id", FieldKind::int_from(1)).read_only(),
        Field::text("source_type", 20).read_only(),
        Field::new("source_id", FieldKind::int_from(1)).read_only(),
        Field::text("status", 20).read_only(),
        Field::new("subtotal", MONEY).read_only(),
        Field::new("discount_amount", MONEY).read_only(),
        Field::new("tax_amount", MONEY).read_only(),
        Field::new("shipping_amount", MONEY).read_only(),
        Field::new("total_amount", MONEY).read_only(),
        Field::new("amount_paid", MONEY).read_only(),
        Field::new("amount_refunded", MONEY).read_only(),
        Field::text("currency", 3).read_only(),
        Field::new("due_date", FieldKind::Date),
        Field::new("paid_date", FieldKind::Date).read_only(),
        Field::new("sent_at", FieldKind::DateTime).read_only(),
        Field::new("cancelled_at", FieldKind::DateTime).read_only(),
        Field::text("notes", 2000),
    ],
    slug_from: None,
    computed: &[
        ("items", ITEMS),
        ("amount_due", DUE),
        ("payment_status", PAYMENT),
    ],
    list: ListSpec {
        filters: &[
            Col::new("status", "t.status", Kind::Text),
            Col::new("customer_id", "t.customer_id", Kind::Int),
            Col::new("order", "t.order_id", Kind::Int),
            Col::new("source_type", "t.source_type", Kind::Text),
            Col::new("source_id", "t.source_id", Kind::Int),
            Col::new("currency", "t.currency", Kind::Text),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("due_date", "t.due_date", Kind::Date),
            Col::new("total_amount", "t.total_amount", Kind::Decimal),
            Col::new("invoice_number", "t.invoice_number", Kind::Text),
        ],
        search: &[
            "t.invoice_number",
            "t.customer->>'name'",
            "t.customer->>'email'",
        ],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&DraftsOnly),
    params: None,
    hidden: None,
};

/// Only drafts are deleted (billing.md §3.4).
pub struct DraftsOnly;

#[async_trait]
impl kernel::resource::Hooks for DraftsOnly {
    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let status: String =
            sqlx::query_scalar("SELECT status FROM invoices WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if status != "draft" {
            return Err(ApiError::rule(
                "invoice_not_draft",
                "Only a draft invoice can be deleted; an issued one is cancelled.",
            ));
        }
        Ok(())
    }
}

fn money(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

/// The next gapless number of the project for this year, `INV-{YYYY}-{NNN}` (the counter row
/// stays locked until the caller's transaction ends).
async fn next_number(tx: &mut PgConnection, project_id: i64) -> Result<String, ApiError> {
    let (year, n): (i32, i64) = sqlx::query_as(
        "INSERT INTO invoice_counters (project_id, year, last) \
         VALUES ($1, extract(year FROM now())::int, 1) \
         ON CONFLICT (project_id, year) DO UPDATE SET last = invoice_counters.last + 1 \
         RETURNING year, last",
    )
    .bind(project_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(format!("INV-{year}-{n:03}"))
}

fn invoice_event(row: &InvoiceRow) -> InvoiceEvent {
    InvoiceEvent {
        invoice_id: row.id,
        invoice_number: row.invoice_number.clone(),
        source_type: row.source_type.clone(),
        source_id: row.source_id,
        total: money(row.total_amount),
        currency: row.currency.clone(),
    }
}

#[derive(sqlx::FromRow)]
struct InvoiceRow {
    id: i64,
    invoice_number: String,
    source_type: String,
    source_id: Option<i64>,
    status: String,
    total_amount: Decimal,
    amount_paid: Decimal,
    amount_refunded: Decimal,
    currency: String,
}

const COLUMNS: &str = "id, invoice_number, source_type, source_id, status, total_amount, \
    amount_paid, amount_refunded, currency";
const ROW: &str = "SELECT id, invoice_number, source_type, source_id, status, total_amount, \
    amount_paid, amount_refunded, currency FROM invoices";

/// Creates the invoice of a placed order, once (a redelivered event finds it).
pub struct OrderInvoicer {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for OrderInvoicer {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<OrderCreated>() else {
            return Ok(());
        };
        let event = event?;
        let Some(project_id) = envelope.project_id else {
            return Ok(());
        };
        let Some(mut tx) = begin_once(&self.ctx.pool, "billing", envelope).await? else {
            return Ok(());
        };
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM invoices WHERE project_id = $1 AND source_type = 'order' \
             AND source_id = $2)",
        )
        .bind(project_id)
        .bind(event.order.order_id)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            let number = next_number(&mut tx, project_id)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
            let dec = |s: &str| s.parse::<Decimal>().unwrap_or(Decimal::ZERO);
            let row: InvoiceRow = sqlx::query_as(&format!(
                "INSERT INTO invoices (project_id, invoice_number, customer_id, customer, order_id, \
                   source_type, source_id, status, subtotal, discount_amount, tax_amount, \
                   shipping_amount, total_amount, currency, sent_at, created_by, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, 'order', $5, 'sent', $6, $7, $8, $9, $10, $11, now(), $3, $3) \
                 RETURNING {COLUMNS}"
            ))
            .bind(project_id)
            .bind(&number)
            .bind(event.customer_id)
            .bind(json!({"id": event.customer_id, "email": event.customer_email}))
            .bind(event.order.order_id)
            .bind(dec(&event.subtotal))
            .bind(dec(&event.discount_amount))
            .bind(dec(&event.tax_amount))
            .bind(dec(&event.shipping_cost))
            .bind(dec(&event.total))
            .bind(&event.currency)
            .fetch_one(&mut *tx)
            .await?;
            for (n, line) in event.items.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO invoice_items (invoice_id, description, product_id, variant_id, \
                       quantity, unit_price, total, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(row.id)
                .bind(line.sku.clone().unwrap_or_else(|| format!("Product {}", line.product_id)))
                .bind(line.product_id)
                .bind(line.variant_id)
                .bind(Decimal::from(line.quantity))
                .bind(dec(&line.unit_price))
                .bind(dec(&line.total_price))
                .bind(n as i32)
                .execute(&mut *tx)
                .await?;
            }
            self.ctx
                .outbox
                .record(
                    &mut tx,
                    Some(project_id),
                    envelope.actor_id,
                    &InvoiceCreated(invoice_event(&row)),
                )
                .await?;
        }
        tx.commit().await?;
        self.ctx.outbox.nudge();
        Ok(())
    }
}

/// An invoice of the project, locked.
async fn lock(tx: &mut PgConnection, project_id: i64, id: i64) -> Result<InvoiceRow, ApiError> {
    sqlx::query_as(&format!(
        "{ROW} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(id)
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// The stored status after a ledger change (billing.md §3.3).
fn status_after(total: Decimal, paid: Decimal, refunded: Decimal) -> &'static str {
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

fn amount(body: &Value, errors: &mut FieldErrors) -> Option<Decimal> {
    let v = body.get("amount").filter(|v| !v.is_null())?;
    let parsed = match v {
        Value::String(s) => s.trim().parse::<Decimal>().ok(),
        Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
        _ => None,
    };
    match parsed {
        Some(d)
            if d > Decimal::ZERO && d.scale() <= 4 && d < Decimal::from(1_000_000_000_000i64) =>
        {
            Some(d)
        }
        _ => {
            errors.add("amount", "A positive decimal amount is required.");
            None
        }
    }
}

const METHODS: &[&str] = &[
    "cash",
    "credit_card",
    "debit_card",
    "bank_transfer",
    "wallet",
    "check",
    "other",
];

/// `POST m/invoices/{id}/payments/` `{amount? (default: what is due), method, reference?,
/// transaction_id?}`: a manual payment, completed now.
pub async fn pay(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("billing.record_payment", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let wanted = amount(body, &mut errors);
    let method = body
        .get("method")
        .or_else(|| body.get("payment_method"))
        .and_then(Value::as_str)
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "cash".into());
    if !METHODS.contains(&method.as_str()) {
        errors.add("method", format!("Use one of: {}.", METHODS.join(", ")));
    }
    let given_id = body
        .get("transaction_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if given_id.as_ref().is_some_and(|t| t.len() > 100) {
        errors.add("transaction_id", "At most 100 characters.");
    }
    let reference = body
        .get("reference")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(255)
        .collect::<String>();
    errors.into_result()?;
    ledger(
        ctx,
        scope,
        id,
        Kind2::Payment,
        wanted,
        method,
        given_id,
        reference,
    )
    .await
}

/// `POST m/invoices/{id}/refund/` `{amount, reason}`: gives back up to what was paid net.
pub async fn refund(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("billing.refund_payment", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let wanted = amount(body, &mut errors);
    if wanted.is_none() && errors.is_empty() {
        errors.required("amount");
    }
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(1000)
        .collect::<String>();
    errors.into_result()?;
    let given_id = body
        .get("transaction_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    ledger(
        ctx,
        scope,
        id,
        Kind2::Refund,
        wanted,
        "other".into(),
        given_id,
        reason,
    )
    .await
}

#[derive(Clone, Copy, PartialEq)]
enum Kind2 {
    Payment,
    Refund,
}

#[allow(clippy::too_many_arguments)]
async fn ledger(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    kind: Kind2,
    wanted: Option<Decimal>,
    method: String,
    given_id: Option<String>,
    description: String,
) -> Result<Value, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let invoice = lock(&mut tx, scope.project_id(), id).await?;
    let type_name = if kind == Kind2::Payment {
        "payment"
    } else {
        "refund"
    };
    if let Some(tid) = &given_id {
        let existing: Option<(String, Decimal, i64, Value)> = sqlx::query_as(
            "SELECT transaction_type, amount, invoice_id, to_jsonb(t.*) FROM transactions t \
             WHERE project_id = $1 AND transaction_id = $2",
        )
        .bind(scope.project_id())
        .bind(tid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((t, a, inv, row)) = existing {
            if t == type_name && inv == id && wanted.is_none_or(|w| w == a) {
                return Ok(shape(row));
            }
            return Err(ApiError::conflict(
                "duplicate_transaction_id",
                "This transaction id was used for another transaction.",
            ));
        }
    }
    if invoice.status == "cancelled" {
        return Err(ApiError::rule(
            "invoice_cancelled",
            "This invoice is cancelled.",
        ));
    }
    let net = invoice.amount_paid - invoice.amount_refunded;
    let (value, paid, refunded) = match kind {
        Kind2::Payment => {
            let due = (invoice.total_amount - net).max(Decimal::ZERO);
            let value = wanted.unwrap_or(due);
            if value <= Decimal::ZERO || value > due {
                return Err(ApiError::rule(
                    "amount_exceeds_due",
                    format!("At most {} is due on this invoice.", money(due)),
                )
                .with("details", json!({"amount_due": money(due)})));
            }
            (value, invoice.amount_paid + value, invoice.amount_refunded)
        }
        Kind2::Refund => {
            let value = wanted.unwrap_or(net);
            if value > net {
                return Err(ApiError::rule(
                    "amount_exceeds_refundable",
                    format!("At most {} can be refunded.", money(net)),
                ));
            }
            (value, invoice.amount_paid, invoice.amount_refunded + value)
        }
    };
    let status = status_after(invoice.total_amount, paid, refunded);
    let row: Value = sqlx::query_scalar(
        "INSERT INTO transactions (project_id, transaction_id, transaction_type, amount, currency, \
           status, invoice_id, method, description, processed_date, created_by, updated_by) \
         VALUES ($1, COALESCE($2, 'TXN-' || replace(gen_random_uuid()::text, '-', '')), $3, $4, $5, \
           'completed', $6, $7, $8, now(), $9, $9) RETURNING to_jsonb(transactions.*)",
    )
    .bind(scope.project_id())
    .bind(&given_id)
    .bind(type_name)
    .bind(value)
    .bind(&invoice.currency)
    .bind(id)
    .bind(&method)
    .bind(&description)
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE invoices SET amount_paid = $2, amount_refunded = $3, status = $4, \
           paid_date = CASE WHEN $4 = 'paid' THEN COALESCE(paid_date, current_date) ELSE paid_date END, \
           updated_at = now(), updated_by = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(paid)
    .bind(refunded)
    .bind(status)
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    let payment = PaymentEvent {
        transaction_id: row["transaction_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        invoice_id: id,
        source_type: invoice.source_type.clone(),
        source_id: invoice.source_id,
        amount: money(value),
        currency: invoice.currency.clone(),
        gateway_name: "manual".into(),
        method: method.clone(),
        amount_paid: money(paid),
        amount_refunded: money(refunded),
        invoice_total: money(invoice.total_amount),
    };
    let project = Some(scope.project_id());
    let actor = Some(scope.user_id());
    match kind {
        Kind2::Payment => {
            ctx.outbox
                .record(&mut tx, project, actor, &PaymentSucceeded(payment))
                .await?;
            if status == "paid" && invoice.status != "paid" {
                ctx.outbox
                    .record(
                        &mut tx,
                        project,
                        actor,
                        &InvoicePaid(invoice_event(&invoice)),
                    )
                    .await?;
            }
        }
        Kind2::Refund => {
            ctx.outbox
                .record(&mut tx, project, actor, &PaymentRefunded(payment))
                .await?;
        }
    }
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(shape(row))
}

/// A transaction as clients read it (decimal strings).
fn shape(mut row: Value) -> Value {
    if let Some(map) = row.as_object_mut() {
        for k in ["project_id", "deleted_at", "deleted_by"] {
            map.remove(k);
        }
        if let Some(a) = map
            .get("amount")
            .and_then(|a| a.to_string().parse::<Decimal>().ok())
        {
            map.insert("amount".into(), json!(money(a)));
        }
    }
    row
}

/// `POST m/invoices/` (manual): `{customer_id?, customer_name?, customer_email?, items:[{description,
/// quantity, unit_price, discount?, tax_rate?}], discount_amount?, shipping_amount?, currency?,
/// due_date?, notes?, issue?}` → 201. Totals are computed here (§3.2): line net = qty × price −
/// discount, tax = round(net × rate / 100), total = subtotal − discount + tax + shipping.
pub async fn create(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("billing.add_invoice", &GRANTS)?;
    let dec = |v: Option<&Value>| -> Option<Decimal> {
        match v? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.to_string().parse().ok(),
            _ => None,
        }
    };
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty() && i.len() <= 500)
        .ok_or_else(|| ApiError::field("items", "Give a list of 1 to 500 lines."))?;
    let mut per_item = Vec::new();
    let mut lines = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let mut e = FieldErrors::new();
        let description = item
            .get("description")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        if description.is_empty() || description.chars().count() > 500 {
            e.add("description", "Give 1 to 500 characters.");
        }
        let quantity = dec(item.get("quantity")).filter(|q| *q > Decimal::ZERO);
        let price = dec(item.get("unit_price")).filter(|p| *p >= Decimal::ZERO);
        let discount = dec(item.get("discount")).unwrap_or(Decimal::ZERO);
        let rate = dec(item.get("tax_rate")).unwrap_or(Decimal::ZERO);
        if quantity.is_none() {
            e.add("quantity", "A positive quantity is required.");
        }
        if price.is_none() {
            e.add("unit_price", "A non-negative price is required.");
        }
        if !(Decimal::ZERO..=Decimal::from(100)).contains(&rate) {
            e.add("tax_rate", "Give a percentage from 0 to 100.");
        }
        if let (Some(q), Some(p)) = (quantity, price) {
            if discount < Decimal::ZERO || discount > q * p {
                e.add(
                    "discount",
                    "The discount must be between 0 and the line amount.",
                );
            } else {
                let net = q * p - discount;
                let tax = (net * rate / Decimal::from(100)).round_dp(2);
                lines.push((
                    n,
                    description.to_owned(),
                    q,
                    p,
                    discount,
                    rate,
                    tax,
                    net + tax,
                ));
            }
        }
        per_item.push(e);
    }
    ApiError::per_item("items", &per_item)?;
    let mut errors = FieldErrors::new();
    let header = |k: &str, errors: &mut FieldErrors| match body.get(k).filter(|v| !v.is_null()) {
        None => Decimal::ZERO,
        Some(v) => match dec(Some(v)).filter(|d| *d >= Decimal::ZERO) {
            Some(d) => d,
            None => {
                errors.add(k, "A non-negative decimal is required.");
                Decimal::ZERO
            }
        },
    };
    let discount = header("discount_amount", &mut errors);
    let shipping = header("shipping_amount", &mut errors);
    let subtotal: Decimal = lines.iter().map(|l| l.2 * l.3 - l.4).sum();
    let tax: Decimal = lines.iter().map(|l| l.6).sum();
    if discount > subtotal {
        errors.add(
            "discount_amount",
            "The discount cannot exceed the subtotal.",
        );
    }
    let currency = body
        .get("currency")
        .and_then(Value::as_str)
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "USD".into());
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        errors.add("currency", "Use an ISO 4217 code.");
    }
    let notes = body.get("notes").and_then(Value::as_str).unwrap_or("");
    if notes.chars().count() > 2000 {
        errors.add("notes", "At most 2000 characters.");
    }
    let total = subtotal - discount + tax + shipping;
    if let Some(given) = dec(body.get("total_amount").or_else(|| body.get("total"))) {
        if given != total {
            errors.add("total", "must equal price - discount + tax + shipping");
        }
    }
    errors.into_result()?;
    let issue = body.get("issue").and_then(Value::as_bool).unwrap_or(false);
    let customer = json!({
        "id": body.get("customer_id"),
        "name": body.get("customer_name"),
        "email": body.get("customer_email"),
        "phone": body.get("customer_phone"),
    });
    let mut tx = ctx.pool.begin().await?;
    let number = next_number(&mut tx, scope.project_id()).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO invoices (project_id, invoice_number, customer_id, customer, status, subtotal, \
           discount_amount, tax_amount, shipping_amount, total_amount, currency, notes, sent_at, \
           created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
           CASE WHEN $5 = 'sent' THEN now() END, $13, $13) RETURNING id",
    )
    .bind(scope.project_id())
    .bind(&number)
    .bind(body.get("customer_id").and_then(Value::as_i64))
    .bind(&customer)
    .bind(if issue { "sent" } else { "draft" })
    .bind(subtotal)
    .bind(discount)
    .bind(tax)
    .bind(shipping)
    .bind(total)
    .bind(&currency)
    .bind(notes)
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?;
    for (n, description, q, p, d, rate, line_tax, line_total) in lines {
        sqlx::query(
            "INSERT INTO invoice_items (invoice_id, description, quantity, unit_price, discount, \
               tax_rate, tax_amount, total, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(description)
        .bind(q)
        .bind(p)
        .bind(d)
        .bind(rate)
        .bind(line_tax)
        .bind(line_total)
        .bind(n as i32)
        .execute(&mut *tx)
        .await?;
    }
    let row: InvoiceRow = sqlx::query_as(&format!("{ROW} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &InvoiceCreated(invoice_event(&row)),
        )
        .await?;
    tx.commit().await?;
    ctx.outbox.nudge();
    kernel::resource::retrieve(
        ctx,
        &INVOICE,
        &kernel::auth::ReadScope::Member(scope.clone()),
        id,
        "en",
    )
    .await
}
