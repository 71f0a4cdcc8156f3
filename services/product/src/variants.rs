//! Variant schemas, variants, barcodes and shipping profiles (contract product.md §3, §5.3,
//! §5.4).

use async_trait::async_trait;
use integration::product::{
    PriceChanged, VariantCreated, VariantDeleted, VariantSnapshot, VariantUpdated,
};
use kernel::auth::ProjectScope;
use kernel::db::ConstraintField;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{
    lock_project_table, Bind, Field, FieldKind, Hooks, Resource, Values, Write, Written,
};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{Map, Value};
use sqlx::PgConnection;

use crate::catalogue::{GRANTS, MONEY};

const MEASURE: FieldKind = FieldKind::Number { min: Some(0.0) };

/// Products visible to the public, for the rows that hang off them.
const PUBLIC_PRODUCT: &str = product_on_sale!();

pub static SCHEMA: Resource = Resource {
    service: "product",
    model: "variantschema",
    label: "Variant schema",
    table: "variant_schemas",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 20_000).translated(),
        Field::new(
            "attributes",
            FieldKind::Json {
                max_bytes: 64 * 1024,
            },
        ),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[],
        ordering: &[Col {
            name: "created_at",
            column: "t.created_at",
            kind: Kind::DateTime,
        }],
        search: &["t.name_en", "t.name_ar", "t.name_fr"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&SchemaRules),
    params: None,
    hidden: None,
    related: &[],
};

const ATTRIBUTE_TYPES: &[&str] = &["text", "number", "boolean", "select", "color"];

/// `[{key, label, type, options, required, variant}]`, keys unique slugs.
fn check_attributes(raw: &Value) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::field("attributes", m));
    let Some(items) = raw.as_array() else {
        return bad("Give a list of attributes.".into());
    };
    let mut keys: Vec<&str> = Vec::new();
    for item in items {
        let key = item["key"].as_str().unwrap_or("");
        if key.is_empty()
            || key.len() > 50
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return bad(format!("Attribute key {key:?} must be a slug."));
        }
        if keys.contains(&key) {
            return bad(format!("Attribute key {key:?} appears twice."));
        }
        keys.push(key);
        let kind = item["type"].as_str().unwrap_or("text");
        if !ATTRIBUTE_TYPES.contains(&kind) {
            return bad(format!("Attribute {key:?} has an unknown type {kind:?}."));
        }
        if kind == "select"
            && !item["options"]
                .as_array()
                .is_some_and(|o| !o.is_empty() && o.iter().all(Value::is_string))
        {
            return bad(format!("Attribute {key:?} needs a list of options."));
        }
    }
    Ok(())
}

pub struct SchemaRules;

#[async_trait]
impl Hooks for SchemaRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        match values.get("attributes") {
            Some(Bind::Json(raw)) => check_attributes(raw),
            Some(Bind::Null) => {
                values.insert("attributes".into(), Bind::Json(Value::Array(Vec::new())));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM products WHERE schema = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if used > 0 {
            return Err(ApiError::rule(
                "protected",
                format!("{used} products use this schema."),
            ));
        }
        Ok(())
    }
}

const VARIANT_BARCODES: &str =
    "COALESCE((SELECT jsonb_agg(b.barcode ORDER BY b.id) FROM barcodes b \
    WHERE b.variant = t.id AND b.deleted_at IS NULL), '[]')";

