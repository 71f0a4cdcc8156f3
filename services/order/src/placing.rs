//! The placement saga's writes (order.md §4), each one statement: the order `placing` with its
//! number, totals and lines before the stock is reserved, then the order placed with its
//! history row once it is.

use integration::order::OrderLine;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Row};

use crate::orders::{money, Placement, Priced, Totals};

/// An order written `placing`.
pub(crate) struct Placing {
    pub(crate) id: i64,
    pub(crate) number: String,
    pub(crate) payment_status: String,
    /// Its lines as events carry them, in the order priced.
    pub(crate) lines: Vec<OrderLine>,
}

/// Writes the order `placing` (hidden) with its number, totals and lines in one statement, so
/// nothing is left half written and no transaction is held open around it.
pub(crate) async fn insert_placing(
    pool: &PgPool,
    project_id: i64,
    by: i64,
    placement: &Placement,
    currency: &str,
    priced: &[Priced],
    totals: &Totals,
) -> Result<Placing, sqlx::Error> {
    let column = |f: fn(&Priced) -> Option<i64>| priced.iter().map(f).collect::<Vec<_>>();
    let texts = |f: fn(&Priced) -> Option<String>| priced.iter().map(f).collect::<Vec<_>>();
    let quantities: Vec<i32> = priced.iter().map(|p| p.wanted.quantity as i32).collect();
    let prices: Vec<Decimal> = priced.iter().map(|p| p.unit_price).collect();
    let line_totals: Vec<Decimal> = priced.iter().map(Priced::line_total).collect();
    let overridden: Vec<bool> = priced.iter().map(|p| p.overridden).collect();
    let tracked: Vec<bool> = priced
        .iter()
        .map(|p| p.quote.track_inventory.unwrap_or(true))
        .collect();
    let (id, number, payment_status, ids): (i64, String, String, Vec<i64>) = sqlx::query_as(
        "WITH n AS (SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id), \
         o AS (INSERT INTO orders (id, project_id, order_number, customer_id, customer_email, \
             customer_phone, customer_name, shipping_address, billing_address, currency, \
             shipping_method, payment_method, notes, reference, source, coupon_code, cart_id, \
             created_by, updated_by, subtotal, discount_amount, shipping_cost, tax_amount, total) \
           SELECT n.id, $1, order_number(n.id), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $16, $17, $18, $19, $20, $21 FROM n \
           RETURNING id, order_number, payment_status), \
         l AS (SELECT nextval(pg_get_serial_sequence('order_items', 'id')) AS id, l.* \
           FROM unnest($22::bigint[], $23::bigint[], $24::bigint[], $25::text[], $26::text[], \
             $27::text[], $28::text[], $29::int[], $30::numeric[], $31::text[], $32::bool[], \
             $33::numeric[], $34::bool[], $35::numeric[], $36::numeric[]) WITH ORDINALITY \
             AS l(product_id, variant_id, inventory_id, name, variant_name, sku, image_url, \
               quantity, unit_price, list_price, overridden, total_price, tracked, discount, \
               tax, n)), \
         written AS (INSERT INTO order_items (id, project_id, order_id, product_id, variant_id, \
             inventory_id, product_name, variant_name, sku, image_url, quantity, unit_price, \
             list_price, price_overridden, total_price, tracked, discount, tax_amount, \
             created_by, updated_by) \
           SELECT l.id, $1, n.id, product_id, variant_id, inventory_id, COALESCE(name, ''), \
             variant_name, sku, image_url, quantity, unit_price, list_price::numeric, \
             overridden, total_price, tracked, discount, tax, $16, $16 FROM l, n ORDER BY l.n) \
         SELECT o.id, o.order_number, o.payment_status, ARRAY(SELECT id FROM l ORDER BY n) \
         FROM o",
    )
    .bind(project_id)
    .bind(placement.customer_id)
    .bind(&placement.customer_email)
    .bind(&placement.customer_phone)
    .bind(&placement.customer_name)
    .bind(&placement.shipping_address)
    .bind(&placement.billing_address)
    .bind(currency)
    .bind(&placement.shipping_method)
    .bind(&placement.payment_method)
    .bind(&placement.notes)
    .bind(&placement.reference)
    .bind(&placement.source)
    .bind(placement.coupon_code.clone().unwrap_or_default())
    .bind(&placement.cart_id)
    .bind(by)
    .bind(totals.subtotal)
    .bind(totals.discount)
    .bind(totals.shipping)
    .bind(totals.tax)
    .bind(totals.total)
    .bind(column(|p| Some(p.wanted.product_id)))
    .bind(column(|p| p.wanted.variant_id))
    .bind(column(|p| p.wanted.inventory_id))
    .bind(texts(|p| p.quote.name.clone()))
    .bind(texts(|p| p.quote.variant_name.clone()))
    .bind(texts(|p| p.quote.sku.clone()))
    .bind(texts(|p| p.quote.image_url.clone()))
    .bind(&quantities)
    .bind(&prices)
    .bind(texts(|p| p.quote.list_price.clone()))
    .bind(&overridden)
    .bind(&line_totals)
    .bind(&tracked)
    .bind(&totals.discounts)
    .bind(&totals.taxes)
    .fetch_one(pool)
    .await?;
    let lines = ids
        .into_iter()
        .zip(priced.iter().zip(line_totals))
        .map(|(order_item_id, (p, total))| OrderLine {
            order_item_id,
            product_id: p.wanted.product_id,
            variant_id: p.wanted.variant_id,
            sku: p.quote.sku.clone(),
            quantity: p.wanted.quantity,
            unit_price: money(p.unit_price),
            total_price: money(total),
        })
        .collect();
    Ok(Placing {
        id,
        number,
        payment_status,
        lines,
    })
}

/// Moves a `placing` order to `status` with its reservation and coupon use, and writes its
/// `placed` history row and its event, in one statement: `false` when the order is no longer
/// `placing` (the reconciler undid it), and nothing is written then.
pub(crate) async fn mark_placed(
    conn: &mut PgConnection,
    placed: &Placed<'_>,
    event: &kernel::events::OutboxRows,
) -> Result<bool, sqlx::Error> {
    let statement = format!(
        "WITH u AS (UPDATE orders SET status = $2, reservation_id = $3, \
             coupon_redemption_id = $4, updated_at = now() \
           WHERE id = $1 AND status = 'placing' RETURNING id, status), \
         h AS (INSERT INTO order_history (order_id, event, status, notes, performed_by) \
           SELECT id, 'placed', status, '', $5 FROM u), \
         e AS ({}) \
         SELECT count(*) FROM u",
        kernel::events::OutboxRows::insert(6, Some("EXISTS (SELECT 1 FROM u)"))
    );
    let query = sqlx::query(&statement)
        .bind(placed.id)
        .bind(placed.status)
        .bind(placed.reservation)
        .bind(placed.redemption)
        .bind(placed.by);
    let written: i64 = event.bind(query).fetch_one(conn).await?.try_get(0)?;
    Ok(written == 1)
}

/// What a placement's last step writes.
pub(crate) struct Placed<'a> {
    pub id: i64,
    pub status: &'a str,
    pub reservation: Option<&'a str>,
    pub redemption: Option<i64>,
    pub by: i64,
}
