//! Orders (contract order.md §2–§7): placement as a saga over the inventory service, the status
//! machine, cancellation and fulfilment.
//!
//! Placement: prices come from the product service (never from the client); the order's id and
//! number are taken, its stock is reserved in the inventory service under the order number (a
//! repeated call for it finds the same reservation), and only then is the order written, `pending` with its
//! lines and `order.created`, in one statement. Any failure after reserving releases the
//! reservation; a process that dies in between leaves it to [`crate::placement_reconciler`]. An
//! inventory that does not answer in 3 s is 503 with nothing left reserved.

use std::time::Duration;

use async_trait::async_trait;
use integration::billing::{InvoiceCreated, SharedBilling};
use integration::inventory::SharedStock;
use integration::order::{
    OrderCancelled, OrderCreated, OrderFulfilled, OrderLine, OrderRef, OrderStatusChanged,
};
use integration::product::SharedPricing;
use kernel::auth::ProjectScope;
use kernel::events::IntegrationEvent;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::rbac::Grants;
use kernel::resource::{Field, FieldKind, Hooks, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::placing::Written;

/// Members read orders; editors ("staff") place, move and fulfil them; owners and admins also
/// override prices and delete.
pub const GRANTS: Grants = Grants {
    editor_extra: &[
        "order.change_order_status",
        "order.cancel_order",
        "order.fulfill_order",
    ],
    editor_writes: None,
};

const MONEY: FieldKind = FieldKind::Decimal {
    min: Some(0),
    max: None,
    scale: 2,
};

const ITEMS: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', i.id, \
    'order_id', i.order_id, 'product_id', i.product_id, 'variant_id', i.variant_id, \
    'inventory_id', i.inventory_id, 'product_name', i.product_name, 'variant_name', i.variant_name, \
    'sku', i.sku, 'image_url', i.image_url, 'quantity', i.quantity, \
    'unit_price', to_char(i.unit_price, 'FM999999999999990.00'), \
    'list_price', to_char(i.list_price, 'FM999999999999990.00'), \
    'price_overridden', i.price_overridden, \
    'discount', to_char(i.discount, 'FM999999999999990.00'), \
    'tax_amount', to_char(i.tax_amount, 'FM999999999999990.00'), \
    'total_price', to_char(i.total_price, 'FM999999999999990.00'), \
    'total', to_char(i.total_price, 'FM999999999999990.00'), \
    'fulfilled_quantity', i.fulfilled_quantity, 'returned_quantity', i.returned_quantity) \
    ORDER BY i.id) FROM order_items i WHERE i.order_id = t.id), '[]'::jsonb)";
const HISTORY: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('status', h.status, \
    'event', h.event, 'timestamp', h.created_at, 'notes', h.notes, \
    'performed_by', CASE WHEN h.performed_by IS NULL THEN NULL \
      ELSE jsonb_build_object('id', h.performed_by) END) ORDER BY h.id) \
    FROM order_history h WHERE h.order_id = t.id), '[]'::jsonb)";
const COUNT: &str =
    "(SELECT COALESCE(sum(i.quantity), 0) FROM order_items i WHERE i.order_id = t.id)";
const DUE: &str =
    "to_char(GREATEST(t.total - t.amount_paid + t.amount_refunded, 0), 'FM999999999999990.00')";

const TAGS: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', g.id, 'name', g.name, \
    'color', g.color) ORDER BY g.name) FROM order_tags ot JOIN tags g ON g.id = ot.tag_id \
    WHERE ot.order_id = t.id AND g.deleted_at IS NULL), '[]'::jsonb)";
const STATUS_DETAIL: &str = "(SELECT jsonb_build_object('id', s.id, 'name', s.name, \
    'main_status', s.main_status, 'is_customer_visible', s.is_customer_visible) \
    FROM statuses s WHERE s.id = t.status_id)";

/// Orders through the resource machinery: lists and reads, and PATCH of notes, contact and
/// addresses. Placement, status changes, cancellation and fulfilment are the actions below.
pub static ORDER: Resource = Resource {
    service: "order",
    model: "order",
    label: "Order",
    table: "orders",
    fields: &[
        Field::text("order_number", 30).read_only(),
        Field::text("status", 20).read_only(),
        Field::text("payment_status", 20).read_only(),
        Field::text("fulfillment_status", 20).read_only(),
        Field::new("customer_id", FieldKind::int_from(1)).read_only(),
        Field::text("customer_email", 254),
        Field::text("customer_phone", 30),
        Field::text("customer_name", 255),
        Field::new("shipping_address", FieldKind::Json { max_bytes: 4096 }),
        Field::new("billing_address", FieldKind::Json { max_bytes: 4096 }),
        Field::text("currency", 3).read_only(),
        Field::new("subtotal", MONEY).read_only(),
        Field::new("discount_amount", MONEY).read_only(),
        Field::new("tax_amount", MONEY).read_only(),
        Field::new("shipping_cost", MONEY).read_only(),
        Field::new("total", MONEY).read_only(),
        Field::new("amount_paid", MONEY).read_only(),
        Field::new("amount_refunded", MONEY).read_only(),
        Field::text("shipping_method", 30).read_only(),
        Field::text("payment_method", 30).read_only(),
        Field::text("tracking_number", 100).read_only(),
        Field::text("carrier", 100).read_only(),
        Field::text("notes", 2000).aliases(&["note"]),
        Field::text("coupon_code", 50).read_only(),
        Field::new("status_id", FieldKind::int_from(1)),
        Field::text("reference", 100).read_only(),
        Field::text("source", 20).read_only(),
        Field::text("reservation_id", 40).read_only(),
        Field::new("invoice_id", FieldKind::int_from(1)).read_only(),
        Field::text("cancellation_reason", 1000).read_only(),
        Field::new("cancelled_at", FieldKind::DateTime).read_only(),
        Field::new("confirmed_at", FieldKind::DateTime).read_only(),
        Field::new("shipped_at", FieldKind::DateTime).read_only(),
        Field::new("delivered_at", FieldKind::DateTime).read_only(),
        Field::new("completed_at", FieldKind::DateTime).read_only(),
    ],
    slug_from: None,
    computed: &[
        ("items", ITEMS),
        ("items_count", COUNT),
        ("status_history", HISTORY),
        ("total_amount", "to_char(t.total, 'FM999999999999990.00')"),
        (
            "shipping_amount",
            "to_char(t.shipping_cost, 'FM999999999999990.00')",
        ),
        ("note", "t.notes"),
        ("amount_due", DUE),
        ("tags", TAGS),
        ("status_detail", STATUS_DETAIL),
    ],
    list: ListSpec {
        filters: &[
            Col::new("status", "t.status", Kind::Text),
            Col::new("payment_status", "t.payment_status", Kind::Text),
            Col::new("fulfillment_status", "t.fulfillment_status", Kind::Text),
            Col::new("customer", "t.customer_id", Kind::Int),
            Col::new("customer_email", "lower(t.customer_email)", Kind::Text),
            Col::new("order_number", "t.order_number", Kind::Text),
            Col::new("reference", "t.reference", Kind::Text),
            Col::new("source", "t.source", Kind::Text),
            Col::new("total", "t.total", Kind::Decimal),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("total", "t.total", Kind::Decimal),
            Col::new("total_amount", "t.total", Kind::Decimal),
            Col::new("updated_at", "t.updated_at", Kind::DateTime),
            Col::new("order_number", "t.order_number", Kind::Text),
        ],
        search: &[
            "t.order_number",
            "t.customer_email",
            "t.customer_name",
            "t.notes",
        ],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&OrderRules),
    params: None,
    // Orders being placed, or whose placement failed, are internal.
    hidden: Some("t.status IN ('placing', 'failed')"),
    related: &[],
};

/// PATCH: contact and addresses until shipped; notes always. Deletion only of orders that
/// never moved stock out (pending, pending_payment, cancelled).
pub struct OrderRules;

