//! `invoice.created` for an order: the order records its invoice's id. A batch of them is
//! recorded in one transaction (the inbox rows, then one `UPDATE … FROM unnest`).

use integration::billing::InvoiceCreated;
use kernel::events::{first_times, Envelope};
use sqlx::PgPool;

/// Records on each order the invoice that `envelopes` announce for it, once per event.
pub async fn link(pool: &PgPool, envelopes: &[&Envelope]) -> anyhow::Result<()> {
    let mut links = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let (Some(project_id), Some(created)) =
            (envelope.project_id, envelope.decode::<InvoiceCreated>())
        else {
            continue;
        };
        let invoice = created?.0;
        if let (Some(order_id), "order") = (invoice.source_id, invoice.source_type.as_str()) {
            links.push((*envelope, order_id, project_id, invoice.invoice_id));
        }
    }
    if links.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let events: Vec<&Envelope> = links.iter().map(|l| l.0).collect();
    let fresh = first_times(&mut tx, "order", &events).await?;
    links.retain(|l| fresh.contains(&l.0.id));
    if links.is_empty() {
        return Ok(tx.commit().await?);
    }
    links.sort_by_key(|l| l.1);
    sqlx::query(
        "UPDATE orders o SET invoice_id = l.invoice \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS l(id, project, invoice) \
         WHERE o.id = ANY($1) AND o.id = l.id AND o.project_id = l.project",
    )
    .bind(links.iter().map(|l| l.1).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.2).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.3).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
