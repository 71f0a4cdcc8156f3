//! Stock as the catalogue shows it (`stock_quantity`, `stock_status`), kept from the inventory
//! service's `inventory.stock_changed`, and the catalogue lookups the inventory service makes
//! when its replica has not heard of a product yet.

use async_trait::async_trait;
use integration::inventory::StockChanged;
use integration::product::{
    Catalog, Listed, PriceQuote, Pricing, ProductSnapshot, VariantSnapshot,
};
use std::collections::{BTreeMap, BTreeSet};

use kernel::events::{first_times, Envelope, EventHandler};
use kernel::resource::public_cache;
use kernel::service::ServiceContext;
use serde_json::Value;
use sqlx::PgPool;

/// Applies `inventory.stock_changed` once per event: the row's level is kept when its version
/// is newer than the one known, and the product's (and variant's) `stock_quantity` becomes the
/// sum over their rows. In-process it takes the relay's batches: one transaction of a few
/// statements for all the events of a batch.
pub struct StockFollower {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for StockFollower {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.apply(&[envelope]).await
    }

    fn batches(&self) -> bool {
        true
    }

    async fn handle_all(&self, envelopes: &[&Envelope]) -> anyhow::Result<()> {
        self.apply(envelopes).await
    }
}

impl StockFollower {
    /// Applies the stock changes among `envelopes` that this service has not applied yet, in
    /// one transaction.
    async fn apply(&self, envelopes: &[&Envelope]) -> anyhow::Result<()> {
        let mut changes = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            if let (Some(event), Some(project_id)) =
                (envelope.decode::<StockChanged>(), envelope.project_id)
            {
                changes.push((envelope, project_id, event?));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.ctx.pool.begin().await?;
        let events: Vec<&Envelope> = changes.iter().map(|c| *c.0).collect();
        let fresh = first_times(&mut tx, "product", &events).await?;
        // The newest level of each row among the events not applied before.
        let mut newest: BTreeMap<i64, (i64, &StockChanged)> = BTreeMap::new();
        for (envelope, project_id, event) in &changes {
            if !fresh.contains(&envelope.id) {
                continue;
            }
            let known = newest.get(&event.inventory_id);
            if known.is_none_or(|(_, k)| k.version < event.version) {
                newest.insert(event.inventory_id, (*project_id, event));
            }
        }
        if newest.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        let levels: Vec<&(i64, &StockChanged)> = newest.values().collect();
        let changed: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
            "INSERT INTO stock_levels (inventory_id, project_id, product_id, variant_id, available, version) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
               $5::int[], $6::bigint[]) \
             ON CONFLICT (inventory_id) DO UPDATE SET available = EXCLUDED.available, \
               version = EXCLUDED.version \
             WHERE stock_levels.version < EXCLUDED.version \
             RETURNING project_id, product_id, variant_id",
        )
        .bind(levels.iter().map(|l| l.1.inventory_id).collect::<Vec<_>>())
        .bind(levels.iter().map(|l| l.0).collect::<Vec<_>>())
        .bind(levels.iter().map(|l| l.1.product_id).collect::<Vec<_>>())
        .bind(levels.iter().map(|l| l.1.variant_id).collect::<Vec<_>>())
        .bind(levels.iter().map(|l| l.1.available_quantity as i32).collect::<Vec<_>>())
        .bind(levels.iter().map(|l| l.1.version).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let products: BTreeSet<(i64, i64)> = changed.iter().map(|c| (c.1, c.0)).collect();
        let variants: BTreeSet<(i64, i64)> = changed
            .iter()
            .filter_map(|c| c.2.map(|v| (v, c.0)))
            .collect();
        for (table, key, rows) in [
            ("products", "product_id", &products),
            ("variants", "variant_id", &variants),
        ] {
            if rows.is_empty() {
                continue;
            }
            // `table` and `key` are the two literals above.
            sqlx::query(&format!(
                "UPDATE {table} t SET stock_quantity = (SELECT COALESCE(sum(available), 0) \
                   FROM stock_levels l WHERE l.{key} = t.id) \
                 FROM unnest($1::bigint[], $2::bigint[]) AS c(id, project) \
                 WHERE t.id = ANY($1) AND t.id = c.id AND t.project_id = c.project"
            ))
            .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let projects: BTreeSet<i64> = changed.iter().map(|c| c.0).collect();
        for project_id in projects {
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
