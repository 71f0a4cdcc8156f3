//! The invoice of each placed order (`order.created`), once: a redelivered event finds its
//! inbox row and an order that has its invoice is skipped. In-process the relay hands over a
//! batch, and the batch is written in one transaction with one statement per step (the inbox
//! rows, the invoiced orders, the numbers, the invoices, their lines, their events), so the
//! invoices keep up with placements however many arrive at once.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use integration::billing::InvoiceCreated;
use integration::order::OrderCreated;
use kernel::events::{first_times, Envelope, EventHandler};
use kernel::service::ServiceContext;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::invoices::{insert_lines, take_numbers, Line};
use crate::ledger::{self, InvoiceRow, INVOICE_COLUMNS};

/// Writes of a batch before it gives up (each finding more orders invoiced meanwhile).
const ATTEMPTS: usize = 3;

pub struct OrderInvoicer {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for OrderInvoicer {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.invoice_all(&[envelope]).await
    }

    fn batches(&self) -> bool {
        true
    }

    async fn handle_all(&self, envelopes: &[&Envelope]) -> anyhow::Result<()> {
        self.invoice_all(envelopes).await
    }
}

/// A placed order to invoice.
struct Placed<'a> {
    envelope: &'a Envelope,
    project_id: i64,
    event: OrderCreated,
}

impl Placed<'_> {
    fn key(&self) -> (i64, i64) {
        (self.project_id, self.event.order.order_id)
    }
}

/// An invoice as written, with its project.
#[derive(sqlx::FromRow)]
struct Written {
    project_id: i64,
    #[sqlx(flatten)]
    row: InvoiceRow,
}

impl OrderInvoicer {
    /// Invoices the orders placed by `envelopes` that this service has not seen before and
    /// that have no invoice yet, in one transaction. An order that already has one (made
    /// another way) is found by the insert itself; the batch is then written again without it,
    /// so the numbers it took are not lost.
    async fn invoice_all(&self, envelopes: &[&Envelope]) -> anyhow::Result<()> {
        let mut placed = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            if let (Some(event), Some(project_id)) =
                (envelope.decode::<OrderCreated>(), envelope.project_id)
            {
                placed.push(Placed {
                    envelope,
                    project_id,
                    event: event?,
                });
            }
        }
        if placed.is_empty() {
            return Ok(());
        }
        let events: Vec<&Envelope> = placed.iter().map(|p| p.envelope).collect();
        let mut invoiced = HashSet::new();
        for _ in 0..ATTEMPTS {
            let mut tx = self.ctx.pool.begin().await?;
            let fresh = first_times(&mut tx, "billing", &events).await?;
            let mut seen = HashSet::new();
            let todo: Vec<&Placed> = placed
                .iter()
                .filter(|p| fresh.contains(&p.envelope.id))
                .filter(|p| !invoiced.contains(&p.key()) && seen.insert(p.key()))
                .collect();
            let already = if todo.is_empty() {
                Vec::new()
            } else {
                self.write(&mut tx, &todo).await?
            };
            if already.is_empty() {
                tx.commit().await?;
                self.ctx.outbox.nudge();
                return Ok(());
            }
            // Rolled back (with the numbers it took): again, without those orders.
            drop(tx);
            invoiced.extend(already);
        }
        anyhow::bail!("orders kept gaining invoices while this batch was invoiced")
    }

    /// The invoices of `placed`, their lines and their events; payments recorded before an
    /// invoice existed are attached to it. Returns the orders among `placed` that already had
    /// an invoice, and writes nothing else then (the caller rolls back).
    async fn write(
        &self,
        tx: &mut PgConnection,
        placed: &[&Placed<'_>],
    ) -> anyhow::Result<Vec<(i64, i64)>> {
        let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
        for p in placed {
            *counts.entry(p.project_id).or_default() += 1;
        }
        let mut numbers: BTreeMap<i64, std::vec::IntoIter<String>> = take_numbers(tx, &counts)
            .await?
            .into_iter()
            .map(|(project, taken)| (project, taken.into_iter()))
            .collect();
        let mut next = |project: i64| {
            numbers
                .get_mut(&project)
                .and_then(Iterator::next)
                .ok_or_else(|| anyhow::anyhow!("no invoice number was taken for {project}"))
        };
        let mut numbered = Vec::with_capacity(placed.len());
        for p in placed {
            numbered.push((*p, next(p.project_id)?));
        }
        let written = insert_invoices(tx, &numbered).await?;
        let by_key: HashMap<(i64, i64), &InvoiceRow> = written
            .iter()
            .filter_map(|w| Some(((w.project_id, w.row.source_id?), &w.row)))
            .collect();
        let already: Vec<(i64, i64)> = placed
            .iter()
            .map(|p| p.key())
            .filter(|key| !by_key.contains_key(key))
            .collect();
        if !already.is_empty() {
            return Ok(already);
        }
        let mut lines = Vec::with_capacity(placed.len());
        let mut events = Vec::with_capacity(placed.len());
        let mut invoices = Vec::with_capacity(placed.len());
        for p in placed {
            let Some(row) = by_key.get(&p.key()) else {
                continue;
            };
            lines.push((row.id, lines_of(&p.event)));
            events.push(self.ctx.outbox.envelope(
                Some(p.project_id),
                p.envelope.actor_id,
                &InvoiceCreated(row.event()),
            )?);
            invoices.push((p, row.id));
        }
        let lines: Vec<(i64, &[Line])> = lines.iter().map(|(id, l)| (*id, l.as_slice())).collect();
        insert_lines(tx, &lines).await?;
        self.ctx.outbox.record_all(tx, &events).await?;
        let keys: Vec<(i64, i64)> = placed.iter().map(|p| p.key()).collect();
        let early = paid_before_invoiced(tx, &keys).await?;
        for (p, invoice) in invoices
            .into_iter()
            .filter(|(p, _)| early.contains(&p.key()))
        {
            let actor = p.envelope.actor_id;
            ledger::attach_source_payments(&self.ctx, tx, actor, p.project_id, invoice).await?;
        }
        Ok(Vec::new())
    }
}

