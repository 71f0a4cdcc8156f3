//! Read-only views over the stock (contract inventory.md §8): low-stock alerts, availability
//! per product/variant, and whether a set of lines can be fulfilled.
//!
//! Availability counts allocatable rows only (active warehouses, batches not expired), as
//! reservations do; `on_hand` and `reserved` count every row.

use std::collections::BTreeMap;

use kernel::auth::ProjectScope;
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Value};

use crate::reference::STOCK_GRANTS;
use crate::stock::{int, MAX_QUANTITY};

/// Comma-separated positive ids of a query parameter.
fn ids(params: &BTreeMap<String, String>, name: &str) -> Result<Vec<i64>, ApiError> {
    match params.get(name) {
        None => Ok(Vec::new()),
        Some(raw) => raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ApiError::field(name, format!("\"{s}\" is not a valid id.")))
            })
            .collect(),
    }
}

fn suggestion(severity: &str, lang: &str) -> &'static str {
    match (severity, lang) {
        ("critical", "ar") => "يوصى بإعادة التخزين فوراً",
        ("critical", "fr") => "Réapprovisionnement immédiat recommandé",
        ("critical", _) => "Immediate restock recommended",
        (_, "ar") => "خطط لإعادة التخزين خلال 3 أيام",
        (_, "fr") => "Prévoir un réapprovisionnement sous 3 jours",
        _ => "Plan restock within 3 days",
    }
}

/// `GET alerts/low_stock/?severity=critical|warning|all&category=` → rows at or below their
/// threshold, `critical` when empty or at half the threshold or less.
pub async fn low_stock(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    params: &BTreeMap<String, String>,
    lang: &str,
) -> Result<Value, ApiError> {
    scope.require("inventory.view_inventory", &STOCK_GRANTS)?;
    let severity = params.get("severity").map(String::as_str).unwrap_or("all");
    if !matches!(severity, "all" | "critical" | "warning") {
        return Err(ApiError::field("severity", "Use critical, warning or all."));
    }
    let category = match params.get("category") {
        None => None,
        Some(c) => Some(
            c.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::field("category", "A valid id is required."))?,
        ),
    };
    type Row = (
        i64,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<i64>,
        i32,
        i32,
        i32,
        i32,
        Option<i32>,
        Option<i32>,
        String,
        Option<i32>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT * FROM (SELECT s.id, s.product_id, s.variant_id, p.name, p.sku, p.category_id, \
           s.quantity, s.reserved_quantity, s.available_quantity, s.low_stock_threshold, \
           COALESCE(s.reorder_point, s.low_stock_threshold), s.reorder_quantity, \
           CASE WHEN s.available_quantity = 0 OR s.available_quantity * 2 <= s.low_stock_threshold \
             THEN 'critical' ELSE 'warning' END AS severity, \
           (current_date - s.last_restocked_at::date) \
         FROM stock_items s LEFT JOIN catalog_products p ON p.product_id = s.product_id \
         WHERE s.project_id = $1 AND s.deleted_at IS NULL \
           AND s.available_quantity <= s.low_stock_threshold \
           AND ($2::bigint IS NULL OR p.category_id = $2)) a \
         WHERE $3 = 'all' OR a.severity = $3 \
         ORDER BY a.available_quantity, a.id",
    )
    .bind(scope.project_id())
    .bind(category)
    .bind(severity)
    .fetch_all(&ctx.pool)
    .await?;
    let results: Vec<Value> = rows
        .into_iter()
        .map(
            |(
                id,
                product_id,
                variant_id,
                name,
                sku,
                category,
                quantity,
                reserved,
                available,
                threshold,
                reorder_point,
                reorder_quantity,
                severity,
                days,
            )| {
                json!({
                    "id": id,
                    "product": {"id": product_id, "name": name, "sku": sku, "category": category},
                    "product_id": product_id,
                    "variant_id": variant_id,
                    "current_quantity": quantity,
                    "reserved_quantity": reserved,
                    "available_quantity": available,
                    "low_stock_threshold": threshold,
                    "reorder_point": reorder_point,
                    "reorder_quantity": reorder_quantity,
                    "days_since_last_restock": days,
                    "suggested_action": suggestion(&severity, lang),
                    "severity": severity,
                })
            },
        )
        .collect();
    Ok(json!({"count": results.len(), "results": results}))
}

