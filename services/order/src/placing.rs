//! The placement saga's writes (order.md §4): before anything is held, the order's id, number
//! and line ids with the project's settings (one read); once the stock is held (and a coupon
//! used), the order with its lines, its `placed` history row and its `order.created` event in
//! one statement, which also answers with the order as a read of it would show it. Nothing of
//! the order exists until then: what a placement that never got there holds is given back by
//! [`crate::placement_reconciler`].

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use integration::order::OrderLine;
use kernel::resource_written::WrittenRow;
use kernel::ApiError;
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;

use crate::orders::{money, Placement, Priced, Totals};
use crate::settings::Settings;

/// How long a placement has, from its allocation, to write its order (less when its hold is
/// shorter than twice that: [`Allocated::holding_for`]). The reconciler gives back holds older
/// than [`crate::placement_reconciler::ORPHANED_AFTER`], which is longer: the write statement
/// waits for no lock (but a concurrent insert of the same `reference`), so it ends long before.
pub(crate) const WRITE_WITHIN: std::time::Duration = std::time::Duration::from_secs(90);

/// A new order's payment status.
pub(crate) const PAYMENT_STATUS: &str = "pending";

/// What a placement takes before it holds anything.
pub(crate) struct Allocated {
    pub(crate) id: i64,
    pub(crate) number: String,
    /// One id per line, in the order priced (the event names them before they are written).
    pub(crate) line_ids: Vec<i64>,
    pub(crate) settings: Settings,
    /// The database's time when they were taken.
    taken_at: DateTime<Utc>,
    /// The database's time after which the order is no longer written.
    pub(crate) deadline: DateTime<Utc>,
}

impl Allocated {
    /// The stock is held for `hold`: the order is written within half of it at most, so that
    /// it is never written after its hold expired.
    pub(crate) fn holding_for(&mut self, hold: chrono::Duration) {
        self.deadline = self.deadline.min(self.taken_at + hold / 2);
    }
}

/// The order's id and number, its line ids, the project's settings and the database's time, in
/// one statement.
pub(crate) async fn allocate(
    pool: &PgPool,
    project_id: i64,
    lines: usize,
) -> Result<Allocated, sqlx::Error> {
    let (id, number, line_ids, taken_at, settings): (i64, String, Vec<i64>, DateTime<Utc>, Value) =
        sqlx::query_as(
            "WITH n AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id) \
             SELECT n.id, order_number(n.id), order_item_ids($2), \
               statement_timestamp(), \
               (SELECT COALESCE(jsonb_object_agg(key, value), '{}') FROM order_settings \
                 WHERE project_id = $1) \
             FROM n",
        )
        .bind(project_id)
        .bind(i32::try_from(lines).unwrap_or(i32::MAX))
        .fetch_one(pool)
        .await?;
    let within = chrono::Duration::from_std(WRITE_WITHIN).unwrap_or(chrono::Duration::MAX);
    Ok(Allocated {
        id,
        number,
        line_ids,
        settings: Settings::of(&settings),
        taken_at,
        deadline: taken_at + within,
    })
}

/// The lines as events carry them, in the order priced.
pub(crate) fn lines(allocated: &Allocated, priced: &[Priced]) -> Vec<OrderLine> {
    allocated
        .line_ids
        .iter()
        .zip(priced)
        .map(|(&order_item_id, p)| OrderLine {
            order_item_id,
            product_id: p.wanted.product_id,
            variant_id: p.wanted.variant_id,
            sku: p.quote.sku.clone(),
            quantity: p.wanted.quantity,
            unit_price: money(p.unit_price),
            total_price: money(p.line_total()),
        })
        .collect()
}

/// What a placement's last step writes.
pub(crate) struct Placed<'a> {
    pub allocated: &'a Allocated,
    pub project_id: i64,
    pub by: i64,
    pub placement: &'a Placement,
    pub currency: &'a str,
    pub priced: &'a [Priced],
    pub totals: &'a Totals,
    pub status: &'a str,
    pub reservation: Option<&'a str>,
    pub redemption: Option<i64>,
}

/// What became of a placed order's statement.
#[derive(Debug, PartialEq)]
pub(crate) enum Written {
    /// With the order as a member reads it (in English, as [`crate::orders::show`] does), when
    /// the statement answered.
    Placed(Option<Value>),
    /// Its deadline had passed: nothing was written.
    TooLate,
    /// An order of the same `reference` was placed meanwhile: nothing was written.
    ReferenceTaken,
}