pub static VARIANT: Resource = Resource {
    service: "product",
    model: "variant",
    label: "Variant",
    table: "variants",
    fields: &[
        Field::new("product", FieldKind::Ref { table: "products" })
            .required()
            .aliases(&["product_id"]),
        Field::text("sku", 64),
        Field::text("name", 255).translated(),
        Field::new("selling_price", MONEY).aliases(&["price"]),
        Field::new("cost_price", MONEY).members_only(),
        Field::new("compare_at_price", MONEY),
        Field::new(
            "attributes",
            FieldKind::Json {
                max_bytes: 16 * 1024,
            },
        ),
        Field::new("is_active", FieldKind::Bool),
        Field::new("position", FieldKind::int_from(0)),
        Field::new("weight", MEASURE),
        Field::new(
            "image_id",
            FieldKind::Int {
                min: Some(1),
                max: None,
            },
        ),
        Field::new(
            "stock_quantity",
            FieldKind::Int {
                min: None,
                max: None,
            },
        )
        .read_only(),
    ],
    slug_from: None,
    computed: &[("barcodes", VARIANT_BARCODES)],
    list: ListSpec {
        filters: &[
            Col {
                name: "product",
                column: "t.product",
                kind: Kind::Int,
            },
            Col {
                name: "product_id",
                column: "t.product",
                kind: Kind::Int,
            },
            Col {
                name: "sku",
                column: "lower(t.sku)",
                kind: Kind::Text,
            },
            Col {
                name: "is_active",
                column: "t.is_active",
                kind: Kind::Bool,
            },
        ],
        ordering: &[
            Col {
                name: "position",
                column: "t.position",
                kind: Kind::Int,
            },
            Col {
                name: "selling_price",
                column: "t.selling_price",
                kind: Kind::Decimal,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.sku", "t.name_en", "t.name_ar", "t.name_fr"],
        default_ordering: "position",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: Some(PUBLIC_VARIANT),
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "variants_sku_live",
        field: "sku",
        message: "A product with this SKU already exists.",
    }],
    hooks: Some(&VariantRules),
    params: None,
    hidden: None,
    related: &[],
};

const PUBLIC_VARIANT: &str = concat!("t.is_active AND ", product_on_sale!());

/// A SKU is unique per project across products and variants, case-insensitively. Both kinds of
/// write take the same lock, so two writers cannot both pass the check.
pub async fn check_sku(
    tx: &mut PgConnection,
    project_id: i64,
    sku: &str,
    table: &str,
    id: Option<i64>,
) -> Result<(), ApiError> {
    lock_project_table(tx, "sku", project_id).await?;
    let other = if table == "products" {
        "variants"
    } else {
        "products"
    };
    let taken: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {other} WHERE project_id = $1 AND lower(sku) = lower($2) AND deleted_at IS NULL) \
         OR EXISTS (SELECT 1 FROM {table} WHERE project_id = $1 AND lower(sku) = lower($2) AND deleted_at IS NULL \
         AND id IS DISTINCT FROM $3)"
    ))
    .bind(project_id)
    .bind(sku)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if taken {
        return Err(ApiError::field(
            "sku",
            "A product with this SKU already exists.",
        ));
    }
    Ok(())
}

pub fn valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= 64
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
}

/// Variant attributes against the product's schema: only variant axes, the required ones
/// present, select values among the options, and no two live variants alike.
async fn check_variant_attributes(
    tx: &mut PgConnection,
    product: i64,
    id: Option<i64>,
    attributes: &Value,
) -> Result<(), ApiError> {
    let Some(given) = attributes.as_object() else {
        return Err(ApiError::field(
            "attributes",
            "Give an object of attribute values.",
        ));
    };
    if given
        .values()
        .any(|v| !(v.is_string() || v.is_number() || v.is_boolean()))
    {
        return Err(ApiError::field(
            "attributes",
            "Values are strings, numbers or booleans.",
        ));
    }
    let schema: Option<Value> = sqlx::query_scalar(
        "SELECT s.attributes FROM products p JOIN variant_schemas s ON s.id = p.schema AND s.deleted_at IS NULL \
         WHERE p.id = $1",
    )
    .bind(product)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(schema) = schema {
        let axes: Vec<&Map<String, Value>> = schema
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .filter(|a| a.get("variant") != Some(&Value::Bool(false)))
                    .collect()
            })
            .unwrap_or_default();
        let mut errors = Vec::new();
        for key in given.keys() {
            if !axes
                .iter()
                .any(|a| a.get("key").and_then(Value::as_str) == Some(key))
            {
                errors.push(format!("Unknown attribute {key:?}."));
            }
        }
        for axis in &axes {
            let key = axis.get("key").and_then(Value::as_str).unwrap_or("");
            match given.get(key) {
                None if axis.get("required") == Some(&Value::Bool(true)) => {
                    errors.push(format!("Attribute {key:?} is required."))
                }
                Some(v) if axis.get("type").and_then(Value::as_str) == Some("select") => {
                    let ok = axis
                        .get("options")
                        .and_then(Value::as_array)
                        .is_some_and(|o| o.contains(v));
                    if !ok {
                        errors.push(format!("{v} is not an option of {key:?}."));
                    }
                }
                Some(v)
                    if axis.get("type").and_then(Value::as_str) == Some("number")
                        && !v.is_number() =>
                {
                    errors.push(format!("Attribute {key:?} is a number."))
                }
                Some(v)
                    if axis.get("type").and_then(Value::as_str) == Some("boolean")
                        && !v.is_boolean() =>
                {
                    errors.push(format!("Attribute {key:?} is true or false."))
                }
                _ => {}
            }
        }
        if !errors.is_empty() {
            let mut fields = FieldErrors::new();
            for e in errors {
                fields.add("attributes", e);
            }
            return Err(ApiError::validation(fields));
        }
    }
    if !given.is_empty() {
        let twin: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM variants WHERE product = $1 AND attributes = $2 \
             AND deleted_at IS NULL AND id IS DISTINCT FROM $3)",
        )
        .bind(product)
        .bind(attributes)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if twin {
            return Err(ApiError::field(
                "non_field_errors",
                "Another variant of this product has the same attributes.",
            ));
        }
    }
    Ok(())
}

