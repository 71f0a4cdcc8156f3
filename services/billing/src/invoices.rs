//! Invoices (contract billing.md §3): creation with computed totals and gapless per-project
//! numbers (one invoice per source: a placed order from `order.created`, a repair…), the
//! editing rules of §3.4 with the documented "set the status" flows, `send/`, `cancel/`,
//! payments and refunds through the ledger, and `overdue` computed on read.

use async_trait::async_trait;
use integration::billing::{InvoiceCancelled, InvoiceCreated, InvoiceSent};
use kernel::auth::{ProjectScope, ReadScope};
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::BTreeMap;

use crate::ledger::{self, InvoiceRow, NewTransaction};
use crate::GRANTS;

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
/// `overdue` is never stored: an issued, unpaid invoice past its due date (§3.3).
const STATUS: &str =
    "CASE WHEN t.status IN ('sent', 'partially_paid') AND t.due_date < current_date \
    THEN 'overdue' ELSE t.status END";

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
        Field::new("subtotal", MONEY).read_only(),
        Field::new("discount_amount", MONEY).read_only(),
        Field::new("tax_amount", MONEY).read_only(),
        Field::new("shipping_amount", MONEY).read_only(),
        Field::new("total_amount", MONEY).read_only(),
        Field::new("amount_paid", MONEY).read_only(),
        Field::new("amount_refunded", MONEY).read_only(),
        Field::new(
            "profit",
            FieldKind::Decimal {
                min: None,
                max: None,
                scale: 2,
            },
        ),
        Field::text("currency", 3).read_only(),
        Field::text("coupon_code", 50).read_only(),
        Field::new("due_date", FieldKind::Date),
        Field::new("paid_date", FieldKind::Date).read_only(),
        Field::new("sent_at", FieldKind::DateTime).read_only(),
        Field::new("cancelled_at", FieldKind::DateTime).read_only(),
        Field::text("cancel_reason", 1000).read_only(),
        Field::text("notes", 2000),
        Field::new("metadata", FieldKind::Json { max_bytes: 16_384 }),
    ],
    slug_from: None,
    computed: &[
        ("status", STATUS),
        ("items", ITEMS),
        ("amount_due", DUE),
        ("payment_status", PAYMENT),
    ],
    list: ListSpec {
        filters: &[
            Col::new("status", STATUS, Kind::Text),
            Col::new("payment_status", PAYMENT, Kind::Text),
            Col::new("payment", PAYMENT, Kind::Text),
            Col::new("customer", "t.customer_id", Kind::Int),
            Col::new("customer_id", "t.customer_id", Kind::Int),
            Col::new("customer_type", "t.customer_type", Kind::Text),
            Col::new("order", "t.order_id", Kind::Int),
            Col::new("order_id", "t.order_id", Kind::Int),
            Col::new("source_type", "t.source_type", Kind::Text),
            Col::new("source_id", "t.source_id", Kind::Int),
            Col::new("currency", "t.currency", Kind::Text),
            Col::new("invoice_number", "t.invoice_number", Kind::Text),
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("due_date", "t.due_date", Kind::Date),
            Col::new("total_amount", "t.total_amount", Kind::Decimal),
            Col::new("total", "t.total_amount", Kind::Decimal),
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
        extra_params: &[
            "start_date",
            "end_date",
            "due_before",
            "due_after",
            "min_amount",
            "max_amount",
        ],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&InvoiceRules),
    params: Some(params),
    hidden: None,
    related: &[],
};

/// `start_date`/`end_date` (created, a whole day), `due_before`/`due_after`,
/// `min_amount`/`max_amount` (total).
fn params(name: &str, value: &str, qb: &mut QueryBuilder<'_, Postgres>) -> Result<(), ApiError> {
    let date = || {
        chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::field(name, "Enter a valid date (YYYY-MM-DD)."))
    };
    match name {
        "start_date" => {
            qb.push(" AND t.created_at >= ").push_bind(date()?);
        }
        "end_date" => {
            qb.push(" AND t.created_at < ")
                .push_bind(date()?)
                .push(" + 1");
        }
        "due_before" => {
            qb.push(" AND t.due_date < ").push_bind(date()?);
        }
        "due_after" => {
            qb.push(" AND t.due_date > ").push_bind(date()?);
        }
        "min_amount" | "max_amount" => {
            let amount: Decimal = value
                .trim()
                .parse()
                .map_err(|_| ApiError::field(name, "A valid number is required."))?;
            qb.push(if name == "min_amount" {
                " AND t.total_amount >= "
            } else {
                " AND t.total_amount <= "
            })
            .push_bind(amount);
        }
        _ => return Err(ApiError::field(name, "Unknown filter.")),
    }
    Ok(())
}

