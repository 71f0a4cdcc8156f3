//! Payment methods (contract billing.md §5): tokenised instruments of a customer. Raw card or
//! account numbers are refused (they belong to the gateway) and never stored or echoed; one
//! default per customer; card fields for cards only, bank fields for bank accounts only.

use async_trait::async_trait;
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::Value;
use sqlx::PgConnection;

use crate::GRANTS;

const TYPES: &[&str] = &[
    "credit_card",
    "debit_card",
    "bank_account",
    "wallet",
    "cash",
];

pub static PAYMENT_METHOD: Resource = Resource {
    service: "billing",
    model: "paymentmethod",
    label: "Payment method",
    table: "payment_methods",
    fields: &[
        Field::new("customer_id", FieldKind::int_from(1))
            .required()
            .aliases(&["customer"]),
        Field::new("payment_type", FieldKind::Choice(TYPES)).required(),
        // Wider than four characters so that a pasted card number gets the gateway message.
        Field::text("card_last_four", 40),
        Field::text("card_brand", 30),
        Field::new(
            "card_expiry_month",
            FieldKind::Int {
                min: Some(1),
                max: Some(12),
            },
        ),
        Field::new(
            "card_expiry_year",
            FieldKind::Int {
                min: Some(2000),
                max: Some(2200),
            },
        ),
        Field::text("bank_name", 100),
        Field::text("account_last_four", 40),
        Field::text("billing_address", 1000),
        Field::new("is_default", FieldKind::Bool),
        Field::new("is_verified", FieldKind::Bool),
        Field::new("is_active", FieldKind::Bool),
        Field::text("gateway_customer_id", 255),
        Field::text("gateway_payment_method_id", 255),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("customer_id", "t.customer_id", Kind::Int),
            Col::new("customer", "t.customer_id", Kind::Int),
            Col::new("payment_type", "t.payment_type", Kind::Text),
            Col::new("is_default", "t.is_default", Kind::Bool),
            Col::new("is_active", "t.is_active", Kind::Bool),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("is_default", "t.is_default", Kind::Bool),
        ],
        search: &["t.card_brand", "t.bank_name", "t.card_last_four"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[kernel::db::ConstraintField {
        constraint: "payment_methods_one_default",
        field: "is_default",
        message: "This customer already has a default payment method.",
    }],
    hooks: Some(&PaymentMethodRules),
    params: None,
    hidden: None,
    related: &[],
};

const RAW_KEYS: &[&str] = &[
    "card_number",
    "cardNumber",
    "number",
    "pan",
    "cvv",
    "cvc",
    "cvv2",
    "security_code",
    "account_number",
    "accountNumber",
    "iban",
];

/// A run of 12 to 19 digits (spaces and dashes inside allowed): a card or account number.
fn has_long_number(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            run += 1;
            if run >= 12 {
                return true;
            }
        } else if c != ' ' && c != '-' {
            run = 0;
        }
    }
    false
}

/// 400 when the body carries raw card or account data (nothing of it is echoed).
fn refuse_raw(body: &Value) -> Result<(), ApiError> {
    let Some(map) = body.as_object() else {
        return Ok(());
    };
    let raw_key = RAW_KEYS.iter().find(|k| map.contains_key(**k));
    let raw_value = map.iter().find(|(k, v)| {
        (k.starts_with("card") || k.starts_with("account") || k.starts_with("bank"))
            && v.as_str().is_some_and(has_long_number)
    });
    match (raw_key, raw_value) {
        (Some(k), _) => Err(ApiError::field(
            *k,
            "Raw card and account data are refused: tokenise via the gateway.",
        )),
        (None, Some((k, _))) => Err(ApiError::field(
            k.as_str(),
            "Raw card and account data are refused: tokenise via the gateway.",
        )),
        (None, None) => Ok(()),
    }
}

const CARD_FIELDS: &[&str] = &[
    "card_last_four",
    "card_brand",
    "card_expiry_month",
    "card_expiry_year",
];
const BANK_FIELDS: &[&str] = &["bank_name", "account_last_four"];

pub struct PaymentMethodRules;

fn set(values: &Values, key: &str) -> bool {
    values
        .get(key)
        .is_some_and(|v| !matches!(v, Bind::Null) && *v != Bind::Text(String::new()))
}

#[async_trait]
impl kernel::resource::Hooks for PaymentMethodRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        refuse_raw(body)?;
        if values.get("is_verified") == Some(&Bind::Bool(true)) {
            // Owners, admins (and the gateway) verify.
            scope.require("billing.verify_paymentmethod", &GRANTS)?;
        }
        let current: Option<(String, i64)> = match id {
            Some(id) => Some(
                sqlx::query_as(
                    "SELECT payment_type, customer_id FROM payment_methods WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
            ),
            None => None,
        };
        let kind = match values.get("payment_type") {
            Some(Bind::Text(t)) => t.clone(),
            _ => current.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
        };
        let customer = match values.get("customer_id") {
            Some(Bind::Int(c)) => Some(*c),
            _ => current.as_ref().map(|c| c.1),
        };
        let mut errors = FieldErrors::new();
        let card = kind == "credit_card" || kind == "debit_card";
        for f in CARD_FIELDS.iter().filter(|f| !card && set(values, f)) {
            errors.add(*f, "Card fields belong to card payment methods.");
        }
        for f in BANK_FIELDS
            .iter()
            .filter(|f| kind != "bank_account" && set(values, f))
        {
            errors.add(*f, "Bank fields belong to bank accounts.");
        }
        for f in ["card_last_four", "account_last_four"] {
            if let Some(Bind::Text(t)) = values.get(f) {
                let four_digits = t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit());
                if !t.is_empty() && !four_digits {
                    errors.add(f, "Give the last four digits only.");
                }
            }
        }
        if let (None, Some(Bind::Int(year))) = (id, values.get("card_expiry_year")) {
            let now = chrono::Datelike::year(&chrono::Utc::now());
            if *year < i64::from(now) {
                errors.add("card_expiry_year", "This card has expired.");
            }
        }
        if card && id.is_none() {
            // A card (kept as its token) needs its visible parts.
            if !set(values, "card_last_four") {
                errors.required("card_last_four");
            }
        }
        errors.into_result()?;
        // One default per customer: a new default clears the others, in this transaction.
        let becomes_default = values.get("is_default") == Some(&Bind::Bool(true));
        if let (true, Some(customer)) = (becomes_default, customer) {
            sqlx::query(
                "UPDATE payment_methods SET is_default = false, updated_at = now() \
                 WHERE project_id = $1 AND customer_id = $2 AND is_default \
                 AND deleted_at IS NULL AND id IS DISTINCT FROM $3",
            )
            .bind(scope.project_id())
            .bind(customer)
            .bind(id)
            .execute(&mut *tx)
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
        let in_use: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM transactions WHERE payment_method_id = $1 \
             AND status IN ('pending', 'processing') AND deleted_at IS NULL)",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if in_use {
            return Err(ApiError::rule(
                "payment_method_in_use",
                "A payment in progress uses this payment method.",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_numbers_are_card_data() {
        assert!(has_long_number("4111 1111 1111 1111"));
        assert!(has_long_number("4111-1111-1111-1111"));
        assert!(!has_long_number("1111"));
        assert!(!has_long_number("Visa 2030"));
        assert!(refuse_raw(&serde_json::json!({"cvv": "123"})).is_err());
        assert!(refuse_raw(&serde_json::json!({"card_brand": "visa 4111111111111111"})).is_err());
        assert!(refuse_raw(&serde_json::json!({"card_last_four": "1111"})).is_ok());
    }
}