pub(crate) fn variant_snapshot(row: &Value) -> VariantSnapshot {
    let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_owned);
    VariantSnapshot {
        variant_id: row["id"].as_i64().unwrap_or_default(),
        product_id: row["product"].as_i64().unwrap_or_default(),
        sku: text("sku"),
        name: ["name_en", "name_ar", "name_fr"]
            .iter()
            .find_map(|k| text(k).filter(|s| !s.is_empty()))
            .unwrap_or_default(),
        selling_price: text("selling_price"),
        cost_price: text("cost_price"),
        is_active: row["is_active"].as_bool().unwrap_or(true),
        attributes: row.get("attributes").cloned().unwrap_or(Value::Null),
    }
}

pub struct VariantRules;

#[async_trait]
impl Hooks for VariantRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        // A variant stays with its product.
        let product = match (id, values.get("product")) {
            (Some(id), _) => {
                values.remove("product");
                sqlx::query_scalar("SELECT product FROM variants WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
            }
            (None, Some(Bind::Int(p))) => *p,
            _ => return Err(ApiError::field("product", "This field is required.")),
        };
        match values.get("sku") {
            Some(Bind::Text(s)) if s.is_empty() => {
                values.insert("sku".into(), Bind::Null);
            }
            Some(Bind::Text(s)) if !valid_sku(s) => {
                return Err(ApiError::field(
                    "sku",
                    "Use 1–64 letters, digits, '.', '_', '/' or '-'.",
                ))
            }
            Some(Bind::Text(s)) => {
                check_sku(tx, scope.project_id(), &s.clone(), "variants", id).await?
            }
            _ => {}
        }
        let attributes = match values.get("attributes") {
            Some(Bind::Json(v)) => Some(v.clone()),
            Some(Bind::Null) => {
                values.insert("attributes".into(), Bind::Json(Value::Object(Map::new())));
                None
            }
            _ => None,
        };
        if let Some(attributes) = attributes {
            check_variant_attributes(tx, product, id, &attributes).await?;
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
        let snapshot = variant_snapshot(written.row);
        let (project, actor) = (Some(scope.project_id()), Some(scope.user_id()));
        match written.write {
            Write::Create => {
                ctx.outbox
                    .record(tx, project, actor, &VariantCreated(snapshot))
                    .await?
            }
            Write::Update | Write::Restore => {
                if let Some(before) = written.before.map(variant_snapshot) {
                    if before.selling_price != snapshot.selling_price {
                        let event = PriceChanged {
                            product_id: snapshot.product_id,
                            variant_id: Some(snapshot.variant_id),
                            old_price: before.selling_price.clone(),
                            new_price: snapshot.selling_price.clone().unwrap_or_default(),
                            changed_by: actor,
                        };
                        sqlx::query(
                            "INSERT INTO price_history (project_id, product_id, variant_id, old_price, new_price, changed_by) \
                             VALUES ($1, $2, $3, $4::numeric, COALESCE($5::numeric, 0), $6)",
                        )
                        .bind(scope.project_id())
                        .bind(snapshot.product_id)
                        .bind(snapshot.variant_id)
                        .bind(&before.selling_price)
                        .bind(&snapshot.selling_price)
                        .bind(scope.user_id())
                        .execute(&mut *tx)
                        .await?;
                        ctx.outbox.record(tx, project, actor, &event).await?;
                    }
                }
                ctx.outbox
                    .record(tx, project, actor, &VariantUpdated(snapshot))
                    .await?
            }
            Write::Delete => {
                ctx.outbox
                    .record(tx, project, actor, &VariantDeleted(snapshot))
                    .await?
            }
        };
        Ok(())
    }
}