/// The invoice as clients read it.
pub async fn show(ctx: &ServiceContext, scope: &ProjectScope, id: i64) -> Result<Value, ApiError> {
    kernel::resource::retrieve(ctx, &INVOICE, &ReadScope::Member(scope.clone()), id, "en").await
}

/// The next gapless number of the project for this year, `INV-{YYYY}-{NNN}` (the counter row
/// stays locked until the caller's transaction ends).
async fn next_number(tx: &mut PgConnection, project_id: i64) -> Result<String, ApiError> {
    take_numbers(tx, &BTreeMap::from([(project_id, 1)]))
        .await?
        .remove(&project_id)
        .and_then(|numbers| numbers.into_iter().next())
        .ok_or_else(|| ApiError::internal("no invoice number was taken"))
}

/// Takes the next `n` gapless numbers of each project (`project → n`) for this year in one
/// statement, the counter rows locked in project order until the caller's transaction ends:
/// each project's numbers, in order.
pub(crate) async fn take_numbers(
    tx: &mut PgConnection,
    counts: &BTreeMap<i64, i64>,
) -> Result<BTreeMap<i64, Vec<String>>, ApiError> {
    let (projects, ns): (Vec<i64>, Vec<i64>) = counts.iter().map(|(p, n)| (*p, *n)).unzip();
    let taken: Vec<(i64, i32, i64)> = sqlx::query_as(
        "INSERT INTO invoice_counters (project_id, year, last) \
         SELECT c.project, extract(year FROM now())::int, c.n \
         FROM unnest($1::bigint[], $2::bigint[]) AS c(project, n) ORDER BY c.project \
         ON CONFLICT (project_id, year) DO UPDATE SET last = invoice_counters.last + EXCLUDED.last \
         RETURNING project_id, year, last",
    )
    .bind(&projects)
    .bind(&ns)
    .fetch_all(&mut *tx)
    .await?;
    Ok(taken
        .into_iter()
        .map(|(project, year, last)| {
            let n = counts.get(&project).copied().unwrap_or(1);
            let numbers = (last - n + 1..=last)
                .map(|k| format!("INV-{year}-{k:03}"))
                .collect();
            (project, numbers)
        })
        .collect())
}

/// One line of an invoice, computed (§3.2).
pub(crate) struct Line {
    pub description: String,
    pub product_id: Option<i64>,
    pub variant_id: Option<i64>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub discount: Decimal,
    pub tax_rate: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
}

/// The header amounts an edit starts from.
#[derive(Default)]
struct Base {
    subtotal: Decimal,
    discount: Decimal,
    tax: Decimal,
    shipping: Decimal,
    has_items: bool,
}

/// Amounts after a create or an edit; `lines: None` keeps the stored lines.
struct Amounts {
    subtotal: Decimal,
    discount: Decimal,
    tax: Decimal,
    shipping: Decimal,
    total: Decimal,
    lines: Option<Vec<Line>>,
}

const AMOUNT_KEYS: &[&str] = &[
    "items",
    "subtotal",
    "price",
    "discount_amount",
    "discount",
    "tax_amount",
    "tax",
    "shipping_amount",
    "shipping",
    "total_amount",
    "total",
];

/// A decimal input with at most `scale` digits after the point and 12 before.
fn decimal(v: &Value, scale: u32) -> Option<Decimal> {
    let d: Decimal = match v {
        Value::String(s) => s.trim().parse().ok()?,
        Value::Number(n) => n.to_string().parse().ok()?,
        _ => return None,
    };
    let d = d.normalize();
    (d.scale() <= scale && d.abs() < Decimal::from(1_000_000_000_000i64)).then_some(d)
}

fn lines(items: &[Value]) -> Result<Vec<Line>, ApiError> {
    if items.len() > 500 {
        return Err(ApiError::field("items", "At most 500 lines."));
    }
    let mut per_item = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let mut e = FieldErrors::new();
        let description = item
            .get("description")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        if description.is_empty() || description.chars().count() > 500 {
            e.add("description", "Give 1 to 500 characters.");
        }
        let get = |k: &str| item.get(k).filter(|v| !v.is_null());
        let quantity = get("quantity")
            .and_then(|v| decimal(v, 4))
            .filter(|q| *q > Decimal::ZERO);
        let price = get("unit_price")
            .or_else(|| get("price"))
            .and_then(|v| decimal(v, 2))
            .filter(|p| *p >= Decimal::ZERO);
        let discount = match get("discount") {
            None => Some(Decimal::ZERO),
            Some(v) => decimal(v, 2).filter(|d| *d >= Decimal::ZERO),
        };
        let rate = match get("tax_rate") {
            None => Some(Decimal::ZERO),
            Some(v) => decimal(v, 4).filter(|r| (Decimal::ZERO..=Decimal::from(100)).contains(r)),
        };
        let id = |k: &str| get(k).and_then(Value::as_i64).filter(|n| *n > 0);
        if quantity.is_none() {
            e.add("quantity", "A positive quantity is required.");
        }
        if price.is_none() {
            e.add(
                "unit_price",
                "A non-negative price with at most 2 decimals is required.",
            );
        }
        if rate.is_none() {
            e.add("tax_rate", "Give a percentage from 0 to 100.");
        }
        if discount.is_none() {
            e.add(
                "discount",
                "A non-negative amount with at most 2 decimals is required.",
            );
        }
        if let (Some(q), Some(p), Some(d), Some(r)) = (quantity, price, discount, rate) {
            if d > q * p {
                e.add(
                    "discount",
                    "The discount must be between 0 and the line amount.",
                );
            } else {
                let net = (q * p - d).round_dp(2);
                let tax = (net * r / Decimal::from(100)).round_dp(2);
                out.push(Line {
                    description: description.to_owned(),
                    product_id: id("product_id"),
                    variant_id: id("variant_id"),
                    quantity: q,
                    unit_price: p,
                    discount: d,
                    tax_rate: r,
                    tax,
                    total: net + tax,
                });
            }
        }
        per_item.push(e);
    }
    ApiError::per_item("items", &per_item)?;
    Ok(out)
}

