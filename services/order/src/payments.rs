//! Order payments and refunds (contract order.md §6, §7, §9).
//!
//! A payment is recorded here and booked on the order's invoice by billing: completing one
//! checks it against what is due and writes `order.payment_recorded` (transaction
//! `ORD-{orderId}-{paymentId}`) in the same transaction; billing answers `payment.success` (the
//! payment is acknowledged) or `payment.failed` (it fails). Payments billing records itself
//! (gateways, its own API) appear here too, keyed by their transaction id. Refunds go the same
//! way as `order.refund_requested`, once per key.

use async_trait::async_trait;
use integration::order::{OrderPaymentRecorded, OrderRefundRequested};
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Hooks, Resource, Values, Write, Written};
use kernel::service::ServiceContext;
use kernel::ApiError;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::orders::{money, GRANTS};

const METHODS: &[&str] = &[
    "credit_card",
    "debit_card",
    "cash",
    "bank_transfer",
    "wallet",
    "paypal",
    "cash_on_delivery",
];
const STATUSES: &[&str] = &["pending", "processing", "completed", "failed"];

/// Payments through the resource machinery (order.md §6): staff record them, admins change
/// and delete them; the status moves along pending → processing → completed | failed.
pub static PAYMENT: Resource = Resource {
    service: "order",
    model: "payment",
    label: "Payment",
    table: "payments",
    fields: &[
        Field::new("order_id", FieldKind::Ref { table: "orders" })
            .required()
            .aliases(&["order"]),
        Field::new("payment_method", FieldKind::Choice(METHODS)).required(),
        Field::new(
            "amount",
            FieldKind::Decimal {
                min: Some(0),
                max: Some(1_000_000_000_000),
                scale: 2,
            },
        )
        .required(),
        Field::new("status", FieldKind::Choice(STATUSES)),
        Field::text("transaction_reference", 255),
        Field::new("payment_date", FieldKind::DateTime).read_only(),
        Field::text("notes", 2000),
        Field::text("billing_transaction_id", 100).read_only(),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("order", "t.order_id", Kind::Int),
            Col::new("order_id", "t.order_id", Kind::Int),
            Col::new("payment_method", "t.payment_method", Kind::Text),
            Col::new("status", "t.status", Kind::Text),
        ],
        ordering: &[
            Col::new("payment_date", "t.payment_date", Kind::DateTime),
            Col::new("amount", "t.amount", Kind::Decimal),
            Col::new("created_at", "t.created_at", Kind::DateTime),
        ],
        search: &["t.transaction_reference", "t.notes"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&PaymentRules),
    params: None,
    hidden: None,
    related: &[],
};

pub struct PaymentRules;

fn allowed(from: &str, to: &str) -> bool {
    from == to
        || matches!(
            (from, to),
            ("pending", "processing" | "completed" | "failed")
                | ("processing", "completed" | "failed")
        )
}

/// What is still due on an order: its total less what billing has booked net, less completed
/// payments billing has not acknowledged yet (other than `except`).
async fn due(tx: &mut PgConnection, order_id: i64, except: i64) -> Result<Decimal, ApiError> {
    let due: Decimal = sqlx::query_scalar(
        "SELECT GREATEST(o.total - o.amount_paid + o.amount_refunded - COALESCE((SELECT sum(p.amount) \
           FROM payments p WHERE p.order_id = o.id AND p.status = 'completed' AND NOT p.acknowledged \
           AND p.deleted_at IS NULL AND p.id <> $2), 0), 0) FROM orders o WHERE o.id = $1",
    )
    .bind(order_id)
    .bind(except)
    .fetch_one(&mut *tx)
    .await?;
    Ok(due)
}

/// Locks the order; payments are taken only on live orders.
async fn lock_order(
    tx: &mut PgConnection,
    project_id: i64,
    order_id: i64,
) -> Result<(String, String), ApiError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT status, currency FROM orders WHERE id = $1 AND project_id = $2 \
         AND deleted_at IS NULL AND status NOT IN ('placing', 'failed') FOR UPDATE",
    )
    .bind(order_id)
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.ok_or_else(|| ApiError::field("order_id", "No such order."))
}

