//! Stock as the catalogue shows it (`stock_quantity`, `stock_status`), kept from the inventory
//! service's `inventory.stock_changed`, and the catalogue lookups the inventory service makes
//! when its replica has not heard of a product yet.

use async_trait::async_trait;
use integration::inventory::StockChanged;
use integration::product::{
    Catalog, Listed, PriceQuote, Pricing, ProductSnapshot, VariantSnapshot,
};
use kernel::events::{begin_once, Envelope, EventHandler};
use kernel::resource::public_cache;
use kernel::service::ServiceContext;
use serde_json::Value;
use sqlx::PgPool;

/// Applies `inventory.stock_changed` once per event: the row's level is kept when its version
/// is newer than the one known, and the product's (and variant's) `stock_quantity` becomes the
/// sum over their rows.
pub struct StockFollower {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for StockFollower {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<StockChanged>() else {
            return Ok(());
        };
        let event = event?;
        let Some(project_id) = envelope.project_id else {
            return Ok(());
        };
        let Some(mut tx) = begin_once(&self.ctx.pool, "product", envelope).await? else {
            return Ok(());
        };
        let newer = sqlx::query(
            "INSERT INTO stock_levels (inventory_id, project_id, product_id, variant_id, available, version) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (inventory_id) DO UPDATE SET available = EXCLUDED.available, \
               version = EXCLUDED.version \
             WHERE stock_levels.version < EXCLUDED.version",
        )
        .bind(event.inventory_id)
        .bind(project_id)
        .bind(event.product_id)
        .bind(event.variant_id)
        .bind(event.available_quantity as i32)
        .bind(event.version)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if newer {
            sqlx::query(
                "UPDATE products SET stock_quantity = (SELECT COALESCE(sum(available), 0) \
                   FROM stock_levels WHERE product_id = $1) WHERE id = $1 AND project_id = $2",
            )
            .bind(event.product_id)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
            if let Some(variant) = event.variant_id {
                sqlx::query(
                    "UPDATE variants SET stock_quantity = (SELECT COALESCE(sum(available), 0) \
                       FROM stock_levels WHERE variant_id = $1) WHERE id = $1 AND project_id = $2",
                )
                .bind(variant)
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        if newer {
            public_cache::invalidate(&self.ctx, "product", project_id).await;
        }
        Ok(())
    }
}

/// The product service's answer to [`Catalog`] lookups.
pub struct Lookup(pub PgPool);

#[async_trait]
impl Catalog for Lookup {
    async fn product(
        &self,
        project_id: i64,
        product_id: i64,
    ) -> anyhow::Result<Option<Listed<ProductSnapshot>>> {
        let row: Option<(Value, bool)> = sqlx::query_as(
            "SELECT to_jsonb(p.*), p.deleted_at IS NOT NULL FROM products p \
             WHERE p.id = $1 AND p.project_id = $2",
        )
        .bind(product_id)
        .bind(project_id)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(|(row, deleted)| Listed {
            item: crate::products::snapshot(&row),
            deleted,
        }))
    }

    async fn variant(
        &self,
        project_id: i64,
        variant_id: i64,
    ) -> anyhow::Result<Option<Listed<VariantSnapshot>>> {
        let row: Option<(Value, bool)> = sqlx::query_as(
            "SELECT to_jsonb(v.*), v.deleted_at IS NOT NULL FROM variants v \
             WHERE v.id = $1 AND v.project_id = $2",
        )
        .bind(variant_id)
        .bind(project_id)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(|(row, deleted)| Listed {
            item: crate::variants::variant_snapshot(&row),
            deleted,
        }))
    }
}

#[async_trait]
impl Pricing for Lookup {
    async fn quote(
        &self,
        project_id: i64,
        lang: &str,
        items: &[(i64, Option<i64>)],
    ) -> Result<(String, Vec<PriceQuote>), kernel::ApiError> {
        let products: Vec<i64> = items.iter().map(|i| i.0).collect();
        let variants: Vec<Option<i64>> = items.iter().map(|i| i.1).collect();
        let (currency, rows) =
            crate::actions::quote(&self.0, project_id, true, lang, &products, &variants).await?;
        let quotes = rows
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<PriceQuote>, _>>()
            .map_err(kernel::ApiError::internal)?;
        Ok((currency, quotes))
    }
}