/// Levels of products/variants: `(product, variant) → (on_hand, reserved, available, threshold)`.
async fn levels(
    ctx: &ServiceContext,
    project_id: i64,
    products: &[i64],
    warehouse: Option<i64>,
) -> Result<BTreeMap<(i64, Option<i64>), (i64, i64, i64, i64)>, ApiError> {
    let rows: Vec<(i64, Option<i64>, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.product_id, s.variant_id, sum(s.quantity)::bigint, \
           sum(s.reserved_quantity)::bigint, \
           COALESCE(sum(s.available_quantity) FILTER (WHERE w.is_active AND w.deleted_at IS NULL \
             AND (b.expiry_date IS NULL OR b.expiry_date >= current_date)), 0)::bigint, \
           COALESCE(max(p.low_stock_threshold), min(s.low_stock_threshold), 10)::bigint \
         FROM stock_items s JOIN warehouses w ON w.id = s.warehouse \
           LEFT JOIN batches b ON b.id = s.batch \
           LEFT JOIN catalog_products p ON p.product_id = s.product_id \
         WHERE s.project_id = $1 AND s.deleted_at IS NULL AND s.product_id = ANY($2) \
           AND ($3::bigint IS NULL OR s.warehouse = $3) \
         GROUP BY s.product_id, s.variant_id",
    )
    .bind(project_id)
    .bind(products)
    .bind(warehouse)
    .fetch_all(&ctx.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, v, on_hand, reserved, available, threshold)| {
            ((p, v), (on_hand, reserved, available, threshold))
        })
        .collect())
}

/// `GET availability/?product_id=1,2&variant_id=&warehouse=`.
pub async fn availability(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    params: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    scope.require("inventory.view_inventory", &STOCK_GRANTS)?;
    let products = ids(params, "product_id")?;
    let variants = ids(params, "variant_id")?;
    if products.is_empty() {
        return Err(ApiError::field(
            "product_id",
            "Give one or more product ids.",
        ));
    }
    if products.len() > 200 {
        return Err(ApiError::field(
            "product_id",
            "At most 200 products at once.",
        ));
    }
    let warehouse = ids(params, "warehouse")?.first().copied();
    let found = levels(ctx, scope.project_id(), &products, warehouse).await?;
    let mut out = Vec::new();
    for product in &products {
        let mut keys: Vec<Option<i64>> = found
            .keys()
            .filter(|(p, v)| {
                p == product && (variants.is_empty() || v.is_some_and(|v| variants.contains(&v)))
            })
            .map(|(_, v)| *v)
            .collect();
        if keys.is_empty() {
            keys.push(None);
        }
        for variant in keys {
            let (on_hand, reserved, available, threshold) = found
                .get(&(*product, variant))
                .copied()
                .unwrap_or((0, 0, 0, 10));
            let status = if available == 0 {
                "out_of_stock"
            } else if available <= threshold {
                "low_stock"
            } else {
                "in_stock"
            };
            out.push(json!({
                "product_id": product, "variant_id": variant, "on_hand": on_hand,
                "reserved": reserved, "available": available,
                "is_low_stock": available <= threshold, "is_out_of_stock": available == 0,
                "stock_status": status,
            }));
        }
    }
    Ok(Value::Array(out))
}

/// `POST availability/check/` `{items:[{product_id, variant_id?, quantity}], warehouse_id?}` →
/// `{can_fulfill, unavailable_items}` (lines of one product/variant are summed).
pub async fn check(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("inventory.view_inventory", &STOCK_GRANTS)?;
    let mut errors = FieldErrors::new();
    let warehouse = int(body, &["warehouse_id", "warehouse"], &mut errors);
    let items = crate::stock::items(body)?;
    let mut wanted: BTreeMap<(i64, Option<i64>), i64> = BTreeMap::new();
    for item in items {
        let product = int(item, &["product_id", "product"], &mut errors);
        let variant = int(item, &["variant_id", "variant"], &mut errors);
        let quantity = item
            .get("quantity")
            .and_then(Value::as_i64)
            .filter(|q| (1..=MAX_QUANTITY).contains(q));
        match (product, quantity) {
            (Some(p), Some(q)) => *wanted.entry((p, variant)).or_default() += q,
            (None, _) => errors.required("product_id"),
            (_, None) => errors.add("quantity", format!("Give 1 to {MAX_QUANTITY} units.")),
        }
    }
    errors.into_result()?;
    let products: Vec<i64> = wanted.keys().map(|k| k.0).collect();
    let found = levels(ctx, scope.project_id(), &products, warehouse).await?;
    // Products whose stock is not tracked are always there.
    let untracked: Vec<i64> = sqlx::query_scalar(
        "SELECT product_id FROM catalog_products WHERE project_id = $1 \
         AND product_id = ANY($2) AND NOT track_inventory",
    )
    .bind(scope.project_id())
    .bind(&products)
    .fetch_all(&ctx.pool)
    .await?;
    let unavailable: Vec<Value> = wanted
        .iter()
        .filter(|((product, _), _)| !untracked.contains(product))
        .filter_map(|((product, variant), requested)| {
            let available = found.get(&(*product, *variant)).map_or(0, |l| l.2);
            (available < *requested).then(|| {
                json!({"product_id": product, "variant_id": variant,
                       "requested_quantity": requested, "available_quantity": available})
            })
        })
        .collect();
    Ok(json!({"can_fulfill": unavailable.is_empty(), "unavailable_items": unavailable}))
}
