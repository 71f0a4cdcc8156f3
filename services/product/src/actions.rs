//! Product actions beyond CRUD: collection and discount membership by product ids, the
//! pricing snapshot order and pos take, bulk updates, and the price history.

use axum::extract::{OriginalUri, Path, State};
use axum::Json as JsonOut;
use kernel::auth::{ProjectScope, ReadScope};
use kernel::extract::{path_id as int_id, Json};
use kernel::lang::Lang;
use kernel::list::{fetch_page, page_body, Field as Col, Kind, ListQuery, ListSpec, PageBody};
use kernel::resource::public_cache;
use kernel::resource::Row;
use kernel::routing::{get, post, Routes};
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::{json, Value};

use crate::catalogue::GRANTS;
use crate::products::PRODUCT;

/// `{product_ids: [..]}`: live products of the project (400 naming the first that is not).
async fn product_ids(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<Vec<i64>, ApiError> {
    let ids: Vec<i64> = body
        .get("product_ids")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
        .filter(|ids| !ids.is_empty() && ids.len() <= 100)
        .ok_or_else(|| ApiError::field("product_ids", "Give a list of 1 to 100 product ids."))?;
    let live: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM products WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
    )
    .bind(scope.project_id())
    .bind(&ids)
    .fetch_all(&ctx.pool)
    .await?;
    if let Some(missing) = ids.iter().find(|id| !live.contains(id)) {
        return Err(ApiError::field(
            "product_ids",
            format!("Invalid pk \"{missing}\" - object does not exist."),
        ));
    }
    Ok(ids)
}

/// The owner row (collection or discount) must be a live row of the project.
async fn owner_exists(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    table: &str,
    id: i64,
) -> Result<(), ApiError> {
    let found: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL)"
    ))
    .bind(id)
    .bind(scope.project_id())
    .fetch_one(&ctx.pool)
    .await?;
    found.then_some(()).ok_or_else(ApiError::not_found)
}

/// POST adds the missing links (existing ones stay), DELETE removes them; both answer the
/// owner's product ids in order.
async fn link(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    (table, column, owner_table): (&str, &str, &str),
    owner: i64,
    body: &Value,
    add: bool,
) -> Result<Value, ApiError> {
    let model = if owner_table == "collections" {
        "collection"
    } else {
        "discount"
    };
    scope.require(&format!("product.change_{model}"), &GRANTS)?;
    owner_exists(ctx, scope, owner_table, owner).await?;
    let ids = product_ids(ctx, scope, body).await?;
    let mut tx = ctx.pool.begin().await?;
    if add {
        let position = body.get("position").and_then(Value::as_i64).unwrap_or(0);
        let positioned = if table == "product_collections" {
            ", position"
        } else {
            ""
        };
        let position_value = if table == "product_collections" {
            ", $4"
        } else {
            ""
        };
        sqlx::query(&format!(
            "INSERT INTO {table} (project_id, product, {column}{positioned}, created_by, updated_by) \
             SELECT $1, p, $2{position_value}, $3, $3 FROM unnest($5::bigint[]) AS p \
             WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.product = p AND x.{column} = $2 AND x.deleted_at IS NULL)"
        ))
        .bind(scope.project_id())
        .bind(owner)
        .bind(scope.user_id())
        .bind(position as i32)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(&format!(
            "UPDATE {table} SET deleted_at = now(), deleted_by = $3 \
             WHERE {column} = $1 AND product = ANY($2) AND deleted_at IS NULL"
        ))
        .bind(owner)
        .bind(&ids)
        .bind(scope.user_id())
        .execute(&mut *tx)
        .await?;
    }
    let order = if table == "product_collections" {
        "position, id"
    } else {
        "id"
    };
    let now: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT product FROM {table} WHERE {column} = $1 AND deleted_at IS NULL ORDER BY {order}"
    ))
    .bind(owner)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    public_cache::invalidate(ctx, "product", scope.project_id()).await;
    Ok(json!({"product_ids": now}))
}

/// The collection's products in position order (public like the collection).
#[utoipa::path(get, path = "/api/v1/product/products/collections/{id}/products/", tag = "Collection",
    params(("id" = String, Path)), responses((status = 200, description = "`{count, results}`: the products in position order"), (status = 404)))]
