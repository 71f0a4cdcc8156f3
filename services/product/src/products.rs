//! Products (contract product.md §2): a resource with a few rules of its own — SKU format,
//! tags by name (get-or-create), price history and `price.changed`, the product events order
//! and inventory consume, and the catalogue's convenience filters.

use async_trait::async_trait;
use integration::product::{
    PriceChanged, ProductCreated, ProductDeleted, ProductRestored, ProductSnapshot, ProductUpdated,
};
use kernel::auth::ProjectScope;
use kernel::db::ConstraintField;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{
    free_slug, lock_project_table, slugify, Bind, Field, FieldKind, Hooks, Related, Resource,
    Values, Write, Written,
};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::catalogue::{GRANTS, MONEY};
use crate::variants::{check_sku, valid_sku};

const NAME: &str = "COALESCE(NULLIF(t.name_en, ''), NULLIF(t.name_ar, ''), t.name_fr)";

/// Relations as `{id, name, slug}` (the name's translations resolved in the request's
/// language by `Resource::shape`), joined to the page; tags read for the page in one statement.
const RELATED: &[Related] = &[
    Related::One {
        name: "category",
        join: "LEFT JOIN categories rc ON rc.id = t.category AND rc.deleted_at IS NULL",
        alias: "rc",
        columns: &["id", "name_en", "name_ar", "name_fr", "slug"],
    },
    Related::One {
        name: "brand",
        join: "LEFT JOIN brands rb ON rb.id = t.brand AND rb.deleted_at IS NULL",
        alias: "rb",
        columns: &["id", "name_en", "name_ar", "name_fr", "slug"],
    },
    Related::Many {
        names: &["tags", "tag_ids"],
        sql: "SELECT pt.product_id, g.name, g.id FROM product_tags pt \
              JOIN tags g ON g.id = pt.tag_id \
              WHERE pt.product_id = ANY($1) AND g.deleted_at IS NULL \
              ORDER BY pt.product_id, lower(g.name), g.id",
    },
];
/// The live images by position (product.md §2.4).
const IMAGES: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', i.id, 'url', i.url, \
    'alt_text', i.alt_text, 'is_primary', i.is_primary, 'position', i.position, \
    'variant', i.variant) ORDER BY i.position, i.id) \
    FROM product_images i WHERE i.product = t.id AND i.deleted_at IS NULL), '[]')";
const STOCK_STATUS: &str = "CASE WHEN NOT t.track_inventory THEN 'untracked' \
    WHEN t.stock_quantity <= 0 THEN 'out_of_stock' \
    WHEN t.stock_quantity <= COALESCE(t.low_stock_threshold, 10) THEN 'low_stock' \
    ELSE 'in_stock' END";
const VARIANTS_COUNT: &str =
    "(SELECT count(*) FROM variants v WHERE v.product = t.id AND v.deleted_at IS NULL)";
/// The price after the best active discount (product.md §2.3): kept on the row by the
/// database when a price or a rule changes (migration 0008), computed here only once a
/// discount of the project has started or ended since the row was priced.
const FINAL_PRICE: &str = "CASE WHEN t.final_price IS NOT NULL \
    AND (t.final_price_until IS NULL OR t.final_price_until > now()) \
    THEN round(t.final_price, 2)::text \
    ELSE round(COALESCE((SELECT f.final FROM product_best_discount_for(\
    t.project_id, t.id, t.category, t.price) f), t.price), 2)::text END";