#[async_trait]
impl Hooks for OrderRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(id) = id else {
            return Err(ApiError::method_not_allowed());
        };
        let status: String =
            sqlx::query_scalar("SELECT status FROM orders WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let late = matches!(
            status.as_str(),
            "shipped" | "delivered" | "completed" | "cancelled" | "returned"
        );
        let contact = values.keys().any(|k| k != "notes" && k != "status_id");
        if late && contact {
            return Err(ApiError::rule(
                "order_not_editable",
                format!("Addresses and contact cannot change once the order is {status}."),
            ));
        }
        for key in ["shipping_address", "billing_address"] {
            if let Some(kernel::resource::Bind::Json(address)) = values.get(key) {
                check_address(key, address)?;
            }
        }
        // A custom status is a label of the main status: moving the main status goes through
        // `orders/{id}/status/` (which takes a `status_id` too).
        if let Some(kernel::resource::Bind::Int(status_id)) = values.get("status_id") {
            let main: Option<String> = sqlx::query_scalar(
                "SELECT main_status FROM statuses WHERE id = $1 AND project_id = $2 \
                 AND deleted_at IS NULL",
            )
            .bind(status_id)
            .bind(_scope.project_id())
            .fetch_optional(&mut *tx)
            .await?;
            match main {
                None => return Err(ApiError::field("status_id", "No such status.")),
                Some(m) if m != status => return Err(invalid(&status, &m)),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `orders/{number}/` names an order by its number too (order.md §1).
    async fn lookup(
        &self,
        ctx: &ServiceContext,
        project_id: i64,
        key: &str,
    ) -> Result<Option<i64>, ApiError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM orders WHERE project_id = $1 AND order_number = $2")
                .bind(project_id)
                .bind(canonical_number(key))
                .fetch_optional(&ctx.pool)
                .await?,
        )
    }

    async fn after_write(
        &self,
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        written: kernel::resource::Written<'_>,
    ) -> Result<(), ApiError> {
        if matches!(written.write, kernel::resource::Write::Delete) {
            let id = written.row["id"].as_i64().unwrap_or_default();
            record_step(
                ctx,
                tx,
                scope.project_id(),
                Some(scope.user_id()),
                id,
                "deleted",
            )
            .await?;
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
        let (status, paid): (String, Decimal) =
            sqlx::query_as("SELECT status, amount_paid FROM orders WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if status != "cancelled" || paid > Decimal::ZERO {
            return Err(ApiError::rule(
                "order_not_deletable",
                "Only a cancelled order without payments can be deleted: cancel it first.",
            ));
        }
        Ok(())
    }
}

/// The id of a live order of the project named by id or number (404 otherwise).
pub(crate) async fn find(
    db: impl sqlx::PgExecutor<'_>,
    project_id: i64,
    key: &str,
) -> Result<i64, ApiError> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE project_id = $1 AND (id::text = $2 OR order_number = $2) \
         AND deleted_at IS NULL AND status NOT IN ('placing', 'failed')",
    )
    .bind(project_id)
    .bind(canonical_number(key))
    .fetch_optional(db)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// An order number as stored: `ORD-2026-001` (0a47ee5's 3-digit form) is `ORD-2026-000001`.
pub(crate) fn canonical_number(key: &str) -> String {
    let key = key.trim();
    let parts: Vec<&str> = key.splitn(3, '-').collect();
    match parts.as_slice() {
        [prefix, year, n]
            if prefix.eq_ignore_ascii_case("ORD")
                && year.len() == 4
                && !n.is_empty()
                && n.len() < 6
                && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("ORD-{year}-{n:0>6}")
        }
        _ => key.to_owned(),
    }
}

/// Address: `address_line1`, `city` and a two-letter `country` are required when sent.
pub(crate) fn check_address(field: &str, address: &Value) -> Result<(), ApiError> {
    let Some(map) = address.as_object() else {
        return Err(ApiError::field(field, "An address object is required."));
    };
    let text = |k: &str| {
        map.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    };
    let mut missing = Vec::new();
    for k in ["address_line1", "city", "country"] {
        if text(k).is_empty() {
            missing.push(k);
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::field(
            field,
            format!("Required: {}.", missing.join(", ")),
        ));
    }
    let country = text("country");
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ApiError::field(
            field,
            "country must be an ISO 3166-1 alpha-2 code.",
        ));
    }
    Ok(())
}

pub(crate) const PAYMENT_METHODS: &[&str] = &[
    "credit_card",
    "debit_card",
    "paypal",
    "wallet",
    "cash",
    "cash_on_delivery",
    "bank_transfer",
];

/// A requested line.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    pub(crate) product_id: i64,
    pub(crate) variant_id: Option<i64>,
    pub(crate) inventory_id: Option<i64>,
    pub(crate) quantity: i64,
    pub(crate) unit_price: Option<Decimal>,
}

pub(crate) fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

pub(crate) fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
}

/// What a placement asked for, validated.
pub(crate) struct Placement {
    pub(crate) lines: Vec<Wanted>,
    pub(crate) customer_email: String,
    pub(crate) customer_phone: String,
    pub(crate) customer_name: String,
    pub(crate) shipping_address: Option<Value>,
    pub(crate) billing_address: Option<Value>,
    pub(crate) shipping_method: String,
    pub(crate) payment_method: String,
    pub(crate) notes: String,
    pub(crate) reference: Option<String>,
    pub(crate) source: String,
    pub(crate) coupon_code: Option<String>,
    pub(crate) customer_id: Option<i64>,
    /// Manual amounts (need `order.override_price`).
    pub(crate) discount: Option<Decimal>,
    pub(crate) shipping: Option<Decimal>,
    pub(crate) cart_id: Option<String>,
    /// Online payment at checkout: `pending_payment`, held for the payment window.
    pub(crate) awaiting_payment: bool,
}