async fn collection_products(
    State(ctx): State<ServiceContext>,
    scope: ReadScope,
    Lang(lang): Lang,
    Path(raw): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<JsonOut<Value>, ApiError> {
    let id = int_id(&raw)?;
    kernel::resource::retrieve(&ctx, &crate::catalogue::COLLECTION, &scope, id, lang).await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT product FROM product_collections WHERE collection = $1 AND deleted_at IS NULL ORDER BY position, id",
    )
    .bind(id)
    .fetch_all(&ctx.pool)
    .await?;
    let csv: Vec<String> = ids.iter().map(i64::to_string).take(100).collect();
    let query = ListQuery::from_query(
        &PRODUCT.list,
        Some(&format!("ids={}&page_size=100", csv.join(","))),
    )?;
    let (_, rows) = if ids.is_empty() {
        (0, Vec::new())
    } else {
        kernel::resource::list(&ctx, &PRODUCT, &scope, &query, lang, false).await?
    };
    let mut rows: Vec<Value> = rows.into_iter().map(Row::into_value).collect();
    rows.sort_by_key(|r| ids.iter().position(|id| r["id"].as_i64() == Some(*id)));
    let _ = uri;
    Ok(JsonOut(json!({"count": rows.len(), "results": rows})))
}

/// `products/pricing/`: unit prices as order and pos must charge them (never from clients).
#[utoipa::path(post, path = "/api/v1/product/products/pricing/", tag = "Product", request_body = Value,
    responses((status = 200, description = "Unit prices as order and pos charge them"), (status = 400)))]
async fn pricing(
    State(ctx): State<ServiceContext>,
    scope: ReadScope,
    Lang(lang): Lang,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty() && i.len() <= 100)
        .ok_or_else(|| ApiError::field("items", "Give 1 to 100 items."))?;
    let mut products = Vec::new();
    let mut variants = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let product = item["product_id"].as_i64().ok_or_else(|| {
            ApiError::field("items", format!("Item {n}: product_id is required."))
        })?;
        products.push(product);
        variants.push(item["variant_id"].as_i64());
    }
    let member = matches!(scope, ReadScope::Member(_));
    let (currency, rows) = quote(
        &ctx.pool,
        scope.project_id(),
        member,
        lang,
        &products,
        &variants,
    )
    .await?;
    Ok(JsonOut(json!({"currency": currency, "items": rows})))
}

/// A product line whose final price on the row is current (migration 0008): it is the unit
/// price, and the discount rules are not evaluated for it (variants' prices are computed).
const KEPT_FINAL_PRICE: &str = "(v.id IS NULL AND p.final_price IS NOT NULL \
    AND (p.final_price_until IS NULL OR p.final_price_until > now()))";