pub static BARCODE: Resource = Resource {
    service: "product",
    model: "barcode",
    label: "Barcode",
    table: "barcodes",
    fields: &[
        Field::new("product", FieldKind::Ref { table: "products" })
            .required()
            .aliases(&["product_id"]),
        Field::new("variant", FieldKind::Ref { table: "variants" }).aliases(&["variant_id"]),
        Field::text("barcode", 500).required(),
        Field::text("barcode_type", 20),
        Field::new("is_primary", FieldKind::Bool),
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
                name: "variant",
                column: "t.variant",
                kind: Kind::Int,
            },
            Col {
                name: "barcode",
                column: "t.barcode",
                kind: Kind::Text,
            },
            Col {
                name: "barcode_type",
                column: "t.barcode_type",
                kind: Kind::Text,
            },
        ],
        ordering: &[Col {
            name: "created_at",
            column: "t.created_at",
            kind: Kind::DateTime,
        }],
        search: &["t.barcode"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: Some(PUBLIC_PRODUCT),
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "barcodes_live",
        field: "barcode",
        message: "Barcode with this barcode already exists.",
    }],
    hooks: Some(&BarcodeRules),
    params: None,
    hidden: None,
    related: &[],
};

/// GS1 mod-10: the last digit checks the others (weights 3,1 from the right).
fn gs1_ok(digits: &str) -> bool {
    let Some((body, check)) = digits.split_at_checked(digits.len().saturating_sub(1)) else {
        return false;
    };
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    check.bytes().next().map(|c| u32::from(c - b'0')) == Some((10 - sum % 10) % 10)
}

/// The barcode's type (given or inferred from its length) and whether it is valid for it.
pub fn classify_barcode(code: &str, given: Option<&str>) -> Result<&'static str, String> {
    let digits = !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit());
    let kind: &'static str = match given.map(|g| g.trim().to_ascii_uppercase()) {
        Some(g) => match g.as_str() {
            "EAN13" => "EAN13",
            "EAN8" => "EAN8",
            "UPC" | "UPC_A" => "UPC",
            "UPC_E" => "UPC_E",
            "ITF14" => "ITF14",
            "ISBN" => "ISBN",
            "CODE39" => "CODE39",
            "CODE128" => "CODE128",
            "QR" => "QR",
            other => return Err(format!("\"{other}\" is not a valid choice.")),
        },
        None if digits => match code.len() {
            8 => "EAN8",
            12 => "UPC",
            13 => "EAN13",
            14 => "ITF14",
            _ => "CODE128",
        },
        None => "CODE128",
    };
    let length = |n: usize| digits && code.len() == n;
    let ok = match kind {
        "EAN13" => length(13) && gs1_ok(code),
        "EAN8" => length(8) && gs1_ok(code),
        "UPC" => length(12) && gs1_ok(code),
        "ITF14" => length(14) && gs1_ok(code),
        "ISBN" => {
            length(13) && (code.starts_with("978") || code.starts_with("979")) && gs1_ok(code)
        }
        "UPC_E" => length(8),
        "CODE39" => {
            (1..=43).contains(&code.len())
                && code.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b" .$/+%-".contains(&b)
                })
        }
        "CODE128" => {
            (1..=80).contains(&code.len()) && code.bytes().all(|b| (0x20..0x7f).contains(&b))
        }
        _ => (1..=500).contains(&code.chars().count()),
    };
    if ok {
        Ok(kind)
    } else if matches!(kind, "EAN13" | "EAN8" | "UPC" | "ITF14" | "ISBN") && digits {
        Err(format!("Invalid {kind} check digit."))
    } else {
        Err(format!("Not a valid {kind} barcode."))
    }
}

pub struct BarcodeRules;