#[async_trait]
impl Hooks for PaymentRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(id) = id else {
            if let Some(Bind::Int(order)) = values.get("order_id") {
                let (status, _) = lock_order(tx, scope.project_id(), *order).await?;
                if status == "cancelled" {
                    return Err(ApiError::rule(
                        "order_cancelled",
                        "A cancelled order takes no payments.",
                    ));
                }
            }
            if let Some(Bind::Decimal(a)) = values.get("amount") {
                if *a <= Decimal::ZERO {
                    return Err(ApiError::field("amount", "Must be greater than 0."));
                }
            }
            return Ok(());
        };
        let (status, order_id): (String, i64) =
            sqlx::query_as("SELECT status, order_id FROM payments WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if status == "completed" || status == "refunded" || status == "failed" {
            return Err(ApiError::rule(
                "payment_immutable",
                format!("A {status} payment cannot change; record a refund or a new payment."),
            ));
        }
        if values.contains_key("order_id") {
            let moved = matches!(values.get("order_id"), Some(Bind::Int(o)) if *o != order_id);
            if moved {
                return Err(ApiError::field("order_id", "A payment stays on its order."));
            }
        }
        if let Some(Bind::Text(to)) = values.get("status") {
            if !allowed(&status, to) {
                return Err(ApiError::rule(
                    "invalid_transition",
                    format!("A payment cannot go from {status} to {to}."),
                ));
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
            sqlx::query_scalar("SELECT status FROM payments WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if status == "completed" || status == "refunded" {
            return Err(ApiError::rule(
                "payment_immutable",
                "A completed payment cannot be deleted; refund it instead.",
            ));
        }
        Ok(())
    }

    async fn after_write(
        &self,
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        written: Written<'_>,
    ) -> Result<(), ApiError> {
        if !matches!(written.write, Write::Create | Write::Update) {
            return Ok(());
        }
        let was = written
            .before
            .and_then(|b| b["status"].as_str())
            .unwrap_or("");
        if written.row["status"] != "completed" || was == "completed" {
            return Ok(());
        }
        let id = written.row["id"].as_i64().unwrap_or_default();
        let order_id = written.row["order_id"].as_i64().unwrap_or_default();
        let amount = written.row["amount"]
            .to_string()
            .trim_matches('"')
            .parse::<Decimal>()
            .unwrap_or_default();
        let method = written.row["payment_method"].as_str().unwrap_or("cash");
        complete(
            ctx,
            tx,
            scope,
            order_id,
            id,
            amount,
            method,
            &format!("ORD-{order_id}-{id}"),
        )
        .await
    }
}

/// Completes payment `id` of `amount` on a locked-or-lockable order: checks what is due, stamps
/// the payment and writes `order.payment_recorded`.
#[allow(clippy::too_many_arguments)]
async fn complete(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    order_id: i64,
    id: i64,
    amount: Decimal,
    method: &str,
    transaction_id: &str,
) -> Result<(), ApiError> {
    let (status, currency) = lock_order(tx, scope.project_id(), order_id).await?;
    if status == "cancelled" {
        return Err(ApiError::rule(
            "order_cancelled",
            "A cancelled order takes no payments.",
        ));
    }
    let due = due(tx, order_id, id).await?;
    if amount > due {
        return Err(ApiError::rule(
            "amount_exceeds_due",
            format!("At most {} is due on this order.", money(due)),
        )
        .with("details", json!({"amount_due": money(due)})));
    }
    sqlx::query(
        "UPDATE payments SET payment_date = now(), billing_transaction_id = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(transaction_id)
    .execute(&mut *tx)
    .await?;
    crate::orders::history(
        tx,
        order_id,
        "payment",
        &status,
        &format!("payment {} {method}", money(amount)),
        Some(scope.user_id()),
    )
    .await?;
    let order = crate::orders::reference(tx, order_id).await?;
    ctx.outbox
        .record(
            tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &OrderPaymentRecorded {
                order,
                payment_id: Some(id),
                transaction_id: transaction_id.to_owned(),
                amount: money(amount),
                currency,
                method: method.to_owned(),
            },
        )
        .await?;
    Ok(())
}

/// Records and completes a payment of what is due (`completed` status, `PATCH …/payment/ paid`);
/// nothing when nothing is due. → the payment id.
#[allow(clippy::too_many_arguments)]
pub async fn pay_due(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    order_id: i64,
    amount: Option<Decimal>,
    method: &str,
    reference: &str,
    transaction_id: Option<String>,
) -> Result<Option<i64>, ApiError> {
    lock_order(tx, scope.project_id(), order_id).await?;
    let owed = due(tx, order_id, 0).await?;
    let amount = amount.unwrap_or(owed);
    if amount <= Decimal::ZERO {
        return Ok(None);
    }
    let method = if METHODS.contains(&method) {
        method
    } else {
        "cash"
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO payments (project_id, order_id, payment_method, amount, status, \
           transaction_reference, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, 'completed', $5, $6, $6) RETURNING id",
    )
    .bind(scope.project_id())
    .bind(order_id)
    .bind(method)
    .bind(amount)
    .bind(reference)
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?;
    let tx_id = transaction_id.unwrap_or_else(|| format!("ORD-{order_id}-{id}"));
    complete(ctx, tx, scope, order_id, id, amount, method, &tx_id).await?;
    Ok(Some(id))
}

/// What can still be refunded on an order: the net paid as billing booked it, less refunds
/// asked but not booked yet.
pub async fn refundable(tx: &mut PgConnection, order_id: i64) -> Result<Decimal, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT GREATEST(o.amount_paid - GREATEST(o.amount_refunded, \
           COALESCE((SELECT sum(r.amount) FROM order_refunds r WHERE r.order_id = o.id), 0)), 0) \
         FROM orders o WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?)
}

