//! Merchandising (contract product.md §5.1–5.2): discounts and the products they apply to,
//! collection membership.

use async_trait::async_trait;
use kernel::auth::ProjectScope;
use kernel::db::ConstraintField;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Hooks, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::Value;
use sqlx::PgConnection;

use crate::catalogue::GRANTS;

const STATUS: &str = "CASE WHEN NOT t.is_active THEN 'inactive' \
    WHEN t.starts_at IS NOT NULL AND t.starts_at > now() THEN 'scheduled' \
    WHEN t.ends_at IS NOT NULL AND t.ends_at <= now() THEN 'expired' ELSE 'active' END";

pub static DISCOUNT: Resource = Resource {
    service: "product",
    model: "discount",
    label: "Discount",
    table: "discounts",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 20_000).translated(),
        Field::text("code", 64),
        Field::new(
            "discount_type",
            FieldKind::Choice(&["percentage", "fixed", "fixed_amount"]),
        )
        .required(),
        Field::new(
            "value",
            FieldKind::Decimal {
                min: None,
                max: None,
                scale: 2,
            },
        )
        .required(),
        Field::new(
            "applies_to",
            FieldKind::Choice(&["products", "categories", "collections", "all"]),
        ),
        Field::new(
            "category_ids",
            FieldKind::Json {
                max_bytes: 8 * 1024,
            },
        ),
        Field::new(
            "collection_ids",
            FieldKind::Json {
                max_bytes: 8 * 1024,
            },
        ),
        Field::new("starts_at", FieldKind::DateTime),
        Field::new("ends_at", FieldKind::DateTime),
        Field::new("is_active", FieldKind::Bool),
        Field::new(
            "priority",
            FieldKind::Int {
                min: None,
                max: Some(i32::MAX as i64),
            },
        ),
    ],
    slug_from: None,
    computed: &[("status", STATUS)],
    list: ListSpec {
        filters: &[
            Col {
                name: "is_active",
                column: "t.is_active",
                kind: Kind::Bool,
            },
            Col {
                name: "status",
                column: STATUS,
                kind: Kind::Text,
            },
            Col {
                name: "discount_type",
                column: "t.discount_type",
                kind: Kind::Text,
            },
        ],
        ordering: &[
            Col {
                name: "priority",
                column: "t.priority",
                kind: Kind::Int,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.name_en", "t.name_ar", "t.name_fr", "t.code"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: Some("t.is_active"),
    grants: GRANTS,
    unique: &[],
    hooks: Some(&DiscountRules),
    params: None,
    hidden: None,
    related: &[],
};

/// The value's bounds by type, the id lists, and the window.
pub struct DiscountRules;

fn id_list(errors: &mut FieldErrors, field: &str, values: &Values) -> Option<Vec<i64>> {
    match values.get(field) {
        Some(Bind::Json(Value::Array(items))) => {
            let ids: Option<Vec<i64>> = items.iter().map(Value::as_i64).collect();
            if ids.as_ref().is_none_or(|ids| ids.len() > 500) {
                errors.add(field, "Give a list of up to 500 ids.");
            }
            ids
        }
        Some(Bind::Json(_)) => {
            errors.add(field, "Give a list of ids.");
            None
        }
        _ => None,
    }
}

#[async_trait]
impl Hooks for DiscountRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        if values.get("discount_type") == Some(&Bind::Text("fixed_amount".into())) {
            values.insert("discount_type".into(), Bind::Text("fixed".into()));
        }
        if values.get("category_ids") == Some(&Bind::Null) {
            values.insert("category_ids".into(), Bind::Json(Value::Array(Vec::new())));
        }
        if values.get("collection_ids") == Some(&Bind::Null) {
            values.insert(
                "collection_ids".into(),
                Bind::Json(Value::Array(Vec::new())),
            );
        }
        // The row as it will be, for the checks across fields.
        let current: Option<(
            String,
            rust_decimal::Decimal,
            Option<chrono::DateTime<chrono::Utc>>,
            Option<chrono::DateTime<chrono::Utc>>,
        )> =
            match id {
                Some(id) => sqlx::query_as(
                    "SELECT discount_type, value, starts_at, ends_at FROM discounts WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?,
                None => None,
            };
        let kind = match values.get("discount_type") {
            Some(Bind::Text(k)) => k.clone(),
            _ => current.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
        };
        let value = match values.get("value") {
            Some(Bind::Decimal(v)) => Some(*v),
            _ => current.as_ref().map(|c| c.1),
        };
        let time = |k: &str, fallback: Option<chrono::DateTime<chrono::Utc>>| match values.get(k) {
            Some(Bind::DateTime(t)) => Some(*t),
            Some(Bind::Null) => None,
            _ => fallback,
        };
        let starts = time("starts_at", current.as_ref().and_then(|c| c.2));
        let ends = time("ends_at", current.as_ref().and_then(|c| c.3));
        let mut errors = FieldErrors::new();
        match value {
            Some(v) if v <= rust_decimal::Decimal::ZERO => {
                errors.add("value", "Ensure this value is greater than 0.")
            }
            Some(v) if kind == "percentage" && v > rust_decimal::Decimal::from(100) => {
                errors.add("value", "A percentage is at most 100.")
            }
            _ => {}
        }
        if let (Some(s), Some(e)) = (starts, ends) {
            if e <= s {
                errors.add("ends_at", "Must be after starts_at.");
            }
        }
        for (field, table) in [
            ("category_ids", "categories"),
            ("collection_ids", "collections"),
        ] {
            if let Some(ids) = id_list(&mut errors, field, values) {
                let live: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {table} WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL"
                ))
                .bind(scope.project_id())
                .bind(&ids)
                .fetch_one(&mut *tx)
                .await?;
                let mut unique = ids.clone();
                unique.sort_unstable();
                unique.dedup();
                if live != unique.len() as i64 {
                    errors.add(field, "Some ids are not live rows of this project.");
                }
            }
        }
        errors.into_result()
    }
}

