//! An order's lines changed while it was pending (`order.updated` with `items`): its invoice
//! follows while nothing was paid on it and no payment is under way (billing.md §3.4: an issued
//! invoice with net 0 and no open transactions keeps editable amounts and items). An invoice with
//! money on it keeps its lines; the order cannot change its lines then anyway (only pending
//! orders can, and a paid order is confirmed). Until the invoice exists the handler fails, so the
//! event comes again.

use async_trait::async_trait;
use integration::order::OrderUpdated;
use kernel::events::{begin_once, Envelope, EventHandler};
use kernel::service::ServiceContext;
use rust_decimal::Decimal;

pub struct OrderUpdateFollower {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for OrderUpdateFollower {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<OrderUpdated>() else {
            return Ok(());
        };
        let event = event?;
        let Some(project_id) = envelope.project_id else {
            return Ok(());
        };
        if !event.changed.iter().any(|c| c == "items") {
            return Ok(());
        }
        let Some(mut tx) = begin_once(&self.ctx.pool, "billing", envelope).await? else {
            return Ok(());
        };
        let invoice: Option<(i64, String, Decimal, Decimal)> = sqlx::query_as(
            "SELECT id, status, amount_paid, amount_refunded FROM invoices WHERE project_id = $1 \
             AND source_type = 'order' AND source_id = $2 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(project_id)
        .bind(event.order.order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, status, paid, refunded)) = invoice else {
            anyhow::bail!(
                "the invoice of order {} does not exist yet",
                event.order.order_number
            );
        };
        let open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM transactions WHERE invoice_id = $1 \
             AND status IN ('pending', 'processing') AND deleted_at IS NULL)",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let editable = matches!(status.as_str(), "draft" | "sent")
            && paid.is_zero()
            && refunded.is_zero()
            && !open;
        if !editable {
            tracing::warn!(
                invoice_id = id,
                order = event.order.order_number,
                "order lines changed but its invoice has money on it; the invoice keeps its lines"
            );
            tx.commit().await?;
            return Ok(());
        }
        let dec = |s: &str| s.parse::<Decimal>().unwrap_or(Decimal::ZERO);
        sqlx::query("DELETE FROM invoice_items WHERE invoice_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (n, line) in event.items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_items (invoice_id, description, product_id, variant_id, \
                   quantity, unit_price, total, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(
                line.sku
                    .clone()
                    .unwrap_or_else(|| format!("Product {}", line.product_id)),
            )
            .bind(line.product_id)
            .bind(line.variant_id)
            .bind(Decimal::from(line.quantity))
            .bind(dec(&line.unit_price))
            .bind(dec(&line.total_price))
            .bind(n as i32)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE invoices SET subtotal = $2, discount_amount = $3, tax_amount = $4, \
               shipping_amount = $5, total_amount = $6, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(dec(&event.subtotal))
        .bind(dec(&event.discount_amount))
        .bind(dec(&event.tax_amount))
        .bind(dec(&event.shipping_cost))
        .bind(dec(&event.total))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