pub(crate) fn text(body: &Value, names: &[&str], max: usize, errors: &mut FieldErrors) -> String {
    let Some((name, v)) = names
        .iter()
        .find_map(|n| body.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
    else {
        return String::new();
    };
    match v.as_str() {
        Some(s) if s.chars().count() <= max => s.trim().to_owned(),
        Some(_) => {
            errors.add(
                name,
                format!("Ensure this field has no more than {max} characters."),
            );
            String::new()
        }
        None => {
            errors.add(name, "Not a valid string.");
            String::new()
        }
    }
}

fn parse(body: &Value) -> Result<Placement, ApiError> {
    let mut errors = FieldErrors::new();
    let items = body
        .get("items")
        .or_else(|| body.get("products"))
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty() && i.len() <= 200);
    let Some(items) = items else {
        return Err(ApiError::field("items", "Give a list of 1 to 200 lines."));
    };
    let mut per_item = Vec::with_capacity(items.len());
    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let mut e = FieldErrors::new();
        let product_id =
            int(item.get("product_id").or_else(|| item.get("product"))).filter(|p| *p > 0);
        if product_id.is_none() {
            e.add("product_id", "A valid product id is required.");
        }
        let variant_id = match item.get("variant_id").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => {
                let id = int(Some(v)).filter(|p| *p > 0);
                if id.is_none() {
                    e.add("variant_id", "A valid id is required.");
                }
                id
            }
        };
        let inventory_id = int(item.get("inventory_id")).filter(|p| *p > 0);
        let quantity = int(item.get("quantity")).filter(|q| (1..=10_000).contains(q));
        if quantity.is_none() {
            e.add("quantity", "Give a whole number of units from 1 to 10000.");
        }
        let unit_price = match item.get("unit_price").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => match decimal(v).filter(|d| *d >= Decimal::ZERO) {
                Some(d) => Some(d),
                None => {
                    e.add("unit_price", "A valid non-negative decimal is required.");
                    None
                }
            },
        };
        per_item.push(e);
        if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
            lines.push(Wanted {
                product_id,
                variant_id,
                inventory_id,
                quantity,
                unit_price,
            });
        }
    }
    ApiError::per_item("items", &per_item)?;
    let customer_email = text(body, &["customer_email"], 254, &mut errors);
    if !customer_email.is_empty() && !customer_email.contains('@') {
        errors.add("customer_email", "Enter a valid email address.");
    }
    let customer_phone = text(body, &["customer_phone"], 30, &mut errors);
    let customer_name = text(body, &["customer_name"], 255, &mut errors);
    let shipping_method = text(body, &["shipping_method"], 30, &mut errors).to_ascii_lowercase();
    let payment_method = text(body, &["payment_method"], 30, &mut errors).to_ascii_lowercase();
    if !payment_method.is_empty() && !PAYMENT_METHODS.contains(&payment_method.as_str()) {
        errors.add(
            "payment_method",
            format!("Use one of: {}.", PAYMENT_METHODS.join(", ")),
        );
    }
    let notes = text(body, &["notes", "note"], 2000, &mut errors);
    let reference = Some(text(body, &["reference"], 100, &mut errors)).filter(|r| !r.is_empty());
    let coupon_code = Some(text(body, &["coupon_code"], 50, &mut errors)).filter(|r| !r.is_empty());
    let customer_id = match body.get("customer_id").or_else(|| body.get("customer")) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = int(Some(v)).filter(|c| *c > 0);
            if id.is_none() {
                errors.add("customer_id", "A valid user id is required.");
            }
            id
        }
    };
    let mut amount = |k: &str| match body.get(k).filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            let d = decimal(v).filter(|d| *d >= Decimal::ZERO && d.scale() <= 4);
            if d.is_none() {
                errors.add(k, "A valid non-negative decimal is required.");
            }
            d
        }
    };
    let discount = amount("discount_amount");
    let shipping = amount("shipping_cost").or_else(|| amount("shipping_amount"));
    errors.into_result()?;
    let shipping_address = body
        .get("shipping_address")
        .filter(|v| !v.is_null())
        .cloned();
    if let Some(a) = &shipping_address {
        check_address("shipping_address", a)?;
    }
    let billing_address = body
        .get("billing_address")
        .filter(|v| !v.is_null())
        .cloned();
    if let Some(a) = &billing_address {
        check_address("billing_address", a)?;
    }
    Ok(Placement {
        billing_address: billing_address.or_else(|| shipping_address.clone()),
        lines,
        customer_email,
        customer_phone,
        customer_name,
        shipping_address,
        shipping_method,
        payment_method,
        notes,
        reference,
        source: "api".into(),
        coupon_code,
        customer_id,
        discount,
        shipping,
        cart_id: None,
        awaiting_payment: false,
    })
}

/// A priced line.
pub(crate) struct Priced {
    pub(crate) wanted: Wanted,
    pub(crate) quote: integration::product::PriceQuote,
    pub(crate) unit_price: Decimal,
    pub(crate) overridden: bool,
}

impl Priced {
    /// unit price × quantity, as stored (4 decimals, half away from zero).
    pub(crate) fn line_total(&self) -> Decimal {
        (self.unit_price * Decimal::from(self.wanted.quantity))
            .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    }
}

pub(crate) const PRICING_TIMEOUT: Duration = Duration::from_secs(2);
pub(crate) const STOCK_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) fn unreachable(what: &str) -> ApiError {
    ApiError::service_unavailable(format!(
        "The {what} service did not answer. Nothing was placed; retry shortly."
    ))
}

/// Prices every line now (product service); a client price must match unless the caller may
/// override prices.
pub(crate) async fn price(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    lang: &str,
    lines: &[Wanted],
) -> Result<(String, Vec<Priced>), ApiError> {
    let pricing = ctx
        .platform
        .lookup::<SharedPricing>()
        .ok_or_else(|| unreachable("product"))?;
    let asked: Vec<(i64, Option<i64>)> =
        lines.iter().map(|l| (l.product_id, l.variant_id)).collect();
    let (currency, quotes) = tokio::time::timeout(
        PRICING_TIMEOUT,
        pricing.quote(scope.project_id(), lang, &asked),
    )
    .await
    .map_err(|_| unreachable("product"))??;
    let may_override = scope.require("order.override_price", &GRANTS).is_ok();
    let mut priced = Vec::with_capacity(lines.len());
    let mut unavailable = Vec::new();
    let mut mismatched = Vec::new();
    for (wanted, quote) in lines.iter().zip(quotes) {
        let current = quote
            .unit_price
            .as_deref()
            .and_then(|p| p.parse::<Decimal>().ok());
        let Some(current) = current.filter(|_| quote.is_available) else {
            unavailable
                .push(json!({"product_id": wanted.product_id, "variant_id": wanted.variant_id}));
            continue;
        };
        let (unit_price, overridden) = match wanted.unit_price {
            Some(given) if given != current && may_override => (given, true),
            Some(given) if given != current => {
                mismatched.push(
                    json!({"product_id": wanted.product_id, "variant_id": wanted.variant_id,
                    "expected": current.round_dp(2).to_string(), "given": given.to_string()}),
                );
                (current, false)
            }
            _ => (current, false),
        };
        priced.push(Priced {
            wanted: wanted.clone(),
            quote,
            unit_price,
            overridden,
        });
    }
    if !unavailable.is_empty() {
        return Err(ApiError::rule(
            "product_unavailable",
            "Some products are unknown, deleted or not on sale.",
        )
        .with("details", json!({ "lines": unavailable })));
    }
    if !mismatched.is_empty() {
        return Err(ApiError::rule(
            "price_mismatch",
            "The given prices differ from the current ones.",
        )
        .with("details", json!({ "lines": mismatched })));
    }
    Ok((currency, priced))
}

pub(crate) fn money(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

/// The order as its events reference it.
pub(crate) async fn reference(tx: &mut PgConnection, id: i64) -> Result<OrderRef, ApiError> {
    let (order_number, reference, status, payment_status): (
        String,
        Option<String>,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT order_number, reference, status, payment_status FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(OrderRef {
        order_id: id,
        order_number,
        reference,
        status,
        payment_status,
    })
}

/// An order line as events carry it.
#[derive(sqlx::FromRow)]
struct LineRow {
    id: i64,
    product_id: i64,
    variant_id: Option<i64>,
    sku: Option<String>,
    quantity: i32,
    unit_price: Decimal,
    total_price: Decimal,
}

pub(crate) async fn lines(tx: &mut PgConnection, id: i64) -> Result<Vec<OrderLine>, ApiError> {
    let rows: Vec<LineRow> = sqlx::query_as(
        "SELECT id, product_id, variant_id, sku, quantity, unit_price, total_price \
         FROM order_items WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OrderLine {
            order_item_id: r.id,
            product_id: r.product_id,
            variant_id: r.variant_id,
            sku: r.sku,
            quantity: r.quantity.into(),
            unit_price: money(r.unit_price),
            total_price: money(r.total_price),
        })
        .collect())
}