pub static PRODUCT: Resource = Resource {
    service: "product",
    model: "product",
    label: "Product",
    table: "products",
    fields: &[
        Field::text("name", 255)
            .translated()
            .required()
            .aliases(&["title"]),
        Field::text("description", 20_000)
            .translated()
            .aliases(&["content"]),
        Field::text("sku", 64),
        Field::new(
            "status",
            FieldKind::Choice(&[
                "created",
                "draft",
                "active",
                "published",
                "inactive",
                "archived",
            ]),
        ),
        Field::new("is_active", FieldKind::Bool),
        Field::new("track_inventory", FieldKind::Bool),
        Field::new("price", MONEY).required(),
        Field::new("compare_at_price", MONEY),
        Field::new("cost_price", MONEY).members_only(),
        Field::new(
            "category",
            FieldKind::Ref {
                table: "categories",
            },
        )
        .aliases(&["category_id"]),
        Field::new("brand", FieldKind::Ref { table: "brands" }).aliases(&["brand_id"]),
        Field::new(
            "schema",
            FieldKind::Ref {
                table: "variant_schemas",
            },
        )
        .aliases(&["schema_id"]),
        Field::new("shipping", FieldKind::Ref { table: "shipping" }).aliases(&["shipping_id"]),
        Field::new(
            "group_id",
            FieldKind::Int {
                min: Some(0),
                max: None,
            },
        ),
        Field::new(
            "reorder",
            FieldKind::Int {
                min: None,
                max: Some(i32::MAX as i64),
            },
        ),
        Field::new("stock_quantity", FieldKind::int_from(0)),
        Field::new("low_stock_threshold", FieldKind::int_from(0)),
        Field::new("weight", FieldKind::Number { min: Some(0.0) }),
        Field::new("weight_unit", FieldKind::Choice(&["kg", "g", "lb", "oz"])),
        Field::new(
            "additional_data",
            FieldKind::Json {
                max_bytes: 64 * 1024,
            },
        )
        .aliases(&["metadata"])
        .members_only(),
    ],
    slug_from: Some("name"),
    computed: &[
        ("images", IMAGES),
        ("stock_status", STOCK_STATUS),
        ("final_price", FINAL_PRICE),
        ("variants_count", VARIANTS_COUNT),
    ],
    list: ListSpec {
        filters: &[
            Col {
                name: "category",
                column: "t.category",
                kind: Kind::Int,
            },
            Col {
                name: "category_id",
                column: "t.category",
                kind: Kind::Int,
            },
            Col {
                name: "brand",
                column: "t.brand",
                kind: Kind::Int,
            },
            Col {
                name: "brand_id",
                column: "t.brand",
                kind: Kind::Int,
            },
            Col {
                name: "is_active",
                column: "t.is_active",
                kind: Kind::Bool,
            },
            Col {
                name: "status",
                column: "t.status",
                kind: Kind::Text,
            },
            Col {
                name: "sku",
                column: "lower(t.sku)",
                kind: Kind::Text,
            },
            Col {
                name: "track_inventory",
                column: "t.track_inventory",
                kind: Kind::Bool,
            },
            Col {
                name: "group_id",
                column: "t.group_id",
                kind: Kind::Int,
            },
            Col {
                name: "price",
                column: "t.price",
                kind: Kind::Decimal,
            },
            Col {
                name: "slug",
                column: "t.slug",
                kind: Kind::Text,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
            Col {
                name: "updated_at",
                column: "t.updated_at",
                kind: Kind::DateTime,
            },
        ],
        ordering: &[
            Col {
                name: "price",
                column: "t.price",
                kind: Kind::Decimal,
            },
            Col {
                name: "name",
                column: NAME,
                kind: Kind::Text,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
            Col {
                name: "updated_at",
                column: "t.updated_at",
                kind: Kind::DateTime,
            },
            Col {
                name: "reorder",
                column: "t.reorder",
                kind: Kind::Int,
            },
        ],
        search: &["t.name_en", "t.name_ar", "t.name_fr", "t.sku"],
        default_ordering: "-created_at",
        extra_params: &["min_price", "max_price", "tags", "ids"],
    },
    search_vector: Some("search"),
    public_read: true,
    public_filter: Some(on_sale!("t")),
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "products_sku_live",
        field: "sku",
        message: "A product with this SKU already exists.",
    }],
    hooks: Some(&ProductRules),
    params: Some(params),
    hidden: None,
    related: RELATED,
};

/// `min_price`, `max_price` (inclusive), `tags` (names, comma-separated), `ids` (≤ 100).
fn params(name: &str, value: &str, qb: &mut QueryBuilder<'_, Postgres>) -> Result<(), ApiError> {
    match name {
        "min_price" | "max_price" => {
            let price: rust_decimal::Decimal = value
                .trim()
                .parse()
                .map_err(|_| ApiError::field(name, "A valid number is required."))?;
            qb.push(if name == "min_price" {
                " AND t.price >= "
            } else {
                " AND t.price <= "
            });
            qb.push_bind(price);
        }
        "tags" => {
            let names: Vec<String> = value
                .split(',')
                .map(|t| t.trim().to_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            qb.push(
                " AND EXISTS (SELECT 1 FROM product_tags pt JOIN tags g ON g.id = pt.tag_id \
                 WHERE pt.product_id = t.id AND g.deleted_at IS NULL AND lower(g.name) = ANY(",
            );
            qb.push_bind(names).push("))");
        }
        "ids" => {
            let ids: Result<Vec<i64>, _> = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect();
            match ids {
                Ok(ids) if ids.len() <= 100 => {
                    qb.push(" AND t.id = ANY(").push_bind(ids).push(")");
                }
                _ => {
                    return Err(ApiError::field(
                        "ids",
                        "Give up to 100 comma-separated ids.",
                    ))
                }
            }
        }
        _ => return Err(ApiError::field(name, "Unknown filter.")),
    }
    Ok(())
}

/// The tag names a body gives: `tags` as a list or comma-separated text.
fn tag_names(body: &Value) -> Result<Option<Vec<String>>, ApiError> {
    let bad = || ApiError::field("tags", "Give a list of tag names.");
    let raw: Vec<String> = match body.get("tags") {
        None => return Ok(None),
        Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    let mut names: Vec<String> = Vec::new();
    for name in raw.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name.chars().count() > 100 {
            return Err(ApiError::field(
                "tags",
                "Tag names have at most 100 characters.",
            ));
        }
        if !names
            .iter()
            .any(|n| n.to_lowercase() == name.to_lowercase())
        {
            names.push(name.to_owned());
        }
    }
    if names.len() > 50 {
        return Err(ApiError::field("tags", "A product has at most 50 tags."));
    }
    Ok(Some(names))
}

/// `tag_ids`: existing live tags of the project.
fn tag_ids(body: &Value) -> Result<Option<Vec<i64>>, ApiError> {
    match body.get("tag_ids") {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| ApiError::field("tag_ids", "Give a list of tag ids."))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::field("tag_ids", "Give a list of tag ids.")),
    }
}