/// §3.2 over `body` on top of `base`: lines give subtotal and tax; a header-only invoice takes
/// them as given (a lone total is the subtotal); total = subtotal − discount + tax + shipping.
fn amounts(body: &Value, base: &Base) -> Result<Amounts, ApiError> {
    let mut errors = FieldErrors::new();
    let mut header = |keys: &[&str]| -> Option<Decimal> {
        let (k, v) = keys
            .iter()
            .find_map(|k| body.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))?;
        match decimal(v, 2).filter(|d| *d >= Decimal::ZERO) {
            Some(d) => Some(d),
            None => {
                errors.add(
                    keys[0],
                    format!("A non-negative amount with at most 2 decimals is required ({k})."),
                );
                None
            }
        }
    };
    let discount = header(&["discount_amount", "discount"]);
    let shipping = header(&["shipping_amount", "shipping"]);
    let tax_in = header(&["tax_amount", "tax"]);
    let subtotal_in = header(&["subtotal", "price"]);
    let total_in = header(&["total_amount", "total"]);
    let discount = discount.unwrap_or(base.discount);
    let shipping = shipping.unwrap_or(base.shipping);
    let items = match body.get("items").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Array(items)) => Some(lines(items)?),
        Some(_) => {
            errors.add("items", "Give a list of lines.");
            None
        }
    };
    errors.into_result()?;
    let mut errors = FieldErrors::new();
    let (subtotal, tax) = match &items {
        Some(lines) if !lines.is_empty() => {
            let subtotal: Decimal = lines.iter().map(|l| l.total - l.tax).sum();
            let tax: Decimal = lines.iter().map(|l| l.tax).sum();
            (subtotal, tax)
        }
        _ if base.has_items && items.is_none() => (base.subtotal, base.tax),
        _ => {
            let tax = tax_in.unwrap_or(base.tax);
            let subtotal = match (subtotal_in, total_in) {
                (Some(s), _) => s,
                (None, Some(t)) => t + discount - tax - shipping,
                (None, None) => base.subtotal,
            };
            (subtotal, tax)
        }
    };
    if subtotal_in.is_some_and(|s| s != subtotal) {
        errors.add("subtotal", "must equal the sum of the lines");
    }
    if tax_in.is_some_and(|t| t != tax) {
        errors.add("tax_amount", "must equal the sum of the lines' tax");
    }
    if subtotal < Decimal::ZERO {
        errors.add("total", "must equal price - discount + tax + shipping");
    } else if discount > subtotal {
        errors.add(
            "discount_amount",
            "The discount cannot exceed the subtotal.",
        );
    }
    let total = subtotal - discount + tax + shipping;
    if total_in.is_some_and(|t| t != total) {
        errors.add("total", "must equal price - discount + tax + shipping");
    }
    errors.into_result()?;
    Ok(Amounts {
        subtotal,
        discount,
        tax,
        shipping,
        total,
        lines: items,
    })
}

async fn write_lines(tx: &mut PgConnection, invoice: i64, lines: &[Line]) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM invoice_items WHERE invoice_id = $1")
        .bind(invoice)
        .execute(&mut *tx)
        .await?;
    insert_lines(tx, &[(invoice, lines)]).await
}