pub(crate) async fn history(
    tx: &mut PgConnection,
    id: i64,
    event: &str,
    status: &str,
    notes: &str,
    by: Option<i64>,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO order_history (order_id, event, status, notes, performed_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(event)
    .bind(status)
    .bind(notes)
    .bind(by)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Releases whatever the inventory holds for `order_number`, retrying a few times (the
/// reconciler takes over if it still cannot).
pub(crate) async fn release(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    order_number: &str,
) -> bool {
    let Some(stock) = ctx.platform.lookup::<SharedStock>() else {
        return false;
    };
    for attempt in 0..3u32 {
        match tokio::time::timeout(STOCK_TIMEOUT, stock.release_by_order(scope, order_number)).await
        {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                tracing::warn!(order = order_number, error = %e, attempt, "release failed")
            }
            Err(_) => tracing::warn!(order = order_number, attempt, "release timed out"),
        }
        tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
    }
    false
}

/// `POST orders/`: → (201 new | 200 the order of an existing `reference`, body).
pub async fn place(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    lang: &str,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    scope.require("order.add_order", &GRANTS)?;
    let mut placement = parse(body)?;
    if placement.discount.is_some() || placement.shipping.is_some() {
        scope.require("order.override_price", &GRANTS)?;
    }
    placement.customer_id = placement.customer_id.or(Some(scope.user_id()));
    let (created, id, answer) = place_parsed(ctx, scope, lang, placement).await?;
    Ok((
        created,
        match answer {
            Some(order) => order,
            None => show(ctx, scope, id).await?,
        },
    ))
}

pub(crate) const COUPON_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn billing(ctx: &ServiceContext) -> Result<SharedBilling, ApiError> {
    ctx.platform
        .lookup::<SharedBilling>()
        .ok_or_else(|| unreachable("billing"))
}

/// What a coupon takes off `amount` now (billing validates; nothing is used up).
pub(crate) async fn coupon_discount(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    code: &str,
    amount: Decimal,
    customer_id: Option<i64>,
) -> Result<Value, ApiError> {
    let body = json!({"code": code, "order_amount": money(amount), "customer_id": customer_id});
    tokio::time::timeout(
        COUPON_TIMEOUT,
        billing(ctx)?.validate_coupon(&scope.as_service(), &body),
    )
    .await
    .map_err(|_| unreachable("billing"))?
}

fn dec_of(v: &Value) -> Decimal {
    decimal(v).unwrap_or(Decimal::ZERO)
}

/// An order's totals (order.md §2.1): subtotal = Σ lines, the discount and the tax allocated to
/// the lines by largest remainder, total = subtotal − discount + shipping + tax.
pub(crate) struct Totals {
    pub(crate) subtotal: Decimal,
    pub(crate) discount: Decimal,
    pub(crate) shipping: Decimal,
    pub(crate) tax: Decimal,
    pub(crate) total: Decimal,
    /// Per line, in the order of the line totals given.
    pub(crate) discounts: Vec<Decimal>,
    pub(crate) taxes: Vec<Decimal>,
}

impl Totals {
    pub(crate) fn of(
        line_totals: &[Decimal],
        discount: Decimal,
        shipping: Decimal,
        tax_rate: Decimal,
    ) -> Self {
        let subtotal: Decimal = line_totals.iter().sum();
        let discount = discount.min(subtotal);
        let tax = crate::settings::tax(subtotal, discount, tax_rate);
        Self {
            subtotal,
            discount,
            shipping,
            tax,
            total: subtotal - discount + shipping + tax,
            discounts: crate::settings::allocate(discount, line_totals),
            taxes: crate::settings::allocate(tax, line_totals),
        }
    }
}

/// Recomputes an order's totals from its stored lines and writes them. Returns the total.
pub(crate) async fn write_totals(
    tx: &mut PgConnection,
    id: i64,
    discount: Decimal,
    shipping: Decimal,
    tax_rate: Decimal,
) -> Result<Decimal, ApiError> {
    let lines: Vec<(i64, Decimal)> =
        sqlx::query_as("SELECT id, total_price FROM order_items WHERE order_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let weights: Vec<Decimal> = lines.iter().map(|l| l.1).collect();
    let totals = Totals::of(&weights, discount, shipping, tax_rate);
    let ids: Vec<i64> = lines.iter().map(|l| l.0).collect();
    store_totals(tx, id, &ids, &totals).await?;
    Ok(totals.total)
}

/// Writes `totals` on the order and its lines (`ids`, in the order of the totals' lines).
async fn store_totals(
    tx: &mut PgConnection,
    id: i64,
    ids: &[i64],
    totals: &Totals,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE order_items i SET discount = a.discount, tax_amount = a.tax \
         FROM unnest($1::bigint[], $2::numeric[], $3::numeric[]) AS a(id, discount, tax) \
         WHERE i.id = ANY($1) AND i.id = a.id",
    )
    .bind(ids)
    .bind(&totals.discounts)
    .bind(&totals.taxes)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE orders SET subtotal = $2, discount_amount = $3, shipping_cost = $4, tax_amount = $5, \
           total = $6, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(totals.subtotal)
    .bind(totals.discount)
    .bind(totals.shipping)
    .bind(totals.tax)
    .bind(totals.total)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn existing_reference(
    ctx: &ServiceContext,
    project_id: i64,
    reference: &str,
) -> Result<Option<i64>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM orders WHERE project_id = $1 AND reference = $2 AND status <> 'failed'",
    )
    .bind(project_id)
    .bind(reference)
    .fetch_optional(&ctx.pool)
    .await?)
}

/// The placement saga (order.md §4) for a validated request → (created, order id):
/// price → the order's id, number and settings → coupon check → stock reserved under the
/// number → coupon redeemed → the order `pending` (or `pending_payment`) with its lines,
/// history and `order.created`, in one statement. Nothing of the order exists before that
/// statement; any failure before or in it gives back what was held (and the reconciler does,
/// should the process die in between: [`crate::placement_reconciler`]).
pub(crate) async fn place_parsed(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    lang: &str,
    placement: Placement,
) -> Result<(bool, i64, Option<Value>), ApiError> {
    if let Some(reference) = &placement.reference {
        if let Some(id) = existing_reference(ctx, scope.project_id(), reference).await? {
            return Ok((false, id, None));
        }
    }
    let (currency, priced) = price(ctx, scope, lang, &placement.lines).await?;
    let mut allocated =
        crate::placing::allocate(&ctx.pool, scope.project_id(), priced.len()).await?;
    let settings = allocated.settings.clone();
    let line_totals: Vec<Decimal> = priced.iter().map(Priced::line_total).collect();
    let subtotal: Decimal = line_totals.iter().sum();
    let shipping = match (placement.shipping, placement.shipping_method.as_str()) {
        (Some(manual), _) => manual,
        (None, "") => Decimal::ZERO,
        (None, code) => {
            let mut conn = ctx.pool.acquire().await?;
            crate::extras::shipping_cost(&mut conn, scope.project_id(), code, subtotal)
                .await?
                .ok_or_else(|| {
                    ApiError::field("shipping_method", "Unknown or inactive shipping method.")
                })?
        }
    };
    let mut discount = placement.discount.unwrap_or(Decimal::ZERO);
    if discount > subtotal {
        return Err(ApiError::field(
            "discount_amount",
            "The discount cannot exceed the subtotal.",
        ));
    }
    if let Some(code) = &placement.coupon_code {
        let quote = coupon_discount(ctx, scope, code, subtotal, placement.customer_id).await?;
        discount = (discount + dec_of(&quote["discount_amount"])).min(subtotal);
    }
    let (id, number) = (allocated.id, allocated.number.clone());
    let number = number.as_str();

    // 1. The stock, held under the order number (a repeated call for it finds the same
    // reservation): for the payment window while an online payment is awaited, else for the
    // reservation TTL.
    let tracked: Vec<Value> = priced
        .iter()
        .filter(|p| p.quote.track_inventory.unwrap_or(true))
        .map(|p| {
            json!({"product_id": p.wanted.product_id, "variant_id": p.wanted.variant_id,
                   "inventory_id": p.wanted.inventory_id, "quantity": p.wanted.quantity})
        })
        .collect();
    let hold_for = if placement.awaiting_payment {
        settings.payment_window
    } else {
        settings.reservation_ttl
    };
    allocated.holding_for(hold_for);
    let mut reservation = None;
    if !tracked.is_empty() {
        let Some(stock) = ctx.platform.lookup::<SharedStock>() else {
            return Err(unreachable("inventory"));
        };
        let request = json!({"order_id": number, "items": tracked,
            "reference": format!("order:{id}"),
            "expires_at": (chrono::Utc::now() + hold_for).to_rfc3339()});
        match tokio::time::timeout(STOCK_TIMEOUT, stock.reserve(scope, &request)).await {
            Ok(Ok(held)) => reservation = Some(held.reservation_number),
            Ok(Err(e)) if e.status().is_client_error() => return Err(e),
            Ok(Err(_)) | Err(_) => {
                // It may have held the stock before failing: give it back.
                release(ctx, scope, number).await;
                return Err(unreachable("inventory"));
            }
        }
    }

    // 2. The coupon used up, under this order's id (a repeated call finds the same use).
    let mut redemption = None;
    if let Some(code) = &placement.coupon_code {
        let body = json!({"code": code, "order_amount": money(subtotal),
            "customer_id": placement.customer_id, "source_type": "order", "source_id": id});
        let redeemed = match billing(ctx) {
            Ok(b) => {
                tokio::time::timeout(COUPON_TIMEOUT, b.redeem_coupon(&scope.as_service(), &body))
                    .await
                    .unwrap_or_else(|_| Err(unreachable("billing")))
            }
            Err(e) => Err(e),
        };
        match redeemed {
            Ok(r) => redemption = Some(r),
            Err(e) => {
                release(ctx, scope, number).await;
                return Err(e);
            }
        }
    }

    // 3. Placed: the order, its lines, history and event in one statement.
    let redeemed = redemption.as_ref().and_then(|r| r["id"].as_i64());
    // Billing's word is final (the coupon may have changed since the check).
    if let Some(granted) = redemption.as_ref().map(|r| dec_of(&r["discount_amount"])) {
        discount = (placement.discount.unwrap_or(Decimal::ZERO) + granted).min(subtotal);
    }
    let totals = Totals::of(&line_totals, discount, shipping, settings.tax_rate);
    let status = if placement.awaiting_payment {
        "pending_payment"
    } else {
        "pending"
    };
    let placed = crate::placing::Placed {
        allocated: &allocated,
        project_id: scope.project_id(),
        by: scope.user_id(),
        placement: &placement,
        currency: &currency,
        priced: &priced,
        totals: &totals,
        status,
        reservation: reservation.as_deref(),
        redemption: redeemed,
    };
    let written = match write_placed(ctx, &placed).await {
        Ok(written) => written,
        // The statement may have been written before its answer was lost: the order tells
        // (and, if even that cannot be asked, the reconciler decides later).
        Err(e) => match crate::placing::exists(&ctx.pool, id).await {
            Ok(true) => Written::Placed(None),
            Ok(false) => {
                give_back(ctx, scope, number, redeemed).await;
                return Err(e);
            }
            Err(_) => return Err(e),
        },
    };
    if let Written::Placed(answer) = written {
        ctx.outbox.nudge();
        return Ok((true, id, answer));
    }
    give_back(ctx, scope, number, redeemed).await;
    if written == Written::ReferenceTaken {
        // The same reference placed concurrently: that order is the answer.
        let reference = placement.reference.as_deref().unwrap_or_default();
        return match existing_reference(ctx, scope.project_id(), reference).await? {
            Some(id) => Ok((false, id, None)),
            None => Err(ApiError::conflict(
                "conflict",
                "This reference is being placed; retry shortly.",
            )
            .transient()),
        };
    }
    Err(ApiError::conflict(
        "placement_interrupted",
        "This placement took too long and was undone; nothing was placed.",
    ))
}

