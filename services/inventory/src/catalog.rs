//! The product replica (contract inventory.md §1, §10): what the product service said last of
//! each product and variant, kept from `product.*` / `variant.*`, and consulted by every stock
//! call. An id the replica has not heard of yet is looked up in the product service before the
//! call is answered, so a product created a moment ago works.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use integration::product::{
    Listed, ProductCreated, ProductDeleted, ProductRestored, ProductSnapshot, ProductUpdated,
    SharedCatalog, VariantCreated, VariantDeleted, VariantSnapshot, VariantUpdated,
};
use kernel::events::{begin_once, Envelope, EventHandler};
use kernel::service::ServiceContext;
use kernel::ApiError;
use sqlx::{PgConnection, PgPool};

/// What a stock call may do with a product (or variant).
#[derive(Clone, Debug)]
pub struct Stocked {
    pub name: String,
    /// `track_inventory = false`: stock calls succeed and change nothing.
    pub tracked: bool,
    pub low_stock_threshold: Option<i64>,
}

async fn save_product(
    db: &mut PgConnection,
    project_id: i64,
    p: &ProductSnapshot,
    deleted: bool,
    as_of: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO catalog_products (product_id, project_id, name, sku, price, cost_price, \
           category_id, is_active, track_inventory, low_stock_threshold, deleted, as_of) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, sku = EXCLUDED.sku, \
           price = EXCLUDED.price, cost_price = EXCLUDED.cost_price, \
           category_id = EXCLUDED.category_id, is_active = EXCLUDED.is_active, \
           track_inventory = EXCLUDED.track_inventory, \
           low_stock_threshold = EXCLUDED.low_stock_threshold, deleted = EXCLUDED.deleted, \
           as_of = EXCLUDED.as_of \
         WHERE catalog_products.as_of <= EXCLUDED.as_of AND catalog_products.project_id = EXCLUDED.project_id",
    )
    .bind(p.product_id)
    .bind(project_id)
    .bind(&p.name)
    .bind(&p.sku)
    .bind(&p.price)
    .bind(&p.cost_price)
    .bind(p.category_id)
    .bind(p.is_active && p.status != "archived")
    .bind(p.track_inventory)
    .bind(p.low_stock_threshold.map(|t| t.clamp(0, i32::MAX.into()) as i32))
    .bind(deleted)
    .bind(as_of)
    .execute(db)
    .await?;
    Ok(())
}

async fn save_variant(
    db: &mut PgConnection,
    project_id: i64,
    v: &VariantSnapshot,
    deleted: bool,
    as_of: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO catalog_variants (variant_id, project_id, product_id, name, sku, is_active, \
           deleted, as_of) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (variant_id) DO UPDATE SET product_id = EXCLUDED.product_id, \
           name = EXCLUDED.name, sku = EXCLUDED.sku, is_active = EXCLUDED.is_active, \
           deleted = EXCLUDED.deleted, as_of = EXCLUDED.as_of \
         WHERE catalog_variants.as_of <= EXCLUDED.as_of AND catalog_variants.project_id = EXCLUDED.project_id",
    )
    .bind(v.variant_id)
    .bind(project_id)
    .bind(v.product_id)
    .bind(&v.name)
    .bind(&v.sku)
    .bind(v.is_active)
    .bind(deleted)
    .bind(as_of)
    .execute(db)
    .await?;
    Ok(())
}

/// Sets `deleted` of a product and of the variants it lists, unless the replica knows a newer
/// state.
async fn mark_deleted(
    db: &mut PgConnection,
    project_id: i64,
    product_id: i64,
    variants: &[i64],
    deleted: bool,
    as_of: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE catalog_products SET deleted = $3, as_of = $4 \
         WHERE product_id = $1 AND project_id = $2 AND as_of <= $4",
    )
    .bind(product_id)
    .bind(project_id)
    .bind(deleted)
    .bind(as_of)
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "UPDATE catalog_variants SET deleted = $3, as_of = $4 \
         WHERE variant_id = ANY($1) AND project_id = $2 AND as_of <= $4",
    )
    .bind(variants)
    .bind(project_id)
    .bind(deleted)
    .bind(as_of)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Keeps the replica from the product service's events, each applied once. A product created