/// Writes the lines of invoices, in one statement, each invoice's at positions 0, 1, … in the
/// order given.
pub(crate) async fn insert_lines(
    tx: &mut PgConnection,
    invoices: &[(i64, &[Line])],
) -> Result<(), ApiError> {
    let all = || invoices.iter().flat_map(|(_, lines)| lines.iter());
    let decimals = |f: fn(&Line) -> Decimal| all().map(f).collect::<Vec<_>>();
    let ids = |f: fn(&Line) -> Option<i64>| all().map(f).collect::<Vec<_>>();
    let descriptions: Vec<&str> = all().map(|l| l.description.as_str()).collect();
    let (owners, positions): (Vec<i64>, Vec<i32>) = invoices
        .iter()
        .flat_map(|(id, lines)| (0..lines.len()).map(move |n| (*id, n as i32)))
        .unzip();
    sqlx::query(
        "INSERT INTO invoice_items (invoice_id, description, product_id, variant_id, quantity, \
           unit_price, discount, tax_rate, tax_amount, total, position) \
         SELECT l.invoice, l.description, l.product_id, l.variant_id, l.quantity, l.unit_price, \
           l.discount, l.tax_rate, l.tax, l.total, l.position \
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::numeric[], \
           $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], \
           $11::int[]) WITH ORDINALITY AS l(invoice, description, product_id, variant_id, \
             quantity, unit_price, discount, tax_rate, tax, total, position, n) ORDER BY l.n",
    )
    .bind(&owners)
    .bind(&descriptions)
    .bind(ids(|l| l.product_id))
    .bind(ids(|l| l.variant_id))
    .bind(decimals(|l| l.quantity))
    .bind(decimals(|l| l.unit_price))
    .bind(decimals(|l| l.discount))
    .bind(decimals(|l| l.tax_rate))
    .bind(decimals(|l| l.tax))
    .bind(decimals(|l| l.total))
    .bind(&positions)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

const SOURCES: &[&str] = &["manual", "order", "repair", "debt", "pos", "subscription"];
const CUSTOMER_TYPES: &[&str] = &["crm", "user", "pos", "debt"];

fn text_of<'a>(body: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn int_of(body: &Value, keys: &[&str], errors: &mut FieldErrors) -> Option<i64> {
    let (k, v) = keys
        .iter()
        .find_map(|k| body.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))?;
    match v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    {
        Some(n) if n > 0 => Some(n),
        _ => {
            errors.add(k, "A valid integer is required.");
            None
        }
    }
}