/// Unit prices of `products`/`variants` (pairwise) in the project now, in the order asked, and
/// the project's currency. Non-members see products on sale only.
/// The lines come from `quote_lines` (migration 0011), so the statement keeps one plan.
pub async fn quote(
    pool: &sqlx::PgPool,
    project_id: i64,
    member: bool,
    lang: &str,
    products: &[i64],
    variants: &[Option<i64>],
) -> Result<(String, Vec<Value>), ApiError> {
    let rows: Vec<(Value, Option<String>)> = sqlx::query_as(&format!(
        "SELECT jsonb_build_object( \
           'product_id', i.product_id, 'variant_id', i.variant_id, \
           'name', COALESCE(NULLIF(CASE $4 WHEN 'ar' THEN p.name_ar WHEN 'fr' THEN p.name_fr ELSE p.name_en END, ''), \
                            NULLIF(p.name_en, ''), NULLIF(p.name_ar, ''), p.name_fr), \
           'variant_name', CASE WHEN v.id IS NULL THEN NULL ELSE COALESCE(NULLIF(v.name_en, ''), NULLIF(v.name_ar, ''), v.name_fr) END, \
           'sku', COALESCE(v.sku, p.sku), \
           'unit_price', round(CASE WHEN {kept} THEN p.final_price \
              ELSE COALESCE(f.final, v.selling_price, p.price) END, 2)::text, \
           'list_price', round(COALESCE(v.selling_price, p.price), 2)::text, \
           'discount_id', CASE WHEN {kept} THEN p.final_discount_id ELSE f.discount_id END, \
           'is_available', p.id IS NOT NULL AND {on_sale} \
                           AND (i.variant_id IS NULL OR (v.id IS NOT NULL AND v.is_active)), \
           'track_inventory', p.track_inventory, \
           'slug', p.slug, \
           'stock_available', CASE WHEN p.track_inventory THEN \
              CASE WHEN v.id IS NULL THEN p.stock_quantity ELSE v.stock_quantity END END, \
           'image_url', (SELECT im.url FROM product_images im \
              WHERE im.product = p.id AND im.deleted_at IS NULL \
              ORDER BY (v.id IS NOT NULL AND im.variant = v.id) DESC, im.is_primary DESC, \
                       im.position, im.id LIMIT 1)), \
           (SELECT currency FROM catalogue_settings WHERE project_id = $3) \
         FROM quote_lines($1, $2) WITH ORDINALITY AS i(product_id, variant_id, n) \
         LEFT JOIN products p ON p.id = i.product_id AND p.project_id = $3 AND p.deleted_at IS NULL {} \
         LEFT JOIN variants v ON v.id = i.variant_id AND v.product = p.id AND v.deleted_at IS NULL \
         LEFT JOIN LATERAL (SELECT * FROM product_best_discount(p.id, COALESCE(v.selling_price, p.price)) \
           WHERE p.id IS NOT NULL AND NOT {kept} OFFSET 0) f ON true \
         ORDER BY i.n",
        if member { "" } else { concat!("AND ", on_sale!("p")) },
        on_sale = on_sale!("p"),
        kept = KEPT_FINAL_PRICE,
    ))
    .bind(products)
    .bind(variants)
    .bind(project_id)
    .bind(lang)
    .fetch_all(pool)
    .await?;
    // The project's currency comes with the lines (one round trip), or alone without lines.
    let currency = match rows.first() {
        Some((_, currency)) => currency
            .clone()
            .unwrap_or_else(|| crate::settings::DEFAULT_CURRENCY.into()),
        None => crate::settings::currency(pool, project_id).await?,
    };
    Ok((currency, rows.into_iter().map(|(row, _)| row).collect()))
}

/// `{updates: [{id, …fields}]}`: each item in its own transaction.
#[utoipa::path(post, path = "/api/v1/product/products/bulk_update/", tag = "Product", request_body = Value,
    responses((status = 200, description = "`{updated, errors}`"), (status = 400), (status = 403)))]
async fn bulk_update(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Lang(lang): Lang,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    scope.require("product.change_product", &GRANTS)?;
    let updates = body
        .get("updates")
        .and_then(Value::as_array)
        .filter(|u| u.len() <= 100)
        .ok_or_else(|| ApiError::field("updates", "Give a list of at most 100 updates."))?;
    let (mut updated, mut errors) = (0, Vec::new());
    for update in updates {
        let id = update["id"].as_i64();
        let outcome = match id {
            Some(id) => kernel::resource::update(&ctx, &PRODUCT, &scope, id, update, true, lang)
                .await
                .map(|_| ()),
            None => Err(ApiError::field("id", "This field is required.")),
        };
        match outcome {
            Ok(()) => updated += 1,
            Err(e) => {
                let detail = e
                    .field_errors()
                    .map_or_else(|| json!({"non_field_errors": [e.detail()]}), |_| e.body());
                errors.push(json!({"id": id, "errors": detail}));
            }
        }
    }
    Ok(JsonOut(
        json!({"updated": updated, "failed": errors.len(), "errors": errors}),
    ))
}

#[derive(sqlx::FromRow)]
struct PriceRow {
    id: i64,
    product_id: i64,
    variant_id: Option<i64>,
    old_price: Option<String>,
    new_price: String,
    changed_at: chrono::DateTime<chrono::Utc>,
    changed_by: Option<i64>,
}

static HISTORY: ListSpec = ListSpec {
    filters: &[
        Col {
            name: "product",
            column: "product_id",
            kind: Kind::Int,
        },
        Col {
            name: "variant",
            column: "variant_id",
            kind: Kind::Int,
        },
    ],
    ordering: &[Col {
        name: "changed_at",
        column: "changed_at",
        kind: Kind::DateTime,
    }],
    search: &[],
    default_ordering: "-changed_at",
    extra_params: &[],
};

/// Members only: who changed which price when.
#[utoipa::path(get, path = "/api/v1/product/products/price-history/", tag = "Product",
    params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query), ("product" = Option<String>, Query)),
    responses((status = 200, description = "A page of price changes"), (status = 403)))]
