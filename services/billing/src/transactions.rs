//! Transactions (contract billing.md §4.4): the ledger's rows through the resource machinery
//! (list, retrieve, PATCH of description and metadata, the status of open manual rows, soft
//! delete of rows that never completed), their creation and `{id}/refund/`. Every balance
//! change goes through [`crate::ledger`].

use async_trait::async_trait;
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind as ColKind, ListSpec};
use kernel::resource::{Field, FieldKind, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::Value;
use sqlx::PgConnection;

use crate::gateways::{Outcome, Status};
use crate::ledger::{self, Kind, NewTransaction};
use crate::GRANTS;

const AMOUNT: FieldKind = FieldKind::Decimal {
    min: None,
    max: None,
    scale: 2,
};
const ID: FieldKind = FieldKind::int_from(1);
const JSON: FieldKind = FieldKind::Json { max_bytes: 16_384 };

pub static TRANSACTION: Resource = Resource {
    service: "billing",
    model: "transaction",
    label: "Transaction",
    table: "transactions",
    fields: &[
        Field::text("transaction_id", 100).read_only(),
        Field::text("transaction_type", 20).read_only(),
        Field::new("amount", AMOUNT).read_only(),
        Field::text("currency", 3).read_only(),
        Field::text("status", 20).read_only(),
        Field::new("invoice_id", ID).read_only(),
        Field::new("payment_method_id", ID).read_only(),
        Field::new("customer_id", ID).read_only(),
        Field::text("method", 20).read_only(),
        Field::text("gateway_name", 20).read_only(),
        Field::text("gateway_transaction_id", 255).read_only(),
        Field::new("gateway_response", JSON).read_only(),
        Field::text("description", 1000),
        Field::new("metadata", JSON),
        Field::new("transaction_date", FieldKind::DateTime).read_only(),
        Field::new("processed_date", FieldKind::DateTime).read_only(),
        Field::text("error_code", 100).read_only(),
        Field::text("error_message", 1000).read_only(),
        Field::new("refund_of_id", ID).read_only(),
        Field::text("source_type", 20).read_only(),
        Field::new("source_id", ID).read_only(),
        Field::new("next_action", JSON).read_only(),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("invoice", "t.invoice_id", ColKind::Int),
            Col::new("invoice_id", "t.invoice_id", ColKind::Int),
            Col::new("transaction_type", "t.transaction_type", ColKind::Text),
            Col::new("status", "t.status", ColKind::Text),
            Col::new("customer", "t.customer_id", ColKind::Int),
            Col::new("customer_id", "t.customer_id", ColKind::Int),
            Col::new("gateway_name", "t.gateway_name", ColKind::Text),
            Col::new("method", "t.method", ColKind::Text),
            Col::new("transaction_date", "t.transaction_date", ColKind::DateTime),
            Col::new("transaction_id", "t.transaction_id", ColKind::Text),
            Col::new("refund_of_id", "t.refund_of_id", ColKind::Int),
            Col::new("payment_method_id", "t.payment_method_id", ColKind::Int),
            Col::new("source_type", "t.source_type", ColKind::Text),
            Col::new("source_id", "t.source_id", ColKind::Int),
            Col::new("currency", "t.currency", ColKind::Text),
        ],
        ordering: &[
            Col::new("transaction_date", "t.transaction_date", ColKind::DateTime),
            Col::new("created_at", "t.created_at", ColKind::DateTime),
            Col::new("amount", "t.amount", ColKind::Decimal),
            Col::new("status", "t.status", ColKind::Text),
        ],
        search: &[
            "t.transaction_id",
            "t.description",
            "t.gateway_transaction_id",
        ],
        default_ordering: "-transaction_date",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&LedgerRules),
    params: None,
    hidden: None,
    related: &[],
};

/// The permission a transaction of `kind` needs beyond `add_transaction` (§9).
fn money_permission(kind: Kind) -> &'static str {
    match kind {
        Kind::Payment => "billing.record_payment",
        Kind::Refund | Kind::Chargeback => "billing.refund_payment",
        Kind::Adjustment => "billing.adjust_invoice",
    }
}