/// with stock (`initialStock > 0`, tracked) books it as an IN `initial` movement into its
/// default-warehouse row.
pub struct CatalogFollower {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for CatalogFollower {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(project_id) = envelope.project_id else {
            return Ok(());
        };
        let Some(mut tx) = begin_once(&self.ctx.pool, "inventory", envelope).await? else {
            return Ok(());
        };
        let at = envelope.occurred_at;
        let mut initial = None;
        if let Some(e) = envelope.decode::<ProductCreated>() {
            let e = e?;
            save_product(&mut tx, project_id, &e.product, false, at).await?;
            if e.initial_stock > 0 && e.product.track_inventory {
                initial = Some((e.product, e.initial_stock));
            }
        } else if let Some(e) = envelope.decode::<ProductUpdated>() {
            save_product(&mut tx, project_id, &e?.product, false, at).await?;
        } else if let Some(e) = envelope.decode::<ProductDeleted>() {
            let e = e?;
            mark_deleted(&mut tx, project_id, e.product_id, &e.variant_ids, true, at).await?;
        } else if let Some(e) = envelope.decode::<ProductRestored>() {
            let e = e?;
            mark_deleted(&mut tx, project_id, e.product_id, &e.variant_ids, false, at).await?;
        } else if let Some(e) = envelope.decode::<VariantCreated>() {
            save_variant(&mut tx, project_id, &e?.0, false, at).await?;
        } else if let Some(e) = envelope.decode::<VariantUpdated>() {
            save_variant(&mut tx, project_id, &e?.0, false, at).await?;
        } else if let Some(e) = envelope.decode::<VariantDeleted>() {
            save_variant(&mut tx, project_id, &e?.0, true, at).await?;
        }
        if let Some((product, quantity)) = initial {
            crate::stock::book_initial(
                &self.ctx,
                &mut tx,
                project_id,
                envelope.actor_id,
                &product,
                quantity,
            )
            .await
            .map_err(|e| anyhow::anyhow!("initial stock not booked: {}", e.detail()))?;
        }
        tx.commit().await?;
        self.ctx.outbox.nudge();
        Ok(())
    }
}

type ProductRow = (String, bool, bool, bool, Option<i32>);

async fn replica_product(
    pool: &PgPool,
    project_id: i64,
    product_id: i64,
) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(
        "SELECT name, is_active, track_inventory, deleted, low_stock_threshold \
         FROM catalog_products WHERE product_id = $1 AND project_id = $2",
    )
    .bind(product_id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}

/// (product, name, active, deleted) of a variant.
type VariantRow = (i64, String, bool, bool);

async fn replica_variant(
    pool: &PgPool,
    project_id: i64,
    variant_id: i64,
) -> sqlx::Result<Option<VariantRow>> {
    sqlx::query_as(
        "SELECT product_id, name, is_active, deleted FROM catalog_variants \
         WHERE variant_id = $1 AND project_id = $2",
    )
    .bind(variant_id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}

fn unavailable(what: &str, id: i64) -> ApiError {
    ApiError::rule(
        "product_unavailable",
        format!("The {what} {id} is deleted or inactive; its stock cannot move."),
    )
}

fn unknown(field: &str, id: i64) -> ApiError {
    ApiError::field(
        field,
        format!("Invalid pk \"{id}\" - object does not exist."),
    )
}

/// Checks that stock of `product_id` (and `variant_id`) may move in the project: unknown → 400
/// on `product_id`/`variant_id`; deleted or inactive → 422 `product_unavailable`.
pub async fn check(
    ctx: &ServiceContext,
    project_id: i64,
    product_id: i64,
    variant_id: Option<i64>,
) -> Result<Stocked, ApiError> {
    let lookup = || ctx.platform.lookup::<SharedCatalog>();
    let mut product = replica_product(&ctx.pool, project_id, product_id).await?;
    if product.is_none() {
        if let Some(catalog) = lookup() {
            if let Some(Listed { item, deleted }) = catalog
                .product(project_id, product_id)
                .await
                .map_err(ApiError::internal)?
            {
                let mut db = ctx.pool.acquire().await?;
                save_product(&mut db, project_id, &item, deleted, Utc::now()).await?;
                product = replica_product(&ctx.pool, project_id, product_id).await?;
            }
        }
    }
    let mut variant = None;
    if let Some(variant_id) = variant_id {
        let mut found = replica_variant(&ctx.pool, project_id, variant_id).await?;
        if found.is_none() {
            if let Some(catalog) = lookup() {
                if let Some(Listed { item, deleted }) = catalog
                    .variant(project_id, variant_id)
                    .await
                    .map_err(ApiError::internal)?
                {
                    let mut db = ctx.pool.acquire().await?;
                    save_variant(&mut db, project_id, &item, deleted, Utc::now()).await?;
                    found = replica_variant(&ctx.pool, project_id, variant_id).await?;
                }
            }
        }
        variant = Some((variant_id, found));
    }
    judge(product_id, product, variant)
}

/// The replica's rows of some products and variants, as [`replica_sql!`] reads them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Replica {
    /// (product, name, active, tracked, deleted, low-stock threshold).
    products: Vec<(i64, String, bool, bool, bool, Option<i32>)>,
    /// (variant, product, name, active, deleted).
    variants: Vec<(i64, i64, String, bool, bool)>,
}