/// `POST m/invoices/` → (created, invoice): `{items?, subtotal?/discount_amount?/tax_amount?/
/// shipping_amount?/total_amount?, customer_id?, customer_type?, customer_name/email/phone?,
/// order_id?, source_type?, source_id?, invoice_number?, currency?, due_date?, notes?,
/// metadata?, coupon_code?, profit?, issue? | status: "sent"}`. A source that already has its
/// invoice answers it (200).
pub async fn create(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    scope.require("billing.add_invoice", &GRANTS)?;
    if !body.is_object() {
        return Err(ApiError::not_a_dictionary());
    }
    let computed = amounts(body, &Base::default())?;
    let mut errors = FieldErrors::new();
    let currency = text_of(body, &["currency"])
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| "USD".into());
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        errors.add("currency", "Use an ISO 4217 code.");
    }
    let notes = body.get("notes").and_then(Value::as_str).unwrap_or("");
    if notes.chars().count() > 2000 {
        errors.add("notes", "At most 2000 characters.");
    }
    let customer_id = int_of(body, &["customer_id", "customer"], &mut errors);
    let order_id = int_of(body, &["order_id", "order"], &mut errors);
    let source_id = int_of(body, &["source_id"], &mut errors);
    let source_type = text_of(body, &["source_type"])
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "manual".into());
    if !SOURCES.contains(&source_type.as_str()) {
        errors.add(
            "source_type",
            format!("Use one of: {}.", SOURCES.join(", ")),
        );
    }
    if source_type != "manual" && source_id.is_none() {
        errors.add("source_id", "A source invoice names its source id.");
    }
    let customer_type = text_of(body, &["customer_type"])
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "crm".into());
    if !CUSTOMER_TYPES.contains(&customer_type.as_str()) {
        errors.add(
            "customer_type",
            format!("Use one of: {}.", CUSTOMER_TYPES.join(", ")),
        );
    }
    let number = text_of(body, &["invoice_number"]).map(str::to_owned);
    if number
        .as_ref()
        .is_some_and(|n| n.chars().count() > 50 || n.chars().any(char::is_control))
    {
        errors.add("invoice_number", "At most 50 characters.");
    }
    let due_date = match body.get("due_date").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => match v
            .as_str()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
        {
            Some(d) if d >= chrono::Utc::now().date_naive() => Some(d),
            Some(_) => {
                errors.add("due_date", "The due date cannot be before the issue date.");
                None
            }
            None => {
                errors.add("due_date", "Date has wrong format. Use YYYY-MM-DD.");
                None
            }
        },
    };
    let metadata = body.get("metadata").filter(|v| !v.is_null()).cloned();
    if metadata
        .as_ref()
        .is_some_and(|m| !m.is_object() || m.to_string().len() > 16_384)
    {
        errors.add("metadata", "Give an object of at most 16 KiB.");
    }
    let coupon = text_of(body, &["coupon_code", "coupon_key"]).map(str::to_owned);
    if coupon.as_ref().is_some_and(|c| c.chars().count() > 50) {
        errors.add("coupon_code", "At most 50 characters.");
    }
    let profit = match body.get("profit").filter(|v| !v.is_null()) {
        None => Decimal::ZERO,
        Some(v) => decimal(v, 2).unwrap_or_else(|| {
            errors.add("profit", "A valid number is required.");
            Decimal::ZERO
        }),
    };
    let customer = json!({
        "id": customer_id,
        "name": text_of(body, &["customer_name"]),
        "email": text_of(body, &["customer_email"]),
        "phone": text_of(body, &["customer_phone"]),
    });
    if ["customer_name", "customer_email", "customer_phone"]
        .iter()
        .any(|k| text_of(body, &[k]).is_some_and(|v| v.chars().count() > 255))
    {
        errors.add(
            "customer",
            "Customer details are at most 255 characters each.",
        );
    }
    let issue = body.get("issue").and_then(Value::as_bool).unwrap_or(false)
        || text_of(body, &["status"]).is_some_and(|s| s.eq_ignore_ascii_case("sent"));
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    if let (Some(sid), true) = (source_id, source_type != "manual") {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('invoice-source:' || $1 || ':' || $2), $3::int)",
        )
        .bind(&source_type)
        .bind(sid.to_string())
        .bind((scope.project_id() % i64::from(i32::MAX)) as i32)
        .execute(&mut *tx)
        .await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM invoices WHERE project_id = $1 AND source_type = $2 AND source_id = $3",
        )
        .bind(scope.project_id())
        .bind(&source_type)
        .bind(sid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            return Ok((false, show(ctx, scope, id).await?));
        }
    }
    let number = match number {
        Some(n) => n,
        None => next_number(&mut tx, scope.project_id()).await?,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO invoices (project_id, invoice_number, customer_id, customer_type, customer, \
           order_id, source_type, source_id, status, subtotal, discount_amount, tax_amount, \
           shipping_amount, total_amount, currency, due_date, notes, metadata, coupon_code, \
           profit, sent_at, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
           COALESCE($18, '{}'::jsonb), $19, $20, CASE WHEN $9 = 'sent' THEN now() END, $21, $21) \
         RETURNING id",
    )
    .bind(scope.project_id())
    .bind(&number)
    .bind(customer_id)
    .bind(&customer_type)
    .bind(&customer)
    .bind(order_id.or(if source_type == "order" {
        source_id
    } else {
        None
    }))
    .bind(&source_type)
    .bind(source_id)
    .bind(if issue { "sent" } else { "draft" })
    .bind(computed.subtotal)
    .bind(computed.discount)
    .bind(computed.tax)
    .bind(computed.shipping)
    .bind(computed.total)
    .bind(&currency)
    .bind(due_date)
    .bind(notes)
    .bind(&metadata)
    .bind(&coupon)
    .bind(profit)
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| kernel::db::map_db_error(e, UNIQUE))?;
    if let Some(lines) = &computed.lines {
        write_lines(&mut tx, id, lines).await?;
    }
    let row = ledger::lock_invoice(&mut tx, scope.project_id(), id).await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &InvoiceCreated(row.event()),
        )
        .await?;
    if source_type != "manual" {
        ledger::attach_source_payments(ctx, &mut tx, Some(scope.user_id()), scope.project_id(), id)
            .await?;
    }
    if issue {
        ctx.outbox
            .record(
                &mut tx,
                Some(scope.project_id()),
                Some(scope.user_id()),
                &InvoiceSent(row.event()),
            )
            .await?;
    }
    tx.commit().await?;
    ctx.outbox.nudge();
    Ok((true, show(ctx, scope, id).await?))
}

const UNIQUE: &[kernel::db::ConstraintField] = &[kernel::db::ConstraintField {
    constraint: "invoices_project_id_invoice_number_key",
    field: "invoice_number",
    message: "Invoice with this invoice number already exists.",
}];