fn money(s: &str) -> Decimal {
    s.parse::<Decimal>().unwrap_or(Decimal::ZERO)
}

/// The invoice lines of a placed order, as the order priced them.
fn lines_of(event: &OrderCreated) -> Vec<Line> {
    event
        .items
        .iter()
        .map(|line| Line {
            description: line
                .sku
                .clone()
                .unwrap_or_else(|| format!("Product {}", line.product_id)),
            product_id: Some(line.product_id),
            variant_id: line.variant_id,
            quantity: Decimal::from(line.quantity),
            unit_price: money(&line.unit_price),
            discount: Decimal::ZERO,
            tax_rate: Decimal::ZERO,
            tax: Decimal::ZERO,
            total: money(&line.total_price),
        })
        .collect()
}

/// Those of the (project, order) pairs with a completed payment that no invoice holds yet,
/// each pair looked up on its own (`LATERAL … LIMIT 1`: an index probe per pair).
async fn paid_before_invoiced(
    tx: &mut PgConnection,
    keys: &[(i64, i64)],
) -> anyhow::Result<HashSet<(i64, i64)>> {
    let (projects, sources): (Vec<i64>, Vec<i64>) = keys.iter().copied().unzip();
    let found: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT k.project, k.source FROM unnest($1::bigint[], $2::bigint[]) AS k(project, source) \
         CROSS JOIN LATERAL (SELECT 1 FROM transactions t WHERE t.project_id = k.project \
           AND t.source_type = 'order' AND t.source_id = k.source AND t.invoice_id IS NULL \
           AND t.status = 'completed' AND t.transaction_type = 'payment' \
           AND t.deleted_at IS NULL LIMIT 1) AS found",
    )
    .bind(&projects)
    .bind(&sources)
    .fetch_all(tx)
    .await?;
    Ok(found.into_iter().collect())
}

/// Writes the `sent` invoices of placed orders under their numbers, in one statement, but
/// none for an order that already has one (one invoice per source).
async fn insert_invoices(
    tx: &mut PgConnection,
    numbered: &[(&Placed<'_>, String)],
) -> anyhow::Result<Vec<Written>> {
    let each = |f: fn(&OrderCreated) -> &str| {
        numbered
            .iter()
            .map(|(p, _)| money(f(&p.event)))
            .collect::<Vec<_>>()
    };
    let customers: Vec<Value> = numbered
        .iter()
        .map(|(p, _)| json!({"id": p.event.customer_id, "email": p.event.customer_email}))
        .collect();
    Ok(sqlx::query_as(&format!(
        "INSERT INTO invoices (project_id, invoice_number, customer_id, customer_type, customer, \
           order_id, source_type, source_id, status, subtotal, discount_amount, tax_amount, \
           shipping_amount, total_amount, currency, sent_at, created_by, updated_by) \
         SELECT i.project, i.number, i.customer, 'user', i.who, i.source, 'order', i.source, \
           'sent', i.subtotal, i.discount, i.tax, i.shipping, i.total, i.currency, now(), \
           i.customer, i.customer \
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::jsonb[], $5::bigint[], \
           $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], \
           $11::text[]) WITH ORDINALITY AS i(project, number, customer, who, source, subtotal, \
             discount, tax, shipping, total, currency, n) ORDER BY i.n \
         ON CONFLICT (project_id, source_type, source_id) \
           WHERE source_type <> 'manual' AND source_id IS NOT NULL DO NOTHING \
         RETURNING project_id, {INVOICE_COLUMNS}"
    ))
    .bind(
        numbered
            .iter()
            .map(|(p, _)| p.project_id)
            .collect::<Vec<_>>(),
    )
    .bind(numbered.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>())
    .bind(
        numbered
            .iter()
            .map(|(p, _)| p.event.customer_id)
            .collect::<Vec<_>>(),
    )
    .bind(&customers)
    .bind(
        numbered
            .iter()
            .map(|(p, _)| p.event.order.order_id)
            .collect::<Vec<_>>(),
    )
    .bind(each(|e| &e.subtotal))
    .bind(each(|e| &e.discount_amount))
    .bind(each(|e| &e.tax_amount))
    .bind(each(|e| &e.shipping_cost))
    .bind(each(|e| &e.total))
    .bind(
        numbered
            .iter()
            .map(|(p, _)| p.event.currency.as_str())
            .collect::<Vec<_>>(),
    )
    .fetch_all(tx)
    .await?)
}