/// `addProductTags` / `removeProductTags`: the product's tags plus or minus `ids` (live tags of
/// the project), through the same update as REST.
pub async fn change_tags(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    product_id: i64,
    ids: &[i64],
    add: bool,
    lang: &str,
) -> Result<(), ApiError> {
    let member = kernel::auth::ReadScope::Member(scope.clone());
    let row = kernel::resource::retrieve(ctx, &PRODUCT, &member, product_id, lang).await?;
    let mut current: Vec<i64> = row["tag_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if add {
        current.extend(
            ids.iter()
                .filter(|id| !current.contains(id))
                .collect::<Vec<_>>(),
        );
    } else {
        current.retain(|id| !ids.contains(id));
    }
    let body = serde_json::json!({ "tag_ids": current });
    kernel::resource::update(ctx, &PRODUCT, scope, product_id, &body, true, lang).await?;
    Ok(())
}

/// Replaces the product's tags: names are found case-insensitively or created.
async fn set_tags(
    tx: &mut PgConnection,
    scope: &ProjectScope,
    product_id: i64,
    names: Option<Vec<String>>,
    ids: Option<Vec<i64>>,
) -> Result<(), ApiError> {
    if names.is_none() && ids.is_none() {
        return Ok(());
    }
    lock_project_table(tx, "tags", scope.project_id()).await?;
    let mut wanted: Vec<i64> = Vec::new();
    for name in names.unwrap_or_default() {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM tags WHERE project_id = $1 AND lower(name) = lower($2) AND deleted_at IS NULL",
        )
        .bind(scope.project_id())
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match found {
            Some(id) => id,
            None => {
                let base = match slugify(&name) {
                    s if s.is_empty() => "tag".to_owned(),
                    s => s,
                };
                let slug = free_slug(tx, "tags", scope.project_id(), &base).await?;
                sqlx::query_scalar(
                    "INSERT INTO tags (project_id, name, slug, created_by, updated_by) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING id",
                )
                .bind(scope.project_id())
                .bind(&name)
                .bind(slug)
                .bind(scope.user_id())
                .fetch_one(&mut *tx)
                .await?
            }
        };
        wanted.push(id);
    }
    if let Some(ids) = ids {
        let live: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM tags WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
        )
        .bind(scope.project_id())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        if let Some(missing) = ids.iter().find(|id| !live.contains(id)) {
            return Err(ApiError::field(
                "tag_ids",
                format!("Invalid pk \"{missing}\" - object does not exist."),
            ));
        }
        wanted.extend(live);
    }
    sqlx::query("DELETE FROM product_tags WHERE product_id = $1 AND tag_id <> ALL($2)")
        .bind(product_id)
        .bind(&wanted)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO product_tags (product_id, tag_id) SELECT $1, unnest($2::bigint[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(product_id)
    .bind(&wanted)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(crate) fn snapshot(row: &Value) -> ProductSnapshot {
    let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = ["name_en", "name_ar", "name_fr"]
        .iter()
        .find_map(|k| text(k).filter(|s| !s.is_empty()))
        .unwrap_or_default();
    // Raw rows carry NUMERIC as JSON numbers; events carry decimal strings.
    let money = |k: &str| match row.get(k) {
        Some(Value::Number(n)) => n.as_f64().map(|_| n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    ProductSnapshot {
        product_id: row["id"].as_i64().unwrap_or_default(),
        sku: text("sku"),
        name,
        price: money("price").unwrap_or_else(|| "0".into()),
        cost_price: money("cost_price"),
        is_active: row["is_active"].as_bool().unwrap_or(true),
        status: text("status").unwrap_or_default(),
        track_inventory: row["track_inventory"].as_bool().unwrap_or(true),
        // The row's relations are shaped as `{id, name, slug}`.
        category_id: row["category"]["id"]
            .as_i64()
            .or_else(|| row["category"].as_i64()),
        brand_id: row["brand"]["id"]
            .as_i64()
            .or_else(|| row["brand"].as_i64()),
        low_stock_threshold: row["low_stock_threshold"].as_i64(),
    }
}

/// The columns whose values differ between two raw rows.
fn changed(before: &Value, after: &Value) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let skip = ["updated_at", "updated_by", "search"];
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    out.sort();
    out
}

/// SKU format, tags, price history and the product events.
pub struct ProductRules;

#[async_trait]
impl Hooks for ProductRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let mut errors = FieldErrors::new();
        match values.get("sku").cloned() {
            Some(Bind::Text(s)) if s.is_empty() => {
                values.insert("sku".into(), Bind::Null);
            }
            Some(Bind::Text(s)) if !valid_sku(&s) => {
                errors.add("sku", "Use 1–64 letters, digits, '.', '_', '/' or '-'.")
            }
            Some(Bind::Text(s)) => check_sku(tx, scope.project_id(), &s, "products", id).await?,
            _ => {}
        }
        tag_names(body)?;
        tag_ids(body)?;
        // Initial stock is a create-time input; afterwards inventory owns the number.
        if id.is_some() {
            values.remove("stock_quantity");
        }
        errors.into_result()
    }

    async fn after_write(
        &self,
        ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        written: Written<'_>,
    ) -> Result<(), ApiError> {
        let row = written.row;
        let id = row["id"].as_i64().unwrap_or_default();
        let project = Some(scope.project_id());
        let actor = Some(scope.user_id());
        match written.write {
            Write::Create => {
                set_tags(
                    tx,
                    scope,
                    id,
                    tag_names(written.body)?,
                    tag_ids(written.body)?,
                )
                .await?;
                let event = ProductCreated {
                    product: snapshot(row),
                    initial_stock: row["stock_quantity"].as_i64().unwrap_or(0),
                };
                ctx.outbox.record(tx, project, actor, &event).await?;
            }
            Write::Update => {
                set_tags(
                    tx,
                    scope,
                    id,
                    tag_names(written.body)?,
                    tag_ids(written.body)?,
                )
                .await?;
                let before = written.before.cloned().unwrap_or(Value::Null);
                let changes = changed(&before, row);
                if changes.iter().any(|c| c == "price") {
                    let old = snapshot(&before).price;
                    let new = snapshot(row).price;
                    sqlx::query(
                        "INSERT INTO price_history (project_id, product_id, old_price, new_price, changed_by) \
                         VALUES ($1, $2, $3::numeric, $4::numeric, $5)",
                    )
                    .bind(scope.project_id())
                    .bind(id)
                    .bind(&old)
                    .bind(&new)
                    .bind(scope.user_id())
                    .execute(&mut *tx)
                    .await?;
                    let event = PriceChanged {
                        product_id: id,
                        variant_id: None,
                        old_price: Some(old),
                        new_price: new,
                        changed_by: actor,
                    };
                    ctx.outbox.record(tx, project, actor, &event).await?;
                }
                if !changes.is_empty() {
                    let event = ProductUpdated {
                        product: snapshot(row),
                        changed: changes,
                    };
                    ctx.outbox.record(tx, project, actor, &event).await?;
                }
            }
            Write::Delete => {
                // The variants go with the product, stamped with the same time.
                let variant_ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE variants SET deleted_at = $2::timestamptz, deleted_by = $3, updated_at = now() \
                     WHERE product = $1 AND deleted_at IS NULL RETURNING id",
                )
                .bind(id)
                .bind(row["deleted_at"].as_str())
                .bind(scope.user_id())
                .fetch_all(&mut *tx)
                .await?;
                let event = ProductDeleted {
                    product_id: id,
                    variant_ids,
                };
                ctx.outbox.record(tx, project, actor, &event).await?;
            }
            Write::Restore => {
                // Revives the variants deleted in the same cascade, not those deleted before.
                let deleted_at = written
                    .before
                    .and_then(|b| b["deleted_at"].as_str().map(str::to_owned));
                let variant_ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE variants SET deleted_at = NULL, deleted_by = NULL, updated_at = now() \
                     WHERE product = $1 AND deleted_at = $2::timestamptz RETURNING id",
                )
                .bind(id)
                .bind(deleted_at)
                .fetch_all(&mut *tx)
                .await?;
                let event = ProductRestored {
                    product_id: id,
                    variant_ids,
                };
                ctx.outbox.record(tx, project, actor, &event).await?;
            }
        }
        Ok(())
    }
}