/// One `jsonb` value ([`Replica`]) of the replica's rows of the products and variants of
/// `wanted_lines($2, $3)` (migration 0005) in project `$1`. Through that function the
/// statement keeps one plan.
macro_rules! replica_sql {
    () => {
        "jsonb_build_object(\
           'products', COALESCE((SELECT jsonb_agg(jsonb_build_array(c.product_id, c.name, \
               c.is_active, c.track_inventory, c.deleted, c.low_stock_threshold)) \
             FROM catalog_products c WHERE c.project_id = $1 \
               AND c.product_id IN (SELECT product_id FROM wanted_lines($2, $3))), '[]'), \
           'variants', COALESCE((SELECT jsonb_agg(jsonb_build_array(c.variant_id, \
               c.product_id, c.name, c.is_active, c.deleted)) \
             FROM catalog_variants c WHERE c.project_id = $1 \
               AND c.variant_id IN (SELECT variant_id FROM wanted_lines($2, $3))), '[]'))"
    };
}
pub(crate) use replica_sql;

/// [`check`] of several lines: the replica is read once for all of them (a line it has not
/// heard of yet is looked up as [`check`] does). The answers are in the order of `wanted`.
pub async fn check_all(
    ctx: &ServiceContext,
    project_id: i64,
    wanted: &[(i64, Option<i64>)],
) -> Result<Vec<Stocked>, ApiError> {
    let (products, variants): (Vec<i64>, Vec<Option<i64>>) = wanted.iter().copied().unzip();
    let sqlx::types::Json(replica): sqlx::types::Json<Replica> =
        sqlx::query_scalar(concat!("SELECT ", replica_sql!()))
            .bind(project_id)
            .bind(&products)
            .bind(&variants)
            .fetch_one(&ctx.pool)
            .await?;
    check_read(ctx, project_id, wanted, &replica).await
}

/// [`check_all`] with the replica's rows already read (a line they lack is looked up as
/// [`check`] does).
pub async fn check_read(
    ctx: &ServiceContext,
    project_id: i64,
    wanted: &[(i64, Option<i64>)],
    replica: &Replica,
) -> Result<Vec<Stocked>, ApiError> {
    let mut out = Vec::with_capacity(wanted.len());
    for &(product_id, variant_id) in wanted {
        let product = replica
            .products
            .iter()
            .find(|r| r.0 == product_id)
            .map(|r| (r.1.clone(), r.2, r.3, r.4, r.5));
        let variant = variant_id.map(|id| {
            let row = replica.variants.iter().find(|r| r.0 == id);
            (id, row.map(|r| (r.1, r.2.clone(), r.3, r.4)))
        });
        let known = product.is_some() && variant.as_ref().is_none_or(|v| v.1.is_some());
        out.push(if known {
            judge(product_id, product, variant)?
        } else {
            check(ctx, project_id, product_id, variant_id).await?
        });
    }
    Ok(out)
}

/// What the replica's rows of a product (and a variant: its id and row) allow.
fn judge(
    product_id: i64,
    product: Option<ProductRow>,
    variant: Option<(i64, Option<VariantRow>)>,
) -> Result<Stocked, ApiError> {
    let Some((mut name, active, tracked, deleted, threshold)) = product else {
        return Err(unknown("product_id", product_id));
    };
    if deleted || !active {
        return Err(unavailable("product", product_id));
    }
    if let Some((variant_id, variant)) = variant {
        match variant {
            Some((owner, _, _, _)) if owner != product_id => {
                return Err(ApiError::field(
                    "variant_id",
                    format!("Variant {variant_id} is not a variant of product {product_id}."),
                ))
            }
            Some((_, variant_name, active, deleted)) => {
                if deleted || !active {
                    return Err(unavailable("variant", variant_id));
                }
                if !variant_name.is_empty() {
                    name = format!("{name} - {variant_name}");
                }
            }
            None => return Err(unknown("variant_id", variant_id)),
        }
    }
    Ok(Stocked {
        name,
        tracked,
        low_stock_threshold: threshold.map(i64::from),
    })
}