/// `amount` when it is within `refundable`, else 422 `amount_exceeds_refundable`.
pub fn within_refundable(amount: Decimal, refundable: Decimal) -> Result<Decimal, ApiError> {
    if amount > refundable {
        return Err(ApiError::rule(
            "amount_exceeds_refundable",
            format!("At most {} can be refunded.", money(refundable)),
        ));
    }
    Ok(amount)
}

/// Asks billing for a refund of up to what was paid net, once per `key` (a second request with
/// the same key asks nothing). → the amount asked.
#[allow(clippy::too_many_arguments)]
pub async fn refund(
    ctx: &ServiceContext,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    order_id: i64,
    amount: Option<Decimal>,
    key: &str,
    reason: &str,
    return_id: Option<i64>,
) -> Result<Decimal, ApiError> {
    let (_, currency) = lock_order(tx, scope.project_id(), order_id).await?;
    let asked: Option<Decimal> = sqlx::query_scalar(
        "SELECT amount FROM order_refunds WHERE project_id = $1 AND transaction_id = $2",
    )
    .bind(scope.project_id())
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(asked) = asked {
        return Ok(asked);
    }
    let refundable = refundable(tx, order_id).await?;
    let amount = match amount {
        Some(a) => within_refundable(a, refundable)?,
        None => refundable,
    };
    if amount <= Decimal::ZERO {
        return Ok(Decimal::ZERO);
    }
    sqlx::query(
        "INSERT INTO order_refunds (project_id, order_id, transaction_id, amount, reason, return_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope.project_id())
    .bind(order_id)
    .bind(key)
    .bind(amount)
    .bind(reason)
    .bind(return_id)
    .execute(&mut *tx)
    .await?;
    let order = crate::orders::reference(tx, order_id).await?;
    ctx.outbox
        .record(
            tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &OrderRefundRequested {
                order,
                transaction_id: key.to_owned(),
                amount: money(amount),
                currency,
                reason: reason.to_owned(),
                return_id,
            },
        )
        .await?;
    Ok(amount)
}

/// `PATCH orders/{id}/payment/` `{payment_status, transaction_id?, payment_gateway?,
/// paid_amount?, refund_amount?}` (HEAD): `paid` records a completed payment of what is due,
/// `failed` a failed one, `refunded` / `partially_refunded` a refund; `pending` once money
/// arrived is refused (the status is derived).
pub async fn set_payment(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("order.add_payment", &GRANTS)?;
    let mut errors = kernel::FieldErrors::new();
    let wanted =
        crate::orders::text(body, &["payment_status"], 30, &mut errors).to_ascii_lowercase();
    let tx_id = crate::orders::text(body, &["transaction_id"], 100, &mut errors);
    let gateway = crate::orders::text(body, &["payment_gateway"], 50, &mut errors);
    let amount = |k: &str, errors: &mut kernel::FieldErrors| match body.get(k) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let d = crate::orders::decimal(v).filter(|d| *d > Decimal::ZERO && d.scale() <= 4);
            if d.is_none() {
                errors.add(k, "A positive decimal is required.");
            }
            d
        }
    };
    let paid_amount = amount("paid_amount", &mut errors);
    let refund_amount = amount("refund_amount", &mut errors);
    if wanted.is_empty() && errors.is_empty() {
        errors.required("payment_status");
    }
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    let id = crate::orders::find(&mut *tx, scope.project_id(), key).await?;
    let (method, paid, refunded): (String, Decimal, Decimal) = sqlx::query_as(
        "SELECT payment_method, amount_paid, amount_refunded FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let transaction = Some(tx_id.clone()).filter(|t| !t.is_empty());
    match wanted.as_str() {
        "paid" => {
            pay_due(
                ctx,
                &mut tx,
                scope,
                id,
                paid_amount,
                &method,
                &gateway,
                transaction,
            )
            .await?;
        }
        "failed" => {
            sqlx::query(
                "INSERT INTO payments (project_id, order_id, payment_method, amount, status, \
                   transaction_reference, created_by, updated_by) \
                 SELECT $1, $2, CASE WHEN $3 = '' THEN 'cash' ELSE $3 END, GREATEST(total, 0.01), \
                   'failed', $4, $5, $5 FROM orders WHERE id = $2",
            )
            .bind(scope.project_id())
            .bind(id)
            .bind(&method)
            .bind(&tx_id)
            .bind(scope.user_id())
            .execute(&mut *tx)
            .await?;
        }
        "refunded" | "partially_refunded" => {
            scope.require("order.refund_order", &GRANTS)?;
            let key = transaction.clone().unwrap_or_else(|| {
                format!("order-refund-{}-{id}-{}", scope.project_id(), refunded)
            });
            refund(
                ctx,
                &mut tx,
                scope,
                id,
                refund_amount.or(paid_amount),
                &key,
                "payment status set",
                None,
            )
            .await?;
        }
        "pending" if paid > Decimal::ZERO => {
            return Err(ApiError::rule(
                "payment_status_derived",
                "The payment status follows the payments; record a refund instead.",
            ))
        }
        "pending" => {}
        _ => {
            return Err(ApiError::field(
                "payment_status",
                "Use paid, failed, refunded, partially_refunded or pending.",
            ))
        }
    }
    tx.commit().await?;
    ctx.outbox.nudge();
    let (status, updated_at): (String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT payment_status, updated_at FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&ctx.pool)
            .await?;
    Ok(
        json!({"id": id, "payment_status": status, "requested_status": wanted,
        "transaction_id": tx_id, "payment_gateway": gateway,
        "paid_amount": paid_amount.map(money), "updated_at": updated_at}),
    )
}