#[async_trait]
impl Hooks for BarcodeRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let current: Option<(i64, Option<i64>, String, String)> =
            match id {
                Some(id) => sqlx::query_as(
                    "SELECT product, variant, barcode, barcode_type FROM barcodes WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?,
                None => None,
            };
        let text = |k: &str| match values.get(k) {
            Some(Bind::Text(t)) => Some(t.clone()),
            _ => None,
        };
        let code = text("barcode")
            .or(current.as_ref().map(|c| c.2.clone()))
            .unwrap_or_default();
        let given = text("barcode_type").filter(|t| !t.is_empty());
        let kind = classify_barcode(
            &code,
            given.as_deref().or(if values.contains_key("barcode") {
                None
            } else {
                current.as_ref().map(|c| c.3.as_str())
            }),
        )
        .map_err(|m| ApiError::field("barcode", m))?;
        values.insert("barcode_type".into(), Bind::Text(kind.to_owned()));
        let product = match values.get("product") {
            Some(Bind::Int(p)) => Some(*p),
            _ => current.as_ref().map(|c| c.0),
        };
        let variant = match values.get("variant") {
            Some(Bind::Int(v)) => Some(*v),
            Some(_) => None,
            None => current.as_ref().and_then(|c| c.1),
        };
        if let (Some(product), Some(variant)) = (product, variant) {
            let belongs: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM variants WHERE id = $1 AND product = $2)",
            )
            .bind(variant)
            .bind(product)
            .fetch_one(&mut *tx)
            .await?;
            if !belongs {
                return Err(ApiError::field(
                    "variant",
                    "The variant does not belong to this product.",
                ));
            }
        }
        Ok(())
    }

    async fn after_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        written: Written<'_>,
    ) -> Result<(), ApiError> {
        // One primary barcode per product.
        if matches!(written.write, Write::Create | Write::Update)
            && written.row["is_primary"] == Value::Bool(true)
        {
            sqlx::query("UPDATE barcodes SET is_primary = false WHERE product = $1 AND id <> $2 AND is_primary")
                .bind(written.row["product"].as_i64())
                .bind(written.row["id"].as_i64())
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

pub static SHIPPING: Resource = Resource {
    service: "product",
    model: "shipping",
    label: "Shipping",
    table: "shipping",
    fields: &[
        Field::new("product", FieldKind::Ref { table: "products" }).aliases(&["product_id"]),
        Field::text("name", 255),
        Field::new("length", MEASURE),
        Field::new("width", MEASURE),
        Field::new("height", MEASURE),
        Field::new(
            "dimension_unit",
            FieldKind::Choice(&["cm", "m", "in", "ft"]),
        ),
        Field::new("weight", MEASURE),
        Field::new("weight_unit", FieldKind::Choice(&["kg", "g", "lb", "oz"])),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[],
        ordering: &[Col {
            name: "created_at",
            column: "t.created_at",
            kind: Kind::DateTime,
        }],
        search: &["t.name"],
        default_ordering: "-created_at",
        extra_params: &["product"],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&ShippingRules),
    params: Some(shipping_params),
    hidden: None,
    related: &[],
};

/// `product=<id>`: its own rows plus the shared profile it points to.
fn shipping_params(
    name: &str,
    value: &str,
    qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
) -> Result<(), ApiError> {
    let id: i64 = value
        .trim()
        .parse()
        .map_err(|_| ApiError::field(name, "A valid integer is required."))?;
    qb.push(" AND (t.product = ")
        .push_bind(id)
        .push(" OR t.id = (SELECT p.shipping FROM products p WHERE p.id = ")
        .push_bind(id)
        .push("))");
    Ok(())
}

pub struct ShippingRules;

#[async_trait]
impl Hooks for ShippingRules {
    async fn after_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        written: Written<'_>,
    ) -> Result<(), ApiError> {
        // A product-specific profile becomes the product's profile when it has none.
        if written.write == Write::Create {
            if let Some(product) = written.row["product"].as_i64() {
                sqlx::query("UPDATE products SET shipping = $2 WHERE id = $1 AND shipping IS NULL")
                    .bind(product)
                    .bind(written.row["id"].as_i64())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcodes_are_checked_by_type() {
        assert_eq!(classify_barcode("4006381333931", None), Ok("EAN13"));
        assert_eq!(
            classify_barcode("4006381333932", None),
            Err("Invalid EAN13 check digit.".into())
        );
        assert_eq!(classify_barcode("96385074", None), Ok("EAN8"));
        assert_eq!(classify_barcode("036000291452", Some("upc_a")), Ok("UPC"));
        assert_eq!(classify_barcode("9780306406157", Some("ISBN")), Ok("ISBN"));
        assert!(classify_barcode("4006381333931", Some("ISBN")).is_err());
        assert_eq!(classify_barcode("ABC-123", None), Ok("CODE128"));
        assert_eq!(classify_barcode("ABC 123", Some("code39")), Ok("CODE39"));
        assert!(classify_barcode("abc", Some("CODE39")).is_err());
        assert!(classify_barcode("x", Some("PDF417")).is_err());
        assert!(classify_barcode("", None).is_err());
    }

    #[test]
    fn schema_attributes_are_well_formed() {
        use serde_json::json;
        assert!(check_attributes(
            &json!([{"key": "color", "type": "select", "options": ["Black"]}, {"key": "size"}])
        )
        .is_ok());
        assert!(check_attributes(&json!([{"key": "color"}, {"key": "color"}])).is_err());
        assert!(check_attributes(&json!([{"key": "Bad Key"}])).is_err());
        assert!(check_attributes(&json!([{"key": "c", "type": "select"}])).is_err());
        assert!(check_attributes(&json!({"key": "c"})).is_err());
    }
}