/// The order's representation over the row the placement writes, its lines and history read
/// from the statement's `written` and `history`.
static ANSWER: LazyLock<Option<WrittenRow>> = LazyLock::new(|| {
    WrittenRow::of(
        &crate::orders::ORDER,
        &[("order_items", "written"), ("order_history", "history")],
    )
});

/// Writes the placed order with its lines, its `placed` history row and its event in one
/// statement, unless its deadline has passed, and answers with the order.
pub(crate) async fn insert_placed(
    pool: &PgPool,
    placed: &Placed<'_>,
    event: &kernel::events::OutboxRows,
) -> Result<Written, ApiError> {
    let Placed {
        allocated,
        placement,
        priced,
        totals,
        ..
    } = placed;
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
    let statement = format!(
        "WITH o AS (INSERT INTO orders (id, project_id, order_number, status, payment_status, \
             reservation_id, coupon_redemption_id, customer_id, customer_email, customer_phone, \
             customer_name, shipping_address, billing_address, currency, shipping_method, \
             payment_method, notes, reference, source, coupon_code, cart_id, created_by, \
             updated_by, subtotal, discount_amount, shipping_cost, tax_amount, total) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $22, $23, $24, $25, $26, $27 \
           WHERE statement_timestamp() < $28 \
           RETURNING *), \
         l AS (SELECT * FROM unnest($29::bigint[], $30::bigint[], $31::bigint[], $32::bigint[], \
             $33::text[], $34::text[], $35::text[], $36::text[], $37::int[], $38::numeric[], \
             $39::text[], $40::bool[], $41::numeric[], $42::bool[], $43::numeric[], \
             $44::numeric[]) WITH ORDINALITY \
           AS l(id, product_id, variant_id, inventory_id, name, variant_name, sku, image_url, \
             quantity, unit_price, list_price, overridden, total_price, tracked, discount, tax, \
             n)), \
         written AS (INSERT INTO order_items (id, project_id, order_id, product_id, variant_id, \
             inventory_id, product_name, variant_name, sku, image_url, quantity, unit_price, \
             list_price, price_overridden, total_price, tracked, discount, tax_amount, \
             created_by, updated_by) \
           SELECT l.id, $2, o.id, product_id, variant_id, inventory_id, COALESCE(name, ''), \
             variant_name, sku, image_url, quantity, unit_price, list_price::numeric, \
             overridden, total_price, tracked, discount, tax, $22, $22 FROM l, o ORDER BY l.n \
           RETURNING *), \
         history AS (INSERT INTO order_history (order_id, event, status, notes, performed_by) \
           SELECT id, 'placed', status, '', $22 FROM o RETURNING *), \
         e AS ({}) \
         SELECT {} FROM o t",
        kernel::events::OutboxRows::insert(45, Some("EXISTS (SELECT 1 FROM o)")),
        ANSWER.as_ref().map_or("t.id", WrittenRow::select_list),
    );
    let query = sqlx::query(&statement)
        .bind(allocated.id)
        .bind(placed.project_id)
        .bind(&allocated.number)
        .bind(placed.status)
        .bind(PAYMENT_STATUS)
        .bind(placed.reservation)
        .bind(placed.redemption)
        .bind(placement.customer_id)
        .bind(&placement.customer_email)
        .bind(&placement.customer_phone)
        .bind(&placement.customer_name)
        .bind(&placement.shipping_address)
        .bind(&placement.billing_address)
        .bind(placed.currency)
        .bind(&placement.shipping_method)
        .bind(&placement.payment_method)
        .bind(&placement.notes)
        .bind(&placement.reference)
        .bind(&placement.source)
        .bind(placement.coupon_code.clone().unwrap_or_default())
        .bind(&placement.cart_id)
        .bind(placed.by)
        .bind(totals.subtotal)
        .bind(totals.discount)
        .bind(totals.shipping)
        .bind(totals.tax)
        .bind(totals.total)
        .bind(allocated.deadline)
        .bind(&allocated.line_ids)
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
        .bind(&totals.taxes);
    match event.bind(query).fetch_optional(pool).await {
        Ok(Some(row)) => Ok(Written::Placed(match &*ANSWER {
            Some(answer) => Some(answer.shape(&row, "en")?),
            None => None,
        })),
        Ok(None) => Ok(Written::TooLate),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("orders_reference") => {
            Ok(Written::ReferenceTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the order was written (a write whose answer was lost may have been).
pub(crate) async fn exists(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
}