pub static PRODUCT_DISCOUNT: Resource = Resource {
    service: "product",
    model: "productdiscount",
    label: "Product discount",
    table: "product_discounts",
    fields: &[
        Field::new("product", FieldKind::Ref { table: "products" })
            .required()
            .aliases(&["product_id"]),
        Field::new("discount", FieldKind::Ref { table: "discounts" })
            .required()
            .aliases(&["discount_id"]),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col {
                name: "product",
                column: "t.product",
                kind: Kind::Int,
            },
            Col {
                name: "discount",
                column: "t.discount",
                kind: Kind::Int,
            },
        ],
        ordering: &[Col {
            name: "created_at",
            column: "t.created_at",
            kind: Kind::DateTime,
        }],
        search: &[],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: None,
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "product_discounts_pair",
        field: "non_field_errors",
        message: "The fields product, discount must make a unique set.",
    }],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

pub static PRODUCT_COLLECTION: Resource = Resource {
    service: "product",
    model: "productcollection",
    label: "Product collection",
    table: "product_collections",
    fields: &[
        Field::new("product", FieldKind::Ref { table: "products" })
            .required()
            .aliases(&["product_id"]),
        Field::new(
            "collection",
            FieldKind::Ref {
                table: "collections",
            },
        )
        .required()
        .aliases(&["collection_id"]),
        Field::new("position", FieldKind::int_from(0)),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col {
                name: "product",
                column: "t.product",
                kind: Kind::Int,
            },
            Col {
                name: "collection",
                column: "t.collection",
                kind: Kind::Int,
            },
        ],
        ordering: &[
            Col {
                name: "position",
                column: "t.position",
                kind: Kind::Int,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &[],
        default_ordering: "position",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: None,
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "product_collections_pair",
        field: "non_field_errors",
        message: "The fields product, collection must make a unique set.",
    }],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};