async fn price_history(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    OriginalUri(uri): OriginalUri,
) -> Result<JsonOut<PageBody<Value>>, ApiError> {
    scope.require("product.view_product", &GRANTS)?;
    let query = ListQuery::from_query(&HISTORY, uri.query())?;
    let project = scope.project_id();
    let (total, rows): (i64, Vec<PriceRow>) = fetch_page(
        &ctx.pool,
        "id, product_id, variant_id, round(old_price, 2)::text AS old_price, round(new_price, 2)::text AS new_price, changed_at, changed_by",
        "FROM price_history WHERE project_id = ",
        |qb| {
            qb.push_bind(project);
        },
        &query,
        &[],
    )
    .await?;
    let results = rows
        .into_iter()
        .map(|r| json!({"id": r.id, "product": r.product_id, "variant": r.variant_id, "old_price": r.old_price,
                        "new_price": r.new_price, "changed_at": r.changed_at, "changed_by": r.changed_by}))
        .collect();
    Ok(JsonOut(page_body(
        uri.path(),
        uri.query(),
        total,
        &query,
        results,
    )))
}

/// Links products to a collection (`{product_ids}`), in that order after the present ones.
#[utoipa::path(post, path = "/api/v1/product/products/collections/{id}/products/", tag = "Collection",
    params(("id" = String, Path)), request_body = Value,
    responses((status = 200, description = "`{product_ids}` now linked"), (status = 400), (status = 404)))]
async fn add_to_collection(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(raw): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    linked(&ctx, &scope, COLLECTION_LINKS, &raw, &body, true).await
}

/// Unlinks products (`{product_ids}`) from a collection.
#[utoipa::path(delete, path = "/api/v1/product/products/collections/{id}/products/", tag = "Collection",
    params(("id" = String, Path)), request_body = Value,
    responses((status = 200, description = "`{product_ids}` still linked"), (status = 400), (status = 404)))]
async fn remove_from_collection(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(raw): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    linked(&ctx, &scope, COLLECTION_LINKS, &raw, &body, false).await
}

/// Puts products (`{product_ids}`) under a discount.
#[utoipa::path(post, path = "/api/v1/product/products/discounts/{id}/products/", tag = "Discount",
    params(("id" = String, Path)), request_body = Value,
    responses((status = 200, description = "`{product_ids}` now discounted"), (status = 400), (status = 404)))]
async fn add_to_discount(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(raw): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    linked(&ctx, &scope, DISCOUNT_LINKS, &raw, &body, true).await
}

/// Takes products (`{product_ids}`) out of a discount.
#[utoipa::path(delete, path = "/api/v1/product/products/discounts/{id}/products/", tag = "Discount",
    params(("id" = String, Path)), request_body = Value,
    responses((status = 200, description = "`{product_ids}` still discounted"), (status = 400), (status = 404)))]
async fn remove_from_discount(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(raw): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    linked(&ctx, &scope, DISCOUNT_LINKS, &raw, &body, false).await
}

const COLLECTION_LINKS: (&str, &str, &str) = ("product_collections", "collection", "collections");
const DISCOUNT_LINKS: (&str, &str, &str) = ("product_discounts", "discount", "discounts");

async fn linked(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    links: (&'static str, &'static str, &'static str),
    raw: &str,
    body: &Value,
    add: bool,
) -> Result<JsonOut<Value>, ApiError> {
    let id = int_id(raw)?;
    link(ctx, scope, links, id, body, add).await.map(JsonOut)
}

/// The hand-written operations of this file.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    collection_products,
    add_to_collection,
    remove_from_collection,
    add_to_discount,
    remove_from_discount,
    pricing,
    bulk_update,
    price_history
))]
pub struct Api;

pub fn routes(r: Routes<ServiceContext>) -> Routes<ServiceContext> {
    r.at(
        "",
        &[
            "products/collections/{id}/products",
            "collections/{id}/products",
        ],
        get(collection_products)
            .post(add_to_collection)
            .delete(remove_from_collection),
    )
    .at(
        "",
        &[
            "products/discounts/{id}/products",
            "discounts/{id}/products",
        ],
        post(add_to_discount).delete(remove_from_discount),
    )
    .at("", &["products/pricing"], post(pricing))
    .at(
        "",
        &["products/bulk_update", "products/bulk-update"],
        post(bulk_update),
    )
    .at(
        "",
        &["products/price-history", "price-history"],
        get(price_history),
    )
}