/// Gives back a placement's hold and coupon use (the reconciler does if this cannot).
async fn give_back(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    number: &str,
    redeemed: Option<i64>,
) {
    release(ctx, scope, number).await;
    if let (Some(r), Ok(b)) = (redeemed, billing(ctx)) {
        let _ = b.release_redemption(&scope.as_service(), r).await;
    }
}

/// The placed order's statement with its `order.created` event, built from what is written.
async fn write_placed(
    ctx: &ServiceContext,
    placed: &crate::placing::Placed<'_>,
) -> Result<Written, ApiError> {
    let (allocated, placement, totals) = (placed.allocated, placed.placement, placed.totals);
    let event = OrderCreated {
        order: OrderRef {
            order_id: allocated.id,
            order_number: allocated.number.clone(),
            reference: placement.reference.clone(),
            status: placed.status.to_owned(),
            payment_status: crate::placing::PAYMENT_STATUS.to_owned(),
        },
        customer_id: placement.customer_id,
        customer_email: placement.customer_email.clone(),
        currency: placed.currency.to_owned(),
        subtotal: money(totals.subtotal),
        discount_amount: money(totals.discount),
        shipping_cost: money(totals.shipping),
        tax_amount: money(totals.tax),
        total: money(totals.total),
        items: crate::placing::lines(allocated, placed.priced),
        source: placement.source.clone(),
        reservation_id: placed.reservation.map(str::to_owned),
    };
    let envelope = ctx
        .outbox
        .envelope(Some(placed.project_id), Some(placed.by), &event)?;
    let event = kernel::events::OutboxRows::of(std::slice::from_ref(&envelope))?;
    crate::placing::insert_placed(&ctx.pool, placed, &event).await
}

/// Writes a priced line of an order → its id.
pub(crate) async fn insert_line(
    tx: &mut PgConnection,
    project_id: i64,
    order_id: i64,
    p: &Priced,
    by: i64,
) -> Result<i64, ApiError> {
    let line_total = p.line_total();
    Ok(sqlx::query_scalar(
        "INSERT INTO order_items (project_id, order_id, product_id, variant_id, inventory_id, \
           product_name, variant_name, sku, image_url, quantity, unit_price, list_price, \
           price_overridden, total_price, tracked, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::numeric, $13, $14, $15, $16, $16) \
         RETURNING id",
    )
    .bind(project_id)
    .bind(order_id)
    .bind(p.wanted.product_id)
    .bind(p.wanted.variant_id)
    .bind(p.wanted.inventory_id)
    .bind(p.quote.name.clone().unwrap_or_default())
    .bind(&p.quote.variant_name)
    .bind(&p.quote.sku)
    .bind(&p.quote.image_url)
    .bind(p.wanted.quantity as i32)
    .bind(p.unit_price)
    .bind(&p.quote.list_price)
    .bind(p.overridden)
    .bind(line_total)
    .bind(p.quote.track_inventory.unwrap_or(true))
    .bind(by)
    .fetch_one(&mut *tx)
    .await?)
}