/// `POST m/invoices/{id}/payments/` `{amount? (default: what is due), method, gateway?,
/// token?, payment_method_id?, reference?, transaction_id?, transaction_date?, description?}`
/// → the transaction (online gateways answer `next_action`).
pub async fn pay(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    exists(ctx, scope, id).await?;
    scope.require("billing.record_payment", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let mut new = NewTransaction {
        kind: Some(ledger::Kind::Payment),
        invoice_id: Some(id),
        ..NewTransaction::default()
    };
    ledger::read_body(body, &mut new, &mut errors);
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    let (_, row) =
        ledger::record(ctx, &mut tx, scope.project_id(), Some(scope.user_id()), new).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

/// 404 unless the invoice is a live one of the caller's project (before permission checks, so
/// another project's id is never told apart from a missing one).
async fn exists(ctx: &ServiceContext, scope: &ProjectScope, id: i64) -> Result<(), ApiError> {
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoices WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL)",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_one(&ctx.pool)
    .await?;
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// `POST m/invoices/{id}/refund/` `{amount, reason, transaction_id?}`: `transaction_id` (or
/// `refund_of_id`) names the payment to refund; by default the newest payment that can take
/// the whole amount, else the invoice's net.
pub async fn refund(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    exists(ctx, scope, id).await?;
    scope.require("billing.refund_payment", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let mut new = NewTransaction {
        kind: Some(ledger::Kind::Refund),
        invoice_id: Some(id),
        ..NewTransaction::default()
    };
    let payment = body
        .get("refund_of_id")
        .or_else(|| body.get("transaction_id"))
        .filter(|v| !v.is_null())
        .cloned();
    ledger::read_body(body, &mut new, &mut errors);
    new.transaction_id = text_of(body, &["refund_transaction_id"]).map(str::to_owned);
    new.gateway = None;
    if new.amount.is_none() && errors.get("amount").is_none() {
        errors.required("amount");
    }
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    ledger::lock_invoice(&mut tx, scope.project_id(), id).await?;
    new.refund_of_id = match payment {
        Some(key) => {
            let key = match key {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM transactions WHERE project_id = $1 AND invoice_id = $2 \
                 AND transaction_type = 'payment' AND deleted_at IS NULL \
                 AND (transaction_id = $3 OR id::text = $3)",
            )
            .bind(scope.project_id())
            .bind(id)
            .bind(key.trim())
            .fetch_optional(&mut *tx)
            .await?;
            Some(found.ok_or_else(|| {
                ApiError::field("transaction_id", "Name a payment of this invoice.")
            })?)
        }
        None => {
            ledger::default_refund_of(
                &mut tx,
                scope.project_id(),
                id,
                new.amount.unwrap_or(Decimal::ZERO),
            )
            .await?
        }
    };
    let (_, row) =
        ledger::record(ctx, &mut tx, scope.project_id(), Some(scope.user_id()), new).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

/// Whether the invoice has open (pending, processing) transactions.
async fn has_open(tx: &mut PgConnection, id: i64) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM transactions WHERE invoice_id = $1 \
         AND status IN ('pending', 'processing') AND deleted_at IS NULL)",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?)
}

/// Voids the locked invoice (§3.3): only with nothing paid net and nothing open.
async fn cancel_in(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    invoice: &InvoiceRow,
    reason: &str,
) -> Result<(), ApiError> {
    scope.require("billing.void_invoice", &GRANTS)?;
    if invoice.status == "cancelled" {
        return Ok(());
    }
    if invoice.net() != Decimal::ZERO || has_open(tx, invoice.id).await? {
        return Err(ApiError::rule(
            "invoice_has_payments",
            "An invoice with payments (or payments in progress) cannot be cancelled; refund them first.",
        ));
    }
    sqlx::query(
        "UPDATE invoices SET status = 'cancelled', cancelled_at = now(), cancel_reason = $2, \
           updated_at = now(), updated_by = $3 WHERE id = $1",
    )
    .bind(invoice.id)
    .bind(reason)
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    ctx.outbox
        .record(
            tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &InvoiceCancelled(invoice.event()),
        )
        .await?;
    Ok(())
}

/// Issues a draft, or sends an issued invoice again (§3.5).
async fn send_in(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    invoice: &InvoiceRow,
) -> Result<(), ApiError> {
    scope.require("billing.send_invoice", &GRANTS)?;
    if invoice.status == "cancelled" {
        return Err(ApiError::rule(
            "invoice_cancelled",
            "A cancelled invoice is not sent.",
        ));
    }
    sqlx::query(
        "UPDATE invoices SET status = CASE WHEN status = 'draft' THEN 'sent' ELSE status END, \
           sent_at = now(), updated_at = now(), updated_by = $2 WHERE id = $1",
    )
    .bind(invoice.id)
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    ctx.outbox
        .record(
            tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &InvoiceSent(invoice.event()),
        )
        .await?;
    Ok(())
}

/// `POST m/invoices/{id}/send/` `{recipient_email?, message?}` → `{id, status, sent_at, message}`.
pub async fn send(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    exists(ctx, scope, id).await?;
    let mut errors = FieldErrors::new();
    if let Some(email) = body.get("recipient_email").filter(|v| !v.is_null()) {
        if !email
            .as_str()
            .is_some_and(|e| e.len() <= 254 && e.contains('@') && !e.contains(char::is_whitespace))
        {
            errors.add("recipient_email", "Enter a valid email address.");
        }
    }
    if body
        .get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.chars().count() > 2000)
    {
        errors.add("message", "At most 2000 characters.");
    }
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    let invoice = ledger::lock_invoice(&mut tx, scope.project_id(), id).await?;
    send_in(ctx, &mut tx, scope, &invoice).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    let shown = show(ctx, scope, id).await?;
    Ok(json!({
        "id": id,
        "status": shown["status"],
        "sent_at": shown["sent_at"],
        "message": "Invoice sent.",
    }))
}

/// `POST m/invoices/{id}/cancel/` `{reason}` → the invoice.
pub async fn cancel(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    exists(ctx, scope, id).await?;
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if reason.chars().count() > 1000 {
        return Err(ApiError::field("reason", "At most 1000 characters."));
    }
    let mut tx = ctx.pool.begin().await?;
    let invoice = ledger::lock_invoice(&mut tx, scope.project_id(), id).await?;
    cancel_in(ctx, &mut tx, scope, &invoice, reason).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    show(ctx, scope, id).await
}

/// The editing rules and status flows of §3.4, and draft-only deletes.
pub struct InvoiceRules;

/// Which inputs a PATCH/PUT carries.
fn given(body: &Value, keys: &[&str]) -> bool {
    keys.iter().any(|k| body.get(*k).is_some())
}

const DRAFT_ONLY: &[&str] = &[
    "currency",
    "customer_id",
    "customer",
    "customer_type",
    "customer_name",
    "customer_email",
    "customer_phone",
    "coupon_code",
    "coupon_key",
    "order_id",
];

impl InvoiceRules {
    /// `payment: PAID | CANCELLED`, `status: paid | cancelled | sent`; true when one was given.
    async fn flows(
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        invoice: &InvoiceRow,
        body: &Value,
    ) -> Result<bool, ApiError> {
        let status = text_of(body, &["status"]).map(str::to_ascii_lowercase);
        let payment = text_of(body, &["payment", "payment_status"]).map(str::to_ascii_uppercase);
        if status.is_none() && payment.is_none() {
            return Ok(false);
        }
        if given(body, AMOUNT_KEYS) {
            return Err(ApiError::field(
                "status",
                "Change the amounts and the status in separate requests.",
            ));
        }
        let current: (String, String) = sqlx::query_as(&format!(
            "SELECT {STATUS}, {PAYMENT} FROM invoices t WHERE t.id = $1"
        ))
        .bind(invoice.id)
        .fetch_one(&mut *tx)
        .await?;
        let wants =
            |s: &str, p: &str| status.as_deref() == Some(s) || payment.as_deref() == Some(p);
        if status.as_deref().is_none_or(|s| s == current.0)
            && payment.as_deref().is_none_or(|p| p == current.1)
        {
            return Ok(true);
        }
        if wants("paid", "PAID") {
            scope.require("billing.record_payment", &GRANTS)?;
            if invoice.due() > Decimal::ZERO {
                let method = text_of(body, &["payment_method", "method"])
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| "other".into());
                if !ledger::METHODS.contains(&method.as_str()) {
                    return Err(ApiError::field(
                        "payment_method",
                        format!("Use one of: {}.", ledger::METHODS.join(", ")),
                    ));
                }
                let new = NewTransaction {
                    kind: Some(ledger::Kind::Payment),
                    invoice_id: Some(invoice.id),
                    method: Some(method),
                    ..NewTransaction::default()
                };
                ledger::record(ctx, tx, scope.project_id(), Some(scope.user_id()), new).await?;
            } else if invoice.status == "cancelled" {
                return Err(ApiError::rule(
                    "invoice_cancelled",
                    "This invoice is cancelled.",
                ));
            }
            return Ok(true);
        }
        if wants("cancelled", "CANCELLED") {
            let reason = text_of(body, &["cancel_reason", "reason"]).unwrap_or("");
            cancel_in(
                ctx,
                tx,
                scope,
                invoice,
                &reason.chars().take(1000).collect::<String>(),
            )
            .await?;
            return Ok(true);
        }
        if status.as_deref() == Some("sent") && invoice.status == "draft" && payment.is_none() {
            send_in(ctx, tx, scope, invoice).await?;
            return Ok(true);
        }
        if payment.is_some() {
            return Err(ApiError::rule(
                "payment_status_derived",
                "The payment status follows the ledger; record a payment or a refund instead.",
            ));
        }
        Err(ApiError::rule(
            "invalid_transition",
            format!(
                "An invoice cannot go from {} to {}.",
                current.0,
                status.unwrap_or_default()
            ),
        ))
    }
}