/// Billing's word on a payment: `payment.success` acknowledges the order's own payment (or
/// records one billing took itself), `payment.failed` fails it. In the caller's transaction.
pub async fn follow(
    tx: &mut PgConnection,
    project_id: i64,
    order_id: i64,
    event: &integration::billing::PaymentEvent,
    succeeded: bool,
) -> Result<(), ApiError> {
    let known: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, status FROM payments WHERE project_id = $1 AND billing_transaction_id = $2",
    )
    .bind(project_id)
    .bind(&event.transaction_id)
    .fetch_optional(&mut *tx)
    .await?;
    match (known, succeeded) {
        (Some((id, _)), true) => {
            sqlx::query(
                "UPDATE payments SET acknowledged = true, status = 'completed', \
                   payment_date = COALESCE(payment_date, now()), updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        (Some((id, _)), false) => {
            sqlx::query(
                "UPDATE payments SET status = 'failed', acknowledged = true, updated_at = now() \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        (None, succeeded) => {
            let amount = event.amount.parse::<Decimal>().unwrap_or_default();
            if amount > Decimal::ZERO {
                let method = if METHODS.contains(&event.method.as_str()) {
                    event.method.as_str()
                } else {
                    "cash"
                };
                sqlx::query(
                    "INSERT INTO payments (project_id, order_id, payment_method, amount, status, \
                       transaction_reference, payment_date, billing_transaction_id, acknowledged) \
                     VALUES ($1, $2, $3, $4, $5, $6, now(), $6, true) ON CONFLICT DO NOTHING",
                )
                .bind(project_id)
                .bind(order_id)
                .bind(method)
                .bind(amount)
                .bind(if succeeded { "completed" } else { "failed" })
                .bind(&event.transaction_id)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(())
}