/// Records the event of the main status an order entered (order.md §14), if it has one.
pub(crate) async fn record_step(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    project_id: i64,
    by: Option<i64>,
    id: i64,
    step: &str,
) -> Result<(), ApiError> {
    use integration::order::{
        OrderCompleted, OrderConfirmed, OrderDeleted, OrderDelivered, OrderPaid, OrderReturned,
        OrderShipped, OrderSnapshot,
    };
    let order = reference(tx, id).await?;
    let (customer_id, customer_email, currency, total, paid): (
        Option<i64>,
        String,
        String,
        Decimal,
        Decimal,
    ) = sqlx::query_as(
        "SELECT customer_id, customer_email, currency, total, amount_paid - amount_refunded \
         FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let snapshot = OrderSnapshot {
        order,
        customer_id,
        customer_email,
        currency,
        total: money(total),
        amount_paid: money(paid),
        by,
    };
    let (project, outbox) = (Some(project_id), &ctx.outbox);
    match step {
        "confirmed" => {
            outbox
                .record(tx, project, by, &OrderConfirmed(snapshot))
                .await?;
        }
        "shipped" => {
            outbox
                .record(tx, project, by, &OrderShipped(snapshot))
                .await?;
        }
        "delivered" => {
            outbox
                .record(tx, project, by, &OrderDelivered(snapshot))
                .await?;
        }
        "completed" => {
            outbox
                .record(tx, project, by, &OrderCompleted(snapshot))
                .await?;
        }
        "paid" => {
            outbox.record(tx, project, by, &OrderPaid(snapshot)).await?;
        }
        "returned" => {
            outbox
                .record(tx, project, by, &OrderReturned(snapshot))
                .await?;
        }
        "deleted" => {
            outbox
                .record(tx, project, by, &OrderDeleted(snapshot))
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// The order as clients read it.
pub async fn show(ctx: &ServiceContext, scope: &ProjectScope, id: i64) -> Result<Value, ApiError> {
    kernel::resource::retrieve(
        ctx,
        &ORDER,
        &kernel::auth::ReadScope::Member(scope.clone()),
        id,
        "en",
    )
    .await
}

/// An order of the project by id or number, locked.
async fn lock(
    tx: &mut PgConnection,
    project_id: i64,
    key: &str,
) -> Result<(i64, String, String, Option<String>, String, Option<Value>), ApiError> {
    let id: Option<i64> = key.trim().parse().ok();
    sqlx::query_as(
        "SELECT id, order_number, status, reservation_id, shipping_method, shipping_address \
         FROM orders WHERE project_id = $1 AND (id = $2 OR order_number = $3) \
         AND deleted_at IS NULL AND status NOT IN ('placing', 'failed') FOR UPDATE",
    )
    .bind(project_id)
    .bind(id.unwrap_or(-1))
    .bind(canonical_number(key))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// Allowed transitions of the main status (order.md §3.1).
fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        "pending_payment" => &["confirmed", "cancelled"],
        "pending" => &["confirmed", "processing", "completed", "cancelled"],
        "confirmed" => &["processing", "shipped", "completed", "cancelled"],
        "processing" => &["shipped", "completed"],
        "shipped" => &["delivered", "completed", "returned"],
        "delivered" => &["completed", "returned"],
        "completed" => &["returned"],
        _ => &[],
    }
}

fn invalid(from: &str, to: &str) -> ApiError {
    ApiError::rule(
        "invalid_transition",
        format!("An order cannot go from {from} to {to}."),
    )
    .with(
        "details",
        json!({"from": from, "to": to, "allowed": allowed(from)}),
    )
}

/// `PATCH orders/{id}/status/` `{status, tracking_number?, carrier?, notes?}`.
pub async fn set_status(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("order.change_order_status", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let mut to = text(body, &["status"], 30, &mut errors).to_ascii_lowercase();
    let status_id = match body.get("status_id") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = int(Some(v)).filter(|i| *i > 0);
            if id.is_none() {
                errors.add("status_id", "A valid status id is required.");
            }
            id
        }
    };
    if let Some(sid) = status_id {
        let main: Option<String> = sqlx::query_scalar(
            "SELECT main_status FROM statuses WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(sid)
        .bind(scope.project_id())
        .fetch_optional(&ctx.pool)
        .await?;
        match main {
            Some(m) if to.is_empty() || to == m => to = m,
            Some(_) => errors.add("status_id", "This status belongs to another main status."),
            None => errors.add("status_id", "No such status."),
        }
    }
    let to = if to == "canceled" {
        "cancelled".to_owned()
    } else {
        to
    };
    let tracking = text(body, &["tracking_number"], 100, &mut errors);
    let carrier = text(body, &["carrier"], 100, &mut errors);
    let notes = text(body, &["notes", "note"], 2000, &mut errors);
    if to.is_empty() && errors.is_empty() {
        errors.required("status");
    }
    errors.into_result()?;
    if to == "cancelled" {
        let reason = if notes.is_empty() {
            "Cancelled".to_owned()
        } else {
            notes.clone()
        };
        let done = cancel(ctx, scope, key, &json!({"reason": reason})).await?;
        return Ok(
            json!({"id": done["id"], "status": "cancelled", "previous_status": done["previous_status"],
            "tracking_number": tracking, "carrier": carrier, "notes": notes, "updated_at": chrono::Utc::now()}),
        );
    }
    if to == "returned" {
        return Err(ApiError::rule(
            "use_returns",
            "Returns are recorded through order returns.",
        ));
    }
    let known = [
        "pending",
        "confirmed",
        "processing",
        "shipped",
        "delivered",
        "completed",
    ];
    if !known.contains(&to.as_str()) {
        return Err(ApiError::field(
            "status",
            format!("\"{to}\" is not a valid status."),
        ));
    }
    let (id, number, from, reservation, method, address) = {
        let mut tx = ctx.pool.begin().await?;
        let row = lock(&mut tx, scope.project_id(), key).await?;
        tx.rollback().await?;
        row
    };
    if from == to {
        if let Some(sid) = status_id {
            sqlx::query("UPDATE orders SET status_id = $2, updated_at = now() WHERE id = $1")
                .bind(id)
                .bind(sid)
                .execute(&ctx.pool)
                .await?;
        }
        return Ok(
            json!({"id": id, "status": to, "previous_status": from, "status_id": status_id}),
        );
    }
    if !allowed(&from).contains(&to.as_str()) {
        return Err(invalid(&from, &to));
    }
    let reaches = |s: &str| {
        let order = [
            "pending",
            "confirmed",
            "processing",
            "shipped",
            "delivered",
            "completed",
        ];
        let at = |x: &str| order.iter().position(|o| *o == x).unwrap_or(0);
        at(&to) >= at(s) && at(&from) < at(s)
    };
    // Effects of the states entered or skipped, before the status moves.
    if reaches("confirmed") {
        if let Some(r) = &reservation {
            hold(ctx, scope, id, &number, r).await?;
        }
    }
    if reaches("shipped") || (to == "completed" && from != "shipped" && from != "delivered") {
        if reaches("shipped") && method != "pickup" && address.is_none() {
            return Err(ApiError::rule(
                "shipping_address_required",
                "A shipping address is required to ship this order.",
            ));
        }
        fulfil(
            ctx,
            scope,
            id,
            &number,
            reservation.as_deref(),
            &tracking,
            &carrier,
        )
        .await?;
    }
    let mut tx = ctx.pool.begin().await?;
    let (_, _, now, _, _, _) = lock(&mut tx, scope.project_id(), &id.to_string()).await?;
    // While the effects ran, someone else may have moved the order (our own fulfilment leaves
    // it `shipped`): the move must still be allowed from where it is now.
    let as_expected = now == from || now == to || (now == "shipped" && to != "shipped");
    if !as_expected && !allowed(&now).contains(&to.as_str()) {
        return Err(invalid(&now, &to));
    }
    sqlx::query(
        "UPDATE orders SET status = $2, updated_at = now(), updated_by = $3, \
           confirmed_at = CASE WHEN $2 IN ('confirmed','processing','shipped','delivered','completed') \
             THEN COALESCE(confirmed_at, now()) ELSE confirmed_at END, \
           shipped_at = CASE WHEN $2 IN ('shipped','delivered','completed') AND fulfillment_status = 'fulfilled' \
             THEN COALESCE(shipped_at, now()) ELSE shipped_at END, \
           delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END, \
           completed_at = CASE WHEN $2 = 'completed' THEN now() ELSE completed_at END, \
           tracking_number = CASE WHEN $4 <> '' THEN $4 ELSE tracking_number END, \
           carrier = CASE WHEN $5 <> '' THEN $5 ELSE carrier END, \
           status_id = CASE WHEN $6::bigint IS NOT NULL THEN $6 \
             WHEN (SELECT s.main_status FROM statuses s WHERE s.id = orders.status_id) = $2 \
             THEN status_id END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&to)
    .bind(scope.user_id())
    .bind(&tracking)
    .bind(&carrier)
    .bind(status_id)
    .execute(&mut *tx)
    .await?;
    if to == "completed" {
        // Completing settles the bill (order.md §3.1): what is still due is paid now.
        let method: String = sqlx::query_scalar("SELECT payment_method FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        crate::payments::pay_due(
            ctx,
            &mut tx,
            scope,
            id,
            None,
            &method,
            "completed",
            Some(format!("ORD-{id}-complete")),
        )
        .await?;
    }
    if to == "delivered" {
        sqlx::query(
            "UPDATE fulfillments SET status = 'delivered', delivered_at = now(), updated_at = now() \
             WHERE order_id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    history(&mut tx, id, "status", &to, &notes, Some(scope.user_id())).await?;
    let order = reference(&mut tx, id).await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &OrderStatusChanged {
                order,
                from: now.clone(),
                to: to.clone(),
                by: Some(scope.user_id()),
            },
        )
        .await?;
    record_step(
        ctx,
        &mut tx,
        scope.project_id(),
        Some(scope.user_id()),
        id,
        &to,
    )
    .await?;
    tx.commit().await?;
    ctx.outbox.nudge();
    let (updated_at, tracking_number, carrier): (chrono::DateTime<chrono::Utc>, String, String) =
        sqlx::query_as("SELECT updated_at, tracking_number, carrier FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&ctx.pool)
            .await?;
    Ok(
        json!({"id": id, "status": to, "previous_status": now, "tracking_number": tracking_number,
              "carrier": carrier, "notes": notes, "updated_at": updated_at}),
    )
}

/// Confirmation holds the reservation until fulfilment; an expired one cancels the order.
async fn hold(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    number: &str,
    reservation: &str,
) -> Result<(), ApiError> {
    let stock = ctx
        .platform
        .lookup::<SharedStock>()
        .ok_or_else(|| unreachable("inventory"))?;
    match tokio::time::timeout(STOCK_TIMEOUT, stock.hold(scope, reservation)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.code() == "reservation_expired" || e.code() == "reservation_not_active" => {
            cancel(
                ctx,
                scope,
                &id.to_string(),
                &json!({"reason": "reservation_expired"}),
            )
            .await?;
            let _ = number;
            Err(ApiError::rule(
                "reservation_expired",
                "The order's stock reservation expired; the order was cancelled.",
            ))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(unreachable("inventory")),
    }
}

/// Ships every remaining unit: the reservation is confirmed (stock OUT `sale`, referenced by
/// the order number) and one fulfilment records it. Repeating it changes nothing.
async fn fulfil(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    number: &str,
    reservation: Option<&str>,
    tracking: &str,
    carrier: &str,
) -> Result<i64, ApiError> {
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM fulfillments WHERE order_id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(&ctx.pool)
    .await?;
    if let Some(f) = existing {
        return Ok(f);
    }
    if let Some(r) = reservation {
        let stock = ctx
            .platform
            .lookup::<SharedStock>()
            .ok_or_else(|| unreachable("inventory"))?;
        tokio::time::timeout(STOCK_TIMEOUT, stock.confirm(scope, r, number))
            .await
            .map_err(|_| unreachable("inventory"))??;
    }
    let mut tx = ctx.pool.begin().await?;
    let items: Value = sqlx::query_scalar(
        "SELECT COALESCE(jsonb_agg(jsonb_build_object('order_item_id', id, 'quantity', quantity - fulfilled_quantity) ORDER BY id), '[]') \
         FROM order_items WHERE order_id = $1 AND quantity > fulfilled_quantity",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let fulfillment: i64 = sqlx::query_scalar(
        "INSERT INTO fulfillments (project_id, order_id, items, carrier, tracking_number, \
           shipping_method, created_by, updated_by) \
         SELECT project_id, id, $2, $3, $4, shipping_method, $5, $5 FROM orders WHERE id = $1 \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(&items)
    .bind(carrier)
    .bind(tracking)
    .bind(scope.user_id())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::conflict("conflict", "The order was fulfilled concurrently."))?;
    sqlx::query("UPDATE order_items SET fulfilled_quantity = quantity WHERE order_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE orders SET fulfillment_status = 'fulfilled', shipped_at = COALESCE(shipped_at, now()), \
           tracking_number = CASE WHEN $2 <> '' THEN $2 ELSE tracking_number END, \
           carrier = CASE WHEN $3 <> '' THEN $3 ELSE carrier END, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(tracking)
    .bind(carrier)
    .execute(&mut *tx)
    .await?;
    history(
        &mut tx,
        id,
        "fulfilled",
        "shipped",
        tracking,
        Some(scope.user_id()),
    )
    .await?;
    let order = reference(&mut tx, id).await?;
    let items = lines(&mut tx, id).await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &OrderFulfilled {
                order,
                fulfillment_id: fulfillment,
                carrier: carrier.to_owned(),
                tracking_number: tracking.to_owned(),
                items,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(fulfillment)
}

/// `POST orders/{id}/fulfillments/` `{carrier?, tracking_number?}` → the order shipped.
pub async fn ship(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("order.fulfill_order", &GRANTS)?;
    let mut body = body.clone();
    body["status"] = json!("shipped");
    set_status(ctx, scope, key, &body).await?;
    let id = find(&ctx.pool, scope.project_id(), key).await?;
    let fulfillment: Value = sqlx::query_scalar(
        "SELECT to_jsonb(f.*) - 'project_id' - 'deleted_at' - 'deleted_by' FROM fulfillments f \
         WHERE f.order_id = $1 AND f.deleted_at IS NULL",
    )
    .bind(id)
    .fetch_one(&ctx.pool)
    .await?;
    Ok(fulfillment)
}

/// `POST orders/{id}/cancel/` `{reason, refund?, restock_items?}`: from pending_payment,
/// pending or confirmed; the reservation is released. Repeating it answers the same.
pub async fn cancel(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("order.cancel_order", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let reason = text(body, &["reason"], 1000, &mut errors);
    if reason.is_empty() && errors.is_empty() {
        errors.required("reason");
    }
    let refund = match body.get("refund") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add("refund", "Must be a boolean.");
            false
        }
    };
    errors.into_result()?;
    if refund {
        scope.require("order.refund_order", &GRANTS)?;
    }
    let (id, number, from, reservation, _, _) = {
        let mut tx = ctx.pool.begin().await?;
        let row = lock(&mut tx, scope.project_id(), key).await?;
        tx.rollback().await?;
        row
    };
    if from == "cancelled" {
        return cancelled(ctx, id, &from).await;
    }
    if !matches!(from.as_str(), "pending_payment" | "pending" | "confirmed") {
        return Err(ApiError::rule(
            "order_not_cancellable",
            format!("Order cannot be cancelled in current status: {from}"),
        ));
    }
    if reservation.is_some() && !release(ctx, scope, &number).await {
        return Err(unreachable("inventory"));
    }
    let mut tx = ctx.pool.begin().await?;
    let (_, _, now, _, _, _) = lock(&mut tx, scope.project_id(), &id.to_string()).await?;
    if now == "cancelled" {
        drop(tx);
        return cancelled(ctx, id, &now).await;
    }
    if !matches!(now.as_str(), "pending_payment" | "pending" | "confirmed") {
        return Err(ApiError::rule(
            "order_not_cancellable",
            format!("Order cannot be cancelled in current status: {now}"),
        ));
    }
    sqlx::query(
        "UPDATE orders SET status = 'cancelled', cancellation_reason = $2, cancelled_at = now(), \
           updated_at = now(), updated_by = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(&reason)
    .bind(scope.user_id())
    .execute(&mut *tx)
    .await?;
    history(
        &mut tx,
        id,
        "cancelled",
        "cancelled",
        &reason,
        Some(scope.user_id()),
    )
    .await?;
    // refund=false keeps the money (order.md §7); refund=true gives back what was paid net.
    let refunded = if refund {
        crate::payments::refund(
            ctx,
            &mut tx,
            scope,
            id,
            None,
            &cancel_refund_key(scope.project_id(), id),
            &reason,
            None,
        )
        .await?
    } else {
        Decimal::ZERO
    };
    let order = reference(&mut tx, id).await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &OrderCancelled {
                order,
                reason: reason.clone(),
                refund_amount: money(refunded),
            },
        )
        .await?;
    let redemption: Option<i64> =
        sqlx::query_scalar("SELECT coupon_redemption_id FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    ctx.outbox.nudge();
    // The coupon use is freed (billing answers the same to a second release).
    if let (Some(r), Some(billing)) = (redemption, ctx.platform.lookup::<SharedBilling>()) {
        let freed = tokio::time::timeout(
            COUPON_TIMEOUT,
            billing.release_redemption(&scope.as_service(), r),
        )
        .await;
        if !matches!(freed, Ok(Ok(()))) {
            tracing::warn!(
                order_id = id,
                "the coupon redemption of a cancelled order was not released"
            );
        }
    }
    cancelled(ctx, id, &now).await
}

fn cancel_refund_key(project_id: i64, id: i64) -> String {
    format!("order-cancel-refund-{project_id}-{id}")
}

async fn cancelled(ctx: &ServiceContext, id: i64, previous: &str) -> Result<Value, ApiError> {
    let (reason, at, project_id): (String, Option<chrono::DateTime<chrono::Utc>>, i64) =
        sqlx::query_as(
            "SELECT cancellation_reason, cancelled_at, project_id FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&ctx.pool)
        .await?;
    let refunded: Option<Decimal> = sqlx::query_scalar(
        "SELECT amount FROM order_refunds WHERE project_id = $1 AND transaction_id = $2",
    )
    .bind(project_id)
    .bind(cancel_refund_key(project_id, id))
    .fetch_optional(&ctx.pool)
    .await?;
    Ok(
        json!({"id": id, "status": "cancelled", "previous_status": previous,
              "cancellation_reason": reason, "refund_processed": refunded.is_some(),
              "refund_amount": money(refunded.unwrap_or_default()),
              "items_restocked": true, "cancelled_at": at}),
    )
}

/// `inventory.reservation_expired`: a pending order whose hold expired is cancelled (reason
/// `reservation_expired`), once per event.
pub struct ExpiryFollower {
    pub ctx: ServiceContext,
}

#[async_trait]
impl kernel::events::EventHandler for ExpiryFollower {
    async fn handle(&self, envelope: &kernel::events::Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<integration::inventory::ReservationExpired>() else {
            return Ok(());
        };
        let event = event?.0;
        let (Some(project_id), Some(number)) = (envelope.project_id, event.order_id) else {
            return Ok(());
        };
        let Some(mut tx) = kernel::events::begin_once(&self.ctx.pool, "order", envelope).await?
        else {
            return Ok(());
        };
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE project_id = $1 AND order_number = $2 \
             AND status IN ('pending', 'pending_payment') FOR UPDATE",
        )
        .bind(project_id)
        .bind(&number)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            let reason = "reservation_expired";
            sqlx::query(
                "UPDATE orders SET status = 'cancelled', cancellation_reason = $2, \
                   cancelled_at = now(), updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            history(&mut tx, id, "cancelled", "cancelled", reason, None)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
            let order = reference(&mut tx, id)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
            self.ctx
                .outbox
                .record(
                    &mut tx,
                    Some(project_id),
                    None,
                    &OrderCancelled {
                        order,
                        reason: reason.to_owned(),
                        refund_amount: money(Decimal::ZERO),
                    },
                )
                .await?;
        }
        tx.commit().await?;
        self.ctx.outbox.nudge();
        Ok(())
    }
}

/// Billing's events about an order's invoice: `invoice.created` (→ `invoice_id`, see
/// [`crate::invoice_links`]) and
/// `payment.success` / `payment.refunded` (→ amounts and the derived `payment_status`). An
/// order that becomes paid while pending is confirmed (order.md §3.2 `auto_confirm_paid_orders`).
pub struct BillingFollower {
    pub ctx: ServiceContext,
}

/// order.md §3.2, from the invoice's totals after a payment or refund.
fn payment_status(total: Decimal, paid: Decimal, refunded: Decimal) -> &'static str {
    let net = paid - refunded;
    if refunded > Decimal::ZERO && net <= Decimal::ZERO {
        "refunded"
    } else if refunded > Decimal::ZERO {
        "partially_refunded"
    } else if net >= total {
        "paid"
    } else if net > Decimal::ZERO {
        "partially_paid"
    } else {
        "pending"
    }
}

#[async_trait]
impl kernel::events::EventHandler for BillingFollower {
    fn batches(&self) -> bool {
        true
    }

    /// The invoices of a batch are recorded on their orders at once, then the other events
    /// are followed in turn (an invoice's id is not something they read).
    async fn handle_all(&self, envelopes: &[&kernel::events::Envelope]) -> anyhow::Result<()> {
        let (created, others): (Vec<_>, Vec<_>) = envelopes
            .iter()
            .partition(|e| e.event_type == <InvoiceCreated as IntegrationEvent>::TYPE);
        crate::invoice_links::link(&self.ctx.pool, &created).await?;
        for envelope in others {
            self.handle(envelope).await?;
        }
        Ok(())
    }

    async fn handle(&self, envelope: &kernel::events::Envelope) -> anyhow::Result<()> {
        use integration::billing::{PaymentFailed, PaymentRefunded, PaymentSucceeded};
        if envelope.event_type == <InvoiceCreated as IntegrationEvent>::TYPE {
            return crate::invoice_links::link(&self.ctx.pool, &[envelope]).await;
        }
        let Some(project_id) = envelope.project_id else {
            return Ok(());
        };
        // (payment, Some(succeeded) for a payment outcome, None for a refund)
        let (payment, outcome) = match (
            envelope.decode::<PaymentSucceeded>(),
            envelope.decode::<PaymentRefunded>(),
            envelope.decode::<PaymentFailed>(),
        ) {
            (Some(p), _, _) => (Some(p?.0), Some(true)),
            (_, Some(p), _) => (Some(p?.0), None),
            (_, _, Some(p)) => (Some(p?.0), Some(false)),
            _ => (None, None),
        };
        let source = match &payment {
            Some(p) if p.source_type == "order" => p.source_id,
            _ => None,
        };
        let Some(order_id) = source else {
            return Ok(());
        };
        let Some(mut tx) = kernel::events::begin_once(&self.ctx.pool, "order", envelope).await?
        else {
            return Ok(());
        };
        let mut confirm = false;
        if let (Some(p), Some(succeeded)) = (&payment, outcome) {
            crate::payments::follow(&mut tx, project_id, order_id, p, succeeded)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
        }
        if let Some(p) = payment.as_ref().filter(|_| outcome != Some(false)) {
            let dec = |s: &str| s.parse::<Decimal>().unwrap_or(Decimal::ZERO);
            let (paid, refunded) = (dec(&p.amount_paid), dec(&p.amount_refunded));
            let total: Option<(Decimal, String, String)> = sqlx::query_as(
                "SELECT total, status, payment_status FROM orders WHERE id = $1 AND project_id = $2 \
                 FOR UPDATE",
            )
            .bind(order_id)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((total, status, was)) = total {
                let derived = payment_status(total, paid, refunded);
                sqlx::query(
                    "UPDATE orders SET amount_paid = $3, amount_refunded = $4, payment_status = $5, \
                       updated_at = now() WHERE id = $1 AND project_id = $2",
                )
                .bind(order_id)
                .bind(project_id)
                .bind(paid)
                .bind(refunded)
                .bind(derived)
                .execute(&mut *tx)
                .await?;
                history(
                    &mut tx,
                    order_id,
                    "payment",
                    &status,
                    &format!("{derived}: {}", p.amount),
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
                if derived == "paid" && was != "paid" {
                    record_step(
                        &self.ctx,
                        &mut tx,
                        project_id,
                        envelope.actor_id,
                        order_id,
                        "paid",
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
                }
                let settings = crate::settings::load(&mut *tx, project_id).await?;
                confirm = settings.auto_confirm_paid
                    && derived == "paid"
                    && matches!(status.as_str(), "pending" | "pending_payment");
            }
        }
        tx.commit().await?;
        if confirm {
            if let Some(scope) = ProjectScope::for_event(envelope) {
                let moved = set_status(
                    &self.ctx,
                    &scope,
                    &order_id.to_string(),
                    &json!({"status": "confirmed", "notes": "paid"}),
                )
                .await;
                if let Err(e) = moved {
                    tracing::warn!(order_id, error = %e, "a paid order was not confirmed");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_number;

    #[test]
    fn short_order_numbers_are_padded() {
        assert_eq!(canonical_number("ORD-2026-001"), "ORD-2026-000001");
        assert_eq!(canonical_number(" ORD-2026-000042 "), "ORD-2026-000042");
        assert_eq!(canonical_number("ORD-2026-1234567"), "ORD-2026-1234567");
        assert_eq!(canonical_number("17"), "17");
        assert_eq!(canonical_number("ORD-26-1"), "ORD-26-1");
    }
}