/// `POST m/transactions/` → (created, row): 201 a new transaction, 200 the existing one with
/// the same `transaction_id`.
pub async fn create(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    scope.require("billing.add_transaction", &GRANTS)?;
    if !body.is_object() {
        return Err(ApiError::not_a_dictionary());
    }
    let mut errors = FieldErrors::new();
    let kind = match body
        .get("transaction_type")
        .or_else(|| body.get("type"))
        .filter(|v| !v.is_null())
    {
        None => Kind::Payment,
        Some(v) => match v.as_str().and_then(Kind::parse) {
            Some(k) => k,
            None => {
                errors.add(
                    "transaction_type",
                    "Use payment, refund, adjustment or chargeback.",
                );
                Kind::Payment
            }
        },
    };
    scope.require(money_permission(kind), &GRANTS)?;
    let mut new = NewTransaction {
        kind: Some(kind),
        ..NewTransaction::default()
    };
    ledger::read_body(body, &mut new, &mut errors);
    let id = |key: &str, alias: &str, errors: &mut FieldErrors| {
        let v = body
            .get(key)
            .or_else(|| body.get(alias))
            .filter(|v| !v.is_null())?;
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
    new.invoice_id = id("invoice_id", "invoice", &mut errors);
    new.refund_of_id = id("refund_of_id", "refund_of", &mut errors);
    match body
        .get("status")
        .filter(|v| !v.is_null())
        .map(|v| v.as_str().and_then(Status::parse))
    {
        None | Some(Some(Status::Completed)) => {}
        Some(Some(Status::Pending)) => new.pending = true,
        Some(_) => errors.add(
            "status",
            "A new manual transaction is pending or completed.",
        ),
    }
    if new.amount.is_none() && new.invoice_id.is_none() && new.refund_of_id.is_none() {
        errors.required("amount");
    }
    if kind.is_refund_like() && new.invoice_id.is_none() && new.refund_of_id.is_none() {
        errors.add(
            "invoice_id",
            "A refund names its invoice or the payment it refunds (refund_of_id).",
        );
    }
    if let (Some(st), Some(sid)) = (
        body.get("source_type").and_then(Value::as_str),
        body.get("source_id").and_then(Value::as_i64),
    ) {
        new.source = Some((st.trim().to_ascii_lowercase(), sid));
    }
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    let done = ledger::record(ctx, &mut tx, scope.project_id(), Some(scope.user_id()), new).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(done)
}

/// `POST m/transactions/{id}/refund/` `{amount?, reason}` → 201 the refund of that payment
/// (at most its amount minus its completed refunds).
pub async fn refund(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    let exists: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT transaction_type, invoice_id FROM transactions \
         WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(&ctx.pool)
    .await?;
    let Some((kind, invoice)) = exists else {
        return Err(ApiError::not_found());
    };
    scope.require("billing.refund_payment", &GRANTS)?;
    if kind != "payment" || invoice.is_none() {
        return Err(ApiError::rule(
            "not_refundable",
            "Only a completed payment on an invoice is refunded.",
        ));
    }
    let mut errors = FieldErrors::new();
    let mut new = NewTransaction {
        kind: Some(Kind::Refund),
        refund_of_id: Some(id),
        ..NewTransaction::default()
    };
    ledger::read_body(body, &mut new, &mut errors);
    // The refund's own id only by `refund_transaction_id` (`transaction_id` names payments).
    new.transaction_id = body
        .get("refund_transaction_id")
        .and_then(Value::as_str)
        .map(|s| s.trim().chars().take(100).collect());
    new.gateway = None;
    errors.into_result()?;
    let mut tx = ctx.pool.begin().await?;
    let (_, row) =
        ledger::record(ctx, &mut tx, scope.project_id(), Some(scope.user_id()), new).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

/// The rules of PATCH and DELETE (§4.2): a completed row keeps its money fields; only open
/// manual rows change status, along the state machine; only rows that never completed go.
pub struct LedgerRules;

#[async_trait]
impl kernel::resource::Hooks for LedgerRules {
    async fn before_write(
        &self,
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        body: &Value,
        _values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(id) = id else {
            return Ok(());
        };
        let Some(wanted) = body.get("status").filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let to = wanted.as_str().and_then(Status::parse).ok_or_else(|| {
            ApiError::field(
                "status",
                "Use pending, processing, completed, failed or cancelled.",
            )
        })?;
        let row: ledger::TxRow = sqlx::query_as(&format!(
            "{} WHERE id = $1 AND project_id = $2 FOR UPDATE",
            ledger::TX_ROW
        ))
        .bind(id)
        .bind(scope.project_id())
        .fetch_one(&mut *tx)
        .await?;
        let from = Status::parse(&row.status).unwrap_or(Status::Failed);
        if from == to {
            return Ok(());
        }
        if row.gateway_name != "manual" || !from.may_become(to) {
            return Err(ApiError::rule(
                "invalid_transition",
                format!(
                    "A {} {} transaction cannot become {}.",
                    row.status,
                    row.gateway_name,
                    to.as_str()
                ),
            ));
        }
        if to == Status::Completed {
            scope.require(money_permission(row.kind()), &GRANTS)?;
            // A person completing a row hears the invoice's refusal (a provider's is recorded).
            if let Some(i) = row.invoice_id {
                let invoice = ledger::lock_invoice(tx, scope.project_id(), i).await?;
                ledger::check(
                    tx,
                    &invoice,
                    row.kind(),
                    row.amount,
                    row.refund_of_id,
                    Some(&row.transaction_id),
                )
                .await?;
            }
        }
        let outcome = match to {
            Status::Failed => Outcome::failed("manual_failure", "Marked failed."),
            other => Outcome::status(other),
        };
        match ledger::finish(ctx, tx, Some(scope.user_id()), &row, &outcome).await? {
            ledger::Finish::Done => Ok(()),
            ledger::Finish::InvoiceNotReady => Err(ApiError::rule(
                "invoice_not_ready",
                "The invoice of this payment does not exist yet.",
            )),
        }
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let status: String =
            sqlx::query_scalar("SELECT status FROM transactions WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if status == "completed" {
            return Err(ApiError::rule(
                "transaction_immutable",
                "A completed transaction stays; correct it with a refund or an adjustment.",
            ));
        }
        Ok(())
    }
}

impl Kind {
    fn is_refund_like(self) -> bool {
        matches!(self, Kind::Refund | Kind::Chargeback)
    }
}