#[async_trait]
impl kernel::resource::Hooks for InvoiceRules {
    async fn before_write(
        &self,
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(id) = id else {
            return Ok(());
        };
        let invoice = ledger::lock_invoice(tx, scope.project_id(), id).await?;
        // The other inputs of the same request meet the rules of the state the flow left.
        let invoice = if Self::flows(ctx, tx, scope, &invoice, body).await? {
            ledger::lock_invoice(tx, scope.project_id(), id).await?
        } else {
            invoice
        };
        if let Some(Bind::Date(due)) = values.get("due_date") {
            let issued: chrono::NaiveDate = sqlx::query_scalar(
                "SELECT (COALESCE(sent_at, created_at) AT TIME ZONE 'UTC')::date FROM invoices WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if *due < issued {
                return Err(ApiError::field(
                    "due_date",
                    "The due date cannot be before the issue date.",
                ));
            }
        }
        let amounts_given = given(body, AMOUNT_KEYS);
        let draft_only = given(body, DRAFT_ONLY);
        let due_given = values.contains_key("due_date");
        let touched = invoice.amount_paid > Decimal::ZERO
            || invoice.amount_refunded > Decimal::ZERO
            || has_open(tx, id).await?;
        match invoice.status.as_str() {
            "draft" => {}
            "cancelled" if amounts_given || draft_only || due_given => {
                return Err(ApiError::rule(
                    "invoice_cancelled",
                    "A cancelled invoice keeps its amounts; only notes and metadata change.",
                ))
            }
            "paid" | "refunded" if amounts_given || draft_only || due_given => {
                return Err(ApiError::rule(
                    "invoice_has_payments",
                    "Only notes and metadata of a settled invoice change.",
                ))
            }
            _ if touched && (amounts_given || draft_only) => {
                return Err(ApiError::rule(
                    "invoice_has_payments",
                    "An invoice with payments keeps its amounts; only notes, due date and metadata change.",
                ))
            }
            _ if draft_only => {
                return Err(ApiError::rule(
                    "invoice_not_draft",
                    "The customer and currency of an issued invoice are fixed.",
                ))
            }
            _ => {}
        }
        if draft_only {
            let mut errors = FieldErrors::new();
            if let Some(c) = text_of(body, &["currency"]) {
                if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) {
                    values.insert("currency".into(), Bind::Text(c.to_ascii_uppercase()));
                } else {
                    errors.add("currency", "Use an ISO 4217 code.");
                }
            }
            if let Some(t) = text_of(body, &["customer_type"]).map(str::to_ascii_lowercase) {
                if CUSTOMER_TYPES.contains(&t.as_str()) {
                    values.insert("customer_type".into(), Bind::Text(t));
                } else {
                    errors.add(
                        "customer_type",
                        format!("Use one of: {}.", CUSTOMER_TYPES.join(", ")),
                    );
                }
            }
            if let Some(c) = int_of(body, &["customer_id", "customer"], &mut errors) {
                values.insert("customer_id".into(), Bind::Int(c));
            }
            if let Some(o) = int_of(body, &["order_id"], &mut errors) {
                values.insert("order_id".into(), Bind::Int(o));
            }
            if let Some(c) = text_of(body, &["coupon_code", "coupon_key"]) {
                values.insert(
                    "coupon_code".into(),
                    Bind::Text(c.chars().take(50).collect()),
                );
            }
            errors.into_result()?;
            if given(
                body,
                &[
                    "customer_name",
                    "customer_email",
                    "customer_phone",
                    "customer_id",
                    "customer",
                ],
            ) {
                sqlx::query(
                    "UPDATE invoices SET customer = customer || jsonb_strip_nulls(jsonb_build_object(\
                       'id', $2::bigint, 'name', $3::text, 'email', $4::text, 'phone', $5::text)) WHERE id = $1",
                )
                .bind(id)
                .bind(int_of(body, &["customer_id", "customer"], &mut FieldErrors::new()))
                .bind(text_of(body, &["customer_name"]).map(|s| s.chars().take(255).collect::<String>()))
                .bind(text_of(body, &["customer_email"]).map(|s| s.chars().take(255).collect::<String>()))
                .bind(text_of(body, &["customer_phone"]).map(|s| s.chars().take(255).collect::<String>()))
                .execute(&mut *tx)
                .await?;
            }
        }
        if amounts_given {
            let base: (Decimal, Decimal, Decimal, Decimal, bool) = sqlx::query_as(
                "SELECT subtotal, discount_amount, tax_amount, shipping_amount, \
                   EXISTS (SELECT 1 FROM invoice_items WHERE invoice_id = $1) FROM invoices WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let computed = amounts(
                body,
                &Base {
                    subtotal: base.0,
                    discount: base.1,
                    tax: base.2,
                    shipping: base.3,
                    has_items: base.4,
                },
            )?;
            if let Some(lines) = &computed.lines {
                write_lines(tx, id, lines).await?;
            }
            for (column, value) in [
                ("subtotal", computed.subtotal),
                ("discount_amount", computed.discount),
                ("tax_amount", computed.tax),
                ("shipping_amount", computed.shipping),
                ("total_amount", computed.total),
            ] {
                values.insert(column.into(), Bind::Decimal(value));
            }
        }
        Ok(())
    }

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
